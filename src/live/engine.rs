//! The engine loop, for one session or thousands: one capture and one raw
//! socket per address family serve them all; captured frames go to the
//! session whose four-tuple they carry; every session's next timer sits in
//! one queue (a binary heap). Connections open a few at a time so a peer's
//! accept queue is never flooded. The only clock reads are here, through
//! `Clock`: monotonic, in the capture's (wall-clock epoch) timeline; frames'
//! libpcap stamps are brought into it by `Clock::capture_time`.

use super::capture::{Frame, LiveCapture};
use super::event::{At, Event, Sink, Status, Summary};
use super::session::{Cx, Live, Phase, Senders, Shared, Start, Totals};
use super::{socket, Clock, LiveError};
use crate::decode::decode;
use crate::report::pcap::PcapOut;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

pub use super::event::{Mode, Outcome, StopReason, Verdict};

const MS: u64 = 1_000_000;
/// Connections being set up at once: enough to open thousands a second,
/// few enough for a listener's default backlog.
const CONNECTING_MAX: usize = 64;
/// Frames handled before the timers get a look.
const FRAME_BATCH: usize = 256;
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
    shared: Shared,
    senders: Senders,
    sink: &'a mut dyn Sink,
    totals: Totals,
    sessions: Vec<Live>,
    /// (local, remote) → index in `sessions`.
    by_tuple: HashMap<(SocketAddr, SocketAddr), usize>,
    /// (due, index): each session's next timer; stale entries (no longer its
    /// `scheduled`) are skipped.
    timers: BinaryHeap<Reverse<(u64, usize)>>,
    /// Sessions not yet started, in order.
    next_queued: usize,
    /// Indexes of sessions connecting.
    connecting: Vec<usize>,
    capture: LiveCapture,
    pcap: Option<PcapOut>,
    clock: Clock,
    started: u64,
    duration: Option<u64>,
    interrupted: Arc<AtomicBool>,
    status_at: u64,
}

