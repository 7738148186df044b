//! What a live run reports: one `Event` per thing that happened to a
//! session, each session's `Verdict`, and the run's `Summary`; and the `Sink`
//! they go to. JSON: `{"session": N, "type": <variant>, ...}`, a `summary` last.

use crate::keepalive::SessionInfo;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Connect,
    Listen,
    Attach,
}

/// A point in time, as JSON wants it: seconds (float) and nanoseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct At {
    pub time: f64,
    pub time_ns: u64,
}

impl At {
    pub fn of(ns: u64) -> At {
        At {
            time: ns as f64 / 1e9,
            time_ns: ns,
        }
    }
}

pub fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The peer answered the last probe.
    Alive,
    /// `count` probes (or the user timeout) went unanswered.
    Dead,
    /// The peer answered with a RST: it no longer knows the connection.
    Reset,
    /// The peer closed the connection (FIN).
    Closed,
    /// Stopped before any probe was answered or while the last went unanswered.
    Unknown,
    /// The session could not be set up (the connection failed): see `error`.
    Failed,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Alive => "alive",
            Outcome::Dead => "dead",
            Outcome::Reset => "reset",
            Outcome::Closed => "closed",
            Outcome::Unknown => "unknown",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Rounds,
    Duration,
    Interrupted,
    Count,
    UserTimeout,
    Reset,
    Closed,
    /// The connection could not be set up.
    Error,
    /// The run no longer needed it (`idle-timeout`: its test was decided by others).
    Cancelled,
}

impl StopReason {
    /// As in JSON.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Rounds => "rounds",
            StopReason::Duration => "duration",
            StopReason::Interrupted => "interrupted",
            StopReason::Count => "count",
            StopReason::UserTimeout => "user_timeout",
            StopReason::Reset => "reset",
            StopReason::Closed => "closed",
            StopReason::Error => "error",
            StopReason::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct RttStats {
    pub min: f64,
    pub avg: f64,
    pub max: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub outcome: Outcome,
    pub reason: StopReason,
    pub local: String,
    pub remote: String,
    pub probes: u64,
    pub answered: u64,
    pub unanswered: u64,
    /// Unanswered probes that were sent inside the peer's 500 ms answer rate limit.
    pub unanswered_rate_limited: u64,
    /// Probes still waiting for an answer when the session stopped.
    pub pending: u64,
    pub resets: u64,
    pub rtt_ms: Option<RttStats>,
    pub elapsed_s: f64,
    /// Frames the capture lost (pcap_stats): in the buffer, by the interface.
    pub capture_dropped: u64,
    pub capture_if_dropped: u64,
    /// Why the outcome may be wrong (an answer lost by the capture).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why the session could not be set up (outcome `failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten)]
    pub at: At,
}

/// One thing that happened, in order. JSON: `{"type": <variant>, ...}`.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Session {
        #[serde(flatten)]
        at: At,
        mode: Mode,
        interface: String,
        link: &'static str,
        #[serde(flatten)]
        info: SessionInfo,
        style: &'static str,
        payload: u8,
        idle_s: f64,
        interval_s: f64,
        count: u32,
        user_timeout_s: Option<f64>,
        /// Capture time of the peer's latest segment: idle counts from here.
        last_received_ns: Option<u64>,
    },
    /// The application data sent first, and what came back.
    Exchanged {
        #[serde(flatten)]
        at: At,
        sent: u64,
        received: u64,
    },
    ProbeSent {
        #[serde(flatten)]
        at: At,
        n: u64,
        /// 1-based since the last answer (the kernel's `probes_out`).
        attempt: u32,
        seq: u32,
        ack: u32,
        len: u32,
        rel_seq: Option<u32>,
        rel_ack: Option<u32>,
        tsval: Option<u32>,
        tsecr: Option<u32>,
        window: u16,
        /// Sent within 500 ms of the peer's last answer to a 0-byte probe:
        /// a Linux peer will not answer it.
        rate_limited: bool,
    },
    ProbeAcked {
        #[serde(flatten)]
        at: At,
        n: u64,
        seq: u32,
        ack: u32,
        window: u16,
        dsack: bool,
        rtt_ms: f64,
        rtt_ns: u64,
    },
    ProbeReset {
        #[serde(flatten)]
        at: At,
        n: u64,
        seq: u32,
        rtt_ms: f64,
        rtt_ns: u64,
        /// "peer" when its TTL matches the peer's segments, "path" when not.
        #[serde(skip_serializing_if = "Option::is_none")]
        reset_by: Option<&'static str>,
    },
    ProbeUnanswered {
        #[serde(flatten)]
        at: At,
        n: u64,
        rate_limited: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<&'static str>,
    },
    /// The timer fired while data was unacknowledged: no probe (Linux's rule).
    ProbeDeferred {
        #[serde(flatten)]
        at: At,
    },
    /// A RST from the peer's direction that answers no probe. Only one the
    /// local end takes (`accepted` "resets": seq exactly RCV.NXT) ends the session.
    PeerReset {
        #[serde(flatten)]
        at: At,
        seq: u32,
        /// How the local end takes it: resets, challenged, dropped, unknown.
        accepted: &'static str,
        /// It answers a segment kaprobe sent itself (`--provoke`'s ACK).
        answers_own: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        reset_by: Option<&'static str>,
    },
    PeerClosed {
        #[serde(flatten)]
        at: At,
    },
    /// The capture lost frames (counts since it began): an answer may be among them.
    CaptureDrops {
        #[serde(flatten)]
        at: At,
        dropped: u64,
        if_dropped: u64,
    },
    /// The kernel socket closed with a RST after the peer was declared dead.
    Abort {
        #[serde(flatten)]
        at: At,
        seq: u32,
        ack: u32,
    },
    /// A `conform` case ran: the segments it sent and the peer's segments meanwhile.
    Case {
        #[serde(flatten)]
        at: At,
        name: &'static str,
        #[serde(skip)]
        seen: super::script::ScriptSeen,
    },
    Verdict(Verdict),
}

