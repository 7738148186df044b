//! Named synthetic sessions: handshake, a request and its response, then
//! keepalive in one stack's style ending alive, dead or reset — and the
//! look-alikes Wireshark mislabels. Each frame carries what `kaprobe verify`
//! must call it and what Wireshark's rule labels it, so tests can hold both
//! to it. Pure: frames and times out, the CLI writes the pcap.

use crate::analyze::Kind;
use crate::keepalive::Style;
use crate::synth::{End, Session};
use crate::wire::build::BuildError;
use std::net::SocketAddr;

/// How a keepalive scenario ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every probe is answered.
    Alive,
    /// The peer went silent: unanswered probes, then the prober's RST.
    Dead,
    /// The peer lost the connection (rebooted): it answers the probe with a RST.
    Reset,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Alive, Outcome::Dead, Outcome::Reset];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Alive => "alive",
            Outcome::Dead => "dead",
            Outcome::Reset => "reset",
        }
    }

    pub fn parse(s: &str) -> Result<Outcome, String> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown outcome '{s}' (alive, dead, reset)"))
    }
}

/// What Wireshark's analysis labels a frame (`tcp.analysis.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wireshark {
    KeepAlive,
    KeepAliveAck,
    WindowUpdate,
}

impl Wireshark {
    /// The display-filter field.
    pub fn field(self) -> &'static str {
        match self {
            Wireshark::KeepAlive => "tcp.analysis.keep_alive",
            Wireshark::KeepAliveAck => "tcp.analysis.keep_alive_ack",
            Wireshark::WindowUpdate => "tcp.analysis.window_update",
        }
    }
}

/// One frame of a scenario and what it is.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Nanoseconds since the epoch.
    pub time: u64,
    pub bytes: Vec<u8>,
    /// What `kaprobe verify --all` must call it.
    pub kind: Kind,
    /// What Wireshark labels it, among the labels that matter here.
    pub wireshark: Option<Wireshark>,
}

/// Keepalive settings for a built session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub idle_ns: u64,
    pub interval_ns: u64,
    pub count: u32,
    /// Answered rounds in an `alive` session.
    pub rounds: u32,
}

const S: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;

impl Default for Timing {
    fn default() -> Self {
        Timing {
            idle_ns: 30 * S,
            interval_ns: 5 * S,
            count: 3,
            rounds: 2,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    Keepalive(Style, Outcome),
    /// A 1-byte data segment resent because it was never acknowledged.
    Retransmission,
    /// Probes while the peer advertises window 0: flow control.
    ZeroWindow,
    /// Answers whose window changed: Wireshark says Window Update.
    WindowUpdateAnswer,
}

/// A named scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    what: What,
}

/// Every scenario: each style × each outcome, then the look-alikes.
pub fn all() -> Vec<Scenario> {
    let mut v = Vec::new();
    for st in Style::ALL {
        for o in Outcome::ALL {
            v.push(Scenario::keepalive(st, o));
        }
    }
    v.push(Scenario {
        name: "retransmission-1byte".into(),
        description:
            "a 1-byte segment the peer never acknowledged, resent 3 times: data, though Wireshark says Keep-Alive"
                .into(),
        what: What::Retransmission,
    });
    v.push(Scenario {
        name: "zero-window".into(),
        description: "probes while the peer advertises window 0: zero-window probes (flow control), though Wireshark says Keep-Alive".into(),
        what: What::ZeroWindow,
    });
    v.push(Scenario {
        name: "window-update-answer".into(),
        description: "Linux probes whose answers grow the window: keepalive ACKs, though Wireshark says Window Update"
            .into(),
        what: What::WindowUpdateAnswer,
    });
    v
}

pub fn find(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}

impl Scenario {
    pub fn keepalive(style: Style, outcome: Outcome) -> Scenario {
        let info = style.info();
        let probe = match style.payload_len() {
            0 => "0-byte probes",
            _ => "1-byte probes",
        };
        let ts = if info.ts_usual { "with TSopt" } else { "no timestamps" };
        let end = match outcome {
            Outcome::Alive => "the peer answers every probe",
            Outcome::Dead => "the peer is gone: unanswered probes, then the prober's RST",
            Outcome::Reset => "the peer rebooted: it answers the probe with a RST",
        };
        Scenario {
            name: format!("{}-{}", style.name(), outcome.name()),
            description: format!("{} {probe}, {ts}; {end}", info.title),
            what: What::Keepalive(style, outcome),
        }
    }

