//! One TCP connection: both directions' sequence state (hot: touched by every
//! segment) and, allocated on the first keepalive-related segment, each side's
//! keepalive bookkeeping, violations and a bounded timeline (cold). Flows that
//! never probe stay small, and the per-packet path touches few cache lines.

use super::classify::{answered_ahead, classify, may_open_with_probe};
use super::event::{SegmentEvent, ViolationKind};
use super::kind::Kind;
use super::prober::{Pending, Prober, Violations};
use super::step::Step;
use super::timeline::Timeline;
use crate::flow::{Direction, FlowKey, Keyed, Side};
use crate::session::{negotiated, RttSampler};
use crate::wire::Segment;
use std::sync::LazyLock;

/// Probes come after at least a second of idle (the smallest TCP_KEEPIDLE).
const MIN_IDLE_NS: u64 = 1_000_000_000;

/// What a flow's keepalive did: kept only for flows with keepalive activity.
#[derive(Clone, Debug, Default)]
pub struct Keepalive {
    pub ka: [Prober; 2],
    pub retransmissions: u32,
    pub violations: Violations,
    pub timeline: Timeline<Step>,
    /// A RST answered a probe: its TTL and the TTL of the peer's earlier segments.
    pub reset_ttl: Option<(u8, u8)>,
}

static QUIET: LazyLock<Keepalive> = LazyLock::new(Keepalive::default);

/// Laid out (C order, 64-byte aligned) so that a segment touches the first
/// four cache lines only: the key with the cold pointer and `last_time`, both
/// directions with `closed_at`, the pending probes. What the report alone
/// reads comes next, and last the round-trip samplers, which only a flow's
/// first segments touch.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub struct Connection {
    pub key: FlowKey,
    cold: Option<Box<Keepalive>>,
    pub last_time: u64,
    pub dir: [Direction; 2],
    pub closed_at: Option<u64>,
    /// Each side's probe waiting for an answer.
    pub pending: [Option<Pending>; 2],
    pub id: u64,
    pub first_frame: u64,
    pub first_time: u64,
    pub time_backwards: u32,
    /// The side that sent the first SYN without ACK, when seen.
    pub client: Option<Side>,
    /// Each side's round trip (its handshake segment and first data), to
    /// pair answers later than the interval with their probes.
    rtt: [RttSampler; 2],
}

// The layout above, checked when compiling: seven lines, of which a segment
// touches the first four.
const _: () = assert!(std::mem::size_of::<Option<Connection>>() == 7 * 64 && Connection::HOT <= 4 * 64);

impl Keyed for Connection {
    /// What `segment` touches (see the layout above).
    const HOT: usize = std::mem::offset_of!(Connection, id);

    fn key(&self) -> &FlowKey {
        &self.key
    }
}

/// Which segments the caller wants full events for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Events {
    None,
    /// Keepalive-related kinds and look-alikes.
    Notable,
    All,
}

/// What `segment` found: the kind always, the full event when asked for.
pub struct Classified {
    pub kind: Kind,
    pub event: Option<SegmentEvent>,
}

impl Connection {
    pub fn new(id: u64, key: FlowKey, frame: u64, time: u64) -> Self {
        Connection {
            id,
            key,
            client: None,
            dir: Default::default(),
            pending: [None; 2],
            first_frame: frame,
            first_time: time,
            last_time: time,
            closed_at: None,
            time_backwards: 0,
            cold: None,
            rtt: Default::default(),
        }
    }

    /// The keepalive record (empty for a flow that never probed).
    pub fn keepalive(&self) -> &Keepalive {
        self.cold.as_deref().unwrap_or(&QUIET)
    }

    /// Starts loading the parts of the cold keepalive record that `seg`
    /// (sent by `side`) will most likely touch, judged from the state now:
    /// the other side's prober if it awaits an answer, this side's if `seg`
    /// has the shape of a probe, or of an abort. Ordinary segments load nothing.
    #[inline]
    pub fn prefetch_cold(&self, side: Side, seg: &Segment) {
        let Some(k) = self.cold.as_deref() else {
            return;
        };
        let (s, o) = (side.idx(), side.other().idx());
        if self.pending[o].is_some() {
            k.ka[o].prefetch_answer();
        }
        let f = seg.flags;
        let probe_shaped = seg.payload_len <= 1
            && !(f.syn() || f.fin() || f.rst())
            && self.dir[o].acked().is_none_or(|a| a == seg.seq.plus(1));
        if probe_shaped || (f.rst() && self.pending[s].is_some()) {
            k.ka[s].prefetch_probe(self.pending[s].as_ref());
        }
    }

    fn cold(&mut self) -> &mut Keepalive {
        self.cold.get_or_insert_with(Default::default)
    }

    /// The window shift of `side`'s non-SYN segments.
    fn wshift(&self, side: Side) -> u8 {
        let (s, o) = (&self.dir[side.idx()], &self.dir[side.other().idx()]);
        negotiated::window_shift(s.syn_wscale(), o.syn_wscale())
    }

