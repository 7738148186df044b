//! Which idle durations to test, and what the results so far say. Pure:
//! results in, the bracket and the next tests out.
//!
//! Each test is one connection left idle for its duration, then probed
//! once. Round 1 spreads the sessions over 1 s … `--max` on a geometric
//! ladder (the same relative step everywhere); each later round puts them
//! evenly inside the bracket found so far, until it is as narrow as
//! `--resolution`. A round is decided once every test below the smallest
//! failure has its result; the tests above it are no longer needed.

use super::TestOutcome;

const SEC: u64 = 1_000_000_000;

/// How narrow the bracket must get.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Resolution {
    /// Nanoseconds.
    Abs(u64),
    /// A share of the upper bound (0.05: 5 %).
    Pct(f64),
}

impl Resolution {
    fn width(self, upper: u64) -> u64 {
        match self {
            Resolution::Abs(d) => d,
            Resolution::Pct(p) => (upper as f64 * p) as u64,
        }
        .max(1)
    }
}

/// One test: a session's idle duration and, once known, what happened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Test {
    pub idle: u64,
    pub round: u32,
    pub outcome: Option<TestOutcome>,
    /// Stopped before its probe: another test decided its answer.
    pub cancelled: bool,
}

#[derive(Clone, Debug)]
pub struct Schedule {
    max: u64,
    resolution: Resolution,
    per_round: usize,
    pub tests: Vec<Test>,
    round: u32,
}

impl Schedule {
    pub fn new(max: u64, resolution: Resolution, per_round: usize) -> Schedule {
        Schedule {
            max,
            resolution,
            per_round: per_round.max(2),
            tests: Vec::new(),
            round: 0,
        }
    }

    /// The first round's durations: geometric from 1 s (or less, when `max`
    /// is short) to `max`.
    fn ladder(&self) -> Vec<u64> {
        let n = self.per_round;
        let lo = SEC.min(self.max / n as u64).max(1);
        let ratio = (self.max as f64 / lo as f64).powf(1.0 / (n - 1) as f64);
        let mut v: Vec<u64> = (0..n).map(|k| (lo as f64 * ratio.powi(k as i32)) as u64).collect();
        v[n - 1] = self.max;
        v.dedup();
        v
    }

    /// Evenly inside (lower, upper), ends excluded.
    fn refine(&self, lower: u64, upper: u64) -> Vec<u64> {
        let n = self.per_round as u64;
        let mut v: Vec<u64> = (1..=n).map(|k| lower + (upper - lower) * k / (n + 1)).collect();
        v.dedup();
        v.retain(|d| *d > lower && *d < upper);
        v
    }

    /// The largest idle that survived below the smallest that did not, and
    /// that smallest (a test that failed, or a peer's close, at its idle).
    pub fn bracket(&self) -> (Option<u64>, Option<u64>) {
        let upper = self
            .tests
            .iter()
            .filter_map(|t| t.outcome.filter(TestOutcome::failed).map(|o| o.failed_at(t.idle)))
            .min();
        let lower = self
            .tests
            .iter()
            .filter(|t| t.outcome == Some(TestOutcome::Survived) && upper.is_none_or(|u| t.idle < u))
            .map(|t| t.idle)
            .max();
        (lower, upper)
    }

    /// Tests whose result disagrees with the bracket: survived at or above
    /// its upper bound (a probe or an answer lost on a lossy path, say).
    pub fn contradicting(&self) -> Vec<usize> {
        let Some(upper) = self.bracket().1 else {
            return Vec::new();
        };
        (0..self.tests.len())
            .filter(|&i| self.tests[i].outcome == Some(TestOutcome::Survived) && self.tests[i].idle >= upper)
            .collect()
    }

    /// Tests (indexes) still waiting whose answer is already known: above
    /// the smallest failure.
    pub fn needless(&self) -> Vec<usize> {
        let Some(upper) = self.bracket().1 else {
            return Vec::new();
        };
        (0..self.tests.len())
            .filter(|&i| {
                let t = &self.tests[i];
                t.outcome.is_none() && !t.cancelled && t.idle > upper
            })
            .collect()
    }

    fn waiting(&self) -> bool {
        self.tests.iter().any(|t| t.outcome.is_none() && !t.cancelled)
    }

    /// The bracket is as narrow as asked, or nothing failed up to `max`.
    pub fn settled(&self) -> bool {
        match self.bracket() {
            (_, None) => self.round > 0 && !self.waiting(),
            (lower, Some(upper)) => upper - lower.unwrap_or(0) <= self.resolution.width(upper),
        }
    }

