//! The engine loop, for one session or thousands: one capture and one raw
//! socket per address family serve them all; captured frames go to the
//! session whose four-tuple they carry; every session's next timer sits in
//! one queue (a binary heap). Connections open a few at a time so a peer's
//! accept queue is never flooded. The only clock reads are here, through
//! `Clock`: monotonic, in the capture's (wall-clock epoch) timeline; frames'
//! libpcap stamps are brought into it by `Clock::capture_time`.

use super::capture::{Frame, LiveCapture};
use super::event::{At, Event, SessionId, Sink, Status, Summary};
use super::session::{Closing, Cx, Live, Phase, Script, Senders, Shared, Start, Totals};
use super::{socket, Clock, LiveError};
use crate::decode::decode;
use crate::keepalive;
use crate::keepalive::track::endpoint;
use crate::report::pcap::PcapOut;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use super::event::{Mode, Outcome, StopReason, Verdict};

const MS: u64 = 1_000_000;

/// An address and port as frames carry them (`track::endpoint`).
type Endpoint = (std::net::IpAddr, u16);
/// Connections being set up at once: enough to open thousands a second,
/// few enough for a listener's default backlog.
const CONNECTING_MAX: usize = 64;
/// Connections started (and sockets closed) in one turn of the loop,
/// between two reads of the capture: each puts frames in the capture's ring.
const CONNECT_BURST: usize = 8;
/// A connect or a close starts only when no timer is due this soon…
const ROOM: u64 = MS;
/// … or when none was done for this long (probes due back to back must not
/// starve them).
const CHORE_EVERY: u64 = 5 * MS;
/// Between two looks at the capture's drop counters (a system call), so a
/// verdict's note and the `capture_drops` event before it are current.
const DROPS_EVERY: u64 = MS;
/// Between two status reports to the sink.
const STATUS_EVERY: u64 = 250 * MS;
/// After the last verdict, how long the capture goes on, so `--pcap` holds
/// what the closes put on the wire.
const TAIL: u64 = 300 * MS;

/// Everything a live run needs, set up by the caller.
pub struct Setup {
    pub shared: Shared,
    pub sessions: Vec<Start>,
    pub capture: LiveCapture,
    pub senders: Senders,
    pub pcap: Option<PcapOut>,
    /// Stop after this long (nanoseconds).
    pub duration: Option<u64>,
    /// Set by SIGINT (Ctrl-C), SIGTERM and SIGHUP.
    pub interrupted: Arc<AtomicBool>,
}

struct Engine<'a> {
    control: &'a mut dyn Control,
    /// The control adds no more sessions.
    finished: bool,
    /// Sessions done.
    done: usize,
    /// Ctrl-C or `--duration` stopped every session.
    stopped: bool,
    /// When the last connect or close was done: they get a turn at least this often.
    chore_at: u64,
    shared: Shared,
    senders: Senders,
    sink: &'a mut dyn Sink,
    totals: Totals,
    sessions: Vec<Live>,
    /// (local, remote) endpoints → index in `sessions`.
    by_tuple: HashMap<(Endpoint, Endpoint), usize>,
    /// (due, index): each session's next timer; stale entries (no longer its
    /// `scheduled`) are skipped.
    timers: BinaryHeap<Reverse<(u64, usize)>>,
    /// Sessions not yet started, in order.
    next_queued: usize,
    /// Indexes of sessions connecting.
    connecting: Vec<usize>,
    /// Sockets of ended sessions, closed a few at a time between reads.
    closing: VecDeque<Closing>,
    capture: LiveCapture,
    pcap: Option<PcapOut>,
    clock: Clock,
    started: u64,
    duration: Option<u64>,
    interrupted: Arc<AtomicBool>,
    status_at: u64,
    drops_at: u64,
    /// The last read of the capture emptied its ring.
    drained: bool,
    /// The frame being handled (at most the snaplen).
    frame_buf: Vec<u8>,
}

/// A session to add while the run goes, with its own keepalive parameters.
pub struct Spec {
    pub start: Start,
    pub ka: keepalive::Config,
    pub rounds: Option<u64>,
    /// Segments to send instead of keepalive probes (`conform`).
    pub script: Option<Box<Script>>,
}

/// What a `Control` wants done.
#[derive(Default)]
pub struct Orders {
    /// Sessions to start (their ids follow the last one's).
    pub add: Vec<Spec>,
    /// Sessions to end now (`StopReason::Cancelled`).
    pub stop: Vec<SessionId>,
    /// No more sessions will be added: the run ends when the last one does.
    pub finished: bool,
}