    pub fn style(&self) -> Option<Style> {
        match self.what {
            What::Keepalive(s, _) => Some(s),
            What::WindowUpdateAnswer => Some(Style::Linux),
            _ => None,
        }
    }

    pub fn outcome(&self) -> Option<Outcome> {
        match self.what {
            What::Keepalive(_, o) => Some(o),
            What::WindowUpdateAnswer => Some(Outcome::Alive),
            _ => None,
        }
    }

    /// The session's frames, starting at `start` ns since the epoch.
    pub fn build(&self, timing: Timing, start: u64) -> Result<Vec<Frame>, BuildError> {
        let style = self.style().unwrap_or(Style::Linux);
        let mut b = Builder::new(style, start)?;
        match self.what {
            What::Keepalive(st, o) => b.keepalive(st, o, timing, false)?,
            What::WindowUpdateAnswer => b.keepalive(Style::Linux, Outcome::Alive, timing, true)?,
            What::Retransmission => b.retransmission()?,
            What::ZeroWindow => b.zero_window()?,
        }
        Ok(b.frames)
    }
}

/// The prober (client) and its peer (server).
pub fn endpoints() -> (SocketAddr, SocketAddr) {
    (
        "10.77.1.1:40000".parse().expect("address"),
        "10.77.101.2:7077".parse().expect("address"),
    )
}

struct Builder {
    s: Session,
    t: u64,
    frames: Vec<Frame>,
    /// When the client last received a segment: its idle clock.
    last_received: u64,
    /// Keepalive probes sent so far (probes are numbered from 1, as `kaprobe probe` numbers them).
    probes: u64,
}

impl Builder {
    fn new(style: Style, start: u64) -> Result<Builder, BuildError> {
        let (c, srv) = endpoints();
        let mut s = Session::new(c, srv, 1000, 5000);
        s.timestamps = style.info().ts_usual;
        s.sack = true;
        let mut b = Builder {
            s,
            t: start,
            frames: Vec::new(),
            last_received: start,
            probes: 0,
        };
        let [syn, synack, ack] = b.s.handshake()?;
        b.push(0, syn, Kind::Handshake, None, End::Client);
        b.push(MS, synack, Kind::Handshake, None, End::Server);
        b.push(MS, ack, Kind::Ack, None, End::Client);
        let f = b.s.data(End::Client, b"GET / HTTP/1.0\r\n\r\n")?.to_vec();
        b.push(MS, f, Kind::Data, None, End::Client);
        let f = b.s.data(End::Server, b"HTTP/1.0 200 OK\r\n\r\n")?.to_vec();
        b.push(MS, f, Kind::Data, None, End::Server);
        let f = b.s.ack(End::Client)?.to_vec();
        b.push(MS, f, Kind::Ack, None, End::Client);
        Ok(b)
    }

    /// Appends a frame `dt` after the previous one, or at the absolute `at`.
    fn push(&mut self, dt: u64, bytes: Vec<u8>, kind: Kind, ws: Option<Wireshark>, from: End) {
        self.t += dt;
        self.put(bytes, kind, ws, from);
    }

    fn at(&mut self, at: u64, bytes: Vec<u8>, kind: Kind, ws: Option<Wireshark>, from: End) {
        self.t = at.max(self.t);
        self.put(bytes, kind, ws, from);
    }

    fn put(&mut self, bytes: Vec<u8>, kind: Kind, ws: Option<Wireshark>, from: End) {
        if from == End::Server {
            self.last_received = self.t;
        }
        self.frames.push(Frame {
            time: self.t,
            bytes,
            kind,
            wireshark: ws,
        });
    }

    fn probe(&mut self, style: Style) -> Result<Vec<u8>, BuildError> {
        self.probes += 1;
        Ok(self.s.keepalive(End::Client, style, self.probes)?.to_vec())
    }

