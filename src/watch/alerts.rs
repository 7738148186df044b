//! `--expect` on a live capture: each flow with keepalive is checked after
//! each of its events, and what it has broken is said once, when it breaks;
//! at the flow's end it gets `verify`'s whole check, which is the verdict
//! (counted, and the exit code). An estimate said off while the flow was
//! open may be back within tolerance by then (idle and interval are medians
//! of the recent rounds): that is said too.

use crate::analyze::{Expectations, Expected, Failure, FlowReport, Stage};
use std::collections::HashMap;

/// A failure said of a flow: new, not said before.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub flow_id: u64,
    pub failure: Failure,
}

pub struct Alerts {
    expect: Expectations,
    /// What was said of each open flow that broke something.
    said: HashMap<u64, Vec<Expected>>,
    /// Flows with keepalive checked at their end, and their failures (as `verify` counts them).
    pub checked: u64,
    pub failures: u64,
}

/// A flow's verdict at its end.
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    /// `verify`'s failures for the flow (its `expectation_failures`).
    pub failures: Vec<String>,
    /// Those not said while the flow was open: said now.
    pub new: Vec<Alert>,
    /// Said while the flow was open, but holding at its end.
    pub mended: Vec<Expected>,
}

impl Alerts {
    pub fn new(expect: Expectations) -> Self {
        Alerts {
            expect,
            said: HashMap::new(),
            checked: 0,
            failures: 0,
        }
    }

    /// A flow in progress, after one of its events: what it broke just now.
    pub fn progressed(&mut self, r: &FlowReport) -> Vec<Alert> {
        if r.probes == 0 {
            return Vec::new();
        }
        let broken = self.expect.failures(r, Stage::Open);
        self.new_ones(r.flow_id, broken)
    }

    /// A flow that ended: `verify`'s verdict on it (None: not checked, it had
    /// no keepalive).
    pub fn ended(&mut self, r: &FlowReport) -> Option<Verdict> {
        if r.probes == 0 {
            self.said.remove(&r.flow_id);
            return None;
        }
        self.checked += 1;
        let all = self.expect.failures(r, Stage::Ended);
        self.failures += all.len() as u64;
        let failures = all.iter().map(|f| f.text.clone()).collect();
        let still: Vec<Expected> = all.iter().map(|f| f.what).collect();
        let new = self.new_ones(r.flow_id, all);
        let said = self.said.remove(&r.flow_id).unwrap_or_default();
        let mended = said.into_iter().filter(|w| !still.contains(w)).collect();
        Some(Verdict { failures, new, mended })
    }

    fn new_ones(&mut self, flow_id: u64, failures: Vec<Failure>) -> Vec<Alert> {
        if failures.is_empty() {
            return Vec::new();
        }
        let said = self.said.entry(flow_id).or_default();
        let mut out = Vec::new();
        for f in failures {
            if !said.contains(&f.what) {
                said.push(f.what);
                out.push(Alert { flow_id, failure: f });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::progress as each;

    /// Flow 1's report after each of its events, and at its end.
    fn progress(file: &str) -> (Vec<FlowReport>, FlowReport) {
        let (each, end) = each(file);
        (each.into_iter().map(|e| e.0).collect(), end)
    }

    /// Says, for each report in turn, the names of what was said of it.
    fn said(a: &mut Alerts, reports: &[FlowReport]) -> Vec<Vec<&'static str>> {
        reports
            .iter()
            .map(|r| a.progressed(r).iter().map(|x| x.failure.what.name()).collect())
            .collect()
    }

    #[test]
    fn a_wrong_count_is_said_at_the_abort_once() {
        // Linux: answered rounds, then 3 unanswered probes and the abort.
        let (reports, end) = progress("linux_ka_blackhole_abort.pcap");
        let mut a = Alerts::new(Expectations::parse("count=5,outcome=alive").unwrap());
        let said = said(&mut a, &reports);
        // Nothing until the abort, then both at once, and never again.
        let at = said.iter().position(|s| !s.is_empty()).unwrap();
        assert_eq!(said[at], ["count", "outcome"]);
        assert_eq!(at, reports.len() - 1, "{said:?}");
        assert_eq!(reports[at].outcome, crate::analyze::Outcome::TimedOut);
        let v = a.ended(&end).unwrap();
        assert_eq!(v.failures.len(), 2, "{v:?}");
        assert!(v.new.is_empty() && v.mended.is_empty(), "{v:?}");
        assert_eq!((a.checked, a.failures), (1, 2));
    }

    #[test]
    fn what_holds_is_never_said_and_what_is_unseen_is_said_at_the_end() {
        let (reports, end) = progress("linux_ka_blackhole_abort.pcap");
        let mut a = Alerts::new(Expectations::parse("count=3,outcome=timed_out").unwrap());
        assert!(said(&mut a, &reports).iter().all(Vec::is_empty));
        assert_eq!(a.ended(&end).unwrap(), Verdict::default());
        // A count is unknown while the flow is open; at its end it was not observed.
        let (reports, end) = progress("linux_ka_answered_v4.pcap");
        let mut a = Alerts::new(Expectations::parse("count=3").unwrap());
        assert!(said(&mut a, &reports).iter().all(Vec::is_empty));
        let v = a.ended(&end).unwrap();
        assert_eq!(v.failures.len(), 1);
        assert_eq!(v.new[0].failure.what, Expected::Count);
        assert!(v.new[0].failure.text.contains("not observed"), "{v:?}");
    }

    #[test]
    fn a_wrong_idle_is_said_when_it_is_measured() {
        let (reports, end) = progress("linux_ka_answered_v4.pcap");
        let idle = reports.iter().find_map(|r| r.idle_s).unwrap();
        let want = format!("idle={}ms", (idle * 1000.0) as u64 * 3);
        let mut a = Alerts::new(Expectations::parse(&want).unwrap());
        let said = said(&mut a, &reports);
        let first = reports.iter().position(|r| r.idle_s.is_some()).unwrap();
        assert_eq!(said[first], ["idle"], "{said:?}");
        assert!(said[first + 1..].iter().all(Vec::is_empty));
        // verify's check at the end agrees, and it is not said twice.
        let v = a.ended(&end).unwrap();
        assert_eq!((v.failures.len(), v.new.len(), v.mended.len()), (1, 0, 0));
    }

    #[test]
    fn an_estimate_off_at_first_and_back_at_the_end_is_said_to_hold() {
        // The first idle measured is off; by the end the median is within tolerance.
        let (mut reports, end) = progress("linux_ka_answered_v4.pcap");
        let first = reports.iter().position(|r| r.idle_s.is_some()).unwrap();
        let idle = end.idle_s.unwrap();
        reports[first].idle_s = Some(idle * 10.0);
        let mut a = Alerts::new(Expectations::parse(&format!("idle={}ms", (idle * 1000.0) as u64)).unwrap());
        let said = said(&mut a, &reports);
        assert_eq!(said[first], ["idle"]);
        let v = a.ended(&end).unwrap();
        assert_eq!(
            v,
            Verdict {
                mended: vec![Expected::Idle],
                ..Verdict::default()
            }
        );
        // The verdict is verify's: nothing failed.
        assert_eq!(a.failures, 0);
    }
}
