//! The keepalive state machine with Linux semantics (`tcp_keepalive_timer()` in
//! net/ipv4/tcp_timer.c): `(config, now, event) → actions`. Pure: no clock, no
//! I/O; the caller passes every time (nanoseconds, any epoch) and acts on what
//! comes back. The probe styles are in [`style`], the probe builder in [`probe`].
//!
//! The rules (docs/tcp-keepalive.md §2):
//! - idle counts from the last segment *received* from the peer;
//! - after `idle` without one, a probe; then one every `interval` while unanswered;
//! - anything received (an answer) resets the count, and the next probe comes a
//!   full `idle` after it;
//! - before each probe the timer checks the count: `count` probes out and still
//!   nothing → dead (Linux sends a RST); with a user timeout instead: dead once
//!   idle exceeds it and at least one probe is out;
//! - no probe while the session has unacknowledged data: the timer waits another `idle`.

pub mod probe;
pub mod style;
pub mod track;

pub use probe::{ProbeInputs, ProbeShape};
pub use style::Style;
pub use track::{Answer, Seen, SentProbe, SessionInfo, Tracker};

/// Keepalive parameters, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Quiet time before the first probe (`TCP_KEEPIDLE`). Zero: probe at once.
    pub idle: u64,
    /// Between unanswered probes (`TCP_KEEPINTVL`).
    pub interval: u64,
    /// Unanswered probes before the peer is declared dead (`TCP_KEEPCNT`).
    pub count: u32,
    /// `TCP_USER_TIMEOUT`: when set, replaces `count`.
    pub user_timeout: Option<u64>,
}

impl Default for Config {
    /// Linux defaults: 2 h, 75 s, 9.
    fn default() -> Self {
        Config {
            idle: 7200 * SEC,
            interval: 75 * SEC,
            count: 9,
            user_timeout: None,
        }
    }
}

const SEC: u64 = 1_000_000_000;

/// Why the machine gave up on the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadReason {
    /// `count` probes went unanswered.
    Count,
    /// Idle longer than the user timeout with a probe out.
    UserTimeout,
}

impl DeadReason {
    pub fn name(self) -> &'static str {
        match self {
            DeadReason::Count => "count",
            DeadReason::UserTimeout => "user_timeout",
        }
    }
}

/// What the caller must do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing (yet): call again at `poll_at()`.
    Wait,
    /// Send probe number `n` (1-based since the last answer). When `n > 1` the
    /// previous probe went unanswered.
    Probe { n: u32 },
    /// The timer fired while data was unacknowledged: no probe, rescheduled.
    Deferred,
    /// The peer is dead: abort the connection (Linux: RST). `unanswered`
    /// probes were sent since the last answer.
    Dead { reason: DeadReason, unanswered: u32 },
}

/// One connection's keepalive timer.
#[derive(Clone, Debug)]
pub struct Keepalive {
    cfg: Config,
    /// Last segment received from the peer.
    last_rcv: u64,
    /// When the timer fires next; `None` once dead.
    timer_at: Option<u64>,
    /// Probes sent since the last segment received (`icsk_probes_out`).
    probes_out: u32,
}

