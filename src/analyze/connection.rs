//! One TCP connection: both directions' sequence state, each side's keepalive
//! bookkeeping, violations, and (optionally) a bounded timeline of events.

use super::classify::classify;
use super::event::{SegmentEvent, Violation, ViolationKind};
use super::kind::Kind;
use super::prober::Prober;
use crate::flow::{Direction, FlowKey, Side};
use crate::wire::Segment;

/// Violations and timeline events kept per flow; the rest are only counted.
pub const MAX_VIOLATIONS: usize = 32;
pub const MAX_TIMELINE: usize = 256;

/// Probes come after at least a second of idle (the smallest TCP_KEEPIDLE).
const MIN_IDLE_NS: u64 = 1_000_000_000;

#[derive(Clone, Debug)]
pub struct Connection {
    pub id: u64,
    pub key: FlowKey,
    /// The side that sent the first SYN without ACK, when seen.
    pub client: Option<Side>,
    pub dir: [Direction; 2],
    pub ka: [Prober; 2],
    pub first_frame: u64,
    pub first_time: u64,
    pub last_time: u64,
    pub retransmissions: u32,
    pub violations: Vec<Violation>,
    pub violations_total: u32,
    pub timeline: Vec<SegmentEvent>,
    pub timeline_dropped: u32,
    pub closed_at: Option<u64>,
    pub time_backwards: u32,
}

impl Connection {
    pub fn new(id: u64, key: FlowKey, frame: u64, time: u64) -> Self {
        Connection {
            id,
            key,
            client: None,
            dir: Default::default(),
            ka: Default::default(),
            first_frame: frame,
            first_time: time,
            last_time: time,
            retransmissions: 0,
            violations: Vec::new(),
            violations_total: 0,
            timeline: Vec::new(),
            timeline_dropped: 0,
            closed_at: None,
            time_backwards: 0,
        }
    }

