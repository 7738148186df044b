//! `kaprobe replay`'s pure part: a capture's keepalive as a plan per flow
//! (`plan`), its schedule on a live session, and the live answers set
//! against the capture's. The live part is `crate::cli::replay` on the engine.

mod plan;

pub use plan::{FlowPlan, PlannedProbe, Planner};

use crate::conform::{Kind, Variant};
use crate::keepalive;
pub use crate::live::event::ms;
use crate::session::rate_limit;
use serde::Serialize;

/// What came back for one probe: its kind and round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub kind: Kind,
    pub rtt_ns: Option<u64>,
}

/// JSON: `{"answer": "ack_dsack", "rtt_ms": 0.08}`.
impl Serialize for Answer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("Answer", 2)?;
        m.serialize_field("answer", self.kind.name())?;
        m.serialize_field("rtt_ms", &self.rtt_ns.map(ms))?;
        m.end()
    }
}

impl Answer {
    /// How the live answer differs from the capture's (`self`), in words;
    /// `None` when it is the same. Round trips differ on every path and are
    /// shown, not compared.
    pub fn difference(&self, live: &Answer) -> Option<&'static str> {
        use Kind as K;
        Some(match (self.kind, live.kind) {
            (a, b) if a == b => return None,
            (K::AckDsack, K::Ack) => "D-SACK missing",
            (K::Ack, K::AckDsack) => "D-SACK added",
            (_, K::Rst) => "reset live",
            (K::None, _) => "answered live",
            (_, K::None) => "unanswered live",
            (K::Rst, _) => "answered live, not reset",
            _ => "answered differently",
        })
    }
}

/// When each probe of `plan` goes on the live session, after its exchange
/// settled: the capture's times divided by `speed`.
pub fn schedule(plan: &FlowPlan, speed: f64) -> Vec<(Variant, u64)> {
    plan.probes
        .iter()
        .map(|p| (p.variant, scaled(p.at_ns, speed)))
        .collect()
}

fn scaled(ns: u64, speed: f64) -> u64 {
    (ns as f64 / speed).round() as u64
}

/// The first probe that `speed` brings within a Linux peer's answer limit
/// of an earlier probe it answered in the capture, where the capture's own
/// timing kept it outside: at that speed the peer leaves it unanswered.
pub fn crosses_rate_limit(plan: &FlowPlan, speed: f64) -> Option<u64> {
    let mut stamped: Option<(u64, u64)> = None;
    for p in &plan.probes {
        let Variant::Crafted { byte, ack_delta, .. } = p.variant else {
            continue;
        };
        let (len, ack_behind) = (byte.is_some() as u32, ack_delta < 0);
        if !rate_limit::probe_is_limited(len, ack_behind) {
            continue;
        }
        let live = scaled(p.at_ns, speed);
        if let Some((at, live_at)) = stamped {
            if rate_limit::within(Some(live_at), live) && !rate_limit::within(Some(at), p.at_ns) {
                return Some(p.frame);
            }
        }
        // SACK unknown here: taken as on, so a plain answer to an old ACK stamps.
        let dsack = p.capture.kind == Kind::AckDsack;
        if p.capture.kind.answered() && rate_limit::answer_stamps_limiter(len, ack_behind, dsack, true) {
            stamped = Some((p.at_ns, live));
        }
    }
    None
}

/// What became of a probe live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Live {
    Answered(Answer),
    /// Not sent: the session failed, or the run stopped first.
    NotSent,
    /// Sent, unanswered, and the run stopped before its wait ran out.
    CutShort,
}

/// What became of each probe of `plan` live: `sent` of them went, and the
/// session matched `answers` to them by the rule every live session follows
/// (`keepalive::Tracker`); `complete`: the wait after the last one ran out.
pub fn live_answers(plan: &FlowPlan, sent: usize, answers: &[Option<keepalive::Answer>], complete: bool) -> Vec<Live> {
    (0..plan.probes.len())
        .map(|k| match answers.get(k).copied().flatten() {
            _ if k >= sent => Live::NotSent,
            Some(keepalive::Answer::Ack { rtt, dsack, .. }) => Live::Answered(Answer {
                kind: if dsack { Kind::AckDsack } else { Kind::Ack },
                rtt_ns: Some(rtt),
            }),
            Some(keepalive::Answer::Reset { rtt, .. }) => Live::Answered(Answer {
                kind: Kind::Rst,
                rtt_ns: Some(rtt),
            }),
            None if !complete => Live::CutShort,
            None => Live::Answered(Answer {
                kind: Kind::None,
                rtt_ns: None,
            }),
        })
        .collect()
}

