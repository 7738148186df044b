//! The live emulator's I/O edges: the raw-socket sender (pnet), the libpcap
//! receiver (the `pcap` crate), the kernel TCP sockets (socket2), route
//! lookup, privileges and the `--pcap` linker; the sessions (`session`), each
//! feeding the pure state machine (`crate::keepalive`) and acting on it; and
//! the engine loop that runs many of them at once.

pub mod capture;
pub mod engine;
pub mod event;
pub mod linker;
pub mod privs;
pub mod route;
pub mod script;
pub mod send;
pub mod session;
pub mod shared;
pub mod socket;
pub mod stats;

pub use engine::Setup;
pub use event::{Event, Mode, Outcome, SessionId, Sink, Status, StopReason, Summary, Verdict};
pub use session::{Senders, Shared, Start};

/// A live-session error: one line, `<what>: <why>`.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {why}")]
pub struct LiveError {
    pub what: String,
    pub why: String,
}

impl LiveError {
    pub fn new(what: impl Into<String>, why: impl Into<String>) -> LiveError {
        LiveError {
            what: what.into(),
            why: why.into(),
        }
    }

    /// From an OS error, in plain words (lower case, no "(os error N)").
    pub fn os(what: impl Into<String>, e: &std::io::Error) -> LiveError {
        LiveError::new(what, io_reason(e))
    }
}

/// An I/O error as a short lower-case reason.
pub fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    let s = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => "permission denied",
        Some(libc::ECONNREFUSED) => "connection refused",
        Some(libc::ENETUNREACH) => "network is unreachable",
        Some(libc::EHOSTUNREACH) => "no route to host",
        Some(libc::ETIMEDOUT) => "timed out",
        Some(libc::EADDRINUSE) => "address already in use",
        Some(libc::EADDRNOTAVAIL) => "address not available",
        Some(libc::ECONNRESET) => "connection reset by peer",
        Some(libc::ENODEV) => "no such device",
        _ => match e.kind() {
            K::NotFound => "not found",
            K::TimedOut => "timed out",
            _ => "",
        },
    };
    if !s.is_empty() {
        return s.into();
    }
    let t = e.to_string();
    let t = t.split(" (os error").next().unwrap_or(&t).to_string();
    let mut c = t.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => t,
    }
}

/// The live session's clock, for its timers, its TSval extrapolation and its
/// event times: monotonic, so a wall-clock step during a long idle neither fires
/// probes early or late nor declares the peer dead at once, nor pushes TSval
/// ahead of the kernel's TS clock (which is monotonic too).
///
/// Timeline: the capture's (nanoseconds since the Unix epoch). The offset
/// between the wall clock and CLOCK_MONOTONIC (`Instant`) is measured once, at
/// `start()`; after that, time is the wall clock's reading then plus monotonic
/// time elapsed, i.e. it equals the wall clock only as long as no one steps it.
/// Captured frames carry libpcap's wall-clock stamp, which *does* follow steps:
/// `capture_time()` takes it only while it agrees with the frame's monotonic
/// receipt time, and the receipt time otherwise.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall0: u64,
    mono0: std::time::Instant,
}

/// How far a frame's libpcap stamp may precede its reading by the engine
/// before it is taken for a wall-clock step. Normally microseconds; frames
/// wait in the kernel's ring while the engine opens or closes thousands of
/// connections, so a step smaller than this goes unnoticed.
const CAPTURE_SLACK_NS: u64 = 1_000_000_000;

impl Clock {
    /// Measures the wall/monotonic offset once.
    pub fn start() -> Clock {
        let mono0 = std::time::Instant::now();
        Clock {
            wall0: wall_ns(),
            mono0,
        }
    }

    /// Now, in the capture's timeline.
    pub fn now(&self) -> u64 {
        self.at(std::time::Instant::now())
    }

    /// A monotonic instant (before or after `start()`) in the capture's timeline.
    pub fn at(&self, i: std::time::Instant) -> u64 {
        if i >= self.mono0 {
            let d = i.duration_since(self.mono0).as_nanos();
            self.wall0.saturating_add(u64::try_from(d).unwrap_or(u64::MAX))
        } else {
            let d = self.mono0.duration_since(i).as_nanos();
            self.wall0.saturating_sub(u64::try_from(d).unwrap_or(u64::MAX))
        }
    }

    /// A captured frame's time: its libpcap stamp `stamp` (wall clock) when it
    /// is consistent with `received` (when the engine read it, monotonic),
    /// that is no later and not more than `CAPTURE_SLACK_NS` earlier; else (the
    /// wall clock was stepped since `start()`) the receipt time.
    pub fn capture_time(&self, stamp: u64, received: std::time::Instant) -> u64 {
        let r = self.at(received);
        if stamp <= r && r - stamp <= CAPTURE_SLACK_NS {
            stamp
        } else {
            r
        }
    }
}

/// Nanoseconds since the Unix epoch: the clock libpcap stamps packets with.
fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::Clock;
    use std::time::{Duration, Instant};

    #[test]
    fn clock_maps_instants_and_distrusts_stepped_capture_stamps() {
        let mono0 = Instant::now();
        let c = Clock {
            wall0: 1_000_000_000_000,
            mono0,
        };
        let r = mono0 + Duration::from_secs(5);
        let at_r = 1_005_000_000_000;
        assert_eq!(c.at(r), at_r);
        // An instant before start() (a frame captured while the session was set up).
        if let Some(before) = mono0.checked_sub(Duration::from_millis(3)) {
            assert_eq!(c.at(before), 999_997_000_000);
        }
        // A stamp a little before receipt: taken as is.
        assert_eq!(c.capture_time(at_r - 40_000, r), at_r - 40_000);
        // Wall clock stepped forward an hour, or back a minute: receipt time instead.
        assert_eq!(c.capture_time(at_r + 3_600_000_000_000, r), at_r);
        assert_eq!(c.capture_time(at_r - 60_000_000_000, r), at_r);
    }
}
