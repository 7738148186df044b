//! Command-line interface: clap definitions, one file per subcommand.

pub mod conform;
pub mod explain;
pub mod idle;
pub mod probe;
mod probe_out;
mod progress;
pub mod replay;
mod screen;
pub mod verify;
pub mod watch;

use clap::{Parser, Subcommand};

/// TCP keepalive at the packet level.
#[derive(Parser, Debug)]
#[command(name = "kaprobe", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Classify keepalive probes, answers, resets and look-alikes in captures,
    /// infer each flow's idle/interval/count, and check expectations.
    Verify(verify::VerifyArgs),
    /// Probe a live connection with keepalive probes from userspace (raw sockets,
    /// root or CAP_NET_RAW): connect, listen or attach; see every probe and answer.
    Probe(Box<probe::ProbeArgs>),
    /// Measure how long the path to HOST:PORT keeps an idle TCP connection, how
    /// it ends it (drop or reset), and the keepalive idle that keeps it (root).
    IdleTimeout(Box<idle::IdleArgs>),
    /// Send a battery of probe variants to a live peer and compare its answers
    /// with what RFC 9293 and Linux lead one to expect (root).
    Conform(Box<conform::ConformArgs>),
    /// Re-enact a capture's keepalive against a live peer: each flow's probes,
    /// rebuilt on a live session at the capture's times, and the answers
    /// compared with the capture's (root).
    Replay(Box<replay::ReplayArgs>),
    /// Watch keepalive on a live interface as it happens: a table of the
    /// flows with keepalive on a terminal, every probe, answer and reset as
    /// soon as it is decided, `--expect` checked as the flows go (root).
    Watch(Box<watch::WatchArgs>),
    /// Learn the wire format: a probe of each stack byte by byte, a capture's frame
    /// with the classifier's reasoning, timing, ladder diagrams, synthetic scenarios.
    Explain(explain::ExplainArgs),
}

/// Colour on `out`: only on a terminal, and not when NO_COLOR is set to
/// anything but the empty string (no-color.org: empty counts as unset).
pub fn color(out: &impl std::io::IsTerminal) -> bool {
    out.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Exit codes shared by every subcommand.
pub mod exit {
    /// Everything checked holds.
    pub const OK: u8 = 0;
    /// A verdict against the user: expectation failed, violations found, peer dead or reset.
    pub const VERDICT: u8 = 1;
    /// Usage error or unreadable input.
    pub const USAGE: u8 = 2;
}