/// Runs every session to its verdict; the run's summary.
pub fn run(setup: Setup, sink: &mut dyn Sink) -> Result<Summary, LiveError> {
    let clock = Clock::start();
    let now = clock.now();
    let sessions: Vec<Live> = (setup.sessions.into_iter().enumerate())
        .map(|(i, s)| Live::new(i as u32 + 1, s, now))
        .collect();
    let mut e = Engine {
        shared: setup.shared,
        senders: setup.senders,
        sink,
        totals: Totals::default(),
        by_tuple: HashMap::with_capacity(sessions.len()),
        timers: BinaryHeap::with_capacity(sessions.len()),
        next_queued: 0,
        connecting: Vec::new(),
        sessions,
        capture: setup.capture,
        pcap: setup.pcap,
        clock,
        started: now,
        duration: setup.duration,
        interrupted: setup.interrupted,
        status_at: now,
    };
    let result = e.run();
    // Whatever happened: stop capturing, and only a complete pcap appears.
    if let Some(err) = e.capture.stop() {
        return Err(LiveError::new(format!("capture on {}", e.capture.device), err));
    }
    result?;
    e.report_drops();
    if let Some(p) = e.pcap.take() {
        p.finish().map_err(|err| LiveError::new(err.path, err.why))?;
    }
    let now = e.clock.now();
    let t = &mut e.totals;
    t.summary.rtt_ms = t.rtt.stats();
    t.summary.lateness_ms = t.lateness.lateness();
    t.summary.elapsed_s = now.saturating_sub(e.started) as f64 / 1e9;
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
        };
        let s = &mut self.sessions[i];
        let r = f(s, &mut cx);
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
                let (l, r) = (self.sessions[i].local, self.sessions[i].remote);
                self.by_tuple.insert((l, r), i);
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
            if let Some(reason) = stop {
                for i in 0..self.sessions.len() {
                    self.with(i, now, |s, cx| s.stop(cx, reason, now));
                }
            }
            self.open_more(now);
            self.poll_connecting(now);
            self.fire_timers(now);
            self.single_error()?;
            if self.sessions.iter().all(Live::done) {
                break;
            }
            self.report_drops();
            self.report_status(now);
            self.sink.flush();
            let next = self.timers.peek().map_or(now + 50 * MS, |Reverse((t, _))| *t);
            let next = if self.connecting.is_empty() {
                next
            } else {
                next.min(now + MS)
            };
            self.pump(next)?;
        }
        let end = self.clock.now().saturating_add(TAIL);
        while self.clock.now() < end {
            match self.capture.rx.recv_timeout(Duration::from_millis(20)) {
                Ok(f) => self.frame(f),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(())
    }

    /// With one session, its failure to set up is the run's error.
    fn single_error(&mut self) -> Result<(), LiveError> {
        match self.sessions.as_mut_slice() {
            [s] if self.shared.single && s.done() => s.error.take().map_or(Ok(()), Err),
            _ => Ok(()),
        }
    }

    /// A timer is due: probes go before frames and new connections.
    fn timer_due(&self) -> bool {
        self.timers
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= self.clock.now())
    }

    /// Starts connecting queued sessions while fewer than `CONNECTING_MAX` are
    /// and no timer is due: a connect costs more than a probe, and probes
    /// must leave on time.
    fn open_more(&mut self, now: u64) {
        while self.connecting.len() < CONNECTING_MAX && self.next_queued < self.sessions.len() {
            if self.timer_due() {
                break;
            }
            let i = self.next_queued;
            self.next_queued += 1;
            if !matches!(self.sessions[i].phase, Phase::Queued { .. }) {
                continue;
            }
            if let Some(local) = self.with(i, now, |s, cx| s.start(cx, now)) {
                let remote = self.sessions[i].remote;
                self.by_tuple.insert((local, remote), i);
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
    fn fire_timers(&mut self, now: u64) {
        while let Some(&Reverse((at, i))) = self.timers.peek() {
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

    /// Handles captured frames until `until` (or a batch of them).
    fn pump(&mut self, until: u64) -> Result<(), LiveError> {
        let now = self.clock.now();
        let wait = Duration::from_nanos(until.saturating_sub(now).min(50 * MS));
        let first = match self.capture.rx.recv_timeout(wait) {
            Ok(f) => f,
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Disconnected) => {
                let why = self.capture.stop().unwrap_or_else(|| "capture ended".into());
                return Err(LiveError::new(format!("capture on {}", self.capture.device), why));
            }
        };
        self.frame(first);
        for _ in 1..FRAME_BATCH {
            if self.timer_due() {
                break;
            }
            match self.capture.rx.try_recv() {
                Ok(f) => self.frame(f),
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// One captured frame: recorded and handed to its session, if it has one.
    fn frame(&mut self, f: Frame) {
        let snapped = (f.data.len() as u32) < f.wire_len;
        let Ok(pkt) = decode(self.capture.link, &f.data, snapped) else {
            return;
        };
        let src = SocketAddr::new(pkt.src, pkt.tcp.src_port);
        let dst = SocketAddr::new(pkt.dst, pkt.tcp.dst_port);
        let Some(&i) = self
            .by_tuple
            .get(&(src, dst))
            .or_else(|| self.by_tuple.get(&(dst, src)))
        else {
            return;
        };
        if let Some(p) = self.pcap.as_mut() {
            p.write_snapped(f.time, &f.data, f.wire_len);
        }
        let t = self.clock.capture_time(f.time, f.received);
        let now = self.clock.now();
        self.with(i, now, |s, cx| s.frame(cx, &pkt, t, now));
    }

    /// A `capture_drops` event (session 0: the whole run) when libpcap's drop counters grew.
    fn report_drops(&mut self) {
        let d = self.capture.drops();
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
                Phase::Probing => st.probing += 1,
                Phase::Done => st.done += 1,
            }
        }
        self.sink.status(&st);
    }
}