    /// The next round's durations, once the current one is decided and the
    /// bracket is still too wide; they are added to `tests`.
    pub fn next_round(&mut self) -> Vec<u64> {
        if self.round > 0 && (self.waiting() || self.settled()) {
            return Vec::new();
        }
        let ds = match (self.round, self.bracket()) {
            (0, _) => self.ladder(),
            (_, (_, None)) => Vec::new(),
            (_, (lower, Some(upper))) => self.refine(lower.unwrap_or(0), upper),
        };
        if ds.is_empty() {
            return ds;
        }
        self.round += 1;
        for &idle in &ds {
            self.tests.push(Test {
                idle,
                round: self.round,
                outcome: None,
                cancelled: false,
            });
        }
        ds
    }

    /// No test waits and none will be added.
    pub fn done(&self) -> bool {
        !self.waiting() && (self.settled() || self.round > 0 && self.clone().next_round().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::{Resolution, Schedule, TestOutcome, SEC};

    /// Runs a schedule against a path that keeps flows idle for less than
    /// `timeout` and fails them otherwise.
    fn against(timeout: u64, max: u64, res: Resolution, n: usize) -> Schedule {
        let mut s = Schedule::new(max, res, n);
        for _ in 0..10 {
            let first = s.tests.len();
            if s.next_round().is_empty() {
                break;
            }
            for t in &mut s.tests[first..] {
                t.outcome = Some(if t.idle < timeout {
                    TestOutcome::Survived
                } else {
                    TestOutcome::Dropped
                });
            }
        }
        s
    }

    #[test]
    fn the_bracket_closes_on_the_timeout_to_the_resolution() {
        let s = against(350 * SEC, 1800 * SEC, Resolution::Pct(0.02), 32);
        let (lo, up) = s.bracket();
        let (lo, up) = (lo.unwrap(), up.unwrap());
        assert!(lo < 350 * SEC && up >= 350 * SEC, "{lo} {up}");
        assert!(up - lo <= 7 * SEC, "2 % of 350 s: {}", (up - lo) as f64 / 1e9);
        assert!(s.done());
        assert!(s.contradicting().is_empty());
        // Two rounds: the ladder, then one refinement inside its bracket.
        assert_eq!(s.tests.iter().map(|t| t.round).max(), Some(2));
    }

    #[test]
    fn nothing_fails_up_to_max_in_one_round() {
        let s = against(u64::MAX, 10 * SEC, Resolution::Abs(SEC / 10), 8);
        assert_eq!(s.bracket(), (Some(10 * SEC), None));
        assert!(s.done());
        assert_eq!(s.tests.len(), 8);
    }

    #[test]
    fn a_timeout_below_the_first_rung_brackets_from_zero() {
        let s = against(SEC / 2, 10 * SEC, Resolution::Abs(SEC / 5), 8);
        let (lo, up) = s.bracket();
        assert!(up.unwrap() >= SEC / 2 && lo.unwrap_or(0) < SEC / 2);
        assert!(up.unwrap() - lo.unwrap_or(0) <= SEC / 5);
    }

    #[test]
    fn tests_above_a_failure_are_needless_and_a_survivor_there_contradicts() {
        let mut s = Schedule::new(16 * SEC, Resolution::Abs(SEC), 5);
        let ds = s.next_round();
        assert_eq!(ds.len(), 5);
        // 1, 2, 4, 8, 16 s: 4 s dropped while 1 and 2 survived; 8 and 16 wait.
        s.tests[0].outcome = Some(TestOutcome::Survived);
        s.tests[1].outcome = Some(TestOutcome::Survived);
        s.tests[2].outcome = Some(TestOutcome::Dropped);
        assert_eq!(s.bracket(), (Some(2 * SEC), Some(4 * SEC)));
        assert_eq!(s.needless(), vec![3, 4]);
        s.tests[3].outcome = Some(TestOutcome::Survived); // a lossy path
        assert_eq!(s.contradicting(), vec![3]);
        s.tests[4].cancelled = true;
        // Round 2 inside (2 s, 4 s).
        let ds = s.next_round();
        assert!(ds.iter().all(|d| *d > 2 * SEC && *d < 4 * SEC), "{ds:?}");
    }

    #[test]
    fn a_peers_close_bounds_the_bracket_at_the_idle_it_came_after() {
        let mut s = Schedule::new(16 * SEC, Resolution::Abs(SEC), 5);
        s.next_round();
        s.tests[0].outcome = Some(TestOutcome::Survived);
        s.tests[1].outcome = Some(TestOutcome::Survived);
        s.tests[2].outcome = Some(TestOutcome::PeerClose { after: 3 * SEC });
        assert_eq!(s.bracket(), (Some(2 * SEC), Some(3 * SEC)));
        assert!(s.settled(), "1 s wide");
    }
}
