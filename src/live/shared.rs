//! What the sessions of a live run share: how each begins (`Start`), the
//! run's read-only parameters (`Shared`), the raw senders, the run-wide
//! tallies, the sockets of ended sessions waiting to be closed, and the `Cx`
//! a session handler gets with them.

use super::event::{SessionId, Summary, Verdict};
use super::send::RawSender;
use super::socket;
use super::stats::{LatenessHist, RttAgg};
use super::{LiveError, Mode};
use crate::keepalive::{self, Style};
use crate::wire::build::SegmentSpec;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, TcpStream};

/// How a session begins.
pub enum Start {
    /// Open a connection to `remote` (from `bind_port`, 0: any) when its turn comes.
    Connect { remote: SocketAddr, bind_port: u16 },
    /// An accepted connection (`--listen`).
    Socket(TcpStream),
    /// Another process's connection, `local` → `remote`.
    Attach { local: SocketAddr, remote: SocketAddr },
}

/// What every session shares, read-only.
pub struct Shared {
    pub mode: Mode,
    pub ka: keepalive::Config,
    pub style: Style,
    /// 0 or 1 payload bytes instead of the style's.
    pub payload: Option<u8>,
    /// Application data each session sends first (connect, listen).
    pub send: Vec<u8>,
    /// Sessions given at the start stop after this many answered probes.
    pub rounds: Option<u64>,
    pub no_abort: bool,
    pub provoke: bool,
    /// How long to wait for the capture to show a connected session's handshake.
    pub ready_timeout: u64,
    pub connect_timeout: u64,
    /// Idle counts from the last segment either way, not only the peer's:
    /// what a middlebox's idle timer sees (`idle-timeout`).
    pub idle_from_any: bool,
    pub device: String,
    pub link: &'static str,
    /// One session only: a failure to set it up is the run's error, not a verdict.
    pub single: bool,
}

/// The raw sockets, one per address family, shared by every session.
#[derive(Default)]
pub struct Senders {
    pub v4: Option<RawSender>,
    pub v6: Option<RawSender>,
    /// The IPv6 socket's bound address: the kernel writes it as the source.
    v6_local: Option<IpAddr>,
}

impl Senders {
    /// Makes the sender for `local` ready to send in its name.
    pub(super) fn prepare(&mut self, local: SocketAddr) -> Result<(), LiveError> {
        let ip = local.ip();
        match (ip, self.v6.as_mut(), self.v6_local) {
            (IpAddr::V4(_), ..) if self.v4.is_some() => Ok(()),
            (IpAddr::V4(_), ..) => Err(LiveError::new("raw socket", "IPv4 is not available")),
            (IpAddr::V6(_), None, _) => Err(LiveError::new("raw socket", "IPv6 is not available")),
            (IpAddr::V6(_), Some(s), None) => {
                s.bind(ip)?;
                self.v6_local = Some(ip);
                Ok(())
            }
            (IpAddr::V6(_), Some(_), Some(b)) if b == ip => Ok(()),
            (IpAddr::V6(_), Some(_), Some(b)) => Err(LiveError::new(
                format!("raw socket for {ip}"),
                format!("the IPv6 raw socket sends from {b}; sessions must share one local IPv6 address"),
            )),
        }
    }

    pub(super) fn send(&mut self, spec: &SegmentSpec) -> Result<(), LiveError> {
        let s = if spec.src.is_ipv4() {
            self.v4.as_mut()
        } else {
            self.v6.as_mut()
        };
        s.ok_or_else(|| LiveError::new("raw socket", "no socket for this address family"))?
            .send(spec)
    }
}

/// Run-wide tallies the sessions add to.
#[derive(Default)]
pub struct Totals {
    pub summary: Summary,
    pub rtt: RttAgg,
    pub lateness: LatenessHist,
    pub probes: u64,
    pub answered: u64,
    /// The capture's losses so far, for each verdict's note.
    pub drops: super::capture::Drops,
    /// Verdicts since the engine last handed them to its `Control`.
    pub ended: Vec<(SessionId, Verdict)>,
    /// When the latest verdict was given.
    pub last_verdict: u64,
}

/// What a session handler may use besides its own state.
pub struct Cx<'a> {
    pub shared: &'a Shared,
    pub senders: &'a mut Senders,
    pub sink: &'a mut dyn super::event::Sink,
    pub totals: &'a mut Totals,
    /// Sockets to close, which the engine does between reads of the capture.
    pub closing: &'a mut VecDeque<Closing>,
}

/// A kernel socket whose session ended.
pub struct Closing {
    pub sock: TcpStream,
    /// With a RST (the peer is dead), else a normal close.
    pub abort: bool,
}

impl Closing {
    /// A close puts segments on the wire (FIN or RST): the engine does it
    /// when the capture has room for what comes back.
    pub fn close(self) {
        let mut s = self.sock;
        if self.abort {
            return socket::abort(s);
        }
        // Unread data would turn the close into a RST.
        socket::drain(&mut s);
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
}
