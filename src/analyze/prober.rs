//! Keepalive bookkeeping for one direction of a flow: the probes it sent,
//! which were answered, and the idle/interval/count they reveal. The latest
//! probe awaiting an answer lives with the connection's hot state and is
//! passed in; earlier ones still in flight (a round trip longer than the
//! interval) are kept here, so a late answer is paired with its own probe.

use super::event::{Violation, ViolationKind};
use super::samples::Samples;
use crate::flow::Side;
use crate::session::{self, rate_limit, Candidate};
use crate::wire::{Segment, Seq};

/// Probes kept in flight besides the latest; an older one is given up on.
const EARLIER: usize = 3;

/// A probe waiting for its answer.
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    pub frame: u64,
    pub time: u64,
    pub seq: Seq,
    /// The probe's ACK field: a RST from a peer that lost the socket carries it as its seq.
    pub ack: Seq,
    /// TSval, when `has_ts`.
    pub tsval: u32,
    pub has_ts: bool,
    pub zero_window: bool,
    /// 0 bytes of payload.
    pub empty: bool,
    /// Goes through the peer's answer rate limit (`session::rate_limit`).
    pub limited: bool,
}

impl Pending {
    fn candidate(&self) -> Candidate {
        Candidate {
            time: self.time,
            tsval: self.has_ts.then_some(self.tsval),
        }
    }
}

/// How the last probe of this direction ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Last {
    #[default]
    None,
    Answered,
    Unanswered,
    Reset,
    Aborted,
    /// Unanswered probes, then nothing more from the prober while the capture
    /// went on well past its next probe: it gave up without a RST (gVisor, PyTCP).
    Silent,
}

/// The flow's violation list, bounded; the rest are only counted.
#[derive(Clone, Debug, Default)]
pub struct Violations {
    pub list: Vec<Violation>,
    pub total: u32,
}

/// Violations kept per flow.
pub const MAX_VIOLATIONS: usize = 32;

impl Violations {
    pub fn push(&mut self, kind: ViolationKind, frame: u64, time: u64, side: Side) {
        self.total += 1;
        if self.list.len() < MAX_VIOLATIONS {
            self.list.push(Violation {
                kind,
                frame,
                time,
                side,
            });
        }
    }
}

/// Counters first (C layout), so a probe or an answer touches the first
/// lines and one `Samples`: see `prefetch_probe` and `prefetch_answer`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Prober {
    pub probes: u32,
    pub one_byte: u32,
    pub answered: u32,
    pub unanswered: u32,
    /// Unanswered probes sent inside the peer's answer rate limit.
    pub unanswered_rate_limited: u32,
    pub resets: u32,
    pub zw_probes: u32,
    pub zw_answered: u32,
    /// Unanswered probes in the current run (not counting those in flight).
    pub run: u32,
    /// Longest run of unanswered probes: a lower bound on the count setting.
    pub longest_run: u32,
    /// Unanswered probes before the prober gave up with a RST.
    pub count: Option<u32>,
    /// When the latest probe left whose answer stamped the peer's rate limiter.
    pub limiter_stamped: Option<u64>,
    /// The latest answer's round trip.
    pub last_rtt: Option<u64>,
    pub last: Last,
    pub first_probe_frame: Option<u64>,
    /// Probes before the pending one still waiting for an answer, oldest first.
    earlier: [Option<Pending>; EARLIER],
    pub idle: Samples,
    pub interval: Samples,
    pub rtt: Samples,
}

impl Prober {
    /// Starts loading what `probe` touches, given the probe pending before it.
    #[inline]
    pub fn prefetch_probe(&self, pending: Option<&Pending>) {
        crate::flow::prefetch::lines(self, std::mem::offset_of!(Prober, idle));
        match pending.filter(|p| !p.zero_window) {
            Some(_) => self.interval.prefetch(),
            None => self.idle.prefetch(),
        }
    }

    /// Starts loading what `answer` (or `reset`, `peer_spoke`) touches.
    #[inline]
    pub fn prefetch_answer(&self) {
        crate::flow::prefetch::lines(self, std::mem::offset_of!(Prober, idle));
        self.rtt.prefetch();
    }

