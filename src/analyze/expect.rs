//! `--expect idle=30s,interval=5s,count=3[,outcome=alive][,tolerance=10%|500ms]`:
//! what the user believes a flow's keepalive does, checked against what it did.

use super::report::{FlowReport, Outcome};
use crate::units::{format_duration, parse_duration};

/// Linux arms keepalive timers on a timer wheel with up to 12.5% slack, and
/// the capture point adds a path delay: both need room.
const DEFAULT_REL_TOLERANCE: f64 = 0.15;
const DEFAULT_ABS_TOLERANCE_NS: u64 = 250_000_000;

#[derive(Clone, Debug, PartialEq)]
pub struct Expectations {
    pub idle_ns: Option<u64>,
    pub interval_ns: Option<u64>,
    pub count: Option<u32>,
    pub outcome: Option<Outcome>,
    pub rel_tolerance: f64,
    pub abs_tolerance_ns: u64,
}

impl Expectations {
    pub fn parse(s: &str) -> Result<Expectations, String> {
        let mut e = Expectations {
            idle_ns: None,
            interval_ns: None,
            count: None,
            outcome: None,
            rel_tolerance: DEFAULT_REL_TOLERANCE,
            abs_tolerance_ns: DEFAULT_ABS_TOLERANCE_NS,
        };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("'{item}' is not KEY=VALUE"))?;
            let dur = |v: &str| parse_duration(v).map_err(|e| format!("{k}: {e}"));
            match k.trim() {
                "idle" => e.idle_ns = Some(dur(v)?),
                "interval" | "intvl" => e.interval_ns = Some(dur(v)?),
                "count" | "cnt" | "probes" => {
                    e.count = Some(
                        v.trim()
                            .parse()
                            .map_err(|_| format!("count: '{v}' is not a whole number"))?,
                    )
                }
                "outcome" => {
                    e.outcome = Some(match v.trim() {
                        "alive" => Outcome::Alive,
                        "timed_out" | "dead" => Outcome::TimedOut,
                        "reset" => Outcome::Reset,
                        "closed" => Outcome::Closed,
                        "unknown" => Outcome::Unknown,
                        o => {
                            return Err(format!(
                                "outcome: '{o}' is not alive, timed_out, reset, closed or unknown"
                            ))
                        }
                    })
                }
                "tolerance" | "tol" => match v.trim().strip_suffix('%') {
                    Some(p) => {
                        e.rel_tolerance = p
                            .trim()
                            .parse::<f64>()
                            .map_err(|_| format!("tolerance: '{v}' is not a percentage"))?
                            / 100.0
                    }
                    None => {
                        e.abs_tolerance_ns = dur(v)?;
                        e.rel_tolerance = 0.0;
                    }
                },
                other => {
                    return Err(format!(
                        "unknown expectation '{other}' (use idle, interval, count, outcome, tolerance)"
                    ))
                }
            }
        }
        if e.idle_ns.is_none() && e.interval_ns.is_none() && e.count.is_none() && e.outcome.is_none() {
            return Err("nothing to expect (use idle=, interval=, count=, outcome=)".into());
        }
        Ok(e)
    }

    fn close_enough(&self, measured_s: f64, expected_ns: u64) -> bool {
        let allowed = (expected_ns as f64 * self.rel_tolerance).max(self.abs_tolerance_ns as f64);
        (measured_s * 1e9 - expected_ns as f64).abs() <= allowed
    }

    /// What does not hold for this flow, one message each; empty when all holds.
    pub fn check(&self, r: &FlowReport) -> Vec<String> {
        self.failures(r, Stage::Ended).into_iter().map(|f| f.text).collect()
    }

    /// The rules, for a flow that ended (`check`) and for one in progress
    /// (`watch` says what fails the moment it does): in progress, a setting
    /// not measured yet, a count before the abort and an outcome that may
    /// still change are not failures. An idle or interval is the median of the
    /// recent rounds, so one off now may be back within tolerance later.
    pub fn failures(&self, r: &FlowReport, stage: Stage) -> Vec<Failure> {
        let ended = stage == Stage::Ended;
        let mut out = Vec::new();
        let mut fail = |what: Expected, text: String| out.push(Failure { what, text });
        let keepalive = r.probes > 0;
        if !keepalive && ended && (self.idle_ns.is_some() || self.interval_ns.is_some() || self.count.is_some()) {
            fail(Expected::Keepalive, "no keepalive probes in this flow".to_string());
        }
        let mut duration = |what: Expected, want: Option<u64>, got: Option<f64>, unseen: &str| match (want, got) {
            (Some(w), Some(g)) if !self.close_enough(g, w) => fail(
                what,
                format!(
                    "{}: expected {}, measured {}",
                    what.name(),
                    format_duration(w),
                    format_duration((g * 1e9) as u64)
                ),
            ),
            (Some(_), None) if keepalive && ended => fail(what, format!("{}: not observed ({unseen})", what.name())),
            _ => {}
        };
        duration(
            Expected::Idle,
            self.idle_ns,
            r.idle_s,
            "no probe followed a received segment",
        );
        duration(
            Expected::Interval,
            self.interval_ns,
            r.interval_s,
            "no unanswered probe was followed by another",
        );
        if let (Some(want), true) = (self.count, keepalive) {
            let least = r.directions.iter().map(|d| d.count_at_least).max().unwrap_or(0);
            let text = match r.count {
                Some(got) if got != want => Some(format!(
                    "count: expected {want}, measured {got} unanswered probes before the abort"
                )),
                Some(_) => None,
                None if least > want => Some(format!(
                    "count: expected {want}, but {least} probes went unanswered without an abort"
                )),
                None if ended => Some(format!(
                    "count: not observed (no abort after unanswered probes; longest unanswered run {least})"
                )),
                None => None,
            };
            if let Some(t) = text {
                fail(Expected::Count, t);
            }
        }
        // In progress, only a time-out or a reset is an outcome for good (a
        // closed flow may still be reset).
        let settled = ended || matches!(r.outcome, Outcome::TimedOut | Outcome::Reset);
        if let (Some(want), true) = (self.outcome, settled) {
            if r.outcome != want {
                fail(
                    Expected::Outcome,
                    format!("outcome: expected {}, was {}", want.as_str(), r.outcome.as_str()),
                );
            }
        }
        out
    }
}

