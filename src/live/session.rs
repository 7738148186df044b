//! One live session inside the engine: its phases (queued, connecting,
//! exchanging, probing, done), its `Tracker` and `Keepalive`, its kernel
//! socket, and what it reports. Every handler takes the time it runs at; the
//! engine (`super::engine`) owns the clock, the capture and the timer queue
//! and calls in here with a `Cx` of what sessions share.

use super::event::{ms, At, Event, Mode, Outcome, SessionId, StopReason, Verdict};
pub use super::script::{Script, ScriptSeen};
pub use super::shared::{Closing, Cx, Senders, Shared, Start, Totals};
use super::socket;
use super::stats::RttAgg;
use super::LiveError;
use crate::conform::{Got, Sent};
use crate::decode::Packet;
use crate::keepalive::track::{canonical, Rst};
use crate::keepalive::{self, Action, Answer, ProbeShape, Seen, Tracker};
use crate::session::RstAcceptance;
use crate::wire::build::SegmentSpec;
use crate::wire::{Flags, Seq};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};

const MS: u64 = 1_000_000;

/// How long a session that sent data waits for the peer's before it probes anyway.
const EXCHANGE_WAIT: u64 = 500 * MS;
/// Between two provoking ACKs while an attached session's state is unknown.
const PROVOKE_EVERY: u64 = 1000 * MS;

const RATE_LIMIT_NOTE: &str =
    "sent within 500 ms of the peer's previous answer: a Linux peer answers at most one 0-byte probe per 500 ms";

/// Where a session stands.
pub enum Phase {
    /// Waiting for its turn to connect.
    Queued {
        remote: SocketAddr,
        bind_port: u16,
    },
    /// SYN sent; up, refused or timed out by `until`.
    Connecting {
        sock: socket2::Socket,
        until: u64,
    },
    /// Up: waiting until the tracker knows enough and the data sent first is answered.
    Exchange {
        begin: u64,
        provoked_at: Option<u64>,
    },
    Probing,
    /// Sending a `conform` case's segments, then waiting for answers.
    Scripted,
    Done,
}

pub struct Live {
    pub id: SessionId,
    pub phase: Phase,
    /// This session's keepalive parameters (`idle-timeout` gives each its own idle).
    cfg: keepalive::Config,
    /// Stop after this many answered probes.
    rounds: Option<u64>,
    /// A `conform` case instead of keepalive.
    script: Option<Box<Script>>,
    socket: Option<TcpStream>,
    t: Tracker,
    ka: Option<keepalive::Keepalive>,
    began: u64,
    sent: u64,
    received: u64,
    /// Payload bytes the capture saw from the peer.
    peer_data: u64,
    /// A peer's FIN or RST seen while connecting, for when the connection is up.
    early: Option<(u64, Option<Rst>, bool)>,
    answered: u64,
    unanswered: u64,
    unanswered_rl: u64,
    resets: u64,
    rtt: RttAgg,
    /// Whether the latest resolved probe was answered.
    last_resolved_answered: Option<bool>,
    /// Why it could not be set up (outcome `failed`); boxed, as it is rare.
    pub error: Option<Box<LiveError>>,
    /// The wake-up time the engine's queue holds for it.
    pub scheduled: Option<u64>,
}

