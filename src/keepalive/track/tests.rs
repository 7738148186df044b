use super::*;
use crate::decode::{decode, LinkType};
use crate::keepalive::Style;
use crate::session::{ResetBy, RstAcceptance};
use crate::wire::build::{ethernet_frame, SegmentSpec};

const C: &str = "10.77.1.1:40001";
const S: &str = "10.77.101.2:7077";
const A: u8 = Flags::ACK;
const SEC: u64 = 1_000_000_000;

struct Seg<'a> {
    from_local: bool,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &'a [u8],
    ts: Option<(u32, u32)>,
    sack: &'a [(Seq, Seq)],
    syn_opts: bool,
    window: u16,
}

fn seg(from_local: bool, seq: u32, ack: u32, flags: u8) -> Seg<'static> {
    Seg {
        from_local,
        seq,
        ack,
        flags,
        payload: &[],
        ts: None,
        sack: &[],
        syn_opts: false,
        window: 502,
    }
}

impl Seg<'_> {
    fn packet(&self) -> Packet {
        let (l, p) = (C.parse().unwrap(), S.parse().unwrap());
        let (src, dst) = if self.from_local { (l, p) } else { (p, l) };
        let mut spec = SegmentSpec::new(src, dst, Seq(self.seq), Seq(self.ack), self.flags);
        spec.payload = self.payload;
        spec.timestamp = self.ts;
        spec.sack = self.sack;
        spec.window = self.window;
        if self.syn_opts {
            spec.mss = Some(1460);
            spec.wscale = Some(7);
            spec.sack_permitted = true;
        }
        let mut f = Vec::new();
        ethernet_frame(&spec, &mut f).unwrap();
        decode(LinkType::Ethernet, &f, false).unwrap()
    }
}

fn tracker() -> Tracker {
    Tracker::new(C.parse().unwrap(), S.parse().unwrap())
}

/// Handshake with TS and SACK, 100 bytes each way, all acknowledged. Local ISN 1000,
/// peer ISN 5000; local TSval 100 at t=1 s ... 103 at t=1.003 s.
fn established(t: &mut Tracker, ts: bool) {
    let tso = |v: u32, e: u32| ts.then_some((v, e));
    let mut steps = [
        Seg {
            syn_opts: true,
            ts: tso(100, 0),
            ..seg(true, 1000, 0, Flags::SYN)
        },
        Seg {
            syn_opts: true,
            ts: tso(9000, 100),
            ..seg(false, 5000, 1001, Flags::SYN | A)
        },
        Seg {
            ts: tso(101, 9000),
            ..seg(true, 1001, 5001, A)
        },
        Seg {
            payload: &[7; 100],
            ts: tso(102, 9000),
            ..seg(true, 1001, 5001, A | Flags::PSH)
        },
        Seg {
            payload: &[7; 100],
            ts: tso(9001, 102),
            ..seg(false, 5001, 1101, A | Flags::PSH)
        },
        Seg {
            ts: tso(103, 9001),
            ..seg(true, 1101, 5101, A)
        },
    ];
    for (i, s) in steps.iter_mut().enumerate() {
        let seen = t.observe(&s.packet(), SEC + i as u64 * 1_000_000);
        assert!(matches!(seen, Seen::Local | Seen::Peer { .. }), "{seen:?}");
    }
}

#[test]
fn learns_isns_nxt_and_options_from_the_handshake() {
    let mut t = tracker();
    established(&mut t, true);
    let i = t.info();
    assert_eq!((i.isn_local, i.isn_remote), (Some(1000), Some(5000)));
    assert_eq!((i.snd_nxt, i.rcv_nxt), (1101, 5101));
    assert_eq!((i.timestamps, i.sack, i.handshake_seen), (Some(true), Some(true), true));
    assert_eq!(
        (i.peer_window, i.peer_wscale, i.peer_window_bytes),
        (Some(502), Some(7), Some(502 << 7))
    );
    assert!(t.ready());
    assert!(!t.busy());
}

#[test]
fn ignores_other_flows() {
    let mut t = tracker();
    let mut s = seg(true, 1, 1, A).packet();
    s.tcp.src_port = 40002;
    assert_eq!(t.observe(&s, 0), Seen::Other);
}

#[test]
fn probe_tsval_extrapolates_the_kernel_clock_and_never_falls_behind() {
    let mut t = tracker();
    established(&mut t, true);
    // Last local segment: TSval 103 captured at 1.005 s. 2.5 s later: 103 + 2500.
    let last = t.local_ts_sample().unwrap();
    assert_eq!(
        last,
        TsSample {
            tsval: 103,
            time: SEC + 5_000_000
        }
    );
    let inp = t.probe_inputs(last.time + 2_500_400_000).unwrap();
    let (tsval, tsecr) = inp.timestamp.unwrap();
    assert_eq!(tsval, 2603);
    assert!(Seq(tsval).at_or_after(Seq(last.tsval)));
    assert_eq!(tsecr, 9001, "TSecr = the peer's latest TSval");
    // Right away: the kernel's own last value, not less.
    assert_eq!(t.probe_inputs(last.time).unwrap().timestamp.unwrap().0, 103);
    assert_eq!((inp.snd_nxt, inp.rcv_nxt, inp.window), (Seq(1101), Seq(5101), 502));
}

