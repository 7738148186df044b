//! Keepalive bookkeeping for one direction of a flow: the probes it sent,
//! which were answered, and the idle/interval/count they reveal. The probe
//! awaiting an answer lives with the connection's hot state and is passed in.

use super::samples::Samples;
use crate::wire::tcp::PEER_ANSWER_RATE_LIMIT_NS;
use crate::wire::{Segment, Seq};

/// The probe waiting for its answer.
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    pub frame: u64,
    pub time: u64,
    pub seq: Seq,
    /// The probe's ACK field: a RST from a peer that lost the socket carries it as its seq.
    pub ack: Seq,
    pub zero_window: bool,
    /// Sent within the peer's answer rate limit of the previous probe.
    pub rate_limited: bool,
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
    /// Unanswered probes that had been sent inside the peer's rate limit.
    pub unanswered_rate_limited: u32,
    pub resets: u32,
    pub zw_probes: u32,
    pub zw_answered: u32,
    /// Unanswered probes in the current run (not counting `pending`).
    pub run: u32,
    /// Longest run of unanswered probes: a lower bound on the count setting.
    pub longest_run: u32,
    /// Unanswered probes before the prober gave up with a RST.
    pub count: Option<u32>,
    /// When the last 0-byte probe left: only those share the peer's answer rate limit.
    pub last_zero_byte_probe: Option<u64>,
    pub last: Last,
    pub first_probe_frame: Option<u64>,
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

    /// A keepalive or zero-window probe left this side. `last_received` is
    /// when this side last received a segment, which Linux's idle clock counts from.
    pub fn probe(
        &mut self,
        pending: &mut Option<Pending>,
        frame: u64,
        time: u64,
        seg: &Segment,
        zero_window: bool,
        last_received: Option<u64>,
    ) -> Pending {
        let (seq, ack, len) = (seg.seq, seg.ack, seg.payload_len);
        let rate_limited = !zero_window
            && len == 0
            && self
                .last_zero_byte_probe
                .is_some_and(|t| time.saturating_sub(t) < PEER_ANSWER_RATE_LIMIT_NS);
        if zero_window {
            self.zw_probes += 1;
        } else {
            self.probes += 1;
            self.one_byte += (len == 1) as u32;
            self.first_probe_frame.get_or_insert(frame);
            match pending.filter(|p| !p.zero_window) {
                Some(prev) => {
                    self.note_unanswered(&prev);
                    self.interval.push(time.saturating_sub(prev.time));
                }
                None => {
                    self.run = 0;
                    if let Some(t) = last_received {
                        self.idle.push(time.saturating_sub(t));
                    }
                }
            }
            if len == 0 {
                self.last_zero_byte_probe = Some(time);
            }
        }
        let p = Pending {
            frame,
            time,
            seq,
            ack,
            zero_window,
            rate_limited,
        };
        *pending = Some(p);
        p
    }

    fn note_unanswered(&mut self, p: &Pending) {
        self.unanswered += 1;
        self.run += 1;
        self.longest_run = self.longest_run.max(self.run);
        self.unanswered_rate_limited += p.rate_limited as u32;
        self.last = Last::Unanswered;
    }

    /// The peer acknowledged the pending probe: returns it, for the RTT.
    pub fn answer(&mut self, pending: &mut Option<Pending>, time: u64) -> Option<Pending> {
        let p = pending.take()?;
        if p.zero_window {
            self.zw_answered += 1;
        } else {
            self.answered += 1;
            self.rtt.push(time.saturating_sub(p.time));
            self.last = Last::Answered;
        }
        self.run = 0;
        Some(p)
    }

    /// The peer answered the pending probe with a RST.
    pub fn reset(&mut self, pending: &mut Option<Pending>) -> Option<Pending> {
        let p = pending.take()?;
        self.resets += 1;
        self.last = Last::Reset;
        self.run = 0;
        Some(p)
    }

    /// This side gave up: its RST after unanswered probes.
    pub fn abort(&mut self, pending: &mut Option<Pending>) {
        if let Some(p) = pending.take() {
            self.note_unanswered(&p);
            self.count = Some(self.run);
        }
        self.last = Last::Aborted;
        self.run = 0;
    }

    /// The peer sent something other than an answer: it is alive, and the
    /// kernel's keepalive timer starts over.
    pub fn peer_spoke(&mut self, pending: &mut Option<Pending>) {
        if pending.take().is_some_and(|p| !p.zero_window) {
            self.last = Last::Answered;
        }
        self.run = 0;
    }

    /// End of the flow: a probe still pending was never answered.
    pub fn finish(&mut self, pending: &mut Option<Pending>) {
        if let Some(p) = pending.take().filter(|p| !p.zero_window) {
            self.note_unanswered(&p);
        }
    }
}