/// Decides as the run goes which sessions to add and which to stop:
/// `probe` has its list from the start; `idle-timeout` plans rounds from
/// the verdicts so far.
pub trait Control {
    /// Each turn of the loop, with the verdicts since the last turn.
    fn turn(&mut self, now: u64, ended: &[(SessionId, Verdict)]) -> Orders;
}

/// The sessions given at the start, and no more.
pub struct Fixed;

impl Control for Fixed {
    fn turn(&mut self, _: u64, _: &[(SessionId, Verdict)]) -> Orders {
        Orders {
            finished: true,
            ..Orders::default()
        }
    }
}

/// Runs every session to its verdict; the run's summary.
pub fn run(setup: Setup, sink: &mut dyn Sink, control: &mut dyn Control) -> Result<Summary, LiveError> {
    let clock = Clock::start();
    let now = clock.now();
    let (ka, rounds) = (setup.shared.ka, setup.shared.rounds);
    let sessions: Vec<Live> = (setup.sessions.into_iter().enumerate())
        .map(|(i, s)| Live::new(i as u32 + 1, s, ka, rounds, None, now))
        .collect();
    let mut e = Engine {
        control,
        finished: false,
        done: 0,
        stopped: false,
        chore_at: now,
        shared: setup.shared,
        senders: setup.senders,
        sink,
        totals: Totals::default(),
        by_tuple: HashMap::with_capacity(sessions.len()),
        timers: BinaryHeap::with_capacity(sessions.len()),
        next_queued: 0,
        connecting: Vec::new(),
        closing: VecDeque::new(),
        sessions,
        capture: setup.capture,
        pcap: setup.pcap,
        clock,
        started: now,
        duration: setup.duration,
        interrupted: setup.interrupted,
        status_at: now,
        drops_at: now,
        drained: true,
        frame_buf: Vec::with_capacity(256),
    };
    e.run()?;
    // The final count: a loss must show, never pass for silence.
    e.report_drops();
    if let Some(p) = e.pcap.take() {
        p.finish().map_err(|err| LiveError::new(err.path, err.why))?;
    }
    let now = e.clock.now();
    let t = &mut e.totals;
    t.summary.rtt_ms = t.rtt.stats();
    t.summary.lateness_ms = t.lateness.lateness();
    t.summary.elapsed_s = t.last_verdict.max(e.started).saturating_sub(e.started) as f64 / 1e9;
    t.summary.capture_dropped = t.drops.dropped;
    t.summary.capture_if_dropped = t.drops.if_dropped;
    t.summary.at = At::of(now);
    e.sink.summary(&t.summary);
    Ok(t.summary.clone())
}

