//! The engine loop: captured frames → `Tracker` (session state, answers) →
//! `Keepalive` (when to probe, when to give up) → probes on the raw socket,
//! events to a `Sink`; libpcap's drop counters reported as they grow. The
//! only clock reads are here, through `Clock`: monotonic, in the capture's
//! (wall-clock epoch) timeline; frames' libpcap stamps are brought into it by
//! `Clock::capture_time`.

use super::capture::{Drops, Frame, LiveCapture};
use super::send::RawSender;
use super::{socket, Clock, LiveError};
use crate::decode::decode;
use crate::keepalive::track::Rst;
use crate::keepalive::{self, Action, Answer, ProbeShape, Seen, SessionInfo, Style, Tracker};
use crate::report::pcap::PcapOut;
use crate::session::RstAcceptance;
use crate::wire::build::SegmentSpec;
use crate::wire::{Flags, Seq};
use serde::Serialize;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

const MS: u64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Connect,
    Listen,
    Attach,
}

/// Everything a live session needs, set up by the caller.
pub struct Setup {
    pub mode: Mode,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The kernel socket (connect, listen); `None` when attached to another process's.
    pub socket: Option<TcpStream>,
    pub capture: LiveCapture,
    pub sender: RawSender,
    pub pcap: Option<PcapOut>,
    pub ka: keepalive::Config,
    pub style: Style,
    /// 0 or 1 payload bytes instead of the style's.
    pub payload: Option<u8>,
    /// Application data sent first (connect, listen).
    pub send: Vec<u8>,
    pub rounds: Option<u64>,
    /// Stop after this long (nanoseconds).
    pub duration: Option<u64>,
    pub no_abort: bool,
    /// Attach: provoke the peer into revealing its state while nothing is known.
    pub provoke: bool,
    /// Set by SIGINT (Ctrl-C), SIGTERM and SIGHUP.
    pub interrupted: Arc<AtomicBool>,
    /// How long to wait for the capture to show the session (connect, listen).
    pub ready_timeout: u64,
}

/// A point in time, as JSON wants it: seconds (float) and nanoseconds.
#[derive(Clone, Copy, Debug, Serialize)]
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

fn ms(ns: u64) -> f64 {
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
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Alive => "alive",
            Outcome::Dead => "dead",
            Outcome::Reset => "reset",
            Outcome::Closed => "closed",
            Outcome::Unknown => "unknown",
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
    Verdict(Verdict),
}

/// Receives events as they happen.
pub trait Sink {
    fn event(&mut self, ev: &Event);
}

const RATE_LIMIT_NOTE: &str =
    "sent within 500 ms of the peer's previous answer: a Linux peer answers at most one 0-byte probe per 500 ms";

struct Engine<'a> {
    s: Setup,
    sink: &'a mut dyn Sink,
    t: Tracker,
    /// Every time the engine uses (timers, TSval, events) is on this clock's timeline.
    clock: Clock,
    started: u64,
    received_bytes: u64,
    answered: u64,
    unanswered: u64,
    unanswered_rl: u64,
    resets: u64,
    rtts: Vec<u64>,
    /// Whether the latest resolved probe was answered.
    last_resolved_answered: Option<bool>,
    ka: Option<keepalive::Keepalive>,
    buf: Vec<u8>,
    /// The capture's losses last reported.
    drops: Drops,
}

/// Runs a live session to its verdict.
pub fn run(setup: Setup, sink: &mut dyn Sink) -> Result<Verdict, LiveError> {
    let t = Tracker::new(setup.local, setup.remote);
    let clock = Clock::start();
    let mut e = Engine {
        s: setup,
        sink,
        t,
        clock,
        started: clock.now(),
        received_bytes: 0,
        answered: 0,
        unanswered: 0,
        unanswered_rl: 0,
        resets: 0,
        rtts: Vec::new(),
        last_resolved_answered: None,
        ka: None,
        buf: vec![0u8; 65536],
        drops: Drops::default(),
    };
    let result = e.session();
    // Whatever happened: stop capturing, and only a complete pcap appears.
    if let Some(err) = e.s.capture.stop() {
        return Err(LiveError::new(format!("capture on {}", e.s.capture.device), err));
    }
    let mut verdict = result?;
    // The final count: a loss must show in the verdict, never pass for silence.
    e.report_drops();
    verdict.capture_dropped = e.drops.dropped;
    verdict.capture_if_dropped = e.drops.if_dropped;
    verdict.note = e
        .drops
        .verdict_note(verdict.outcome, verdict.unanswered + verdict.pending);
    if let Some(p) = e.s.pcap.take() {
        p.finish().map_err(|err| LiveError::new(err.path, err.why))?;
    }
    e.sink.event(&Event::Verdict(verdict.clone()));
    Ok(verdict)
}