#[test]
fn tsval_wraps() {
    let s = TsSample {
        tsval: u32::MAX - 1,
        time: 0,
    };
    assert_eq!(extrapolate_tsval(s, 3 * 1_000_000), 1);
}

#[test]
fn no_tsopt_without_negotiation() {
    let mut t = tracker();
    established(&mut t, false);
    assert!(!t.timestamps());
    assert_eq!(t.probe_inputs(2 * SEC).unwrap().timestamp, None);
}

#[test]
fn own_probe_is_recognised_and_answer_matched_with_rtt() {
    let mut t = tracker();
    established(&mut t, true);
    let now = 3 * SEC;
    let shape = ProbeShape::build(Style::Linux, None, &t.probe_inputs(now).unwrap(), 1);
    assert_eq!((shape.seq, shape.ack), (Seq(1100), Seq(5101)));
    let p = t.sent(shape, now);
    assert_eq!(p.n, 1);
    let wire = Seg {
        ts: shape.timestamp,
        ..seg(true, 1100, 5101, A)
    };
    assert_eq!(t.observe(&wire.packet(), now + 10_000), Seen::OwnProbe { n: 1 });
    // Our probe did not move the local clock sample.
    assert_eq!(t.local_ts_sample().unwrap().tsval, 103);
    let answer = Seg {
        ts: Some((9500, 103)),
        ..seg(false, 5101, 1101, A)
    };
    let seen = t.observe(&answer.packet(), now + 90_000);
    assert_eq!(
        seen,
        Seen::Peer {
            answer: Some(Answer::Ack {
                probe: 1,
                rtt: 80_000,
                dsack: false,
                window: 502,
                seq: Seq(5101),
                ack: Seq(1101)
            }),
            rst: None,
            fin: false,
            data: 0
        }
    );
    // A second identical ACK answers nothing.
    assert!(matches!(
        t.observe(&answer.packet(), now + 100_000),
        Seen::Peer { answer: None, .. }
    ));
}

