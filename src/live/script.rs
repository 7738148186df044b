//! A `conform` case as a session runs it: its segments, when each is due,
//! and what was sent and seen (`super::session` sends and records).

use crate::conform::{Got, Sent, Variant};

/// A `conform` case run instead of keepalive: `steps` sent `gap` apart once
/// the exchange settled, then `wait` for answers; every peer segment meanwhile
/// is kept.
pub struct Script {
    pub(super) name: &'static str,
    pub(super) steps: Vec<Variant>,
    pub(super) gap: u64,
    pub(super) wait: u64,
    pub(super) t0: u64,
    pub(super) sent: Vec<Sent>,
    pub(super) got: Vec<Got>,
}

/// Peer segments kept per case.
pub(super) const GOT_KEPT: usize = 32;

impl Script {
    pub fn new(name: &'static str, steps: Vec<Variant>, gap: u64, wait: u64) -> Script {
        Script {
            name,
            steps,
            gap,
            wait,
            t0: 0,
            sent: Vec::new(),
            got: Vec::new(),
        }
    }

    /// When the next segment goes, or (all sent) when the wait ends.
    pub(super) fn due(&self) -> u64 {
        let k = self.sent.len() as u64;
        if (k as usize) < self.steps.len() {
            self.t0 + k * self.gap
        } else {
            self.t0 + k.saturating_sub(1) * self.gap + self.wait
        }
    }
}
