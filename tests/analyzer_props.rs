//! Property tests over the analyzer: arbitrary segment sequences (seq/ack
//! near each other so the stateful rules fire, any flags, crafted options,
//! time that jumps back and forth) never panic in a debug build, and the
//! counts the analyzer reports agree with the events it emitted; and the
//! analysis on several threads says exactly what one analyzer says.

use kaprobe::analyze::{Analyzer, Collect, Config, Connection, Events, FlowReport, Kind, Parallel, SegmentEvent, Sink};
use kaprobe::decode::{LinkType, Packet};
use kaprobe::wire::build::{ethernet_frame, SegmentSpec};
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

/// The steps as timed segments. Per flow, each end's next sequence number
/// moves with what it sends, so the stateful rules fire.
fn packets(steps: &[Step]) -> Vec<(u64, Packet)> {
    let flows = steps.iter().map(|s| s.flow as usize + 1).max().unwrap_or(1);
    let mut nxt = vec![[1000u32, 5000u32]; flows];
    let mut t: u64 = 1_700_000_000_000_000_000;
    let mut out = Vec::new();
    for s in steps {
        let (me, peer) = if s.from_client { (0, 1) } else { (1, 0) };
        let f = s.flow as usize;
        let seq = nxt[f][me].wrapping_add(s.seq_off as i32 as u32);
        let ack = nxt[f][peer].wrapping_add(s.ack_off as i32 as u32);
        let mut options = TcpOptions {
            wscale: s.wscale,
            timestamp: s.ts,
            ..TcpOptions::default()
        };
        if let Some((l, r)) = s.sack {
            options.sack[0] = (
                Seq(ack.wrapping_add(l as i32 as u32)),
                Seq(ack.wrapping_add(r as i32 as u32)),
            );
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
        t = t.saturating_add_signed(s.dt_ms as i64 * 1_000_000);
        out.push((
            t,
            Packet {
                vlan: [0, 0],
                src,
                dst,
                tcp,
                truncated: false,
                ttl: 64,
            },
        ));
    }
    out
}

/// Everything a sink is told, in order, as text.
#[derive(Default)]
struct Said(Vec<String>);

impl Sink for Said {
    fn segment(&mut self, ev: &SegmentEvent) {
        self.0.push(format!("{ev:?}"));
    }
    fn flow(&mut self, c: Connection) {
        self.0.push(serde_json::to_string(&FlowReport::of(&c)).unwrap());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn analyzer_never_panics_and_counts_agree(steps in proptest::collection::vec(step(), 1..120)) {
        let mut an = Analyzer::new(Config { events: Events::All, keep_timeline: true, ..Config::default() });
        let mut out = Collect::default();
        for (i, (t, pkt)) in packets(&steps).iter().enumerate() {
            an.packet(i as u64 + 1, *t, pkt, &mut out);
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

    /// Threads, batch boundaries and the order of parts change nothing: the
    /// same events and flows, in the same order, with the same ids. Flows
    /// (up to 12) interleave so that lookahead windows span parts, and time
    /// jumps of hours make sweeps evict flows mid-input.
    #[test]
    fn threads_say_what_one_analyzer_says(
        steps in proptest::collection::vec(step().prop_flat_map(|s| (Just(s), 0u8..12)).prop_map(|(mut s, f)| { s.flow = f; s }), 1..300),
        threads in 2usize..5,
        batch in prop_oneof![1usize..8, 8usize..400],
        events in prop_oneof![Just(Events::All), Just(Events::Notable), Just(Events::None)],
    ) {
        let cfg = Config { events, keep_timeline: true, ..Config::default() };
        let timed = packets(&steps);
        let mut an = Analyzer::new(cfg.clone());
        let mut one = Said::default();
        for (i, (t, pkt)) in timed.iter().enumerate() {
            an.packet(i as u64 + 1, *t, pkt, &mut one);
        }
        an.finish(&mut one);
        let mut par = Parallel::with_batch(cfg, threads, batch);
        let mut many = Said::default();
        for (i, (t, pkt)) in timed.iter().enumerate() {
            par.packet(i as u64 + 1, *t, pkt, &mut many);
        }
        let stats = par.finish(&mut many);
        prop_assert_eq!(&one.0, &many.0);
        prop_assert_eq!(format!("{:?}", an.stats), format!("{stats:?}"));
        prop_assert!(stats.flows > 0);
    }

    /// The same on whole frames, as `verify` reads a capture: built from
    /// the segments, with records that hold no TCP segment (junk bytes,
    /// frames cut inside the headers) and frames cut by a snaplen among them.
    #[test]
    fn threads_say_what_one_analyzer_says_on_frames(
        steps in proptest::collection::vec(step().prop_flat_map(|s| (Just(s), 0u8..12)).prop_map(|(mut s, f)| { s.flow = f; s }), 1..200),
        damage in proptest::collection::vec((0usize..200, 0u8..3, 20usize..60), 0..12),
        threads in 2usize..5,
        batch in prop_oneof![1usize..8, 8usize..300],
    ) {
        let mut frames: Vec<(u64, Vec<u8>, bool)> = packets(&steps)
            .iter()
            .map(|(t, p)| {
                let payload = vec![0u8; p.tcp.payload_len as usize];
                let mut spec = SegmentSpec::new(
                    std::net::SocketAddr::new(p.src, p.tcp.src_port),
                    std::net::SocketAddr::new(p.dst, p.tcp.dst_port),
                    p.tcp.seq,
                    p.tcp.ack,
                    p.tcp.flags.0,
                );
                spec.window = p.tcp.window;
                spec.timestamp = p.tcp.options.timestamp;
                spec.payload = &payload;
                let mut f = Vec::new();
                ethernet_frame(&spec, &mut f).expect("a frame");
                (*t, f, false)
            })
            .collect();
        for (at, what, cut) in damage {
            let at = at % frames.len();
            let t = frames[at].0;
            match what {
                0 => frames.insert(at, (t, vec![0xab; cut], false)),
                1 => frames[at].1.truncate(cut.min(30)),
                _ => {
                    let keep = (cut + 14).min(frames[at].1.len());
                    frames[at].1.truncate(keep);
                    frames[at].2 = true;
                }
            }
        }
        let cfg = Config { events: Events::All, keep_timeline: true, ..Config::default() };
        let mut an = Analyzer::new(cfg.clone());
        let mut one = Said::default();
        let mut par = Parallel::with_batch(cfg, threads, batch);
        let mut many = Said::default();
        for (i, (t, f, snapped)) in frames.iter().enumerate() {
            an.frame(i as u64 + 1, *t, LinkType::Ethernet, f, *snapped, &mut one);
            par.frame(i as u64 + 1, *t, LinkType::Ethernet, f, *snapped, &mut many);
        }
        an.finish(&mut one);
        let stats = par.finish(&mut many);
        prop_assert_eq!(&one.0, &many.0);
        prop_assert_eq!(format!("{:?}", an.stats), format!("{stats:?}"));
        prop_assert_eq!(stats.packets as usize, frames.len());
    }
}

/// One flow among several workers: the others hold nothing, and the merge
/// must not wait for them. The events stream out as the input goes, each
/// batch's after the next, not all at the end of input.
#[test]
fn one_busy_flow_streams_through_idle_workers() {
    let steps: Vec<Step> = (0..2_000)
        .map(|i| Step {
            from_client: i % 2 == 0,
            flow: 0,
            seq_off: 0,
            ack_off: 0,
            flags: 0x10,
            len: (i % 3 == 0) as u8,
            window: 1000,
            wscale: None,
            ts: None,
            sack: None,
            dt_ms: 10,
        })
        .collect();
    let cfg = Config {
        events: Events::All,
        ..Config::default()
    };
    let mut par = Parallel::with_batch(cfg, 4, 64);
    let mut out = Said::default();
    for (i, (t, pkt)) in packets(&steps).iter().enumerate() {
        par.packet(i as u64 + 1, *t, pkt, &mut out);
    }
    let before_end = out.0.len();
    par.finish(&mut out);
    // Held back at most: the batch being filled, the one the workers are on,
    // and the lookahead window.
    assert!(
        before_end >= 2_000 - 2 * 64 - 12,
        "only {before_end} of 2000 events before the end"
    );
    assert_eq!(out.0.len(), 2_001, "every segment's event and the flow");
}
