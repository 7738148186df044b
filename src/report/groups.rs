//! Human output for captures with many keepalive flows: the flows grouped by
//! what they share (prober, idle, interval, count, outcome) with counts, then
//! the flows that need a look, a few of them in full. Memory follows the
//! groups and the few flows kept, not the capture's events.

use super::text::{aligned, opt_dur};
use crate::analyze::{Connection, FlowReport, Outcome};
use std::collections::HashMap;
use std::io::{self, Write};

/// Flows a file may show one by one; above this they are grouped.
pub const MANY: usize = 20;
/// Flows that need a look, shown in full when grouped.
const LOOK: usize = 10;
/// Groups listed, the largest first.
const GROUPS: usize = 15;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    prober: &'static str,
    idle: String,
    interval: String,
    count: String,
    outcome: &'static str,
}

/// Why a flow needs a look, counted.
#[derive(Default)]
struct Look {
    flows: u64,
    timed_out: u64,
    reset: u64,
    unanswered: u64,
    violations: u64,
}

/// `T`: what is kept with each flow shown in full (`verify` keeps the
/// connection for its timeline; `watch`, nothing).
pub struct Groups<T = Connection> {
    groups: HashMap<Key, u64>,
    flows: u64,
    look: Look,
    /// The first flows that need a look, in the order they ended.
    shown: Vec<(FlowReport, T)>,
}

impl<T> Default for Groups<T> {
    fn default() -> Self {
        Groups {
            groups: HashMap::new(),
            flows: 0,
            look: Look::default(),
            shown: Vec::new(),
        }
    }
}

/// A duration rounded to what a group shares: 0.1 s below 10 s, 1 s below
/// 100 s, else 10 s (timer jitter and path delay stay inside one group).
fn rounded(s: Option<f64>) -> String {
    let step = |v: f64| match v {
        v if v < 10.0 => 0.1,
        v if v < 100.0 => 1.0,
        _ => 10.0,
    };
    opt_dur(s.map(|v| (v / step(v)).round() * step(v)))
}

/// Keeps a flow for the closing table: one by one in `shown` until there
/// are `MANY` (or always, `one_by_one`), then every flow in `groups`.
pub fn keep<T>(
    shown: &mut Vec<(FlowReport, T)>,
    groups: &mut Option<Groups<T>>,
    one_by_one: bool,
    r: FlowReport,
    c: T,
) {
    if groups.is_none() && !one_by_one && shown.len() >= MANY {
        let mut g = Groups::default();
        for (r, c) in shown.drain(..) {
            g.add(r, c);
        }
        *groups = Some(g);
    }
    match groups.as_mut() {
        Some(g) => g.add(r, c),
        None => shown.push((r, c)),
    }
}

impl<T> Groups<T> {
    pub fn add(&mut self, r: FlowReport, c: T) {
        let count = match (r.count, r.directions.iter().map(|d| d.count_at_least).max()) {
            (Some(n), _) => n.to_string(),
            (None, Some(l)) if l > 0 => format!(">={l}"),
            _ => "-".into(),
        };
        let key = Key {
            prober: r.prober,
            idle: rounded(r.idle_s),
            interval: rounded(r.interval_s),
            count,
            outcome: r.outcome_text(),
        };
        *self.groups.entry(key).or_default() += 1;
        self.flows += 1;
        let l = &mut self.look;
        let (timed_out, reset) = (r.outcome == Outcome::TimedOut, r.outcome == Outcome::Reset);
        let (unanswered, violations) = (r.unanswered > 0, r.violations_total > 0);
        if timed_out || reset || unanswered || violations {
            l.flows += 1;
            l.timed_out += timed_out as u64;
            l.reset += reset as u64;
            l.unanswered += unanswered as u64;
            l.violations += violations as u64;
            if self.shown.len() < LOOK {
                self.shown.push((r, c));
            }
        }
    }

    /// The groups table and the counts of flows that need a look; returns
    /// the first of those for the caller's flow table and timelines, which
    /// `hint` follows.
    pub fn render(&mut self, out: &mut impl Write) -> io::Result<Vec<(FlowReport, T)>> {
        let mut groups: Vec<(&Key, &u64)> = self.groups.iter().collect();
        // Largest first; ties in key order, so that the output is the same every run.
        groups.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        writeln!(
            out,
            "  {} flows with keepalive in {} groups of what they share (prober, idle, interval, count, outcome):",
            self.flows,
            groups.len()
        )?;
        let rows: Vec<[String; 6]> = groups
            .iter()
            .take(GROUPS)
            .map(|(k, n)| {
                [
                    n.to_string(),
                    k.prober.to_string(),
                    k.idle.clone(),
                    k.interval.clone(),
                    k.count.clone(),
                    k.outcome.to_string(),
                ]
            })
            .collect();
        aligned(out, &["flows", "prober", "idle", "interval", "count", "outcome"], &rows)?;
        if groups.len() > GROUPS {
            let rest: u64 = groups.iter().skip(GROUPS).map(|(_, n)| **n).sum();
            writeln!(out, "  … {} more groups with {rest} flows", groups.len() - GROUPS)?;
        }
        let l = &self.look;
        if l.flows == 0 {
            writeln!(
                out,
                "  nothing needs a look: no time-out, reset, unanswered probe or violation"
            )?;
        } else {
            writeln!(
                out,
                "  need a look: {} flows ({} timed out, {} reset, {} with unanswered probes, {} with violations){}",
                l.flows,
                l.timed_out,
                l.reset,
                l.unanswered,
                l.violations,
                if l.flows > self.shown.len() as u64 {
                    format!("; the first {}:", self.shown.len())
                } else {
                    ":".into()
                }
            )?;
        }
        Ok(std::mem::take(&mut self.shown))
    }

    /// How to see what was left out.
    pub fn hint(&self, out: &mut impl Write, file: &str) -> io::Result<()> {
        writeln!(
            out,
            "\nany flow in full: kaprobe verify --flow HOST:PORT {file}; every flow: --all, or --json"
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_round_to_what_a_group_shares() {
        let r = |s: f64| super::rounded(Some(s));
        assert_eq!(r(1.024), r(0.98));
        assert_ne!(r(1.024), r(1.5));
        assert_eq!(r(30.4), r(29.6));
        assert_eq!(r(7203.0), r(7198.0));
        assert_eq!(super::rounded(None), "-");
    }
}