    pub fn timestamps_negotiated(&self) -> bool {
        let d = &self.dir;
        negotiated::timestamps(
            [d[0].syn_timestamps(), d[1].syn_timestamps()],
            [d[0].tsval().is_some(), d[1].tsval().is_some()],
        )
    }

    fn sack_negotiated(&self) -> bool {
        let d = &self.dir;
        negotiated::sack([d[0].syn_sack(), d[1].syn_sack()], [d[0].sack_seen(), d[1].sack_seen()])
    }

    fn sample_rtt(&mut self, side: Side, seg: &Segment, time: u64) {
        let (s, o) = (side.idx(), side.other().idx());
        self.rtt[s].sent(seg, time);
        self.rtt[o].acked(seg, time);
        self.dir[s].set_timed(self.rtt[s].busy());
        self.dir[o].set_timed(self.rtt[o].busy());
    }

    /// Whether `seg` might open the capture's view of this flow with a probe,
    /// which only the flow's next segment can tell (`look_ahead`).
    #[inline]
    pub fn wants_look_ahead(&self, side: Side, seg: &Segment) -> bool {
        may_open_with_probe(seg, &self.dir[side.other().idx()])
    }

    /// `wants_look_ahead` for a flow not seen yet, whose first segment is `seg`.
    pub fn first_wants_look_ahead(seg: &Segment) -> bool {
        may_open_with_probe(seg, &Default::default())
    }

    /// `classify::answered_ahead` with the flow's next segment in the capture
    /// (frame `next_frame`, sent by `next_side`): when it answers `seg`, the
    /// receiver's state is taken from it, and the sender's SND.NXT is one
    /// past `seg`, before `seg` is classified.
    pub fn look_ahead(&mut self, side: Side, seg: &Segment, next: &Segment, next_frame: u64, next_side: Side) {
        let (s, o) = (side.idx(), side.other().idx());
        if answered_ahead(seg, &self.dir[o], next, next_side != side) {
            self.dir[o].acked_ahead(next, next_frame);
            self.dir[s].sent_ahead(seg.seq.plus(1));
        }
    }

    /// A SYN without ACK that starts a new connection on this 4-tuple.
    pub fn is_new_connection(&self, side: Side, seg: &Segment) -> bool {
        seg.flags.syn() && !seg.flags.ack() && self.dir[side.idx()].isn().is_none_or(|isn| isn != seg.seq)
    }