    /// A keepalive or zero-window probe left `side`. `last_received` is when
    /// this side last received a segment, which Linux's idle clock counts
    /// from; `peer_next` the peer's SND.NXT (a probe acking less is old);
    /// `rtt_hint` the round trip the handshake showed.
    #[allow(clippy::too_many_arguments)]
    pub fn probe(
        &mut self,
        pending: &mut Option<Pending>,
        v: &mut Violations,
        side: Side,
        frame: u64,
        time: u64,
        seg: &Segment,
        zero_window: bool,
        last_received: Option<u64>,
        peer_next: Option<Seq>,
        rtt_hint: Option<u64>,
    ) {
        let len = seg.payload_len;
        let ack_behind = peer_next.is_some_and(|n| seg.ack.before(n));
        if zero_window {
            self.zw_probes += 1;
        } else {
            self.probes += 1;
            self.one_byte += (len == 1) as u32;
            self.first_probe_frame.get_or_insert(frame);
            let prev = pending.filter(|p| !p.zero_window);
            // Linux's timer: after an answer (anything received since the
            // previous probe) the next probe comes an idle later; else an interval.
            match (prev, last_received) {
                (Some(prev), r) if r.is_none_or(|r| r <= prev.time) => {
                    self.interval.push(time.saturating_sub(prev.time));
                }
                (_, Some(r)) => self.idle.push(time.saturating_sub(r)),
                _ => {}
            }
            if let Some(prev) = prev {
                // Probes the peer had time to answer are given up on now.
                let rtt = self.last_rtt.or(rtt_hint);
                for k in 0..EARLIER {
                    if let Some(p) = self.earlier[k].filter(|p| session::overdue(p.time, time, rtt)) {
                        self.note_unanswered(&p, v, side);
                        self.earlier[k] = None;
                    }
                }
                self.earlier.sort_by_key(|p| p.map_or(u64::MAX, |p| p.time));
                if session::overdue(prev.time, time, rtt) {
                    self.note_unanswered(&prev, v, side);
                } else {
                    self.keep_in_flight(prev, v, side);
                }
            }
        }
        let (tsval, has_ts) = seg.options.timestamp.map_or((0, false), |t| (t.0, true));
        *pending = Some(Pending {
            frame,
            time,
            seq: seg.seq,
            ack: seg.ack,
            tsval,
            has_ts,
            zero_window,
            empty: len == 0,
            limited: rate_limit::probe_is_limited(len, ack_behind),
        });
    }

    /// `prev` was superseded by a new probe before its answer came: kept in
    /// flight, the oldest given up on when there are too many.
    fn keep_in_flight(&mut self, prev: Pending, v: &mut Violations, side: Side) {
        if self.earlier[EARLIER - 1].is_some() {
            if let Some(oldest) = self.earlier[0] {
                self.note_unanswered(&oldest, v, side);
            }
            self.earlier.rotate_left(1);
            self.earlier[EARLIER - 1] = None;
        }
        if let Some(slot) = self.earlier.iter_mut().find(|s| s.is_none()) {
            *slot = Some(prev);
        }
    }

    fn note_unanswered(&mut self, p: &Pending, v: &mut Violations, side: Side) {
        self.unanswered += 1;
        self.run += 1;
        self.longest_run = self.longest_run.max(self.run);
        if p.limited && rate_limit::within(self.limiter_stamped, p.time) {
            self.unanswered_rate_limited += 1;
            v.push(ViolationKind::WithinRateLimit, p.frame, p.time, side);
        }
        self.last = Last::Unanswered;
    }

    /// Which probe in flight an answer (or RST) at `time` is for: removed and
    /// returned, the ones before it given up on as unanswered.
    fn take_answered(
        &mut self,
        pending: &mut Option<Pending>,
        v: &mut Violations,
        side: Side,
        time: u64,
        tsecr: Option<u32>,
        rtt_hint: Option<u64>,
    ) -> Option<Pending> {
        let latest = (*pending)?;
        let n = self.earlier.iter().take_while(|p| p.is_some()).count();
        let mut cands = [latest.candidate(); EARLIER + 1];
        for (c, p) in cands.iter_mut().zip(self.earlier.iter().flatten()) {
            *c = p.candidate();
        }
        cands[n] = latest.candidate();
        let i = session::pick(&cands[..=n], time, tsecr, self.last_rtt.or(rtt_hint)).unwrap_or(n);
        for k in 0..i.min(n) {
            if let Some(p) = self.earlier[k] {
                self.note_unanswered(&p, v, side);
            }
        }
        let chosen = if i == n {
            pending.take();
            self.earlier = [None; EARLIER];
            latest
        } else {
            let p = self.earlier[i]?;
            self.earlier.rotate_left(i + 1);
            for s in &mut self.earlier[n - i - 1..] {
                *s = None;
            }
            p
        };
        Some(chosen)
    }

