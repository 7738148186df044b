//! Segments a session sends at set times instead of keepalive probes (a
//! `conform` case, a `replay`ed flow): when each is due, and what was sent
//! and seen (`super::session` sends and records).

use crate::conform::{Got, Sent, Variant};
use crate::keepalive::Answer;

/// What a script sent and saw, reported when its session ends (`Event::Case`).
#[derive(Clone, Debug, Default)]
pub struct ScriptSeen {
    pub sent: Vec<Sent>,
    pub got: Vec<Got>,
    /// For probes (`replay`): the answer the session matched to each.
    pub answers: Vec<Option<Answer>>,
    /// Every segment went and the wait for answers ran out (not stopped early).
    pub complete: bool,
    /// The peer closed the connection (`"FIN"`, `"RST"`) after this many segments had gone.
    pub peer_closed: Option<(&'static str, usize)>,
}

/// Segments sent at offsets from the moment the exchange settled, then a
/// `wait` for answers; every peer segment meanwhile is kept (up to `keep`).
pub struct Script {
    pub(super) name: &'static str,
    pub(super) steps: Vec<Variant>,
    /// When each step is due, after `t0`; never decreasing.
    pub(super) at: Vec<u64>,
    pub(super) wait: u64,
    pub(super) t0: u64,
    pub(super) sent: Vec<Sent>,
    pub(super) got: Vec<Got>,
    /// The steps are keepalive probes: the session's tracker matches their
    /// answers by its rule (as `probe`'s), kept here per step.
    pub(super) probes: bool,
    pub(super) answers: Vec<Option<Answer>>,
    /// Sent first instead of the run's data (`None`: the run's).
    pub(super) send: Option<Vec<u8>>,
    /// The peer's FIN or RST (not answering a probe), after how many steps.
    pub(super) peer_closed: Option<(&'static str, usize)>,
}

impl Script {
    /// `steps` sent `gap` apart, at once when the exchange settled.
    pub fn new(name: &'static str, steps: Vec<Variant>, gap: u64, wait: u64) -> Script {
        let timed = steps
            .into_iter()
            .enumerate()
            .map(|(k, v)| (v, k as u64 * gap))
            .collect();
        Script::timed(name, timed, wait)
    }

    /// Each step at its own offset after the exchange settled.
    pub fn timed(name: &'static str, steps: Vec<(Variant, u64)>, wait: u64) -> Script {
        let (steps, mut at): (Vec<Variant>, Vec<u64>) = steps.into_iter().unzip();
        for k in 1..at.len() {
            at[k] = at[k].max(at[k - 1]);
        }
        Script {
            name,
            steps,
            at,
            wait,
            t0: 0,
            sent: Vec::new(),
            got: Vec::new(),
            probes: false,
            answers: Vec::new(),
            send: None,
            peer_closed: None,
        }
    }

    /// The steps are keepalive probes whose answers the session matches
    /// (`replay`), not segments judged by their window (`conform`).
    pub fn as_probes(mut self) -> Script {
        self.probes = true;
        self
    }

    /// Sends `data` first instead of the run's data.
    pub fn sending(mut self, data: Vec<u8>) -> Script {
        self.send = Some(data);
        self
    }

    /// The tracker matched `a` to probe `n` (1-based, in the order sent).
    pub(super) fn answered(&mut self, n: u64, a: Answer) {
        let i = n as usize - 1;
        if i >= self.answers.len() {
            self.answers.resize(i + 1, None);
        }
        self.answers[i] = Some(a);
    }

    /// Peer segments kept at most: each step's answer and a few more.
    pub(super) fn keep(&self) -> usize {
        32.max(self.steps.len() * 4)
    }

    /// Every step sent, and the wait for their answers over.
    pub(super) fn finished(&self, now: u64) -> bool {
        self.sent.len() == self.steps.len() && now >= self.due()
    }

    /// When the next segment goes, or (all sent) when the wait ends.
    pub(super) fn due(&self) -> u64 {
        match self.at.get(self.sent.len()) {
            Some(at) => self.t0.saturating_add(*at),
            None => (self.t0.saturating_add(self.at.last().copied().unwrap_or(0))).saturating_add(self.wait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalive::Style;

    #[test]
    fn steps_fall_due_at_their_offsets_then_the_wait() {
        let v = Variant::Style(Style::Linux);
        let mut s = Script::timed("t", vec![(v, 5), (v, 3), (v, 9)], 100);
        s.t0 = 1000;
        assert_eq!(s.at, [5, 5, 9], "an offset never goes back");
        assert_eq!(s.due(), 1005);
        let sent = Sent {
            time_ns: 0,
            seq: 0,
            ack: 0,
            len: 0,
            tsval: None,
        };
        s.sent = vec![sent; 3];
        assert_eq!(s.due(), 1109);
        let g = Script::new("g", vec![v, v], 7, 1);
        assert_eq!(g.at, [0, 7]);
    }
}
