//! `kaprobe conform`'s battery: probe variants, what a current Linux peer
//! does with each (RFC 9293 as Linux implements it; docs/tcp-keepalive.md §3,
//! §6, §9 and §10 give the facts and their sources), and what each answer was.
//! Pure: the segments sent and seen in, kinds of answers out. The live part
//! is `crate::cli::conform` on the engine.

use crate::keepalive::{ProbeInputs, ProbeShape, Style};
use crate::wire::Seq;
use serde::Serialize;

/// What the TSopt of a variant carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ts {
    /// The local clock's current TSval (when timestamps were negotiated).
    Current,
    /// No TSopt although negotiated.
    Omitted,
    /// 100 s behind the local clock: fails the peer's PAWS check.
    Stale,
    /// 100 s ahead of it.
    Ahead,
}

/// One segment to send, from the session's state at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// A style's probe, from the one builder.
    Style(Style),
    /// seq = SND.NXT − `back`, an optional byte, ack = RCV.NXT + `ack_delta`.
    Crafted {
        back: u32,
        byte: Option<u8>,
        ts: Ts,
        ack_delta: i32,
    },
}

const TS_SKEW: u32 = 100_000;

impl Variant {
    pub fn shape(self, inp: &ProbeInputs, n: u64) -> ProbeShape {
        match self {
            Variant::Style(s) => ProbeShape::build(s, None, inp, n),
            Variant::Crafted {
                back,
                byte,
                ts,
                ack_delta,
            } => ProbeShape {
                seq: inp.snd_nxt.minus(back),
                ack: Seq(inp.rcv_nxt.0.wrapping_add_signed(ack_delta)),
                payload: byte,
                timestamp: inp.timestamp.and_then(|(val, ecr)| match ts {
                    Ts::Current => Some((val, ecr)),
                    Ts::Omitted => None,
                    Ts::Stale => Some((val.wrapping_sub(TS_SKEW), ecr)),
                    Ts::Ahead => Some((val.wrapping_add(TS_SKEW), ecr)),
                }),
                window: inp.window,
            },
        }
    }

    /// seq = SND.NXT with no data and an unacceptable ACK field: an ACK that
    /// answers it is a challenge ACK (RFC 5961).
    fn challenges(self) -> bool {
        matches!(self, Variant::Crafted { back: 0, byte: None, ack_delta, .. } if ack_delta != 0)
    }
}

/// What came back for one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An ACK of SND.NXT (a duplicate ACK).
    Ack,
    /// The same, with a D-SACK block for the segment's byte.
    AckDsack,
    /// An ACK to a segment inside the window with an unacceptable ACK field.
    ChallengeAck,
    Rst,
    None,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ack => "ack",
            Kind::AckDsack => "ack_dsack",
            Kind::ChallengeAck => "challenge_ack",
            Kind::Rst => "rst",
            Kind::None => "none",
        }
    }

    /// The peer answered with an ACK (a RST says it does not know the connection).
    pub fn answered(self) -> bool {
        matches!(self, Kind::Ack | Kind::AckDsack | Kind::ChallengeAck)
    }
}

/// What a Linux peer does (RFC 9293 §3.10.7.4 and Linux's `tcp_validate_incoming()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Ack,
    /// `ack_dsack` when SACK was negotiated, else `ack`.
    Dsack,
    ChallengeAck,
    None,
}

impl Expect {
    pub fn kind(self, sack: bool) -> Kind {
        match self {
            Expect::Ack => Kind::Ack,
            Expect::Dsack if sack => Kind::AckDsack,
            Expect::Dsack => Kind::Ack,
            Expect::ChallengeAck => Kind::ChallengeAck,
            Expect::None => Kind::None,
        }
    }
}

/// One case: its segments, `gap_ms` apart, each with what to expect.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub name: &'static str,
    pub about: &'static str,
    pub steps: &'static [(Variant, Expect)],
    /// Only meaningful when timestamps were negotiated.
    pub needs_ts: bool,
}

/// Between two segments of one case.
pub const GAP_MS: u64 = 100;

const fn crafted(back: u32, byte: Option<u8>, ts: Ts, ack_delta: i32) -> Variant {
    Variant::Crafted {
        back,
        byte,
        ts,
        ack_delta,
    }
}

const LINUX: Variant = Variant::Style(Style::Linux);