    /// Classifies `seg` and updates all state. The full event is built only
    /// when `want` asks for this kind, or to keep a notable one in the timeline.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        frame: u64,
        time: u64,
        side: Side,
        seg: &Segment,
        ttl: u8,
        want: Events,
        keep_timeline: bool,
    ) -> Classified {
        let (s, o) = (side.idx(), side.other().idx());
        if time < self.last_time {
            self.time_backwards += 1;
        }
        self.last_time = self.last_time.max(time);
        if seg.flags.syn() && !seg.flags.ack() && self.client.is_none() {
            self.client = Some(side);
        }
        // Only segments a round-trip sampler needs: the samplers live outside
        // the lines every segment touches.
        let first_data = seg.payload_len > 0 && !self.dir[s].data_seen();
        if seg.flags.syn() || first_data || self.dir[s].timed() || self.dir[o].timed() {
            self.sample_rtt(side, seg, time);
        }
        let kind = classify(
            seg,
            time,
            &self.dir[s],
            &self.dir[o],
            self.pending[s].as_ref(),
            self.pending[o].as_ref(),
        );
        // What the event reports of the sender's state before this segment
        // (only its own direction changes below).
        let from = &self.dir[s];
        let (from_seen, from_next, from_ttl, rel_seq) =
            (from.seen(), from.next_seq, from.ttl(), from.relative(seg.seq));
        // (probe answered, its rtt, D-SACK) for answers.
        let mut answer: Option<(u64, u64, bool)> = None;
        match kind {
            Kind::KeepaliveProbe | Kind::ZeroWindowProbe => {
                let zero_window = kind == Kind::ZeroWindowProbe;
                if !zero_window {
                    self.check_probe(frame, time, side, seg);
                }
                let to = &self.dir[o];
                let (last_received, peer_next) = (to.last_live_time(), to.seen().then_some(to.next_seq));
                let hint = self.rtt[s].sample;
                let cold = self.cold.get_or_insert_with(Default::default);
                let pending = &mut self.pending[s];
                let v = &mut cold.violations;
                cold.ka[s].probe(
                    pending,
                    v,
                    side,
                    frame,
                    time,
                    seg,
                    zero_window,
                    last_received,
                    peer_next,
                    hint,
                );
            }
            Kind::KeepaliveAck | Kind::ZeroWindowAck => {
                let (sack, hint) = (self.sack_negotiated(), self.rtt[o].sample);
                let cold = self.cold.get_or_insert_with(Default::default);
                let (pending, v) = (&mut self.pending[o], &mut cold.violations);
                if let Some((p, dsack)) = cold.ka[o].answer(pending, v, side.other(), time, seg, sack, hint) {
                    answer = Some((p.frame, time.saturating_sub(p.time), dsack));
                }
            }
            Kind::KeepaliveRst => {
                let cold = self.cold.get_or_insert_with(Default::default);
                cold.reset_ttl = from_ttl.map(|usual| (ttl, usual));
                let (pending, v) = (&mut self.pending[o], &mut cold.violations);
                if let Some(p) = cold.ka[o].reset(pending, v, side.other(), time, self.rtt[o].sample) {
                    answer = Some((p.frame, time.saturating_sub(p.time), false));
                }
            }
            Kind::KeepaliveAbort => {
                let cold = self.cold.get_or_insert_with(Default::default);
                cold.ka[s].abort(&mut self.pending[s], &mut cold.violations, side);
            }
            Kind::Retransmission => self.cold().retransmissions += 1,
            Kind::Handshake | Kind::Data | Kind::Ack | Kind::Fin | Kind::Rst => {
                let to = &self.dir[o];
                if kind == Kind::Data
                    && seg.payload_len >= 2
                    && to.acked() == Some(seg.seq.plus(1))
                    && to
                        .last_live_time()
                        .is_some_and(|t| time.saturating_sub(t) >= MIN_IDLE_NS)
                {
                    self.violate(ViolationKind::PayloadTooLong, frame, time, side);
                }
                // The side is alive: the other side's keepalive starts over. With
                // no probe pending its run is already 0: the cold part is not touched.
                if self.pending[o].is_some() {
                    if let Some(cold) = self.cold.as_deref_mut() {
                        cold.ka[o].peer_spoke(&mut self.pending[o], time, self.rtt[o].sample);
                    }
                }
            }
        }
        let wshift = self.wshift(side);
        let live = !matches!(kind, Kind::KeepaliveProbe | Kind::ZeroWindowProbe);
        self.dir[s].update(seg, frame, wshift, ttl, live.then_some(time));
        if seg.flags.rst() || (self.dir[0].fin() && self.dir[1].fin()) {
            self.closed_at.get_or_insert(time);
        }
        let timeline = keep_timeline && kind.is_notable();
        let wanted = match want {
            Events::None => false,
            Events::Notable => kind.is_notable(),
            Events::All => true,
        };
        if !(wanted || timeline) {
            return Classified { kind, event: None };
        }
        let to = &self.dir[o];
        let ev = SegmentEvent {
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
            window: (seg.window as u32) << if seg.flags.syn() { 0 } else { wshift.min(14) },
            rel_seq,
            rel_ack: if seg.flags.ack() { to.relative(seg.ack) } else { None },
            answers: answer.map(|a| a.0),
            rtt: answer.map(|a| a.1),
            dsack: answer.is_some_and(|a| a.2),
            next_seq: from_seen.then_some(from_next),
            peer_acked: to.acked(),
            peer_acked_frame: to.acked().map(|_| to.acked_frame),
            peer_window: to.window(),
            timestamp: seg.options.timestamp,
            options_cut: seg.options.cut,
            byte: seg.first_byte,
            peer_next: to.seen().then_some(to.next_seq),
            last_received: to.last_live_time(),
            ttl,
            usual_ttl: from_ttl,
        };
        if timeline {
            let cold = self.cold();
            cold.timeline.push(Step::of(&ev));
        }
        Classified { kind, event: Some(ev) }
    }

    /// Format checks on a keepalive probe, against state before it.
    fn check_probe(&mut self, frame: u64, time: u64, side: Side, seg: &Segment) {
        let (from, to) = (&self.dir[side.idx()], &self.dir[side.other().idx()]);
        let in_flight = from.seen() && to.acked().is_some_and(|a| from.next_seq.after(a));
        let stale = match (seg.options.timestamp, from.tsval()) {
            (Some((now, _)), Some(before)) => (now.wrapping_sub(before) as i32) < 0,
            _ => false,
        };
        // Options the capture cut off are unknown, not missing.
        let missing_ts = seg.options.timestamp.is_none() && !seg.options.cut && self.timestamps_negotiated();
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
        self.cold().violations.push(kind, frame, time, side);
    }

    /// End of capture or eviction, with the capture at `now`: probes still
    /// pending were never answered.
    pub fn finish(&mut self, now: u64) {
        if let Some(cold) = self.cold.as_deref_mut() {
            for side in [Side::Lo, Side::Hi] {
                let i = side.idx();
                cold.ka[i].finish(&mut self.pending[i], &mut cold.violations, side, self.last_time, now);
            }
        }
    }

    /// Any keepalive probe, from either side.
    pub fn has_keepalive(&self) -> bool {
        self.keepalive().ka.iter().any(|k| k.probes > 0)
    }

    /// Any keepalive or zero-window activity, or a look-alike worth reporting.
    pub fn is_notable(&self) -> bool {
        let k = self.keepalive();
        k.ka.iter().any(|k| k.probes > 0 || k.zw_probes > 0) || k.retransmissions > 0 || k.violations.total > 0
    }
}