/// A flow's keepalive in a word, from its probes' answers in order: `reset`
/// if one drew a RST, `alive` if the last was answered, `unanswered` if not,
/// `unresolved` when there is none to go on.
pub fn summary(answers: impl IntoIterator<Item = Kind>) -> &'static str {
    let mut last = None;
    for k in answers {
        if k == Kind::Rst {
            return "reset";
        }
        last = Some(k);
    }
    match last {
        Some(k) if k.answered() => "alive",
        Some(_) => "unanswered",
        None => "unresolved",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conform::Ts;

    const MS: u64 = 1_000_000;

    fn probe(frame: u64, at_ms: u64, byte: Option<u8>, kind: Kind) -> PlannedProbe {
        PlannedProbe {
            frame,
            at_ns: at_ms * MS,
            variant: Variant::Crafted {
                back: 1,
                byte,
                ts: Ts::Current,
                ack_delta: 0,
            },
            capture: Answer { kind, rtt_ns: None },
        }
    }

    fn plan(probes: Vec<PlannedProbe>) -> FlowPlan {
        FlowPlan {
            id: 1,
            flow: "a > b".into(),
            prober: "client".into(),
            prober_data: true,
            outcome: "alive".into(),
            probes,
            notes: Vec::new(),
        }
    }

    #[test]
    fn speed_divides_the_capture_times() {
        let p = plan(vec![
            probe(8, 75_000, None, Kind::Ack),
            probe(10, 150_000, None, Kind::Ack),
        ]);
        let at: Vec<u64> = schedule(&p, 10.0).iter().map(|s| s.1).collect();
        assert_eq!(at, [7_500 * MS, 15_000 * MS]);
    }

    #[test]
    fn a_speed_that_packs_zero_byte_probes_within_500ms_is_caught() {
        let p = plan(vec![
            probe(8, 1_000, None, Kind::Ack),
            probe(10, 2_000, None, Kind::Ack),
        ]);
        assert_eq!(crosses_rate_limit(&p, 1.0), None);
        assert_eq!(crosses_rate_limit(&p, 2.0), None, "500 ms apart: outside the limit");
        assert_eq!(crosses_rate_limit(&p, 4.0), Some(10));
        // 1-byte probes are answered by the data path, never limited.
        let one = plan(vec![
            probe(8, 1_000, Some(0), Kind::AckDsack),
            probe(10, 2_000, Some(0), Kind::AckDsack),
        ]);
        assert_eq!(crosses_rate_limit(&one, 100.0), None);
        // 4.2BSD's probe (ACK one behind) answered by the data path with a
        // D-SACK stamps nothing; a 0-byte probe after it is not limited by it.
        let mut bsd = probe(8, 1_000, Some(0x41), Kind::AckDsack);
        bsd.variant = Variant::Crafted {
            back: 1,
            byte: Some(0x41),
            ts: Ts::Current,
            ack_delta: -1,
        };
        let after = plan(vec![bsd, probe(10, 2_000, None, Kind::Ack)]);
        assert_eq!(crosses_rate_limit(&after, 100.0), None);
        // Nothing answered in the capture: nothing stamped the limiter.
        let dead = plan(vec![
            probe(8, 1_000, None, Kind::None),
            probe(10, 2_000, None, Kind::None),
        ]);
        assert_eq!(crosses_rate_limit(&dead, 100.0), None);
    }

    #[test]
    fn differences_are_named() {
        let a = |kind| Answer { kind, rtt_ns: Some(MS) };
        assert_eq!(
            a(Kind::Ack).difference(&Answer {
                kind: Kind::Ack,
                rtt_ns: None
            }),
            None
        );
        assert_eq!(a(Kind::AckDsack).difference(&a(Kind::Ack)), Some("D-SACK missing"));
        assert_eq!(a(Kind::None).difference(&a(Kind::Ack)), Some("answered live"));
        assert_eq!(a(Kind::Ack).difference(&a(Kind::None)), Some("unanswered live"));
        assert_eq!(a(Kind::None).difference(&a(Kind::Rst)), Some("reset live"));
        assert_eq!(summary([Kind::Ack, Kind::None]), "unanswered");
        assert_eq!(summary([Kind::None, Kind::AckDsack]), "alive");
        assert_eq!(summary([Kind::Ack, Kind::Rst, Kind::None]), "reset");
    }
}