enum Step {
    Continue,
    Stop(StopReason),
}

impl Engine<'_> {
    fn interrupted(&self) -> bool {
        self.s.interrupted.load(Ordering::Relaxed)
    }

    /// A `capture_drops` event when libpcap's drop counters grew.
    fn report_drops(&mut self) {
        let d = self.s.capture.drops();
        if d == self.drops {
            return;
        }
        self.drops = d;
        self.sink.event(&Event::CaptureDrops {
            at: At::of(self.clock.now()),
            dropped: d.dropped,
            if_dropped: d.if_dropped,
        });
    }

    fn duration_end(&self) -> Option<u64> {
        self.s.duration.map(|d| self.started.saturating_add(d))
    }

    fn session(&mut self) -> Result<Verdict, LiveError> {
        let data = std::mem::take(&mut self.s.send);
        if let Some(sock) = self.s.socket.as_mut() {
            if !data.is_empty() {
                sock.write_all(&data)
                    .map_err(|e| LiveError::os(format!("send to {}", self.s.remote), &e))?;
            }
            sock.set_nonblocking(true).map_err(|e| LiveError::os("socket", &e))?;
        }
        if let Some(stop) = self.wait_ready(data.len() as u64)? {
            return Ok(self.verdict(stop));
        }
        if !data.is_empty() {
            let ev = Event::Exchanged {
                at: At::of(self.clock.now()),
                sent: data.len() as u64,
                received: self.received_bytes,
            };
            self.sink.event(&ev);
        }
        let info = self.t.info();
        let ka = self.s.ka;
        let ev = Event::Session {
            at: At::of(self.clock.now()),
            mode: self.s.mode,
            interface: self.s.capture.device.clone(),
            link: self.s.capture.link.name(),
            info,
            style: self.s.style.name(),
            payload: self.s.payload.unwrap_or(self.s.style.payload_len()),
            idle_s: ka.idle as f64 / 1e9,
            interval_s: ka.interval as f64 / 1e9,
            count: ka.count,
            user_timeout_s: ka.user_timeout.map(|u| u as f64 / 1e9),
            last_received_ns: self.t.last_peer_time(),
        };
        self.sink.event(&ev);
        let stop = self.keepalive()?;
        Ok(self.verdict(stop))
    }

    /// Until the tracker knows enough to probe and nothing is in flight.
    fn wait_ready(&mut self, sent: u64) -> Result<Option<StopReason>, LiveError> {
        let begin = self.clock.now();
        let mut provoked_at: Option<u64> = None;
        loop {
            let now = self.clock.now();
            if self.interrupted() {
                return Ok(Some(StopReason::Interrupted));
            }
            if self.duration_end().is_some_and(|d| now >= d) {
                return Ok(Some(StopReason::Duration));
            }
            let settled =
                self.t.ready() && !self.t.busy() && (sent == 0 || self.received_bytes > 0 || now > begin + 500 * MS);
            if settled {
                return Ok(None);
            }
            if self.s.mode != Mode::Attach && now > begin.saturating_add(self.s.ready_timeout) {
                return Err(LiveError::new(
                    format!("capture on {}", self.s.capture.device),
                    format!(
                        "saw no handshake of {} > {} (is it the interface the traffic takes?)",
                        self.s.local, self.s.remote
                    ),
                ));
            }
            if self.s.mode == Mode::Attach
                && self.s.provoke
                && !self.t.ready()
                && provoked_at.is_none_or(|t| now > t + 1000 * MS)
            {
                self.provoke(now)?;
                provoked_at = Some(now);
            }
            if let Some(Step::Stop(r)) = self.pump(now + 20 * MS)? {
                return Ok(Some(r));
            }
        }
    }

    /// An ACK far outside a window, which is answered with a duplicate ACK
    /// carrying the answering end's SND.NXT and RCV.NXT (and its TSval).
    /// IPv4: sent to the local end in the peer's name, so it never leaves the
    /// host; the local kernel's answer goes out to the peer as an ordinary
    /// duplicate ACK, which a NAT on the path passes (an out-of-window ACK sent
    /// to the peer is refused by conntrack and answered with a RST). IPv6
    /// (the raw socket writes the local address as source): sent to the peer.
    fn provoke(&mut self, now: u64) -> Result<(), LiveError> {
        let x = (now as u32).rotate_left(13) ^ 0x9e37_79b9;
        let (seq, ack) = (Seq(x), Seq(x.rotate_left(16)));
        self.t.sent_other(seq, ack, Flags::ACK);
        let (src, dst) = match self.s.local {
            SocketAddr::V4(_) => (self.s.remote, self.s.local),
            SocketAddr::V6(_) => (self.s.local, self.s.remote),
        };
        self.s.sender.send(&SegmentSpec::new(src, dst, seq, ack, Flags::ACK))
    }

    /// Handles frames (and the socket) until `until`; the step a peer segment asked for.
    fn pump(&mut self, until: u64) -> Result<Option<Step>, LiveError> {
        self.drain_socket();
        self.report_drops();
        let now = self.clock.now();
        let wait = Duration::from_nanos(until.saturating_sub(now).min(50 * MS));
        let first = match self.s.capture.rx.recv_timeout(wait) {
            Ok(f) => f,
            Err(RecvTimeoutError::Timeout) => return Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                let why = self.s.capture.stop().unwrap_or_else(|| "capture ended".into());
                return Err(LiveError::new(format!("capture on {}", self.s.capture.device), why));
            }
        };
        let mut step = self.frame(first);
        while let Ok(f) = self.s.capture.rx.try_recv() {
            let st = self.frame(f);
            if step.is_none() {
                step = st;
            }
        }
        Ok(step)
    }

    fn drain_socket(&mut self) {
        let Some(sock) = self.s.socket.as_mut() else {
            return;
        };
        loop {
            match sock.read(&mut self.buf) {
                Ok(0) => return,
                Ok(n) => self.received_bytes += n as u64,
                Err(_) => return,
            }
        }
    }

    fn frame(&mut self, f: Frame) -> Option<Step> {
        let snapped = (f.data.len() as u32) < f.wire_len;
        let pkt = decode(self.s.capture.link, &f.data, snapped).ok()?;
        let t = self.clock.capture_time(f.time, f.received);
        let seen = self.t.observe(&pkt, t);
        if seen == Seen::Other {
            return None;
        }
        if let Some(p) = self.s.pcap.as_mut() {
            p.write_snapped(f.time, &f.data, f.wire_len);
        }
        let Seen::Peer { answer, rst, fin, .. } = seen else {
            return None;
        };
        Some(self.peer(t, answer, rst, fin))
    }

    /// A segment from the peer: an answer, a reset, a close, or just traffic.
    fn peer(&mut self, t: u64, answer: Option<Answer>, rst: Option<Rst>, fin: bool) -> Step {
        self.ka_received(t);
        // Probes an answer to a later one gave up on come first.
        self.report_given_up(t);
        match answer {
            Some(Answer::Ack {
                probe,
                rtt,
                dsack,
                window,
                seq,
                ack,
            }) => {
                self.answered += 1;
                self.rtts.push(rtt);
                self.last_resolved_answered = Some(true);
                self.sink.event(&Event::ProbeAcked {
                    at: At::of(t),
                    n: probe,
                    seq: seq.0,
                    ack: ack.0,
                    window,
                    dsack,
                    rtt_ms: ms(rtt),
                    rtt_ns: rtt,
                });
                if self.s.rounds.is_some_and(|r| self.answered >= r) {
                    return Step::Stop(StopReason::Rounds);
                }
            }
            Some(Answer::Reset { probe, rtt, seq, by }) => {
                self.resets += 1;
                self.sink.event(&Event::ProbeReset {
                    at: At::of(t),
                    n: probe,
                    seq: seq.0,
                    rtt_ms: ms(rtt),
                    rtt_ns: rtt,
                    reset_by: by.map(|b| b.name()),
                });
                return Step::Stop(StopReason::Reset);
            }
            None if rst.is_some() => {
                let r = rst.unwrap_or_else(|| unreachable!());
                self.sink.event(&Event::PeerReset {
                    at: At::of(t),
                    seq: r.seq.0,
                    accepted: r.acceptance.name(),
                    answers_own: r.answers_own,
                    reset_by: r.by.map(|b| b.name()),
                });
                // A RST the local end drops or challenges leaves the connection as it was.
                if r.acceptance == RstAcceptance::Resets && !r.answers_own {
                    return Step::Stop(StopReason::Reset);
                }
            }
            None if fin => {
                self.sink.event(&Event::PeerClosed { at: At::of(t) });
                return Step::Stop(StopReason::Closed);
            }
            None => {}
        }
        Step::Continue
    }

    fn ka_received(&mut self, t: u64) {
        if let Some(ka) = self.ka.as_mut() {
            ka.received(t);
        }
    }
}