    /// Both SYNs carried the window scale option, so the shift applies.
    fn wshift(&self, side: Side) -> u8 {
        match (self.dir[0].syn, self.dir[1].syn) {
            (Some(a), Some(b)) if a.wscale.is_some() && b.wscale.is_some() => {
                self.dir[side.idx()].syn.and_then(|s| s.wscale).unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Timestamps are in use: both SYNs offered them, or (handshake not
    /// captured) this side has sent them before.
    fn timestamps_negotiated(&self, side: Side) -> bool {
        match (self.dir[0].syn, self.dir[1].syn) {
            (Some(a), Some(b)) => a.timestamps && b.timestamps,
            _ => self.dir[side.idx()].ts.is_some(),
        }
    }

    /// A SYN without ACK that starts a new connection on this 4-tuple.
    pub fn is_new_connection(&self, side: Side, seg: &Segment) -> bool {
        seg.flags.syn()
            && !seg.flags.ack()
            && self.dir[side.idx()].syn.is_none_or(|s| s.isn != seg.seq)
    }

    /// Classifies `seg` and updates all state. `keep_timeline` stores notable events.
    pub fn segment(
        &mut self,
        frame: u64,
        time: u64,
        side: Side,
        seg: &Segment,
        keep_timeline: bool,
    ) -> SegmentEvent {
        let (s, o) = (side.idx(), side.other().idx());
        if time < self.last_time {
            self.time_backwards += 1;
        }
        self.last_time = self.last_time.max(time);
        if seg.flags.syn() && !seg.flags.ack() && self.client.is_none() {
            self.client = Some(side);
        }
        // Copies: the state before this segment, while `self` is updated.
        let (from, to) = (self.dir[s], self.dir[o]);
        let kind = classify(
            seg,
            &from,
            &to,
            self.ka[s].pending.as_ref(),
            self.ka[o].pending.as_ref(),
        );
        let mut ev = SegmentEvent {
            frame,
            time,
            flow_id: self.id,
            side,
            from: self.key.endpoint(side),
            to: self.key.endpoint(side.other()),
            kind,
            seq: seg.seq,
            ack: seg.ack,
            len: seg.payload_len,
            flags: seg.flags,
            window: (seg.window as u32)
                << if seg.flags.syn() {
                    0
                } else {
                    self.wshift(side)
                },
            rel_seq: from.relative(seg.seq),
            rel_ack: if seg.flags.ack() {
                to.relative(seg.ack)
            } else {
                None
            },
            answers: None,
            rtt: None,
            dsack: false,
            next_seq: from.seen.then_some(from.next_seq),
            peer_acked: to.acked,
            peer_acked_frame: to.acked.map(|_| to.acked_frame),
            peer_window: to.window,
            timestamp: seg.options.timestamp,
        };
        match kind {
            Kind::KeepaliveProbe | Kind::ZeroWindowProbe => {
                let zero_window = kind == Kind::ZeroWindowProbe;
                if !zero_window {
                    self.check_probe(frame, time, side, seg);
                }
                let last_received = to.seen.then_some(to.last_time);
                let p = self.ka[s].probe(frame, time, seg, zero_window, last_received);
                if p.rate_limited {
                    self.violate(ViolationKind::WithinRateLimit, frame, time, side);
                }
            }
            Kind::KeepaliveAck | Kind::ZeroWindowAck => {
                if let Some(p) = self.ka[o].answer(time) {
                    ev.answers = Some(p.frame);
                    ev.rtt = Some(time.saturating_sub(p.time));
                    ev.dsack = seg
                        .options
                        .sack_blocks()
                        .first()
                        .is_some_and(|b| b.0 == p.seq && !b.1.after(seg.ack));
                }
            }
            Kind::KeepaliveRst => {
                if let Some(p) = self.ka[o].reset() {
                    ev.answers = Some(p.frame);
                    ev.rtt = Some(time.saturating_sub(p.time));
                }
            }
            Kind::KeepaliveAbort => self.ka[s].abort(),
            Kind::Retransmission => self.retransmissions += 1,
            Kind::Handshake | Kind::Data | Kind::Ack | Kind::Fin | Kind::Rst => {
                if kind == Kind::Data
                    && seg.payload_len >= 2
                    && to.acked == Some(seg.seq.plus(1))
                    && to.seen
                    && time.saturating_sub(to.last_time) >= MIN_IDLE_NS
                {
                    self.violate(ViolationKind::PayloadTooLong, frame, time, side);
                }
                // The side is alive: the other side's keepalive starts over.
                self.ka[o].peer_spoke();
            }
        }
        let wshift = self.wshift(side);
        self.dir[s].update(seg, frame, time, wshift);
        if seg.flags.rst() || (self.dir[0].fin && self.dir[1].fin) {
            self.closed_at.get_or_insert(time);
        }
        if keep_timeline && kind.is_notable() {
            if self.timeline.len() < MAX_TIMELINE {
                self.timeline.push(ev);
            } else {
                self.timeline_dropped += 1;
            }
        }
        ev
    }

    /// Format checks on a keepalive probe, against state before it.
    fn check_probe(&mut self, frame: u64, time: u64, side: Side, seg: &Segment) {
        let (from, to) = (&self.dir[side.idx()], &self.dir[side.other().idx()]);
        let in_flight = from.seen && to.acked.is_some_and(|a| from.next_seq.after(a));
        let stale = match (seg.options.timestamp, from.ts) {
            (Some((now, _)), Some((before, _))) => (now.wrapping_sub(before) as i32) < 0,
            _ => false,
        };
        let missing_ts = seg.options.timestamp.is_none() && self.timestamps_negotiated(side);
        for (hit, kind) in [
            (in_flight, ViolationKind::ProbeWithUnackedData),
            (stale, ViolationKind::StaleTsval),
            (missing_ts, ViolationKind::MissingTimestamp),
        ] {
            if hit {
                self.violate(kind, frame, time, side);
            }
        }
    }

    fn violate(&mut self, kind: ViolationKind, frame: u64, time: u64, side: Side) {
        self.violations_total += 1;
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(Violation {
                kind,
                frame,
                time,
                side,
            });
        }
    }

    /// End of capture or eviction: probes still pending were never answered.
    pub fn finish(&mut self) {
        self.ka.iter_mut().for_each(Prober::finish);
    }

    /// Any keepalive or zero-window activity, or a look-alike worth reporting.
    pub fn is_notable(&self) -> bool {
        self.ka.iter().any(|k| k.probes > 0 || k.zw_probes > 0)
            || self.retransmissions > 0
            || self.violations_total > 0
    }
}