/// Lateness of probes against their due time (the keepalive timer's), ms.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Lateness {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// The whole run, when every session has its verdict.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub sessions: u64,
    pub alive: u64,
    pub dead: u64,
    pub reset: u64,
    pub closed: u64,
    pub unknown: u64,
    pub failed: u64,
    pub probes: u64,
    pub answered: u64,
    pub unanswered: u64,
    pub unanswered_rate_limited: u64,
    pub pending: u64,
    pub resets: u64,
    pub rtt_ms: Option<RttStats>,
    /// How late probes left against their due time: the engine keeping up.
    pub lateness_ms: Option<Lateness>,
    /// From the first session's start to the last verdict.
    pub elapsed_s: f64,
    pub capture_dropped: u64,
    pub capture_if_dropped: u64,
    #[serde(flatten)]
    pub at: At,
}

impl Summary {
    /// Counts one session's verdict.
    pub fn add(&mut self, v: &Verdict) {
        self.sessions += 1;
        *match v.outcome {
            Outcome::Alive => &mut self.alive,
            Outcome::Dead => &mut self.dead,
            Outcome::Reset => &mut self.reset,
            Outcome::Closed => &mut self.closed,
            Outcome::Unknown => &mut self.unknown,
            Outcome::Failed => &mut self.failed,
        } += 1;
        self.probes += v.probes;
        self.answered += v.answered;
        self.unanswered += v.unanswered;
        self.unanswered_rate_limited += v.unanswered_rate_limited;
        self.pending += v.pending;
        self.resets += v.resets;
    }

    /// Every session alive: the run's exit status 0.
    pub fn all_alive(&self) -> bool {
        self.sessions > 0 && self.alive == self.sessions
    }
}

/// Session id: 1-based, in the order the sessions were given.
pub type SessionId = u32;

/// Receives what happens, as it happens.
pub trait Sink {
    fn event(&mut self, session: SessionId, ev: &Event);
    /// Last, once.
    fn summary(&mut self, s: &Summary);
    /// Now and then while sessions run: where they stand (for a status line).
    fn status(&mut self, _s: &Status) {}
    /// Before the engine waits: what was written goes out.
    fn flush(&mut self) {}
}

/// Where the sessions stand.
#[derive(Clone, Copy, Debug, Default)]
pub struct Status {
    pub sessions: u64,
    pub connecting: u64,
    pub probing: u64,
    pub done: u64,
    pub probes: u64,
    pub answered: u64,
}