// The keepalive loop proper.
impl Engine<'_> {
    fn keepalive(&mut self) -> Result<StopReason, LiveError> {
        let now = self.clock.now();
        let last = self.t.last_peer_time().unwrap_or(now);
        self.ka = Some(keepalive::Keepalive::new(self.s.ka, now, last));
        let stop = loop {
            let now = self.clock.now();
            if self.interrupted() {
                break StopReason::Interrupted;
            }
            if self.duration_end().is_some_and(|d| now >= d) {
                break StopReason::Duration;
            }
            let action = self.ka.as_mut().map_or(Action::Wait, |k| k.poll(now, self.t.busy()));
            match action {
                Action::Probe { n } => {
                    self.t.give_up_overdue(now);
                    self.report_given_up(now);
                    self.send_probe(now, n)?;
                }
                Action::Dead { reason, .. } => {
                    self.t.give_up_all();
                    self.report_given_up(now);
                    break match reason {
                        keepalive::DeadReason::Count => StopReason::Count,
                        keepalive::DeadReason::UserTimeout => StopReason::UserTimeout,
                    };
                }
                Action::Deferred => self.sink.event(&Event::ProbeDeferred { at: At::of(now) }),
                Action::Wait => {}
            }
            let next = [self.ka.as_ref().and_then(|k| k.poll_at()), self.duration_end()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + 50 * MS);
            if let Some(Step::Stop(r)) = self.pump(next)? {
                break r;
            }
        };
        if let Some(k) = self.ka.as_mut() {
            k.stop();
        }
        self.close(stop);
        Ok(stop)
    }

    /// Events for the probes the tracker gave up on (its rate limit judged then).
    fn report_given_up(&mut self, now: u64) {
        for n in self.t.take_given_up() {
            let rate_limited = self.t.probe(n).is_some_and(|p| p.rate_limited);
            self.unanswered += 1;
            self.unanswered_rl += rate_limited as u64;
            self.last_resolved_answered = Some(false);
            self.sink.event(&Event::ProbeUnanswered {
                at: At::of(now),
                n,
                rate_limited,
                note: rate_limited.then_some(RATE_LIMIT_NOTE),
            });
        }
    }

    fn send_probe(&mut self, now: u64, attempt: u32) -> Result<(), LiveError> {
        let inp = self
            .t
            .probe_inputs(now)
            .ok_or_else(|| LiveError::new("probe", "session state unknown"))?;
        let n = self.t.probes_sent() + 1;
        let shape = ProbeShape::build(self.s.style, self.s.payload, &inp, n);
        self.s.sender.send(&shape.segment(self.s.local, self.s.remote))?;
        let p = self.t.sent(shape, now);
        let info = self.t.info();
        let rel = |v: Seq, isn: Option<u32>| isn.map(|i| v.0.wrapping_sub(i));
        self.sink.event(&Event::ProbeSent {
            at: At::of(now),
            n: p.n,
            attempt,
            seq: shape.seq.0,
            ack: shape.ack.0,
            len: shape.len(),
            rel_seq: rel(shape.seq, info.isn_local),
            rel_ack: rel(shape.ack, info.isn_remote),
            tsval: shape.timestamp.map(|t| t.0),
            tsecr: shape.timestamp.map(|t| t.1),
            window: shape.window,
            rate_limited: p.rate_limited,
        });
        Ok(())
    }

    /// Ends the kernel socket's life: RST when the peer is dead (unless
    /// `--no-abort`), a normal close otherwise; then a short wait so the capture
    /// (and `--pcap`) holds what that put on the wire.
    fn close(&mut self, stop: StopReason) {
        let dead = matches!(stop, StopReason::Count | StopReason::UserTimeout);
        if let Some(sock) = self.s.socket.take() {
            if dead && !self.s.no_abort {
                let (seq, ack) = (
                    self.t.snd_nxt().unwrap_or_default(),
                    self.t.rcv_nxt().unwrap_or_default(),
                );
                socket::abort(sock);
                self.sink.event(&Event::Abort {
                    at: At::of(self.clock.now()),
                    seq: seq.0,
                    ack: ack.0,
                });
            } else {
                let _ = sock.shutdown(std::net::Shutdown::Both);
                drop(sock);
            }
        }
        let end = self.clock.now().saturating_add(300 * MS);
        while self.clock.now() < end {
            match self.s.capture.rx.recv_timeout(Duration::from_millis(20)) {
                Ok(f) => {
                    let _ = self.frame_quiet(f);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    /// A frame after the verdict: recorded, not acted on.
    fn frame_quiet(&mut self, f: Frame) -> Option<()> {
        let snapped = (f.data.len() as u32) < f.wire_len;
        let pkt = decode(self.s.capture.link, &f.data, snapped).ok()?;
        let t = self.clock.capture_time(f.time, f.received);
        if self.t.observe(&pkt, t) != Seen::Other {
            if let Some(p) = self.s.pcap.as_mut() {
                p.write_snapped(f.time, &f.data, f.wire_len);
            }
        }
        Some(())
    }

    fn verdict(&mut self, reason: StopReason) -> Verdict {
        let outcome = match reason {
            StopReason::Count | StopReason::UserTimeout => Outcome::Dead,
            StopReason::Reset => Outcome::Reset,
            StopReason::Closed => Outcome::Closed,
            StopReason::Rounds => Outcome::Alive,
            StopReason::Duration | StopReason::Interrupted => match self.last_resolved_answered {
                Some(true) => Outcome::Alive,
                _ => Outcome::Unknown,
            },
        };
        let rtt_ms = (!self.rtts.is_empty()).then(|| {
            let sum: u64 = self.rtts.iter().sum();
            RttStats {
                min: ms(*self.rtts.iter().min().unwrap_or(&0)),
                avg: ms(sum / self.rtts.len() as u64),
                max: ms(*self.rtts.iter().max().unwrap_or(&0)),
            }
        });
        let now = self.clock.now();
        Verdict {
            outcome,
            reason,
            local: keepalive::track::fmt_addr(self.s.local),
            remote: keepalive::track::fmt_addr(self.s.remote),
            probes: self.t.probes_sent(),
            answered: self.answered,
            unanswered: self.unanswered,
            unanswered_rate_limited: self.unanswered_rl,
            pending: self.t.open_probes() as u64,
            resets: self.resets,
            rtt_ms,
            elapsed_s: now.saturating_sub(self.started) as f64 / 1e9,
            capture_dropped: 0,
            capture_if_dropped: 0,
            note: None,
            at: At::of(now),
        }
    }
}