/// A second 0-byte probe `GAP_MS` after an answered one: inside the peer's
/// answer limit (the one rule, `PEER_ANSWER_RATE_LIMIT_NS`), so a Linux peer
/// leaves it unanswered.
const SECOND_ZERO_BYTE: Expect = if GAP_MS * 1_000_000 < crate::wire::tcp::PEER_ANSWER_RATE_LIMIT_NS {
    Expect::None
} else {
    Expect::Ack
};
const WINDOWS: Variant = Variant::Style(Style::Windows);

/// The battery, in the order it runs. Each case has a connection of its own:
/// one variant could disturb the next (the peer's rate limit, its ts_recent).
pub const CASES: [Case; 16] = [
    Case {
        name: "style_linux",
        about: "--style linux: 0 bytes at SND.NXT-1",
        steps: &[(LINUX, Expect::Ack)],
        needs_ts: false,
    },
    Case {
        name: "style_windows",
        about: "--style windows: 1 byte 0x00 at SND.NXT-1",
        steps: &[(WINDOWS, Expect::Dsack)],
        needs_ts: false,
    },
    Case {
        name: "style_bsd42",
        about: "--style bsd42: 1 garbage byte, ack RCV.NXT-1",
        steps: &[(Variant::Style(Style::Bsd42), Expect::Dsack)],
        needs_ts: false,
    },
    Case {
        name: "style_lwip",
        about: "--style lwip: 0 bytes, no TSopt",
        steps: &[(Variant::Style(Style::Lwip), Expect::Ack)],
        needs_ts: false,
    },
    Case {
        name: "style_smoltcp",
        about: "--style smoltcp: 1 byte 0x00",
        steps: &[(Variant::Style(Style::Smoltcp), Expect::Dsack)],
        needs_ts: false,
    },
    Case {
        name: "garbage_byte",
        about: "1 garbage byte at SND.NXT-1, ack RCV.NXT",
        steps: &[(crafted(1, Some(0xa5), Ts::Current, 0), Expect::Dsack)],
        needs_ts: false,
    },
    Case {
        name: "at_snd_nxt",
        about: "0 bytes at SND.NXT: an acceptable segment with nothing new",
        steps: &[(crafted(0, None, Ts::Current, 0), Expect::None)],
        needs_ts: false,
    },
    Case {
        name: "snd_nxt_minus_2",
        about: "0 bytes at SND.NXT-2",
        steps: &[(crafted(2, None, Ts::Current, 0), Expect::Ack)],
        needs_ts: false,
    },
    Case {
        name: "no_tsopt",
        about: "0 bytes at SND.NXT-1 without TSopt, timestamps negotiated",
        steps: &[(crafted(1, None, Ts::Omitted, 0), Expect::Ack)],
        needs_ts: true,
    },
    Case {
        name: "stale_tsval",
        about: "0 bytes at SND.NXT-1, TSval 100 s behind: fails PAWS; Linux >= 6.14 drops such an old ACK silently",
        steps: &[(crafted(1, None, Ts::Stale, 0), Expect::None)],
        needs_ts: true,
    },
    Case {
        name: "stale_tsval_one_byte",
        about: "1 byte at SND.NXT-1, TSval 100 s behind: fails PAWS, but carries data",
        steps: &[(crafted(1, Some(0), Ts::Stale, 0), Expect::Dsack)],
        needs_ts: true,
    },
    Case {
        name: "tsval_ahead",
        about: "0 bytes at SND.NXT-1, TSval 100 s ahead",
        steps: &[(crafted(1, None, Ts::Ahead, 0), Expect::Ack)],
        needs_ts: true,
    },
    Case {
        name: "two_zero_byte_within_500ms",
        about: "two 0-byte probes 100 ms apart: the second inside the 500 ms limit",
        steps: &[(LINUX, Expect::Ack), (LINUX, SECOND_ZERO_BYTE)],
        needs_ts: false,
    },
    Case {
        name: "two_one_byte_quickly",
        about: "two 1-byte probes 100 ms apart (D-SACK answers are not rate-limited)",
        steps: &[(WINDOWS, Expect::Dsack), (WINDOWS, Expect::Dsack)],
        needs_ts: false,
    },
    Case {
        name: "probe_ack_ahead",
        about: "0 bytes at SND.NXT-1, ack RCV.NXT+1000: the seq check comes first",
        steps: &[(crafted(1, None, Ts::Current, 1000), Expect::Ack)],
        needs_ts: false,
    },
    Case {
        name: "ack_of_unsent_data",
        about: "0 bytes at SND.NXT, ack RCV.NXT+1000 (data the peer never sent)",
        steps: &[(crafted(0, None, Ts::Current, 1000), Expect::ChallengeAck)],
        needs_ts: false,
    },
];

