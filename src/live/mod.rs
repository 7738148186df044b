//! The live emulator's I/O edges: the raw-socket sender (pnet), the libpcap
//! receiver, the kernel TCP socket, route lookup, privileges, and the engine
//! loop that feeds the pure state machine (`crate::keepalive`) and acts on it.

pub mod capture;
pub mod engine;
pub mod privs;
pub mod route;
pub mod send;
pub mod socket;

pub use engine::{Event, Mode, Outcome, Setup, Sink, StopReason, Verdict};

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

/// Nanoseconds since the Unix epoch: the clock libpcap stamps packets with.
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
