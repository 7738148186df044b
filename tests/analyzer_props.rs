//! Property tests over the analyzer: arbitrary segment sequences (seq/ack
//! near each other so the stateful rules fire, any flags, crafted options,
//! time that jumps back and forth) never panic in a debug build, and the
//! counts the analyzer reports agree with the events it emitted.

use kaprobe::analyze::{Analyzer, Collect, Config, Events, FlowReport, Kind};
use kaprobe::decode::Packet;
use kaprobe::wire::{Flags, Segment, Seq, TcpOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Step {
    from_client: bool,
    flow: u8,
    seq_off: i8,
    ack_off: i8,
    flags: u8,
    len: u8,
    window: u16,
    wscale: Option<u8>,
    ts: Option<(u32, u32)>,
    sack: Option<(i8, i8)>,
    dt_ms: i32,
}

fn step() -> impl Strategy<Value = Step> {
    (
        any::<bool>(),
        0u8..3,
        -3i8..3,
        -3i8..3,
        any::<u8>(),
        prop_oneof![Just(0u8), Just(1u8), any::<u8>()],
        prop_oneof![Just(0u16), any::<u16>()],
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<(u32, u32)>()),
        proptest::option::of(any::<(i8, i8)>()),
        prop_oneof![0i32..2_000, -2_000i32..0, 0i32..40_000_000],
    )
        .prop_map(
            |(from_client, flow, seq_off, ack_off, flags, len, window, wscale, ts, sack, dt_ms)| Step {
                from_client,
                flow,
                seq_off,
                ack_off,
                flags,
                len,
                window,
                wscale,
                ts,
                sack,
                dt_ms,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn analyzer_never_panics_and_counts_agree(steps in proptest::collection::vec(step(), 1..120)) {
        let mut an = Analyzer::new(Config { events: Events::All, keep_timeline: true, ..Config::default() });
        let mut out = Collect::default();
        // Per flow: each end's next sequence number, moved by what it sends.
        let mut nxt = [[1000u32, 5000u32]; 3];
        let mut t: u64 = 1_700_000_000_000_000_000;
        for (i, s) in steps.iter().enumerate() {
            let (me, peer) = if s.from_client { (0, 1) } else { (1, 0) };
            let f = s.flow as usize;
            let seq = nxt[f][me].wrapping_add(s.seq_off as i32 as u32);
            let ack = nxt[f][peer].wrapping_add(s.ack_off as i32 as u32);
            let mut options = TcpOptions { wscale: s.wscale, timestamp: s.ts, ..TcpOptions::default() };
            if let Some((l, r)) = s.sack {
                options.sack[0] = (Seq(ack.wrapping_add(l as i32 as u32)), Seq(ack.wrapping_add(r as i32 as u32)));
                options.sack_len = 1;
            }
            let tcp = Segment {
                src_port: if s.from_client { 40000 + f as u16 } else { 80 },
                dst_port: if s.from_client { 80 } else { 40000 + f as u16 },
                seq: Seq(seq),
                ack: Seq(ack),
                flags: Flags(s.flags),
                window: s.window,
                payload_len: s.len as u32,
                first_byte: (s.len > 0).then_some(0),
                options,
            };
            nxt[f][me] = nxt[f][me].max(seq.wrapping_add(tcp.seq_len()));
            let (src, dst) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
            let (src, dst) = if s.from_client { (src, dst) } else { (dst, src) };
            let pkt = Packet { vlan: [0, 0], src, dst, tcp, truncated: false, ttl: 64 };
            t = t.saturating_add_signed(s.dt_ms as i64 * 1_000_000);
            an.packet(i as u64 + 1, t, &pkt, &mut out);
        }
        an.finish(&mut out);
        let stats = an.stats;
        prop_assert_eq!(stats.tcp_packets as usize, steps.len());
        prop_assert_eq!(out.segments.len(), steps.len(), "Events::All: one event per segment");
        let probes = out.segments.iter().filter(|e| e.kind == Kind::KeepaliveProbe).count() as u64;
        prop_assert_eq!(stats.probes, probes);
        prop_assert_eq!(out.flows.len() as u64, stats.flows);
        let reported: u32 = out.flows.iter().map(|c| FlowReport::of(c).probes).sum();
        prop_assert_eq!(reported as u64, probes);
        for c in &out.flows {
            let r = FlowReport::of(c);
            prop_assert!(r.answered + r.unanswered + r.resets <= r.probes, "{:?}", r);
            prop_assert!(serde_json::to_string(&r).is_ok());
        }
    }
}