/// A segment the case sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Sent {
    pub time_ns: u64,
    pub seq: u32,
    pub ack: u32,
    pub len: u32,
    pub tsval: Option<u32>,
}

/// A segment the peer sent while the case ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Got {
    pub time_ns: u64,
    pub seq: u32,
    pub ack: u32,
    pub len: u32,
    pub rst: bool,
    pub ack_flag: bool,
    /// It carries a D-SACK block for the byte of the segment sent just before it.
    pub dsack: bool,
    pub tsecr: Option<u32>,
}

/// What answered step `i`: the peer's first segment after it was sent and
/// before the next one, its kind, and how many more segments the peer sent in
/// that window (lwIP answers a probe whose ACK is ahead twice).
pub fn answer(step: Variant, sent: &Sent, next: Option<&Sent>, got: &[Got]) -> (Kind, Option<Got>, u32) {
    let mut window = got
        .iter()
        .filter(|g| g.time_ns >= sent.time_ns && next.is_none_or(|n| g.time_ns < n.time_ns));
    let g = window.next();
    let more = window.count() as u32;
    let kind = match g {
        None => Kind::None,
        Some(g) if g.rst => Kind::Rst,
        Some(g) if !g.ack_flag => Kind::None,
        Some(_) if step.challenges() => Kind::ChallengeAck,
        Some(g) if g.dsack => Kind::AckDsack,
        Some(_) => Kind::Ack,
    };
    (kind, g.copied(), more)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(ts: bool) -> ProbeInputs {
        ProbeInputs {
            snd_nxt: Seq(1000),
            rcv_nxt: Seq(5000),
            window: 502,
            timestamp: ts.then_some((777_000, 9)),
        }
    }

    #[test]
    fn crafted_variants_move_only_what_they_say() {
        let s = crafted(2, Some(1), Ts::Stale, -3).shape(&inputs(true), 1);
        assert_eq!((s.seq, s.ack, s.payload), (Seq(998), Seq(4997), Some(1)));
        assert_eq!(s.timestamp, Some((677_000, 9)));
        assert_eq!(crafted(1, None, Ts::Omitted, 0).shape(&inputs(true), 1).timestamp, None);
        assert_eq!(crafted(1, None, Ts::Ahead, 0).shape(&inputs(false), 1).timestamp, None);
        // A style case is the style's probe, byte for byte.
        assert_eq!(
            Variant::Style(Style::Bsd42).shape(&inputs(true), 7),
            ProbeShape::build(Style::Bsd42, None, &inputs(true), 7)
        );
    }

    #[test]
    fn answers_are_the_first_peer_segment_between_two_sends() {
        let sent = |t| Sent {
            time_ns: t,
            seq: 999,
            ack: 5000,
            len: 0,
            tsval: None,
        };
        let got = |t, dsack, rst| Got {
            time_ns: t,
            seq: 5000,
            ack: 1000,
            len: 0,
            rst,
            ack_flag: !rst,
            dsack,
            tsecr: None,
        };
        let (a, b) = (sent(100), sent(200));
        let g = [got(150, false, false), got(250, true, false)];
        assert_eq!(answer(LINUX, &a, Some(&b), &g).0, Kind::Ack);
        assert_eq!(
            answer(LINUX, &a, Some(&b), &g).2,
            0,
            "the next window's segment is not counted"
        );
        assert_eq!(answer(LINUX, &a, None, &g).2, 1, "a second segment in the window is");
        assert_eq!(answer(WINDOWS, &b, None, &g).0, Kind::AckDsack);
        assert_eq!(answer(LINUX, &a, Some(&b), &g[1..]).0, Kind::None);
        assert_eq!(answer(LINUX, &b, None, &[got(260, false, true)]).0, Kind::Rst);
        let in_window = crafted(0, None, Ts::Current, 1000);
        assert_eq!(answer(in_window, &b, None, &g).0, Kind::ChallengeAck);
        assert_eq!(Expect::Dsack.kind(false), Kind::Ack, "no SACK, no D-SACK");
    }
}
