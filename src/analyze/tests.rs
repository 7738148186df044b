//! The analyzer end to end on synthetic sessions: frames built byte for byte,
//! decoded, classified.

use super::*;
use crate::decode::{decode, LinkType};
use crate::synth::{End, End::Client, End::Server, Session};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

struct Run {
    s: Session,
    an: Analyzer,
    out: Collect,
    frame: u64,
    t: u64,
}

impl Run {
    fn new() -> Run {
        Self::with_isns(1000, 5000)
    }

    fn with_isns(c: u32, s: u32) -> Run {
        let s = Session::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap(), c, s);
        Run {
            s,
            an: Analyzer::new(Config {
                keep_timeline: true,
                ..Config::default()
            }),
            out: Collect::default(),
            frame: 0,
            t: 1_700_000_000 * S,
        }
    }

    fn feed(&mut self, after: u64, frame: &[u8]) {
        self.t += after;
        self.frame += 1;
        let p = decode(LinkType::Ethernet, frame, false).expect("synthetic frame decodes");
        self.an.packet(self.frame, self.t, &p, &mut self.out);
    }

    /// Handshake and one request/response, all acknowledged.
    fn open(&mut self) {
        for f in self.s.handshake().unwrap() {
            self.feed(MS, &f);
        }
        self.exchange();
    }

    fn exchange(&mut self) {
        let f = self.s.data(Client, b"hello").unwrap().to_vec();
        self.feed(MS, &f);
        let f = self.s.data(Server, b"world!").unwrap().to_vec();
        self.feed(MS, &f);
        let f = self.s.ack(Client).unwrap().to_vec();
        self.feed(MS, &f);
    }

    fn step(&mut self, after: u64, make: impl FnOnce(&mut Session) -> Vec<u8>) {
        let f = make(&mut self.s);
        self.feed(after, &f);
    }

    fn probe(&mut self, after: u64, e: End, len: usize) {
        self.step(after, |s| s.probe(e, &[0u8; 1][..len]).unwrap().to_vec());
    }

    fn answer(&mut self, after: u64, e: End) {
        self.step(after, |s| s.probe_ack(e, false).unwrap().to_vec());
    }

    fn finish(mut self) -> (Vec<Kind>, Vec<SegmentEvent>, Vec<FlowReport>) {
        self.an.finish(&mut self.out);
        let kinds = self.out.segments.iter().map(|e| e.kind).collect();
        let reports = self.out.flows.iter().map(FlowReport::of).collect();
        (kinds, self.out.segments, reports)
    }
}

use Kind::*;

