//! `kaprobe idle-timeout`: how long a path keeps an idle TCP connection.
//! The pure part: what one test's verdict means (`TestOutcome`), which
//! durations to test (`schedule`), and the answer with the keepalive idle
//! to set (`Answer`). The live part is `crate::cli::idle` on the engine.

pub mod schedule;

use crate::live::{Outcome, StopReason, Verdict};
use serde::Serialize;

/// What one idle test found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TestOutcome {
    /// The probe was answered: the path still held the connection.
    Survived,
    /// The probe went unanswered: the path dropped it (its state was gone).
    Dropped,
    /// A RST came back; `by_path`: its TTL is not the peer's (the
    /// middlebox sent it), false: the peer's, None: unknown.
    Reset { by_path: Option<bool> },
    /// The peer closed the connection (FIN) after `after` ns idle, before
    /// the test: the server's own idle timeout, not the path's.
    PeerClose { after: u64 },
    /// The connection could not be set up, or the test did not run to its end.
    Failed,
}

impl TestOutcome {
    /// The connection did not outlive its idle time.
    pub fn failed(&self) -> bool {
        matches!(
            self,
            TestOutcome::Dropped | TestOutcome::Reset { .. } | TestOutcome::PeerClose { .. }
        )
    }

    /// The idle at which it was lost: the test's, or when the peer closed.
    pub fn failed_at(&self, idle: u64) -> u64 {
        match self {
            TestOutcome::PeerClose { after } => (*after).min(idle),
            _ => idle,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            TestOutcome::Survived => "survived",
            TestOutcome::Dropped => "dropped",
            TestOutcome::Reset { .. } => "reset",
            TestOutcome::PeerClose { .. } => "peer_close",
            TestOutcome::Failed => "failed",
        }
    }

    /// A test session's verdict, with what its events said: who sent a RST
    /// (`reset_by`), and how long it had been idle when the peer's FIN came.
    pub fn of(v: &Verdict, reset_by: Option<&str>, closed_after: Option<u64>) -> TestOutcome {
        match (v.outcome, v.reason) {
            (Outcome::Alive, _) => TestOutcome::Survived,
            (Outcome::Dead, _) => TestOutcome::Dropped,
            (Outcome::Reset, _) => TestOutcome::Reset {
                by_path: reset_by.map(|b| b == "path"),
            },
            // A FIN before idling began (during the exchange) is no idle timeout.
            (Outcome::Closed, _) => match closed_after {
                Some(after) => TestOutcome::PeerClose { after },
                None => TestOutcome::Failed,
            },
            (_, StopReason::Cancelled) | (Outcome::Unknown, _) | (Outcome::Failed, _) => TestOutcome::Failed,
        }
    }
}

/// The keepalive idle to set for a path that keeps idle connections for
/// `lower_s` but not longer: `explain timing`'s rule (80 %, rounded down).
/// None when that is not below `lower_s`: keepalive counts whole seconds, 1
/// at least, so it cannot keep a path that forgets in less.
pub fn recommended_idle_s(lower_s: f64) -> Option<u64> {
    let s = crate::explain::timing::suggested_idle(lower_s);
    ((s as f64) < lower_s).then_some(s)
}