impl Keepalive {
    /// Keepalive switched on at `now` for a session whose last received segment
    /// was at `last_rcv`. The timer fires at once: the first probe goes out at
    /// `last_rcv + idle` (at once if that has passed), as the kernel's first
    /// timer run after the connection was established reschedules to it.
    pub fn new(cfg: Config, now: u64, last_rcv: u64) -> Keepalive {
        Keepalive {
            cfg,
            last_rcv: last_rcv.min(now),
            timer_at: Some(now),
            probes_out: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// When `poll` next has something to do; `None` after `Dead`.
    pub fn poll_at(&self) -> Option<u64> {
        self.timer_at
    }

    /// Probes out since the last received segment.
    pub fn probes_out(&self) -> u32 {
        self.probes_out
    }

    /// A segment from the peer arrived at `t` (an answer, data, anything): the
    /// idle clock restarts and the unanswered count is cleared (`tcp_ack()`
    /// zeroes `icsk_probes_out`). The timer itself is not moved, as in Linux:
    /// when it fires it finds the session not idle long enough and waits the rest.
    pub fn received(&mut self, t: u64) {
        if self.timer_at.is_none() {
            return;
        }
        self.last_rcv = self.last_rcv.max(t);
        self.probes_out = 0;
    }

    /// Runs the timer if it is due. `busy`: the session has unacknowledged or
    /// unsent data (`packets_out` or a non-empty write queue).
    pub fn poll(&mut self, now: u64, busy: bool) -> Action {
        let Some(at) = self.timer_at else {
            return Action::Wait;
        };
        if now < at {
            return Action::Wait;
        }
        if busy {
            self.timer_at = Some(now.saturating_add(self.cfg.idle));
            return Action::Deferred;
        }
        let elapsed = now.saturating_sub(self.last_rcv);
        if elapsed < self.cfg.idle {
            self.timer_at = Some(now.saturating_add(self.cfg.idle - elapsed));
            return Action::Wait;
        }
        let dead = match self.cfg.user_timeout {
            Some(ut) if ut > 0 => (elapsed >= ut && self.probes_out > 0).then_some(DeadReason::UserTimeout),
            _ => (self.probes_out >= self.cfg.count).then_some(DeadReason::Count),
        };
        if let Some(reason) = dead {
            self.timer_at = None;
            return Action::Dead {
                reason,
                unanswered: self.probes_out,
            };
        }
        self.probes_out += 1;
        self.timer_at = Some(now.saturating_add(self.cfg.interval));
        Action::Probe { n: self.probes_out }
    }

    /// The session ended some other way (reset, closed): no more timer.
    pub fn stop(&mut self) {
        self.timer_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn cfg(idle_s: u64, intvl_s: u64, count: u32) -> Config {
        Config {
            idle: idle_s * SEC,
            interval: intvl_s * SEC,
            count,
            user_timeout: None,
        }
    }

    /// Runs the machine like an event loop: poll at every poll_at until `until`.
    fn run(ka: &mut Keepalive, until: u64, answer_after: Option<u64>) -> Vec<(u64, Action)> {
        let mut out = Vec::new();
        while let Some(at) = ka.poll_at() {
            if at > until {
                break;
            }
            let a = ka.poll(at, false);
            if a != Action::Wait {
                out.push((at, a));
            }
            if let (Action::Probe { .. }, Some(rtt)) = (a, answer_after) {
                ka.received(at + rtt);
            }
        }
        out
    }

    #[test]
    fn blackholed_peer_count_probes_at_interval_then_dead() {
        // Last segment at t=10 s; idle 1, interval 1, count 3.
        let mut ka = Keepalive::new(cfg(1, 1, 3), 10 * SEC, 10 * SEC);
        let got = run(&mut ka, 100 * SEC, None);
        assert_eq!(
            got,
            [
                (11 * SEC, Action::Probe { n: 1 }),
                (12 * SEC, Action::Probe { n: 2 }),
                (13 * SEC, Action::Probe { n: 3 }),
                (
                    14 * SEC,
                    Action::Dead {
                        reason: DeadReason::Count,
                        unanswered: 3
                    }
                ),
            ]
        );
        assert_eq!(ka.poll_at(), None);
        assert_eq!(ka.poll(20 * SEC, false), Action::Wait);
    }

    #[test]
    fn answered_probe_resets_idle_clock() {
        // Answers arrive 1 ms after each probe: the next probe is a full idle after the answer.
        let mut ka = Keepalive::new(cfg(5, 1, 3), 0, 0);
        let got = run(&mut ka, 17 * SEC, Some(MS));
        assert_eq!(
            got,
            [
                (5 * SEC, Action::Probe { n: 1 }),
                (10 * SEC + MS, Action::Probe { n: 1 }),
                (15 * SEC + 2 * MS, Action::Probe { n: 1 }),
            ]
        );
    }

    #[test]
    fn idle_counts_from_last_received_not_from_start() {
        // Switched on at t=100 s, last segment at t=98 s: first probe at 98 + 5.
        let mut ka = Keepalive::new(cfg(5, 1, 1), 100 * SEC, 98 * SEC);
        assert_eq!(ka.poll_at(), Some(100 * SEC));
        assert_eq!(ka.poll(100 * SEC, false), Action::Wait);
        assert_eq!(ka.poll_at(), Some(103 * SEC));
        assert_eq!(ka.poll(103 * SEC, false), Action::Probe { n: 1 });
        // Data from the peer at 103.5 s: the timer (due 104) finds it idle 0.5 s only.
        ka.received(103 * SEC + 500 * MS);
        assert_eq!(ka.poll(104 * SEC, false), Action::Wait);
        assert_eq!(ka.poll_at(), Some(108 * SEC + 500 * MS));
    }

    #[test]
    fn zero_idle_probes_at_once() {
        let mut ka = Keepalive::new(cfg(0, 1, 2), 50 * SEC, 10 * SEC);
        assert_eq!(ka.poll(50 * SEC, false), Action::Probe { n: 1 });
    }

    #[test]
    fn late_answer_after_second_probe_clears_the_count() {
        let mut ka = Keepalive::new(cfg(1, 1, 3), 0, 0);
        assert_eq!(ka.poll(SEC, false), Action::Probe { n: 1 });
        assert_eq!(ka.poll(2 * SEC, false), Action::Probe { n: 2 });
        ka.received(2 * SEC + 300 * MS);
        assert_eq!(ka.probes_out(), 0);
        assert_eq!(ka.poll(3 * SEC, false), Action::Wait);
        assert_eq!(ka.poll(3 * SEC + 300 * MS, false), Action::Probe { n: 1 });
    }

    #[test]
    fn no_probe_while_data_is_unacknowledged() {
        let mut ka = Keepalive::new(cfg(2, 1, 3), 0, 0);
        assert_eq!(ka.poll(0, false), Action::Wait);
        assert_eq!(ka.poll(2 * SEC, true), Action::Deferred);
        assert_eq!(ka.poll_at(), Some(4 * SEC));
        assert_eq!(ka.poll(4 * SEC, false), Action::Probe { n: 1 });
    }

    #[test]
    fn user_timeout_replaces_count() {
        // idle 1, interval 1, count 9, user timeout 2.5 s: probes at 1, 2, 3 → elapsed 3 ≥ 2.5 → dead.
        let mut ka = Keepalive::new(
            Config {
                user_timeout: Some(2500 * MS),
                ..cfg(1, 1, 9)
            },
            0,
            0,
        );
        let got = run(&mut ka, 100 * SEC, None);
        assert_eq!(
            got,
            [
                (SEC, Action::Probe { n: 1 }),
                (2 * SEC, Action::Probe { n: 2 }),
                (
                    3 * SEC,
                    Action::Dead {
                        reason: DeadReason::UserTimeout,
                        unanswered: 2
                    }
                ),
            ]
        );
    }

    #[test]
    fn user_timeout_needs_a_probe_out() {
        // User timeout shorter than idle: still one probe first (the kernel's rule).
        let mut ka = Keepalive::new(
            Config {
                user_timeout: Some(500 * MS),
                ..cfg(1, 1, 9)
            },
            0,
            0,
        );
        assert_eq!(ka.poll(SEC, false), Action::Probe { n: 1 });
        assert!(matches!(ka.poll(2 * SEC, false), Action::Dead { .. }));
    }

    #[test]
    fn huge_idle_and_interval_saturate_instead_of_overflowing() {
        let mut ka = Keepalive::new(cfg(0, 1, 3), u64::MAX - SEC, 0);
        ka.cfg.interval = u64::MAX;
        assert_eq!(ka.poll(u64::MAX - SEC, false), Action::Probe { n: 1 });
        assert_eq!(ka.poll_at(), Some(u64::MAX));
        let mut ka = Keepalive::new(
            Config {
                idle: u64::MAX,
                ..cfg(0, 1, 3)
            },
            SEC,
            SEC,
        );
        assert_eq!(ka.poll(SEC, true), Action::Deferred);
        assert_eq!(ka.poll_at(), Some(u64::MAX));
        assert_eq!(ka.poll(2 * SEC, false), Action::Wait);
        assert_eq!(ka.poll_at(), Some(u64::MAX));
    }

    #[test]
    fn received_after_dead_changes_nothing() {
        let mut ka = Keepalive::new(cfg(1, 1, 1), 0, 0);
        assert_eq!(ka.poll(SEC, false), Action::Probe { n: 1 });
        assert!(matches!(ka.poll(2 * SEC, false), Action::Dead { .. }));
        ka.received(3 * SEC);
        assert_eq!(ka.poll_at(), None);
    }
}