#[test]
fn answered_zero_byte_probes() {
    let mut r = Run::new();
    r.open();
    for _ in 0..3 {
        r.probe(30 * S, Client, 0);
        r.answer(2 * MS, Server);
    }
    let (kinds, segs, flows) = r.finish();
    assert_eq!(kinds, [KeepaliveProbe, KeepaliveAck].repeat(3));
    assert_eq!(segs[1].answers, Some(segs[0].frame));
    assert_eq!(segs[1].rtt, Some(2 * MS));
    let f = &flows[0];
    assert_eq!((f.prober, f.probes, f.answered, f.unanswered), ("client", 3, 3, 0));
    assert_eq!(f.outcome, Outcome::Alive);
    // Idle counts from the last segment received: the previous answer.
    assert_eq!(f.idle_s, Some(30.0));
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

#[test]
fn blackholed_peer_gets_count_probes_then_abort() {
    let mut r = Run::new();
    r.open();
    r.probe(10 * S, Client, 0);
    r.probe(2 * S, Client, 0);
    r.probe(2 * S, Client, 0);
    r.step(2 * S, |s| s.abort(Client).unwrap().to_vec());
    let (kinds, _, flows) = r.finish();
    assert_eq!(kinds, [KeepaliveProbe, KeepaliveProbe, KeepaliveProbe, KeepaliveAbort]);
    let f = &flows[0];
    assert_eq!((f.probes, f.answered, f.unanswered, f.count), (3, 0, 3, Some(3)));
    // The client last received the server's data, 1 ms before its own ACK.
    assert_eq!(f.idle_s, Some(10.001));
    assert_eq!(f.interval_s, Some(2.0));
    assert_eq!(f.outcome, Outcome::TimedOut);
    let e = Expectations::parse("idle=10s,interval=2s,count=3,outcome=timed_out").unwrap();
    assert!(e.check(f).is_empty(), "{:?}", e.check(f));
    let e = Expectations::parse("idle=30s,count=5").unwrap();
    assert_eq!(e.check(f).len(), 2, "{:?}", e.check(f));
}

impl Run {
    /// A SYN of another connection `after` from now: the capture goes on.
    fn other_flow(&mut self, after: u64) {
        let mut other = Session::new("10.0.0.3:40001".parse().unwrap(), "10.0.0.2:80".parse().unwrap(), 7, 9);
        let [syn, ..] = other.handshake().unwrap();
        self.feed(after, &syn);
    }
}

/// gVisor and PyTCP stop after `count` unanswered probes and send no RST.
#[test]
fn a_prober_that_goes_silent_while_the_capture_goes_on_timed_out() {
    let silent = |capture_goes_on: Option<u64>| {
        let mut r = Run::new();
        r.open();
        r.probe(10 * S, Client, 0);
        r.probe(2 * S, Client, 0);
        r.probe(2 * S, Client, 0);
        if let Some(after) = capture_goes_on {
            r.other_flow(after);
        }
        let (kinds, _, flows) = r.finish();
        assert_eq!(kinds, [KeepaliveProbe].repeat(3));
        flows.into_iter().next().unwrap()
    };
    // Well past the next probe's due time (two intervals): it gave up.
    let f = silent(Some(5 * S));
    assert_eq!(
        (f.outcome, f.silent, f.count, f.unanswered),
        (Outcome::TimedOut, true, Some(3), 3)
    );
    assert_eq!(f.outcome_text(), "timed_out (silent)");
    let e = Expectations::parse("interval=2s,count=3,outcome=timed_out").unwrap();
    assert!(e.check(&f).is_empty(), "{:?}", e.check(&f));
    // The capture ended, or went on less than two intervals: nothing is known.
    for end in [None, Some(3 * S)] {
        let f = silent(end);
        assert_eq!(
            (f.outcome, f.silent, f.count),
            (Outcome::Unknown, false, None),
            "{end:?}"
        );
    }
}

/// A lone unanswered probe whose answer the capture missed says nothing of a
/// give-up, however long the capture goes on and whatever interval an earlier
/// run showed: the prober's next probe is due an idle later, not an interval.
#[test]
fn a_lone_unanswered_probe_is_not_a_silent_time_out() {
    let mut r = Run::new();
    r.open();
    // An earlier run: one probe unanswered, the next answered (an interval sample of 5 s).
    r.probe(10 * S, Client, 0);
    r.probe(5 * S, Client, 0);
    r.answer(MS, Server);
    // Later, one probe whose answer is not in the capture; the capture goes on 60 s.
    r.probe(10 * S, Client, 0);
    r.other_flow(60 * S);
    let (_, _, flows) = r.finish();
    let f = &flows[0];
    assert_eq!((f.outcome, f.silent), (Outcome::Unknown, false), "{f:?}");
}

/// A capture joined mid-session that opens with an answered probe, then the
/// peer goes silent: the prober's abort RST (at the real SND.NXT, one past the
/// probes) is its give-up, not a stray RST.
#[test]
fn a_capture_that_opens_with_a_probe_then_times_out() {
    let mut r = Run::new();
    // The handshake and data happened before the capture started.
    r.s.handshake().unwrap();
    r.s.data(Client, b"hello").unwrap();
    r.s.data(Server, b"world!").unwrap();
    r.s.ack(Client).unwrap();
    r.probe(10 * S, Client, 0);
    r.answer(MS, Server);
    for _ in 0..3 {
        r.probe(10 * S, Client, 0);
    }
    r.step(2 * S, |s| s.abort(Client).unwrap().to_vec());
    let (kinds, segs, flows) = r.finish();
    assert_eq!(
        kinds,
        [
            KeepaliveProbe,
            KeepaliveAck,
            KeepaliveProbe,
            KeepaliveProbe,
            KeepaliveProbe,
            KeepaliveAbort
        ]
    );
    assert_eq!(
        segs[0].peer_acked_frame,
        Some(2),
        "acknowledged by the answer seen ahead"
    );
    let f = &flows[0];
    assert_eq!((f.outcome, f.count, f.answered), (Outcome::TimedOut, Some(3), 1));
}

#[test]
fn rebooted_peer_answers_with_rst() {
    let mut r = Run::new();
    r.open();
    r.probe(10 * S, Client, 0);
    r.step(MS, |s| s.reset_unknown(Server).unwrap().to_vec());
    let (kinds, segs, flows) = r.finish();
    assert_eq!(kinds, [KeepaliveProbe, KeepaliveRst]);
    assert_eq!(segs[1].answers, Some(segs[0].frame));
    assert_eq!(flows[0].outcome, Outcome::Reset);
    assert_eq!(flows[0].resets, 1);
}

#[test]
fn one_byte_probes_answered_with_dsack() {
    let mut r = Run::new();
    r.open();
    for _ in 0..2 {
        r.probe(10 * S, Client, 1);
        r.step(MS, |s| s.probe_ack(Server, true).unwrap().to_vec());
    }
    let (kinds, segs, flows) = r.finish();
    assert_eq!(kinds, [KeepaliveProbe, KeepaliveAck].repeat(2));
    assert!(segs[1].dsack);
    assert_eq!(flows[0].directions[0].one_byte_probes, 2);
}

#[test]
fn one_byte_retransmission_is_not_a_probe() {
    let mut r = Run::new();
    r.open();
    r.step(10 * S, |s| s.data(Client, b"x").unwrap().to_vec());
    for _ in 0..3 {
        r.step(S, |s| s.retransmit(Client, b"x").unwrap().to_vec());
    }
    let (kinds, _, flows) = r.finish();
    assert_eq!(kinds, [Retransmission; 3]);
    assert_eq!((flows[0].probes, flows[0].retransmissions), (0, 3));
}

#[test]
fn zero_window_probes_are_not_keepalive() {
    let mut r = Run::new();
    r.open();
    r.s.set_window(Server, 0);
    r.step(MS, |s| s.data(Client, &[1; 100]).unwrap().to_vec());
    r.step(MS, |s| s.ack(Server).unwrap().to_vec());
    for _ in 0..2 {
        r.probe(S, Client, 0);
        r.answer(MS, Server);
    }
    let (kinds, _, flows) = r.finish();
    assert_eq!(kinds, [ZeroWindowProbe, ZeroWindowAck].repeat(2));
    assert_eq!((flows[0].probes, flows[0].zero_window_probes), (0, 2));
}

#[test]
fn answer_with_changed_window_is_still_a_keepalive_ack() {
    let mut r = Run::new();
    r.open();
    r.probe(10 * S, Client, 0);
    r.s.set_window(Server, 9000);
    r.answer(MS, Server);
    let (kinds, segs, _) = r.finish();
    assert_eq!(kinds, [KeepaliveProbe, KeepaliveAck]);
    assert_ne!(segs[1].window, segs[0].peer_window.unwrap());
}

#[test]
fn sequence_numbers_crossing_2_pow_32() {
    let mut r = Run::with_isns(u32::MAX - 3, u32::MAX - 1);
    r.open(); // both directions' data crosses the wrap
    assert!(r.s.next_seq(Client).0 < 100 && r.s.next_seq(Server).0 < 100);
    r.probe(10 * S, Client, 0);
    r.answer(MS, Server);
    r.probe(10 * S, Server, 1);
    r.step(MS, |s| s.probe_ack(Client, true).unwrap().to_vec());
    let (kinds, _, flows) = r.finish();
    assert_eq!(kinds, [KeepaliveProbe, KeepaliveAck].repeat(2));
    assert_eq!(flows[0].prober, "both");
}

#[test]
fn empty_segment_after_unacked_byte_is_not_a_probe() {
    // Telnet-style: one byte of data, then an empty PSH/ACK at the same seq
    // before the byte is acknowledged (Wireshark calls it Keep-Alive).
    let mut r = Run::new();
    r.open();
    r.step(S, |s| s.data(Client, b"l").unwrap().to_vec());
    r.step(MS, |s| s.retransmit(Client, b"").unwrap().to_vec());
    let (kinds, _, flows) = r.finish();
    assert!(kinds.is_empty(), "{kinds:?}");
    assert_eq!(flows[0].probes, 0);
}

#[test]
fn probe_faults_are_reported() {
    let mut r = Run::new();
    r.open();
    r.probe(10 * S, Client, 0);
    r.answer(MS, Server);
    r.probe(100 * MS, Client, 0); // inside the peer's 500 ms rate limit, unanswered
    r.s.timestamps = false;
    r.probe(S, Client, 0); // no TSopt although negotiated
    let (_, segs, flows) = r.finish();
    let v: Vec<(&str, u64)> = flows[0].violations.iter().map(|v| (v.kind, v.frame)).collect();
    let probes: Vec<u64> = segs
        .iter()
        .filter(|s| s.kind == KeepaliveProbe)
        .map(|s| s.frame)
        .collect();
    assert_eq!(
        v,
        [
            ("probe_within_rate_limit", probes[1]),
            ("probe_without_timestamp", probes[2])
        ]
    );
    assert_eq!(flows[0].directions[0].unanswered_rate_limited, 1);
}

#[test]
fn rate_limit_counts_from_the_peers_last_answer_and_spares_answered_probes() {
    // `probe --idle 200ms --interval 200ms` against a Linux peer: the peer answers
    // the first probe, then nothing for 500 ms, then the next probe again.
    let mut r = Run::new();
    r.open();
    r.probe(10 * S, Client, 0);
    r.answer(MS, Server);
    r.probe(200 * MS, Client, 0); // 201 ms after the answered probe: limited
    r.probe(200 * MS, Client, 0); // 401 ms: limited
    r.probe(200 * MS, Client, 0); // 601 ms: answered
    r.answer(MS, Server);
    r.probe(200 * MS, Client, 0); // 201 ms after that one: limited, never answered
    let (kinds, segs, flows) = r.finish();
    assert_eq!(
        kinds,
        [
            KeepaliveProbe,
            KeepaliveAck,
            KeepaliveProbe,
            KeepaliveProbe,
            KeepaliveProbe,
            KeepaliveAck,
            KeepaliveProbe
        ]
    );
    let f = &flows[0];
    assert_eq!((f.probes, f.answered, f.unanswered), (5, 2, 3));
    // Every unanswered probe was inside the limit, no answered one is reported.
    let flagged: Vec<u64> = f.violations.iter().map(|v| v.frame).collect();
    let unanswered = [segs[2].frame, segs[3].frame, segs[6].frame];
    assert_eq!(flagged, unanswered);
    assert_eq!(f.directions[0].unanswered_rate_limited, 3);
    // The second answer is paired with the probe just before it, not an older one.
    assert_eq!((segs[5].answers, segs[5].rtt), (Some(segs[4].frame), Some(MS)));
}

#[test]
fn answers_later_than_the_next_probe_pair_with_their_own_probe() {
    // Round trip 1.5 s (the handshake shows it), probes 1 s apart, no
    // timestamps: answers come in order, one round trip after their probe.
    let mut r = Run::new();
    r.s.timestamps = false;
    let [syn, synack, ack] = r.s.handshake().unwrap();
    r.feed(MS, &syn);
    r.feed(1500 * MS, &synack);
    r.feed(MS, &ack);
    r.probe(10 * S, Client, 0); // 0 s
    r.probe(S, Client, 0); // 1 s: the first is not answered yet
    r.answer(500 * MS, Server); // 1.5 s: the first probe's
    r.answer(S, Server); // 2.5 s: the second's
    r.probe(MS, Client, 0); // 2.501 s, an idle after the last answer
    r.answer(1500 * MS, Server);
    let (kinds, segs, flows) = r.finish();
    assert_eq!(
        kinds,
        [
            KeepaliveProbe,
            KeepaliveProbe,
            KeepaliveAck,
            KeepaliveAck,
            KeepaliveProbe,
            KeepaliveAck
        ]
    );
    for (answer, probe) in [(2, 0), (3, 1), (5, 4)] {
        assert_eq!(segs[answer].answers, Some(segs[probe].frame), "answer {answer}");
        assert_eq!(segs[answer].rtt, Some(1500 * MS), "answer {answer}");
    }
    let f = &flows[0];
    assert_eq!((f.probes, f.answered, f.unanswered), (3, 3, 0));
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

#[test]
fn a_lost_probe_is_passed_over_once_the_round_trip_is_known() {
    let mut r = Run::new();
    r.s.timestamps = false;
    r.open();
    r.probe(10 * S, Client, 0);
    r.answer(800 * MS, Server); // round trip 0.8 s: a probe stays answerable for 1.6 s
    r.probe(10 * S, Client, 0); // lost
    r.probe(S, Client, 0); // the lost one is still in flight when this leaves
    r.answer(800 * MS, Server);
    let (_, segs, flows) = r.finish();
    // 0.8 s after the second probe, not 1.8 s after the lost one.
    assert_eq!((segs[4].answers, segs[4].rtt), (Some(segs[3].frame), Some(800 * MS)));
    assert_eq!((flows[0].answered, flows[0].unanswered), (2, 1));
}

#[test]
fn reused_tuple_with_new_syn_is_a_new_connection() {
    let mut r = Run::new();
    r.open();
    r.step(MS, |s| s.fin(Client).unwrap().to_vec());
    r.step(MS, |s| s.fin(Server).unwrap().to_vec());
    r.s = Session::new(
        "10.0.0.1:40000".parse().unwrap(),
        "10.0.0.2:80".parse().unwrap(),
        777_777,
        888_888,
    );
    r.open();
    r.probe(10 * S, Client, 0);
    r.answer(MS, Server);
    let (_, _, flows) = r.finish();
    assert_eq!(flows.len(), 2);
    assert_eq!(flows[0].outcome, Outcome::Closed);
    assert_eq!((flows[1].probes, flows[1].outcome), (1, Outcome::Alive));
}

#[test]
fn timestamps_going_backwards_are_counted_not_fatal() {
    let mut r = Run::new();
    r.open();
    r.probe(10 * S, Client, 0);
    r.t -= 5 * S;
    r.answer(0, Server);
    let stats = r.an.stats;
    let (kinds, _, flows) = r.finish();
    assert_eq!(kinds, [KeepaliveProbe, KeepaliveAck]);
    assert_eq!(stats.time_backwards, 1);
    assert_eq!(flows[0].timestamps_out_of_order, 1);
}

#[test]
fn capture_starting_mid_flow_still_finds_probes() {
    let mut r = Run::new();
    r.open();
    // Forget everything: a new analyzer sees only what follows.
    r.an = Analyzer::new(Config::default());
    r.out = Collect::default();
    r.step(MS, |s| s.ack(Server).unwrap().to_vec());
    r.probe(10 * S, Client, 0);
    r.answer(MS, Server);
    r.probe(10 * S, Client, 0);
    r.answer(MS, Server);
    let (kinds, _, flows) = r.finish();
    assert_eq!(kinds, [KeepaliveProbe, KeepaliveAck].repeat(2));
    assert_eq!(flows[0].prober, "a");
}

#[test]
fn idle_flows_are_evicted_and_reported_while_streaming() {
    let mut r = Run::new();
    r.open();
    let other = Session::new("10.0.0.9:1".parse().unwrap(), "10.0.0.2:80".parse().unwrap(), 1, 1);
    r.s = other;
    r.feed(11 * 3600 * S, &r.s.clone().handshake().unwrap()[0]);
    r.feed(61 * S, &r.s.clone().handshake().unwrap()[0]);
    r.an.flush(&mut r.out);
    assert_eq!(r.out.flows.len(), 1, "the first flow is reported before the end");
}

#[test]
fn later_timestamps_in_the_lookahead_do_not_evict_a_live_flow() {
    // Packets stamped 11 h later arrive right after a probe and its answer.
    // While the probe waits in the lookahead queue, eviction must go by the
    // time of the packet being processed, not by the newest time read.
    let mut r = Run::new();
    r.open();
    r.probe(10 * S, Client, 0);
    r.answer(MS, Server);
    let mut other = Session::new("10.0.0.9:1".parse().unwrap(), "10.0.0.2:80".parse().unwrap(), 1, 1);
    let syn = other.handshake().unwrap()[0].clone();
    r.feed(11 * 3600 * S, &syn);
    for _ in 0..8 {
        r.feed(MS, &syn);
    }
    let (kinds, _, flows) = r.finish();
    assert_eq!(kinds, [KeepaliveProbe, KeepaliveAck]);
    assert_eq!(flows[0].answered, 1);
}

#[test]
fn the_peers_own_probes_do_not_restart_the_idle_clock() {
    // Both ends probe (as in nDPI's anydesk capture): the server's idle runs
    // from the client's last real segment, not from the client's probe.
    let mut r = Run::new();
    r.open();
    r.probe(10 * S, Client, 0);
    r.answer(MS, Server);
    r.probe(30 * MS, Server, 0);
    r.step(MS, |s| s.probe_ack(Client, false).unwrap().to_vec());
    let (kinds, _, flows) = r.finish();
    assert_eq!(kinds, [KeepaliveProbe, KeepaliveAck].repeat(2));
    let server = flows[0].directions.iter().find(|d| d.role == "server").unwrap();
    let idle = server.idle.unwrap().s;
    assert!(
        idle > 10.0,
        "server idle {idle} s counts from the client's ACK of the data"
    );
    assert_eq!(flows[0].prober, "both");
    assert_eq!(
        flows[0].idle_s,
        Some(10.001),
        "the side that probed first is the headline"
    );
}

#[test]
fn an_application_rst_right_after_a_probe_is_not_a_keepalive_abort() {
    let mut r = Run::new();
    r.open();
    r.probe(10 * S, Client, 0);
    r.step(5 * MS, |s| s.abort(Client).unwrap().to_vec());
    let (kinds, _, flows) = r.finish();
    assert_eq!(kinds, [KeepaliveProbe]);
    assert_eq!(flows[0].outcome, Outcome::Reset);
    assert_eq!(flows[0].count, None);
}

#[test]
fn retransmissions_to_a_silent_receiver_are_not_probes_even_mid_flow() {
    // The capture starts after the handshake; the receiver never acknowledges
    // anything in it, but the 1-byte write is in the capture.
    let mut r = Run::new();
    r.open();
    r.an = Analyzer::new(Config::default());
    r.out = Collect::default();
    r.step(S, |s| s.data(Client, b"x").unwrap().to_vec());
    for _ in 0..3 {
        r.step(2 * S, |s| s.retransmit(Client, b"x").unwrap().to_vec());
    }
    let (kinds, _, flows) = r.finish();
    assert_eq!(kinds, [Retransmission; 3]);
    assert_eq!(flows[0].probes, 0);
}

#[test]
fn an_absurd_window_scale_is_clamped_not_a_crash() {
    use crate::wire::build::{ethernet_frame, SegmentSpec};
    use crate::wire::{Flags, Seq};
    let (c, sv) = ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap());
    let mut frames = Vec::new();
    for (src, dst, seq, ack, flags) in [
        (c, sv, 1, 0, Flags::SYN),
        (sv, c, 100, 2, Flags::SYN | Flags::ACK),
        (c, sv, 2, 101, Flags::ACK),
    ] {
        let mut spec = SegmentSpec::new(src, dst, Seq(seq), Seq(ack), flags);
        spec.window = 65535;
        spec.wscale = Some(40);
        let mut f = Vec::new();
        ethernet_frame(&spec, &mut f).unwrap();
        frames.push(f);
    }
    let mut an = Analyzer::new(Config {
        events: Events::All,
        ..Config::default()
    });
    let mut out = Collect::default();
    for (i, f) in frames.iter().enumerate() {
        let p = decode(LinkType::Ethernet, f, false).unwrap();
        an.packet(i as u64 + 1, i as u64, &p, &mut out);
    }
    an.finish(&mut out);
    assert_eq!(
        out.segments.last().unwrap().window,
        65535 << 14,
        "RFC 7323: a shift over 14 counts as 14"
    );
}

/// A long healthy flow that finally gives up: the text timeline shows how
/// it began and how it ended, with the rounds between counted.
#[test]
fn a_long_timeline_keeps_its_beginning_and_its_end() {
    let mut r = Run::new();
    r.open();
    for _ in 0..30 {
        r.probe(10 * S, Client, 0);
        r.answer(MS, Server);
    }
    for _ in 0..9 {
        r.probe(2 * S, Client, 0);
    }
    r.step(2 * S, |s| s.abort(Client).unwrap().to_vec());
    r.an.finish(&mut r.out);
    let c = &r.out.flows[0];
    let mut text = Vec::new();
    crate::report::text::timeline(&mut text, &FlowReport::of(c), c, false).unwrap();
    let text = String::from_utf8(text).unwrap();
    let rows: Vec<&str> = text.lines().filter(|l| l.contains("keepalive_")).collect();
    // 30 answered rounds, 9 unanswered probes and the abort: 70 notable events.
    assert_eq!(rows.len(), 8 + 24, "{text}");
    assert!(
        text.contains("… 38 events not shown (the first 8 and the last 24 are"),
        "{text}"
    );
    assert!(
        rows[0].contains("keepalive_probe") && rows[1].contains("keepalive_ack"),
        "{text}"
    );
    let last: Vec<&str> = rows[rows.len() - 10..]
        .iter()
        .map(|l| l.split_whitespace().nth(3).unwrap())
        .collect();
    assert_eq!(last[..9], ["keepalive_probe"; 9], "{text}");
    assert_eq!(last[9], "keepalive_abort", "{text}");
}

#[test]
fn settling_lets_a_quiet_link_say_what_it_decided_and_changes_nothing() {
    let mut r = Run::new();
    r.open();
    r.probe(30 * S, Client, 0);
    r.answer(2 * MS, Server);
    // The link goes quiet: 12 segments of lookahead will not come.
    assert!(r.out.segments.iter().all(|e| e.kind != KeepaliveProbe));
    r.an.settle(r.t + 200 * MS, r.t + 200 * MS, &mut r.out);
    let kinds: Vec<Kind> = r.out.segments.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [KeepaliveProbe, KeepaliveAck], "both decided, both said");
    // Only what was captured before the bound is settled.
    r.probe(30 * S, Client, 0);
    r.an.settle(r.t, r.t, &mut r.out);
    assert_eq!(r.out.segments.len(), 2);
    r.answer(2 * MS, Server);
    let (kinds, _, flows) = r.finish();
    assert_eq!(kinds, [KeepaliveProbe, KeepaliveAck].repeat(2));
    assert_eq!((flows[0].probes, flows[0].answered), (2, 2));
}