/// Whether the flow a check looks at has ended or is still in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Open,
    Ended,
}

/// What an expectation was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expected {
    /// That the flow has keepalive at all (implied by idle, interval and count).
    Keepalive,
    Idle,
    Interval,
    Count,
    Outcome,
}

impl Expected {
    pub fn name(self) -> &'static str {
        match self {
            Expected::Keepalive => "keepalive",
            Expected::Idle => "idle",
            Expected::Interval => "interval",
            Expected::Count => "count",
            Expected::Outcome => "outcome",
        }
    }
}

/// One expectation that does not hold, said for people.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub what: Expected,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_expectations() {
        let e = Expectations::parse("idle=30s,interval=5s,count=3").unwrap();
        assert_eq!(
            (e.idle_ns, e.interval_ns, e.count),
            (Some(30_000_000_000), Some(5_000_000_000), Some(3))
        );
        let e = Expectations::parse("outcome=alive,tolerance=5%").unwrap();
        assert_eq!(e.outcome, Some(Outcome::Alive));
        assert!((e.rel_tolerance - 0.05).abs() < 1e-9);
        for bad in ["", "idle", "idle=soon", "count=x", "color=red", "outcome=maybe"] {
            assert!(Expectations::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tolerance_is_relative_with_a_floor() {
        let e = Expectations::parse("idle=10s").unwrap();
        assert!(e.close_enough(11.4, 10_000_000_000));
        assert!(!e.close_enough(11.6, 10_000_000_000));
        let e = Expectations::parse("idle=1s").unwrap();
        assert!(e.close_enough(1.2, 1_000_000_000));
        assert!(!e.close_enough(1.3, 1_000_000_000));
    }
}