impl Live {
    pub fn new(
        id: SessionId,
        start: Start,
        cfg: keepalive::Config,
        rounds: Option<u64>,
        script: Option<Box<Script>>,
        now: u64,
    ) -> Live {
        let unspecified: SocketAddr = ([0, 0, 0, 0], 0).into();
        let (phase, local, remote, socket) = match start {
            Start::Connect { remote, bind_port } => (Phase::Queued { remote, bind_port }, unspecified, remote, None),
            Start::Socket(s) => {
                let local = s.local_addr().map_or(unspecified, canonical);
                let remote = s.peer_addr().map_or(unspecified, canonical);
                let phase = Phase::Exchange {
                    begin: now,
                    provoked_at: None,
                };
                (phase, local, remote, Some(s))
            }
            Start::Attach { local, remote } => (
                Phase::Exchange {
                    begin: now,
                    provoked_at: None,
                },
                local,
                remote,
                None,
            ),
        };
        Live {
            id,
            phase,
            cfg,
            rounds,
            script,
            socket,
            t: Tracker::new(local, remote),
            ka: None,
            began: now,
            sent: 0,
            received: 0,
            peer_data: 0,
            early: None,
            answered: 0,
            unanswered: 0,
            unanswered_rl: 0,
            resets: 0,
            rtt: RttAgg::default(),
            last_resolved_answered: None,
            error: None,
            scheduled: None,
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.t.local
    }

    pub fn remote(&self) -> SocketAddr {
        self.t.remote
    }

    pub fn done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// When its timer should run next, after `now` (it just ran).
    pub fn wake(&self, shared: &Shared, now: u64) -> Option<u64> {
        match &self.phase {
            Phase::Queued { .. } | Phase::Done => None,
            Phase::Connecting { until, .. } => Some(*until),
            Phase::Exchange { begin, provoked_at } => {
                let ready_by = (shared.mode != Mode::Attach).then(|| begin.saturating_add(shared.ready_timeout));
                // Past it, only a frame can settle the exchange.
                let settle_by = (self.sent > 0 && begin + EXCHANGE_WAIT > now).then_some(begin + EXCHANGE_WAIT);
                let provoke_at = self
                    .wants_provoke(shared)
                    .then(|| provoked_at.map_or(*begin, |p| p + PROVOKE_EVERY));
                [ready_by, settle_by, provoke_at].into_iter().flatten().min()
            }
            Phase::Probing => self.ka.as_ref().and_then(|k| k.poll_at()),
            Phase::Scripted => self.script.as_ref().map(|s| s.due()),
        }
    }

    fn wants_provoke(&self, shared: &Shared) -> bool {
        shared.mode == Mode::Attach && shared.provoke && !self.t.ready()
    }

    /// Queued → connecting: the SYN goes out. Returns the local address, which
    /// the engine needs to route captured frames here.
    pub fn start(&mut self, cx: &mut Cx, now: u64) -> Option<SocketAddr> {
        let Phase::Queued { remote, bind_port } = self.phase else {
            return None;
        };
        match socket::start_connect(remote, bind_port) {
            Ok((sock, local)) => {
                self.t = Tracker::new(canonical(local), self.t.remote);
                self.began = now;
                let until = now.saturating_add(cx.shared.connect_timeout);
                self.phase = Phase::Connecting { sock, until };
                Some(self.t.local)
            }
            Err(e) => {
                self.fail(cx, e, now);
                None
            }
        }
    }

    /// Connecting: the kernel says the connection is up (or why not).
    pub fn connected(&mut self, cx: &mut Cx, result: std::io::Result<()>, now: u64) {
        let Phase::Connecting { .. } = self.phase else {
            return;
        };
        let Phase::Connecting { sock, .. } = std::mem::replace(&mut self.phase, Phase::Done) else {
            return;
        };
        let what = format!("connect {}", fmt(self.t.remote));
        let up = result
            .and_then(|()| socket::connected(sock))
            .map_err(|e| LiveError::os(&what, &e))
            .and_then(|s| {
                cx.senders.prepare(self.t.local)?;
                Ok(s)
            });
        match up {
            Ok(s) => self.up(cx, s, now),
            Err(e) => self.fail(cx, e, now),
        }
    }

    /// A session that begins set up (accepted, attached): its first look.
    pub fn begin(&mut self, cx: &mut Cx, now: u64) {
        // The IPv6 raw socket must send from this session's address.
        if let Err(e) = cx.senders.prepare(self.t.local) {
            return self.fail(cx, e, now);
        }
        match self.socket.take() {
            Some(s) => self.up(cx, s, now),
            None => self.exchange(cx, now),
        }
    }

    /// The connection is up: the data sent first goes, then the exchange.
    fn up(&mut self, cx: &mut Cx, mut s: TcpStream, now: u64) {
        // A script may send its own (`replay`: data only where the capture had some).
        let own = self.script.as_deref().and_then(|s| s.send.as_deref());
        let send = own.unwrap_or(&cx.shared.send);
        if !send.is_empty() {
            // Blocking, before the socket turns non-blocking: the data sent
            // first is small, and an empty send buffer takes it at once. A
            // peer that does not read gets a second, then the session fails,
            // so the other sessions never wait longer than that.
            let sent = s
                .set_nonblocking(false)
                .and_then(|()| s.set_write_timeout(Some(std::time::Duration::from_secs(1))))
                .and_then(|()| s.write_all(send));
            let len = send.len() as u64;
            if let Err(e) = sent {
                return self.fail(cx, LiveError::os(format!("send to {}", fmt(self.t.remote)), &e), now);
            }
            self.sent = len;
        }
        if let Err(e) = s.set_nonblocking(true) {
            return self.fail(cx, LiveError::os("socket", &e), now);
        }
        self.socket = Some(s);
        self.phase = Phase::Exchange {
            begin: now,
            provoked_at: None,
        };
        // A FIN or RST the capture showed before the kernel said "up".
        if let Some((t, rst, fin)) = self.early.take() {
            if let Some(stop) = self.peer(cx, t, None, rst, fin) {
                return self.finish(cx, stop, now);
            }
        }
        self.exchange(cx, now);
    }

    /// The timer ran (at or after `wake`).
    pub fn timer(&mut self, cx: &mut Cx, now: u64) {
        match self.phase {
            Phase::Connecting { until, .. } if now >= until => {
                let e = LiveError::new(format!("connect {}", fmt(self.t.remote)), "timed out");
                self.phase = Phase::Done;
                self.fail(cx, e, now);
            }
            Phase::Exchange { .. } => self.exchange(cx, now),
            Phase::Probing => self.keepalive(cx, now),
            Phase::Scripted => self.script_turn(cx, now),
            _ => {}
        }
    }

    /// A captured segment of this session's four-tuple, captured at `t`.
    pub fn frame(&mut self, cx: &mut Cx, pkt: &Packet, t: u64, now: u64) {
        match self.phase {
            Phase::Done | Phase::Queued { .. } => return,
            // The kernel decides whether the connection came up; the tracker
            // only learns the handshake.
            Phase::Connecting { .. } => {
                if let Seen::Peer { rst, fin, data, .. } = self.t.observe(pkt, t) {
                    self.peer_data += u64::from(data);
                    if rst.is_some() || fin {
                        self.early = Some((t, rst, fin));
                    }
                }
                return;
            }
            _ => {}
        }
        let seen = self.t.observe(pkt, t);
        if let (Phase::Scripted, Some(s)) = (&self.phase, self.script.as_deref_mut()) {
            if let Seen::Peer {
                answer: Some(a @ (Answer::Ack { probe, .. } | Answer::Reset { probe, .. })),
                ..
            } = seen
            {
                s.answered(probe, a);
            }
            if let Seen::Peer { rst, fin, .. } = seen {
                let closed = if rst.is_some() {
                    Some("RST")
                } else {
                    fin.then_some("FIN")
                };
                if let (None, Some(how)) = (s.peer_closed, closed) {
                    s.peer_closed = Some((how, s.sent.len()));
                }
            }
            if matches!(seen, Seen::Peer { .. }) && s.got.len() < s.keep() {
                let tcp = &pkt.tcp;
                // A D-SACK for the byte of the segment sent last.
                let dsack = s
                    .sent
                    .last()
                    .is_some_and(|x| x.len > 0 && crate::session::dsack(tcp, Seq(x.seq)));
                s.got.push(Got {
                    time_ns: t,
                    seq: tcp.seq.0,
                    ack: tcp.ack.0,
                    len: tcp.payload_len,
                    rst: tcp.flags.rst(),
                    ack_flag: tcp.flags.ack(),
                    dsack,
                    tsecr: tcp.options.timestamp.map(|ts| ts.1),
                });
            }
            return;
        }
        if let (Seen::Local, true, Some(ka)) = (seen, cx.shared.idle_from_any, self.ka.as_mut()) {
            ka.received(t);
        }
        if let Seen::Peer { answer, rst, fin, data } = seen {
            if data > 0 {
                self.peer_data += u64::from(data);
                self.drain_socket();
            }
            if let Some(stop) = self.peer(cx, t, answer, rst, fin) {
                self.finish(cx, stop, now);
                return;
            }
        }
        // Any segment may complete what the tracker needs (the local end's
        // duplicate ACK that `--provoke` draws, say).
        if let Phase::Exchange { .. } = self.phase {
            self.exchange(cx, now);
        }
    }

    /// The run stops (Ctrl-C, `--duration`): this session's verdict now.
    pub fn stop(&mut self, cx: &mut Cx, reason: StopReason, now: u64) {
        if !self.done() {
            self.finish(cx, reason, now);
        }
    }

    /// Until the tracker knows enough to probe and nothing is in flight.
    fn exchange(&mut self, cx: &mut Cx, now: u64) {
        let Phase::Exchange { begin, provoked_at } = self.phase else {
            return;
        };
        let settled =
            self.t.ready() && !self.t.busy() && (self.sent == 0 || self.peer_data > 0 || now >= begin + EXCHANGE_WAIT);
        if settled {
            return self.begin_probing(cx, now);
        }
        let shared = cx.shared;
        if shared.mode != Mode::Attach && now >= begin.saturating_add(shared.ready_timeout) {
            let e = LiveError::new(
                format!("capture on {}", shared.device),
                format!(
                    "saw no handshake of {} > {} (is it the interface the traffic takes?)",
                    fmt(self.t.local),
                    fmt(self.t.remote)
                ),
            );
            return self.fail(cx, e, now);
        }
        if self.wants_provoke(shared) && provoked_at.is_none_or(|p| now >= p + PROVOKE_EVERY) {
            if let Err(e) = self.provoke(cx, now) {
                return self.fail(cx, e, now);
            }
            self.phase = Phase::Exchange {
                begin,
                provoked_at: Some(now),
            };
        }
    }

    fn begin_probing(&mut self, cx: &mut Cx, now: u64) {
        if self.sent > 0 {
            self.drain_socket();
            // The capture can show the peer's data before the socket holds it.
            let ev = Event::Exchanged {
                at: At::of(now),
                sent: self.sent,
                received: self.received.max(self.peer_data),
            };
            cx.sink.event(self.id, &ev);
        }
        let shared = cx.shared;
        let ka = self.cfg;
        let ev = Event::Session {
            at: At::of(now),
            mode: shared.mode,
            interface: shared.device.clone(),
            link: shared.link,
            info: self.t.info(),
            style: shared.style.name(),
            payload: shared.payload.unwrap_or(shared.style.payload_len()),
            idle_s: ka.idle as f64 / 1e9,
            interval_s: ka.interval as f64 / 1e9,
            count: ka.count,
            user_timeout_s: ka.user_timeout.map(|u| u as f64 / 1e9),
            last_received_ns: self.t.last_peer_time(),
        };
        cx.sink.event(self.id, &ev);
        if let Some(s) = self.script.as_deref_mut() {
            // Its times count from when the peer was last heard, as the keepalive timer's do.
            s.t0 = self.t.last_peer_time().unwrap_or(now).min(now);
            self.phase = Phase::Scripted;
            return self.script_turn(cx, now);
        }
        let last = match shared.idle_from_any {
            true => self.t.last_time(),
            false => self.t.last_peer_time(),
        };
        self.ka = Some(keepalive::Keepalive::new(ka, now, last.unwrap_or(now)));
        self.phase = Phase::Probing;
        self.keepalive(cx, now);
    }

    /// An ACK far outside a window, which is answered with a duplicate ACK
    /// carrying the answering end's SND.NXT and RCV.NXT (and its TSval).
    /// IPv4: sent to the local end in the peer's name, so it never leaves the
    /// host; the local kernel's answer goes out to the peer as an ordinary
    /// duplicate ACK, which a NAT on the path passes (an out-of-window ACK sent
    /// to the peer is refused by conntrack and answered with a RST). IPv6
    /// (the raw socket writes the local address as source): sent to the peer.
    fn provoke(&mut self, cx: &mut Cx, now: u64) -> Result<(), LiveError> {
        cx.senders.prepare(self.t.local)?;
        let x = (now as u32).rotate_left(13) ^ 0x9e37_79b9;
        let (seq, ack) = (Seq(x), Seq(x.rotate_left(16)));
        self.t.sent_other(seq, ack, Flags::ACK);
        let (src, dst) = match self.t.local {
            SocketAddr::V4(_) => (self.t.remote, self.t.local),
            SocketAddr::V6(_) => (self.t.local, self.t.remote),
        };
        cx.senders.send(&SegmentSpec::new(src, dst, seq, ack, Flags::ACK))
    }

    fn drain_socket(&mut self) {
        let Some(sock) = self.socket.as_mut() else {
            return;
        };
        self.received += socket::drain(sock);
    }

    /// A segment from the peer: an answer, a reset, a close, or just traffic.
    /// `Some` when it ends the session.
    fn peer(&mut self, cx: &mut Cx, t: u64, answer: Option<Answer>, rst: Option<Rst>, fin: bool) -> Option<StopReason> {
        if let Some(ka) = self.ka.as_mut() {
            ka.received(t);
        }
        // Probes an answer to a later one gave up on come first.
        self.report_given_up(cx, t);
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
                cx.totals.answered += 1;
                self.rtt.add(rtt);
                self.last_resolved_answered = Some(true);
                let ev = Event::ProbeAcked {
                    at: At::of(t),
                    n: probe,
                    seq: seq.0,
                    ack: ack.0,
                    window,
                    dsack,
                    rtt_ms: ms(rtt),
                    rtt_ns: rtt,
                };
                cx.sink.event(self.id, &ev);
                if self.rounds.is_some_and(|r| self.answered >= r) {
                    return Some(StopReason::Rounds);
                }
            }
            Some(Answer::Reset { probe, rtt, seq, by }) => {
                self.resets += 1;
                let ev = Event::ProbeReset {
                    at: At::of(t),
                    n: probe,
                    seq: seq.0,
                    rtt_ms: ms(rtt),
                    rtt_ns: rtt,
                    reset_by: by.map(|b| b.name()),
                };
                cx.sink.event(self.id, &ev);
                return Some(StopReason::Reset);
            }
            None => {
                if let Some(r) = rst {
                    let ev = Event::PeerReset {
                        at: At::of(t),
                        seq: r.seq.0,
                        accepted: r.acceptance.name(),
                        answers_own: r.answers_own,
                        reset_by: r.by.map(|b| b.name()),
                    };
                    cx.sink.event(self.id, &ev);
                    // A RST the local end drops or challenges leaves the connection as it was.
                    if r.acceptance == RstAcceptance::Resets && !r.answers_own {
                        return Some(StopReason::Reset);
                    }
                } else if fin {
                    cx.sink.event(self.id, &Event::PeerClosed { at: At::of(t) });
                    return Some(StopReason::Closed);
                }
            }
        }
        None
    }

    /// The keepalive timer: probe, give up, or wait.
    fn keepalive(&mut self, cx: &mut Cx, now: u64) {
        let Some(ka) = self.ka.as_mut() else {
            return;
        };
        let due = ka.poll_at();
        match ka.poll(now, self.t.busy()) {
            Action::Probe { n } => {
                self.t.give_up_overdue(now);
                self.report_given_up(cx, now);
                cx.totals.lateness.add(now.saturating_sub(due.unwrap_or(now)));
                if let Err(e) = self.send_probe(cx, now, n) {
                    // The raw socket refused it (e.g. the route went away):
                    // the session cannot go on probing.
                    self.error = Some(Box::new(e));
                    self.finish(cx, StopReason::Error, now);
                }
            }
            Action::Dead { reason, .. } => {
                self.t.give_up_all();
                self.report_given_up(cx, now);
                let stop = match reason {
                    keepalive::DeadReason::Count => StopReason::Count,
                    keepalive::DeadReason::UserTimeout => StopReason::UserTimeout,
                };
                self.finish(cx, stop, now);
            }
            Action::Deferred => cx.sink.event(self.id, &Event::ProbeDeferred { at: At::of(now) }),
            Action::Wait => {}
        }
    }

    /// Sends the case's segments that are due; once all went out and the wait
    /// is over, its `case` event and the end of the session.
    fn script_turn(&mut self, cx: &mut Cx, now: u64) {
        let Some(s) = self.script.as_deref_mut() else {
            return;
        };
        while s.sent.len() < s.steps.len() && now >= s.due() {
            let Some(inp) = self.t.probe_inputs(now) else {
                break;
            };
            let shape = s.steps[s.sent.len()].shape(&inp, s.sent.len() as u64 + 1);
            if let Err(e) = cx.senders.send(&shape.segment(self.t.local, self.t.remote)) {
                self.error = Some(Box::new(e));
                return self.finish(cx, StopReason::Error, now);
            }
            if s.probes {
                self.t.sent(shape, now);
            } else {
                // The capture shows it as kaprobe's own, not the local kernel's.
                self.t.sent_other(shape.seq, shape.ack, Flags::ACK);
            }
            s.sent.push(Sent {
                time_ns: now,
                seq: shape.seq.0,
                ack: shape.ack.0,
                len: shape.len(),
                tsval: shape.timestamp.map(|ts| ts.0),
            });
        }
        if s.finished(now) {
            self.finish(cx, StopReason::Rounds, now);
        }
    }

    /// The script's `case` event: what it sent and saw, all of it or (the
    /// run stopped) as far as it came.
    fn report_case(&mut self, cx: &mut Cx, now: u64) {
        let Some(s) = self.script.as_deref_mut().filter(|s| !s.sent.is_empty()) else {
            return;
        };
        let seen = ScriptSeen {
            complete: s.finished(now),
            peer_closed: s.peer_closed,
            sent: std::mem::take(&mut s.sent),
            got: std::mem::take(&mut s.got),
            answers: std::mem::take(&mut s.answers),
        };
        let ev = Event::Case {
            at: At::of(now),
            name: s.name,
            seen,
        };
        cx.sink.event(self.id, &ev);
    }

    /// Events for the probes the tracker gave up on (its rate limit judged then).
    fn report_given_up(&mut self, cx: &mut Cx, now: u64) {
        for n in self.t.take_given_up() {
            let rate_limited = self.t.probe(n).is_some_and(|p| p.rate_limited);
            self.unanswered += 1;
            self.unanswered_rl += rate_limited as u64;
            self.last_resolved_answered = Some(false);
            let ev = Event::ProbeUnanswered {
                at: At::of(now),
                n,
                rate_limited,
                note: rate_limited.then_some(RATE_LIMIT_NOTE),
            };
            cx.sink.event(self.id, &ev);
        }
    }

    fn send_probe(&mut self, cx: &mut Cx, now: u64, attempt: u32) -> Result<(), LiveError> {
        let inp = self
            .t
            .probe_inputs(now)
            .ok_or_else(|| LiveError::new("probe", "session state unknown"))?;
        let n = self.t.probes_sent() + 1;
        let shared = cx.shared;
        let shape = ProbeShape::build(shared.style, shared.payload, &inp, n);
        cx.senders.send(&shape.segment(self.t.local, self.t.remote))?;
        cx.totals.probes += 1;
        let p = self.t.sent(shape, now);
        let info = self.t.info();
        let rel = |v: Seq, isn: Option<u32>| isn.map(|i| v.0.wrapping_sub(i));
        let ev = Event::ProbeSent {
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
        };
        cx.sink.event(self.id, &ev);
        Ok(())
    }

    /// Could not be set up: with one session that is the run's error (kept
    /// in `error` for the engine); with several, this session's verdict.
    fn fail(&mut self, cx: &mut Cx, e: LiveError, now: u64) {
        self.error = Some(Box::new(e));
        self.finish(cx, StopReason::Error, now);
    }

    /// Ends the session: closes the kernel socket (a RST when the peer is
    /// dead, unless `--no-abort`), then its verdict.
    fn finish(&mut self, cx: &mut Cx, reason: StopReason, now: u64) {
        if let Some(k) = self.ka.as_mut() {
            k.stop();
        }
        self.phase = Phase::Done;
        self.report_case(cx, now);
        let dead = matches!(reason, StopReason::Count | StopReason::UserTimeout);
        if let Some(sock) = self.socket.take() {
            let abort = dead && !cx.shared.no_abort;
            if abort {
                let (seq, ack) = (
                    self.t.snd_nxt().unwrap_or_default(),
                    self.t.rcv_nxt().unwrap_or_default(),
                );
                let ev = Event::Abort {
                    at: At::of(now),
                    seq: seq.0,
                    ack: ack.0,
                };
                cx.sink.event(self.id, &ev);
            }
            cx.closing.push_back(Closing { sock, abort });
        }
        let v = self.verdict(cx, reason, now);
        cx.totals.summary.add(&v);
        cx.totals.rtt.merge(&self.rtt);
        cx.totals.ended.push((self.id, v.clone()));
        cx.totals.last_verdict = cx.totals.last_verdict.max(now);
        if !(cx.shared.single && reason == StopReason::Error) {
            cx.sink.event(self.id, &Event::Verdict(v));
        }
    }

    fn verdict(&self, cx: &Cx, reason: StopReason, now: u64) -> Verdict {
        let outcome = match reason {
            StopReason::Count | StopReason::UserTimeout => Outcome::Dead,
            StopReason::Reset => Outcome::Reset,
            StopReason::Closed => Outcome::Closed,
            StopReason::Rounds => Outcome::Alive,
            StopReason::Error => Outcome::Failed,
            StopReason::Duration | StopReason::Interrupted | StopReason::Cancelled => match self.last_resolved_answered
            {
                Some(true) => Outcome::Alive,
                _ => Outcome::Unknown,
            },
        };
        let pending = self.t.open_probes() as u64;
        let drops = cx.totals.drops;
        Verdict {
            outcome,
            reason,
            local: fmt(self.t.local),
            remote: fmt(self.t.remote),
            probes: self.t.probes_sent(),
            answered: self.answered,
            unanswered: self.unanswered,
            unanswered_rate_limited: self.unanswered_rl,
            pending,
            resets: self.resets,
            rtt_ms: self.rtt.stats(),
            elapsed_s: now.saturating_sub(self.began) as f64 / 1e9,
            capture_dropped: drops.dropped,
            capture_if_dropped: drops.if_dropped,
            note: drops.verdict_note(outcome, self.unanswered + pending),
            error: self.error.as_ref().map(|e| e.to_string()),
            at: At::of(now),
        }
    }
}

fn fmt(a: SocketAddr) -> String {
    keepalive::track::fmt_addr(a)
}