/// A flow first seen mid-session, with a probe: only its answer tells it is
/// one. Settling waits for that answer until `patient`, and the segments
/// behind it wait with it; once the answer has come, both are said at once.
#[test]
fn settling_waits_for_the_answer_that_tells_a_mid_session_probe() {
    let mut r = Run::new();
    r.probe(30 * S, Client, 0);
    let probe_at = r.t;
    // The answer takes 600 ms: past the bound, not past the patience.
    r.an.settle(probe_at + 300 * MS, probe_at, &mut r.out);
    assert!(r.out.segments.is_empty(), "held for its answer");
    r.answer(600 * MS, Server);
    r.an.settle(r.t, probe_at, &mut r.out);
    let kinds: Vec<Kind> = r.out.segments.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [KeepaliveProbe], "told by its answer");
    r.an.settle(r.t + 1, probe_at, &mut r.out);
    let kinds: Vec<Kind> = r.out.segments.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [KeepaliveProbe, KeepaliveAck]);
    // Past the patience, an unanswered one is decided without its answer.
    let mut r = Run::new();
    r.probe(30 * S, Client, 0);
    r.an.settle(r.t + 1, r.t + 1, &mut r.out);
    let kinds: Vec<Kind> = r.out.segments.iter().map(|e| e.kind).collect();
    assert!(!kinds.contains(&KeepaliveProbe), "{kinds:?}");
}