    /// The peer acknowledged a probe in flight: returns it and whether the
    /// answer carried a D-SACK for its byte. `sack`: SACK is in use;
    /// `rtt_hint`: the round trip the handshake showed.
    #[allow(clippy::too_many_arguments)]
    pub fn answer(
        &mut self,
        pending: &mut Option<Pending>,
        v: &mut Violations,
        side: Side,
        time: u64,
        seg: &Segment,
        sack: bool,
        rtt_hint: Option<u64>,
    ) -> Option<(Pending, bool)> {
        let tsecr = seg.options.timestamp.map(|t| t.1);
        let p = self.take_answered(pending, v, side, time, tsecr, rtt_hint)?;
        let dsack = session::dsack(seg, p.seq);
        if p.zero_window {
            self.zw_answered += 1;
        } else {
            let rtt = time.saturating_sub(p.time);
            self.answered += 1;
            self.rtt.push(rtt);
            self.last_rtt = Some(rtt);
            self.last = Last::Answered;
            if rate_limit::answer_stamps_limiter(!p.empty as u32, p.limited && !p.empty, dsack, sack) {
                self.limiter_stamped = Some(self.limiter_stamped.map_or(p.time, |t| t.max(p.time)));
            }
        }
        self.run = 0;
        Some((p, dsack))
    }

    /// The peer answered a probe in flight with a RST.
    pub fn reset(
        &mut self,
        pending: &mut Option<Pending>,
        v: &mut Violations,
        side: Side,
        time: u64,
        rtt_hint: Option<u64>,
    ) -> Option<Pending> {
        let p = self.take_answered(pending, v, side, time, None, rtt_hint)?;
        self.resets += 1;
        self.last = Last::Reset;
        self.run = 0;
        Some(p)
    }

    /// Every probe in flight, as unanswered.
    fn give_up(&mut self, pending: &mut Option<Pending>, v: &mut Violations, side: Side) {
        for p in std::mem::take(&mut self.earlier).into_iter().flatten() {
            self.note_unanswered(&p, v, side);
        }
        if let Some(p) = pending.take().filter(|p| !p.zero_window) {
            self.note_unanswered(&p, v, side);
        }
    }

    /// This side gave up: its RST after unanswered probes.
    pub fn abort(&mut self, pending: &mut Option<Pending>, v: &mut Violations, side: Side) {
        if pending.is_some() {
            self.give_up(pending, v, side);
            self.count = Some(self.run);
        }
        self.last = Last::Aborted;
        self.run = 0;
    }

    /// The peer sent something other than an answer at `time`: it is alive,
    /// and the kernel's keepalive timer starts over. The probes it had time to
    /// answer are settled by it (neither answered nor unanswered); those sent
    /// less than two round trips ago stay in flight: their answers are on the way.
    pub fn peer_spoke(&mut self, pending: &mut Option<Pending>, time: u64, rtt_hint: Option<u64>) {
        let rtt = self.last_rtt.or(rtt_hint);
        let settled = |p: &Option<Pending>| p.is_some_and(|p| session::overdue(p.time, time, rtt));
        for p in self.earlier.iter_mut().filter(|p| settled(p)) {
            *p = None;
        }
        self.earlier.sort_by_key(|p| p.map_or(u64::MAX, |p| p.time));
        if settled(pending) && pending.take().is_some_and(|p| !p.zero_window) {
            self.last = Last::Answered;
        }
        self.run = 0;
    }

    /// End of the flow at `now` (the capture's latest time): probes still in
    /// flight were never answered. `flow_last` is the flow's last frame time.
    pub fn finish(&mut self, pending: &mut Option<Pending>, v: &mut Violations, side: Side, flow_last: u64, now: u64) {
        let silent =
            pending.is_some_and(|p| !p.zero_window && p.time == flow_last && self.gave_up_silently(p.time, now));
        self.give_up(pending, v, side);
        if silent {
            self.count = Some(self.run);
            self.last = Last::Silent;
        }
    }

    /// The latest probe, at `probe_time`, was the flow's last frame, it came
    /// after at least one other unanswered probe of the same run (so it is a
    /// retry, spaced by the interval, not a first probe after an idle), and
    /// the capture went on past two of this prober's intervals: it did not
    /// send its next probe nor a RST, so it gave up. With no interval known,
    /// or a lone unanswered probe, the capture's end says nothing.
    fn gave_up_silently(&self, probe_time: u64, now: u64) -> bool {
        let before = self.run as usize + self.earlier.iter().flatten().filter(|p| !p.zero_window).count();
        before >= 1
            && self
                .interval
                .median()
                .is_some_and(|i| now.saturating_sub(probe_time) > 2 * i)
    }
}