    fn keepalive(&mut self, style: Style, o: Outcome, t: Timing, grow_window: bool) -> Result<(), BuildError> {
        let one_byte = style.payload_len() == 1;
        let rtt = 200_000;
        let ka = Some(Wireshark::KeepAlive);
        match o {
            Outcome::Alive => {
                let mut window = 502;
                for _ in 0..t.rounds.max(1) {
                    let f = self.probe(style)?;
                    self.at(self.last_received + t.idle_ns, f, Kind::KeepaliveProbe, ka, End::Client);
                    let ws = if grow_window {
                        window += 64;
                        self.s.set_window(End::Server, window);
                        Wireshark::WindowUpdate
                    } else {
                        Wireshark::KeepAliveAck
                    };
                    let f = self.s.probe_ack(End::Server, one_byte)?.to_vec();
                    self.push(rtt, f, Kind::KeepaliveAck, Some(ws), End::Server);
                }
            }
            Outcome::Dead => {
                let first = self.last_received + t.idle_ns;
                for k in 0..t.count.max(1) as u64 {
                    let f = self.probe(style)?;
                    self.at(first + k * t.interval_ns, f, Kind::KeepaliveProbe, ka, End::Client);
                }
                let f = self.s.abort(End::Client)?.to_vec();
                let at = first + t.count.max(1) as u64 * t.interval_ns;
                self.at(at, f, Kind::KeepaliveAbort, None, End::Client);
            }
            Outcome::Reset => {
                let f = self.probe(style)?;
                self.at(self.last_received + t.idle_ns, f, Kind::KeepaliveProbe, ka, End::Client);
                let f = self.s.reset_unknown(End::Server)?.to_vec();
                self.push(rtt, f, Kind::KeepaliveRst, None, End::Server);
            }
        }
        Ok(())
    }

    fn retransmission(&mut self) -> Result<(), BuildError> {
        let f = self.s.data(End::Client, b"x")?.to_vec();
        self.push(10 * S, f, Kind::Data, None, End::Client);
        let mut rto = 200 * MS;
        for _ in 0..3 {
            let f = self.s.retransmit(End::Client, b"x")?.to_vec();
            self.push(rto, f, Kind::Retransmission, Some(Wireshark::KeepAlive), End::Client);
            rto *= 2;
        }
        let f = self.s.ack(End::Server)?.to_vec();
        self.push(MS, f, Kind::Ack, None, End::Server);
        Ok(())
    }

    fn zero_window(&mut self) -> Result<(), BuildError> {
        // The server's application stops reading: its window closes.
        self.s.set_window(End::Server, 0);
        let f = self.s.ack(End::Server)?.to_vec();
        self.push(MS, f, Kind::Ack, None, End::Server);
        let mut backoff = 200 * MS;
        for _ in 0..3 {
            let f = self.s.probe(End::Client, &[])?.to_vec();
            self.push(
                backoff,
                f,
                Kind::ZeroWindowProbe,
                Some(Wireshark::KeepAlive),
                End::Client,
            );
            let f = self.s.probe_ack(End::Server, false)?.to_vec();
            self.push(200_000, f, Kind::ZeroWindowAck, None, End::Server);
            backoff *= 2;
        }
        // It reads again: a window update.
        self.s.set_window(End::Server, 502);
        let f = self.s.ack(End::Server)?.to_vec();
        self.push(100 * MS, f, Kind::Ack, Some(Wireshark::WindowUpdate), End::Server);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_cover_every_style_and_outcome() {
        let all = all();
        let mut names: Vec<_> = all.iter().map(|s| s.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        for st in Style::ALL {
            for o in Outcome::ALL {
                assert!(find(&format!("{}-{}", st.name(), o.name())).is_some());
            }
        }
    }

    #[test]
    fn dead_session_timing_follows_idle_and_interval() {
        let t = Timing::default();
        let f = find("linux-dead").unwrap().build(t, 0).unwrap();
        let probes: Vec<u64> = f
            .iter()
            .filter(|x| x.kind == Kind::KeepaliveProbe)
            .map(|x| x.time)
            .collect();
        assert_eq!(probes.len(), 3);
        let server_data = f[4].time;
        assert_eq!(probes[0] - server_data, t.idle_ns);
        assert_eq!(probes[1] - probes[0], t.interval_ns);
        assert_eq!(f.last().unwrap().kind, Kind::KeepaliveAbort);
        assert_eq!(f.last().unwrap().time - server_data, t.idle_ns + 3 * t.interval_ns);
    }
}