impl Engine<'_> {
    /// Calls `f` on session `i` with what sessions share, then requeues its timer.
    fn with<R>(&mut self, i: usize, now: u64, f: impl FnOnce(&mut Live, &mut Cx) -> R) -> R {
        let mut cx = Cx {
            shared: &self.shared,
            senders: &mut self.senders,
            sink: &mut *self.sink,
            totals: &mut self.totals,
            closing: &mut self.closing,
        };
        let s = &mut self.sessions[i];
        let was_done = s.done();
        let r = f(s, &mut cx);
        self.done += usize::from(!was_done && s.done());
        let w = s.wake(&self.shared, now);
        if w != s.scheduled {
            s.scheduled = w;
            if let Some(at) = w {
                self.timers.push(Reverse((at, i)));
            }
        }
        r
    }

    fn run(&mut self) -> Result<(), LiveError> {
        // Sessions that begin set up (accepted, attached) get their first look now.
        let now = self.clock.now();
        for i in 0..self.sessions.len() {
            if matches!(self.sessions[i].phase, Phase::Exchange { .. }) {
                let (l, r) = (self.sessions[i].local(), self.sessions[i].remote());
                self.by_tuple.insert((endpoint(l), endpoint(r)), i);
                self.with(i, now, |s, cx| s.begin(cx, now));
            }
        }
        loop {
            let now = self.clock.now();
            let stop = if self.interrupted.load(Ordering::Relaxed) {
                Some(StopReason::Interrupted)
            } else if self.duration.is_some_and(|d| now >= self.started.saturating_add(d)) {
                Some(StopReason::Duration)
            } else {
                None
            };
            if let Some(reason) = stop.filter(|_| !self.stopped) {
                self.stopped = true;
                self.finished = true;
                for i in 0..self.sessions.len() {
                    self.with(i, now, |s, cx| s.stop(cx, reason, now));
                }
                self.timers.clear();
            }
            self.open_more(now);
            self.poll_connecting(now);
            self.fire_timers();
            self.close_some();
            self.single_error()?;
            if !self.stopped {
                self.take_orders(now);
            }
            let all_done = self.done == self.sessions.len();
            if self.finished && all_done && self.closing.is_empty() {
                break;
            }
            if now >= self.drops_at + DROPS_EVERY {
                self.report_drops();
            }
            self.report_status(now);
            self.sink.flush();
            let next = self.timers.peek().map_or(now + 50 * MS, |Reverse((t, _))| *t);
            let can_open = self.next_queued < self.sessions.len() && self.connecting.len() < CONNECTING_MAX;
            let chores = can_open || !self.closing.is_empty();
            let next = if chores && self.room() {
                now // more to do at once, after the frames waiting
            } else if chores || !self.connecting.is_empty() {
                next.min(now + MS)
            } else {
                next
            };
            self.pump(next)?;
        }
        let end = self.clock.now().saturating_add(TAIL);
        while self.clock.now() < end {
            self.capture.wait(Duration::from_millis(20))?;
            while self.read_frame()? {}
        }
        Ok(())
    }

    /// Hands the control the verdicts since its last turn; carries out its orders.
    fn take_orders(&mut self, now: u64) {
        if self.finished && self.totals.ended.is_empty() {
            return;
        }
        let ended = std::mem::take(&mut self.totals.ended);
        let orders = self.control.turn(now, &ended);
        self.finished |= orders.finished;
        for spec in orders.add {
            let id = self.sessions.len() as u32 + 1;
            self.sessions
                .push(Live::new(id, spec.start, spec.ka, spec.rounds, spec.script, now));
        }
        for id in orders.stop {
            let i = (id as usize).wrapping_sub(1);
            if i < self.sessions.len() {
                self.with(i, now, |s, cx| s.stop(cx, StopReason::Cancelled, now));
            }
        }
    }

    /// With one session, its failure to set up is the run's error.
    fn single_error(&mut self) -> Result<(), LiveError> {
        match self.sessions.as_mut_slice() {
            [s] if self.shared.single && s.done() => s.error.take().map_or(Ok(()), |e| Err(*e)),
            _ => Ok(()),
        }
    }

    /// Closes a few ended sessions' sockets, once the capture is read to
    /// the end and while no timer is due: closing can wait, and each close
    /// puts frames in the capture's ring.
    fn close_some(&mut self) {
        if !self.drained {
            return;
        }
        for _ in 0..CONNECT_BURST {
            if !self.room() {
                break;
            }
            match self.closing.pop_front() {
                Some(c) => c.close(),
                None => break,
            }
            self.chore_at = self.clock.now();
        }
    }

    /// A timer is due: probes go before frames and new connections.
    fn timer_due(&self) -> bool {
        self.timers
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= self.clock.now())
    }

    /// No timer is due within `ROOM`: time for a connect or a close, which
    /// (with the peer's work on a local path) can take a good part of it.
    fn room(&self) -> bool {
        let now = self.clock.now();
        now > self.chore_at + CHORE_EVERY || self.timers.peek().is_none_or(|Reverse((at, _))| *at > now + ROOM)
    }

    /// Starts connecting queued sessions while fewer than `CONNECTING_MAX` are
    /// and no timer is due: a connect costs more than a probe, and probes
    /// must leave on time.
    fn open_more(&mut self, now: u64) {
        let mut started = 0;
        while self.connecting.len() < CONNECTING_MAX
            && self.next_queued < self.sessions.len()
            && started < CONNECT_BURST
        {
            started += 1;
            if !self.room() {
                break;
            }
            let i = self.next_queued;
            self.next_queued += 1;
            self.chore_at = now;
            if !matches!(self.sessions[i].phase, Phase::Queued { .. }) {
                continue;
            }
            if let Some(local) = self.with(i, now, |s, cx| s.start(cx, now)) {
                let remote = self.sessions[i].remote();
                self.by_tuple.insert((endpoint(local), endpoint(remote)), i);
                self.connecting.push(i);
            }
        }
    }

    /// Connections that came up (or failed) since the last look.
    fn poll_connecting(&mut self, now: u64) {
        self.connecting
            .retain(|&i| matches!(self.sessions[i].phase, Phase::Connecting { .. }));
        if self.connecting.is_empty() {
            return;
        }
        let socks: Vec<&socket2::Socket> = self
            .connecting
            .iter()
            .filter_map(|&i| match &self.sessions[i].phase {
                Phase::Connecting { sock, .. } => Some(sock),
                _ => None,
            })
            .collect();
        let ready = socket::poll_connected(&socks, Duration::ZERO);
        let ready: Vec<(usize, std::io::Result<()>)> =
            ready.into_iter().map(|(k, r)| (self.connecting[k], r)).collect();
        for (i, r) in ready {
            self.with(i, now, |s, cx| s.connected(cx, r, now));
        }
        self.connecting
            .retain(|&i| matches!(self.sessions[i].phase, Phase::Connecting { .. }));
    }

    /// Runs every timer that is due.
    fn fire_timers(&mut self) {
        while let Some(&Reverse((at, i))) = self.timers.peek() {
            // Read for each: a probe's time is when it leaves.
            let now = self.clock.now();
            if at > now {
                break;
            }
            self.timers.pop();
            if self.sessions[i].scheduled != Some(at) {
                continue; // stale: the session moved its timer since
            }
            self.sessions[i].scheduled = None;
            self.with(i, now, |s, cx| s.timer(cx, now));
        }
        // Stale entries are bounded: rebuilt when they outnumber live ones.
        if self.timers.len() > 4 * self.sessions.len() + 1024 {
            self.timers = (self.sessions.iter().enumerate())
                .filter_map(|(i, s)| s.scheduled.map(|at| Reverse((at, i))))
                .collect();
        }
    }

    /// Waits until `until` for frames, then handles every frame waiting
    /// (until a timer is due: probes go first).
    fn pump(&mut self, until: u64) -> Result<(), LiveError> {
        let now = self.clock.now();
        let wait = Duration::from_nanos(until.saturating_sub(now).min(50 * MS));
        if !wait.is_zero() {
            self.capture.wait(wait)?;
        }
        self.drained = false;
        while !self.timer_due() {
            if !self.read_frame()? {
                self.drained = true;
                break;
            }
        }
        Ok(())
    }

    /// Reads and handles one frame; false when none was waiting.
    fn read_frame(&mut self) -> Result<bool, LiveError> {
        let mut buf = std::mem::take(&mut self.frame_buf);
        let got = self.capture.next_into(&mut buf);
        if let Ok(Some(f)) = got {
            self.frame(f, &buf);
        }
        self.frame_buf = buf;
        got.map(|f| f.is_some())
    }

    /// One captured frame: recorded and handed to its session, if it has one.
    fn frame(&mut self, f: Frame, data: &[u8]) {
        let snapped = (f.len as u32) < f.wire_len;
        let Ok(pkt) = decode(self.capture.link, data, snapped) else {
            return;
        };
        let src = endpoint(SocketAddr::new(pkt.src, pkt.tcp.src_port));
        let dst = endpoint(SocketAddr::new(pkt.dst, pkt.tcp.dst_port));
        let Some(&i) = self
            .by_tuple
            .get(&(src, dst))
            .or_else(|| self.by_tuple.get(&(dst, src)))
        else {
            return;
        };
        if let Some(p) = self.pcap.as_mut() {
            p.write_snapped(f.time, data, f.wire_len);
        }
        let t = self.clock.capture_time(f.time, f.received);
        let now = self.clock.now();
        self.with(i, now, |s, cx| s.frame(cx, &pkt, t, now));
    }

    /// A `capture_drops` event (session 0: the whole run) when libpcap's drop counters grew.
    fn report_drops(&mut self) {
        let d = self.capture.drops();
        self.drops_at = self.clock.now();
        if d == self.totals.drops {
            return;
        }
        self.totals.drops = d;
        self.sink.event(
            0,
            &Event::CaptureDrops {
                at: At::of(self.clock.now()),
                dropped: d.dropped,
                if_dropped: d.if_dropped,
            },
        );
    }

    fn report_status(&mut self, now: u64) {
        if now < self.status_at + STATUS_EVERY {
            return;
        }
        self.status_at = now;
        let mut st = Status {
            sessions: self.sessions.len() as u64,
            probes: self.totals.probes,
            answered: self.totals.answered,
            ..Status::default()
        };
        for s in &self.sessions {
            match s.phase {
                Phase::Queued { .. } | Phase::Connecting { .. } | Phase::Exchange { .. } => st.connecting += 1,
                Phase::Probing | Phase::Scripted => st.probing += 1,
                Phase::Done => st.done += 1,
            }
        }
        self.sink.status(&st);
    }
}