#[test]
fn one_byte_probe_answered_with_dsack() {
    let mut t = tracker();
    established(&mut t, true);
    let shape = ProbeShape::build(Style::Windows, None, &t.probe_inputs(3 * SEC).unwrap(), 1);
    t.sent(shape, 3 * SEC);
    let block = [(Seq(1100), Seq(1101))];
    let answer = Seg {
        ts: Some((9500, 103)),
        sack: &block,
        ..seg(false, 5101, 1101, A)
    };
    match t.observe(&answer.packet(), 3 * SEC + 50_000) {
        Seen::Peer {
            answer: Some(Answer::Ack { dsack, rtt, .. }),
            ..
        } => {
            assert!(dsack);
            assert_eq!(rtt, 50_000, "probe not seen on the wire: RTT from the send time");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rst_with_the_probes_ack_is_a_reset_answer() {
    let mut t = tracker();
    established(&mut t, false);
    let shape = ProbeShape::build(Style::Linux, None, &t.probe_inputs(3 * SEC).unwrap(), 1);
    t.sent(shape, 3 * SEC);
    let rst = seg(false, 5101, 0, Flags::RST).packet();
    assert_eq!(
        t.observe(&rst, 3 * SEC + 1000),
        Seen::Peer {
            answer: Some(Answer::Reset {
                probe: 1,
                rtt: 1000,
                seq: Seq(5101),
                by: Some(ResetBy::Peer),
            }),
            rst: None,
            fin: false,
            data: 0
        }
    );
}

#[test]
fn bsd42_probe_rst_carries_its_ack_and_its_ack_answer_the_peer_seq() {
    let mut t = tracker();
    established(&mut t, false);
    let shape = ProbeShape::build(Style::Bsd42, None, &t.probe_inputs(3 * SEC).unwrap(), 1);
    assert_eq!(shape.ack, Seq(5100));
    t.sent(shape, 3 * SEC);
    let ack = seg(false, 5101, 1101, A).packet();
    assert!(matches!(
        t.observe(&ack, 3 * SEC + 1),
        Seen::Peer {
            answer: Some(Answer::Ack { .. }),
            ..
        }
    ));
    t.sent(shape, 4 * SEC);
    let rst = seg(false, 5100, 0, Flags::RST).packet();
    assert!(matches!(
        t.observe(&rst, 4 * SEC + 1),
        Seen::Peer {
            answer: Some(Answer::Reset { .. }),
            ..
        }
    ));
}

#[test]
fn busy_while_data_unacknowledged() {
    let mut t = tracker();
    established(&mut t, false);
    t.observe(
        &Seg {
            payload: b"x",
            ..seg(true, 1101, 5101, A | Flags::PSH)
        }
        .packet(),
        2 * SEC,
    );
    assert!(t.busy());
    t.observe(&seg(false, 5101, 1102, A).packet(), 2 * SEC + 1);
    assert!(!t.busy());
}

#[test]
fn zero_byte_probe_within_the_peers_rate_limit_is_flagged() {
    let mut t = tracker();
    established(&mut t, false);
    let shape = ProbeShape::build(Style::Linux, None, &t.probe_inputs(3 * SEC).unwrap(), 1);
    t.sent(shape, 3 * SEC);
    t.observe(&seg(false, 5101, 1101, A).packet(), 3 * SEC + 1_000_000);
    let soon = t.sent(shape, 3 * SEC + 300_000_000);
    assert!(soon.rate_limited);
    let later = t.sent(shape, 3 * SEC + 600_000_000);
    assert!(!later.rate_limited);
    // 1-byte probes are in window: never rate limited.
    let one = ProbeShape::build(Style::Windows, None, &t.probe_inputs(3 * SEC).unwrap(), 1);
    t.observe(&seg(false, 5101, 1101, A).packet(), 3 * SEC + 700_000_000);
    assert!(!t.sent(one, 3 * SEC + 800_000_000).rate_limited);
}

#[test]
fn attach_without_handshake_learns_from_traffic_and_peer_tsecr() {
    let mut t = tracker();
    // Only the peer's segment seen (e.g. provoked): seq 5101 ack 1101, TSecr = our TSval 4242.
    t.observe(
        &Seg {
            ts: Some((9000, 4242)),
            ..seg(false, 5101, 1101, A)
        }
        .packet(),
        SEC,
    );
    assert!(t.ready(), "SND.NXT inferred from the peer's ACK");
    assert_eq!(t.snd_nxt(), Some(Seq(1101)));
    assert!(t.timestamps());
    assert_eq!(t.probe_inputs(SEC).unwrap().timestamp, Some((4242, 9000)));
    // 2 s later the local clock has moved on at least 2000 ticks.
    assert_eq!(t.probe_inputs(3 * SEC).unwrap().timestamp, Some((6242, 9000)));
    t.observe(
        &Seg {
            ts: Some((4000, 9000)),
            ..seg(true, 1101, 5101, A)
        }
        .packet(),
        SEC,
    );
    assert!(t.ready() && t.timestamps() && !t.handshake_seen());
    // TSval never below the peer's TSecr (its ts_recent).
    assert_eq!(t.probe_inputs(SEC).unwrap().timestamp, Some((4242, 9000)));
}

#[test]
fn ack_after_a_probe_was_declared_unanswered_is_not_credited_to_it() {
    let mut t = tracker();
    established(&mut t, false);
    let shape = ProbeShape::build(Style::Linux, None, &t.probe_inputs(3 * SEC).unwrap(), 1);
    let p1 = t.sent(shape, 3 * SEC);
    // No answer; at 4 s the state machine sends probe 2: probe 1 had far more
    // than two round trips (1 ms in the handshake) and is given up on.
    t.give_up_overdue(4 * SEC);
    let p2 = t.sent(shape, 4 * SEC);
    t.give_up_all();
    assert_eq!(t.take_given_up(), [p1.n, p2.n]);
    // Minutes later, a plain ACK with the same seq/ack (a window update, or the
    // answer to the owning process's own probe): it answers none of ours.
    let late = seg(false, 5101, 1101, A).packet();
    assert!(matches!(t.observe(&late, 300 * SEC), Seen::Peer { answer: None, .. }));
    assert!(t.probes().all(|p| p.state == ProbeState::Unanswered));
    // A probe sent afterwards is still matched, with its own RTT.
    let p3 = t.sent(shape, 301 * SEC);
    let seen = t.observe(&late, 301 * SEC + 2_000_000);
    assert!(
        matches!(seen, Seen::Peer { answer: Some(Answer::Ack { probe, rtt: 2_000_000, .. }), .. } if probe == p3.n),
        "{seen:?}"
    );
}

#[test]
fn memory_stays_bounded_after_many_probes() {
    let mut t = tracker();
    established(&mut t, false);
    let shape = ProbeShape::build(Style::Linux, None, &t.probe_inputs(3 * SEC).unwrap(), 1);
    let answer = seg(false, 5101, 1101, A).packet();
    for i in 0..10_000u64 {
        let now = 3 * SEC + i * SEC;
        t.sent(shape, now);
        // Every other probe goes unanswered: the next answer passes it over.
        if i % 2 == 1 {
            assert!(matches!(
                t.observe(&answer, now + 1_000_000),
                Seen::Peer {
                    answer: Some(Answer::Ack { .. }),
                    ..
                }
            ));
        }
    }
    assert_eq!(t.probes_sent(), 10_000);
    assert_eq!(t.probes().count(), PROBES_KEPT);
    assert!(t.probes.capacity() <= 2 * PROBES_KEPT);
    assert_eq!(t.probe(10_000).map(|p| p.n), Some(10_000));
    assert_eq!(
        t.probe(10_000 - PROBES_KEPT as u64 + 1).map(|p| p.n),
        Some(10_000 - PROBES_KEPT as u64 + 1)
    );
    assert!(t.probe(10_000 - PROBES_KEPT as u64).is_none());
    assert!(t.probe(0).is_none() && t.probe(10_001).is_none());
}

#[test]
fn answers_slower_than_the_interval_pair_with_their_own_probes() {
    // A 1.5 s round trip (the handshake shows it), probes 1 s apart, no timestamps.
    let mut t = tracker();
    let hs = [
        Seg {
            syn_opts: true,
            ..seg(true, 1000, 0, Flags::SYN)
        },
        Seg {
            syn_opts: true,
            ..seg(false, 5000, 1001, Flags::SYN | A)
        },
        seg(true, 1001, 5001, A),
    ];
    for (s, at) in hs.iter().zip([0, 1500, 1501]) {
        t.observe(&s.packet(), at * 1_000_000);
    }
    let shape = ProbeShape::build(Style::Linux, None, &t.probe_inputs(3 * SEC).unwrap(), 1);
    let p1 = t.sent(shape, 3 * SEC);
    t.give_up_overdue(4 * SEC);
    assert!(t.take_given_up().is_empty(), "1 s is less than two round trips");
    let p2 = t.sent(shape, 4 * SEC);
    let answer = seg(false, 5001, 1001, A).packet();
    for (at, p) in [(4500, p1), (5500, p2)] {
        match t.observe(&answer, at * 1_000_000) {
            Seen::Peer {
                answer: Some(Answer::Ack { probe, rtt, .. }),
                ..
            } => assert_eq!((probe, rtt), (p.n, 1_500_000_000)),
            other => panic!("{other:?}"),
        }
    }
    assert!(t.take_given_up().is_empty());
    assert_eq!(t.open_probes(), 0);
}

#[test]
fn a_rst_answering_no_probe_counts_only_at_rcv_nxt() {
    let mut t = tracker();
    established(&mut t, false);
    let rst_at = |t: &mut Tracker, seq: u32| match t.observe(&seg(false, seq, 0, Flags::RST).packet(), 2 * SEC) {
        Seen::Peer {
            answer: None,
            rst: Some(r),
            ..
        } => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(rst_at(&mut t, 77).acceptance, RstAcceptance::Dropped);
    assert_eq!(rst_at(&mut t, 5200).acceptance, RstAcceptance::Challenged);
    // kaprobe's provoking ACK answered by whoever does not know the connection.
    t.sent_other(Seq(42), Seq(4242), Flags::ACK);
    let r = rst_at(&mut t, 4242);
    assert!(r.answers_own);
    assert_eq!(r.by, Some(ResetBy::Peer));
    // None of these RSTs moved the session's state.
    assert_eq!((t.rcv_nxt(), t.snd_nxt()), (Some(Seq(5101)), Some(Seq(1101))));
    assert_eq!(rst_at(&mut t, 5101).acceptance, RstAcceptance::Resets);
}

#[test]
fn a_rst_answering_the_provoke_before_anything_else_teaches_nothing() {
    let mut t = tracker();
    t.sent_other(Seq(42), Seq(0x4000_0000), Flags::ACK);
    t.observe(&seg(false, 0x4000_0000, 0, Flags::RST).packet(), SEC);
    assert_eq!(t.rcv_nxt(), None);
    t.observe(&seg(false, 5101, 1101, A).packet(), 2 * SEC);
    assert_eq!(t.rcv_nxt(), Some(Seq(5101)));
}

#[test]
fn attached_without_a_handshake_says_what_it_does_not_know() {
    let mut t = tracker();
    t.observe(&seg(false, 5101, 1101, A).packet(), SEC);
    let i = t.info();
    assert_eq!((i.sack, i.peer_wscale, i.peer_window_bytes), (None, None, None));
    assert_eq!((i.timestamps, i.peer_window), (Some(false), Some(502)));
    assert_eq!((i.snd_nxt, i.rcv_nxt), (1101, 5101));
}
