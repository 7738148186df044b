//! The capture analyzer: decoded packets in, classified segments and per-flow
//! reports out. Pure: time comes with each packet, output goes to a `Sink`.

mod classify;
mod connection;
mod event;
pub mod expect;
pub mod filter;
mod kind;
mod order;
pub mod parallel;
mod prober;
mod report;
mod samples;
mod step;
mod timeline;

pub use classify::classify;
pub use connection::{Connection, Events, Keepalive};
pub use event::{SegmentEvent, Violation, ViolationKind};
pub use expect::{Expectations, Expected, Failure, Stage};
pub use filter::FlowFilter;
pub use kind::Kind;
pub use order::{Order, Phase};
pub use parallel::Parallel;
pub use report::{roles, secs, Estimate, FlowReport, Outcome, ProberReport};
pub use step::Step;
pub use timeline::Timeline;

use crate::decode::{decode_into, LinkType, Packet, Skip};
use crate::flow::{FlowKey, FlowTable, Side};
use std::collections::VecDeque;

/// Receives the analyzer's output as it is produced.
pub trait Sink {
    fn segment(&mut self, ev: &SegmentEvent);
    /// A flow is done (closed and quiet, idle too long, or end of input).
    fn flow(&mut self, conn: Connection);
    /// Where in the input the calls that follow belong; for merging the
    /// output of analyzers that each hold a part of the flows.
    #[inline]
    fn at(&mut self, _at: Order) {}
    /// A flow was created (at the last `at`), under the analyzer's own id.
    #[inline]
    fn started(&mut self, _id: u64) {}
    /// An event just said (`segment`), and its flow as it stands now: a
    /// live view (`watch`) shows and checks open flows with it. One
    /// analyzer's only: `Parallel` does not pass it on.
    #[inline]
    fn progressed(&mut self, _ev: &SegmentEvent, _conn: &Connection) {}
}

/// A sink that keeps everything: every event it is given and every finished flow.
#[derive(Default)]
pub struct Collect {
    pub segments: Vec<SegmentEvent>,
    pub flows: Vec<Connection>,
}

impl Sink for Collect {
    fn segment(&mut self, ev: &SegmentEvent) {
        self.segments.push(*ev);
    }
    fn flow(&mut self, conn: Connection) {
        self.flows.push(conn);
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Keep a bounded timeline of notable events per flow (for human output).
    pub keep_timeline: bool,
    /// Which segments the sink receives.
    pub events: Events,
    /// Only flows matching this.
    pub filter: Option<FlowFilter>,
    /// A flow quiet this long is reported and forgotten. Longer than the
    /// largest TCP_KEEPIDLE (32767 s), so no keepalive flow is cut.
    pub idle_evict_ns: u64,
    /// A closed flow quiet this long is reported and forgotten.
    pub closed_evict_ns: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            keep_timeline: false,
            events: Events::Notable,
            filter: None,
            idle_evict_ns: 10 * 3600 * 1_000_000_000,
            closed_evict_ns: 300 * 1_000_000_000,
        }
    }
}

/// Counts over a whole input.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub packets: u64,
    pub tcp_packets: u64,
    pub not_tcp: u64,
    pub fragments: u64,
    /// Frames cut inside the TCP header's fixed 20 bytes (or before it).
    pub truncated_headers: u64,
    /// TCP segments whose options the snaplen cut off (still analyzed; options unknown).
    pub options_cut: u64,
    /// TCP segments whose payload was cut by snaplen (still analyzed).
    pub truncated_payloads: u64,
    /// Records whose timestamp is earlier than the one before (merged captures).
    pub time_backwards: u64,
    pub max_backwards_ns: u64,
    pub flows: u64,
    pub probes: u64,
    pub zero_window_probes: u64,
    /// Probe-shaped 1-byte retransmissions (what Wireshark calls Keep-Alive).
    pub retransmissions: u64,
}

impl Stats {
    /// Adds the counts about flows (a part's flows, see `parallel`).
    fn add_flow_counts(&mut self, o: &Stats) {
        self.flows += o.flows;
        self.probes += o.probes;
        self.zero_window_probes += o.zero_window_probes;
        self.retransmissions += o.retransmissions;
    }
}

/// Packets decoded ahead of processing, so their flows' cache lines are
/// loading while earlier packets are processed, in steps `STAGE` packets
/// apart: a packet's index entry is prefetched on arrival, then its flow,
/// then the flow's cold keepalive part, then it is processed.
const STAGE: usize = 4;
const LOOKAHEAD: usize = 3 * STAGE;
/// Ring size: a power of two above `LOOKAHEAD`.
const RING: usize = 16;
/// Flows are swept for eviction once a minute of capture time.
const SWEEP_EVERY_NS: u64 = 60_000_000_000;

#[derive(Clone, Copy, Default)]
struct Queued {
    frame: u64,
    time: u64,
    /// Place among the segments analysed (all flows, 1-based).
    seq: u64,
    /// Latest time of the segments analysed up to this one.
    now: u64,
    pkt: Packet,
    key: FlowKey,
    hash: u64,
    side: Side,
}

/// A segment's place among those analysed: its number, the latest time
/// up to it, and whether a sweep is due after it.
#[derive(Clone, Copy)]
struct Place {
    seq: u64,
    now: u64,
    sweep: bool,
}

pub struct Analyzer {
    cfg: Config,
    /// Packets waiting, in a fixed ring: `queued` were pushed, `done` processed.
    ring: [Queued; RING],
    queued: usize,
    done: usize,
    table: FlowTable<Connection>,
    next_id: u64,
    /// Segments analysed so far (after the filter, every part's).
    seq: u64,
    /// Latest time of those; eviction runs on it so time going back cannot stall it.
    now: u64,
    last_sweep: u64,
    /// Sweeps due, not yet run: (after which segment, at what time). A part
    /// runs each before its next segment after that point, so the flows it
    /// evicts leave at the same place in the output whichever part holds them.
    sweeps: VecDeque<(u64, u64)>,
    /// Latest time of any record, filtered out or not TCP included: how long
    /// the capture went on, which a silent time-out is judged against.
    latest: u64,
    prev_time: Option<u64>,
    pub stats: Stats,
}

impl Analyzer {
    pub fn new(cfg: Config) -> Self {
        Self::with_hasher(cfg, ahash::RandomState::new())
    }

    /// An analyzer hashing flow keys with `hasher` (see `parallel`).
    fn with_hasher(cfg: Config, hasher: ahash::RandomState) -> Self {
        Analyzer {
            cfg,
            ring: [Queued::default(); RING],
            queued: 0,
            done: 0,
            table: FlowTable::with_hasher(hasher),
            next_id: 1,
            seq: 0,
            now: 0,
            last_sweep: 0,
            sweeps: VecDeque::new(),
            latest: 0,
            prev_time: None,
            stats: Stats::default(),
        }
    }

    /// A record that held no TCP segment.
    pub fn skipped(&mut self, time: u64, why: Skip) {
        self.tick(time);
        match why {
            Skip::NotTcp => self.stats.not_tcp += 1,
            Skip::Fragment => self.stats.fragments += 1,
            Skip::Truncated => self.stats.truncated_headers += 1,
        }
    }

    fn tick(&mut self, time: u64) {
        self.stats.packets += 1;
        self.latest = self.latest.max(time);
        if let Some(prev) = self.prev_time {
            if time < prev {
                self.stats.time_backwards += 1;
                self.stats.max_backwards_ns = self.stats.max_backwards_ns.max(prev - time);
            }
        }
        self.prev_time = Some(time);
    }

    /// One captured frame of link type `link` (`frame` is its 1-based record
    /// number), decoded straight into the lookahead queue. `snapped`: the
    /// capture kept fewer bytes than were on the wire. A frame without a TCP
    /// segment is counted, and why it has none is returned.
    #[inline]
    pub fn frame(
        &mut self,
        frame: u64,
        time: u64,
        link: LinkType,
        data: &[u8],
        snapped: bool,
        sink: &mut impl Sink,
    ) -> Option<Skip> {
        let at = self.queued % RING;
        match decode_into(link, data, snapped, &mut self.ring[at].pkt) {
            Ok(()) => {
                self.enqueue(frame, time, sink);
                None
            }
            Err(why) => {
                self.skipped(time, why);
                Some(why)
            }
        }
    }

    /// One decoded TCP segment; `frame` is its 1-based record number.
    pub fn packet(&mut self, frame: u64, time: u64, pkt: &Packet, sink: &mut impl Sink) {
        self.ring[self.queued % RING].pkt = *pkt;
        self.enqueue(frame, time, sink);
    }

    /// Queues the packet just written to the next ring slot.
    #[inline]
    fn enqueue(&mut self, frame: u64, time: u64, sink: &mut impl Sink) {
        let pkt = &self.ring[self.queued % RING].pkt;
        let (key, side, hash) = self.identify(pkt);
        let (truncated, cut) = (pkt.truncated, pkt.tcp.options.cut);
        let Some(at) = self.admit(time, truncated, cut, &key) else {
            return;
        };
        if at.sweep {
            self.sweeps.push_back((at.seq, at.now));
        }
        self.queue(frame, time, at.seq, at.now, key, side, hash, sink);
    }

    /// A segment's flow: its key, which side sent it, and the key's hash.
    #[inline]
    fn identify(&self, pkt: &Packet) -> (FlowKey, Side, u64) {
        let (key, side) = FlowKey::of(pkt);
        (key, side, self.table.hash(&key))
    }

    /// Counts a TCP segment and, unless the filter drops it, gives it its
    /// place: its number, the time then, and whether a sweep is due after it.
    #[inline]
    fn admit(&mut self, time: u64, truncated: bool, options_cut: bool, key: &FlowKey) -> Option<Place> {
        self.tick(time);
        self.stats.tcp_packets += 1;
        self.stats.truncated_payloads += truncated as u64;
        self.stats.options_cut += options_cut as u64;
        if self.cfg.filter.as_ref().is_some_and(|f| !f.matches(key)) {
            return None;
        }
        self.seq += 1;
        self.now = self.now.max(time);
        let sweep = self.now.saturating_sub(self.last_sweep) >= SWEEP_EVERY_NS;
        if sweep {
            self.last_sweep = self.now;
        }
        Some(Place {
            seq: self.seq,
            now: self.now,
            sweep,
        })
    }

    /// Queues a packet of this part, written to the next ring slot. It is
    /// processed `LOOKAHEAD` packets later, once its flow is in the cache.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn queue(
        &mut self,
        frame: u64,
        time: u64,
        seq: u64,
        now: u64,
        key: FlowKey,
        side: Side,
        hash: u64,
        sink: &mut impl Sink,
    ) {
        let n = self.queued;
        self.table.prefetch(hash);
        if n - self.done >= STAGE {
            self.table.prefetch_flow(self.ring[(n - STAGE) % RING].hash);
        }
        if n - self.done >= 2 * STAGE {
            let q = &self.ring[(n - 2 * STAGE) % RING];
            if let Some(c) = self.table.peek(q.hash) {
                c.prefetch_cold(q.side, &q.pkt.tcp);
            }
        }
        let q = &mut self.ring[n % RING];
        (q.frame, q.time, q.seq, q.now, q.key, q.hash, q.side) = (frame, time, seq, now, key, hash, side);
        self.queued = n + 1;
        if self.queued - self.done > LOOKAHEAD {
            self.process_next(sink);
        }
    }

    /// Processes the packets still waiting in the lookahead queue.
    pub fn flush(&mut self, sink: &mut impl Sink) {
        while self.done < self.queued {
            self.process_next(sink);
        }
        self.run_sweeps(u64::MAX, sink);
    }

    /// Processes the packets waiting in the lookahead queue that were
    /// captured before `before`: on a live capture (`watch`), a quiet link
    /// must not hold back a decided event until 12 more segments come. The
    /// lookahead then reaches what has come so far. A segment that may open
    /// its flow's view with a probe (a flow first seen mid-session) is only
    /// told by its flow's next segment, the answer: it waits for that until
    /// `patient` (and what came after it waits with it).
    pub fn settle(&mut self, before: u64, patient: u64, sink: &mut impl Sink) {
        while self.done < self.queued {
            let time = self.ring[self.done % RING].time;
            if time >= before || (time >= patient && self.awaits_next(self.done)) {
                break;
            }
            self.process_next(sink);
        }
        // Nothing left waiting: the sweeps due after the last segment, too.
        if self.done == self.queued {
            self.run_sweeps(self.seq + 1, sink);
        }
    }

    /// Whether the segment queued `at` wants its flow's next segment
    /// (`Connection::wants_look_ahead`) and that has not come yet. On a
    /// capture of one direction only, every pure ACK of a quiet flow does:
    /// the output then lags by up to the patience, never more.
    fn awaits_next(&self, at: usize) -> bool {
        let q = &self.ring[at % RING];
        let next_came = (at + 1..self.queued)
            .map(|i| &self.ring[i % RING])
            .any(|n| n.hash == q.hash && n.key == q.key);
        let seg = &q.pkt.tcp;
        !next_came
            && match self.table.find(q.hash, &q.key).and_then(|i| self.table.at(i)) {
                Some(c) => c.wants_look_ahead(q.side, seg),
                None => Connection::first_wants_look_ahead(seg),
            }
    }

    /// Where this analyzer's output has come to: it has nothing more to say
    /// about anything before this.
    fn frontier(&self) -> Order {
        let next = match self.done < self.queued {
            true => self.ring[self.done % RING].seq,
            false => self.seq + 1,
        };
        let swept = self.sweeps.front().map_or(u64::MAX, |&(after, _)| after + 1);
        Order {
            seq: next.min(swept),
            phase: Phase::Swept,
        }
    }

    #[inline]
    fn process_next(&mut self, sink: &mut impl Sink) {
        let at = self.done % RING;
        self.done += 1;
        self.process(at, sink);
    }

    /// Processes the packet in ring slot `at`, read in place (it is too big to copy for nothing).
    fn process(&mut self, at: usize, sink: &mut impl Sink) {
        self.run_sweeps(self.ring[at].seq, sink);
        let Queued {
            frame,
            time,
            seq,
            now,
            pkt: Packet { ttl, tcp: ref seg, .. },
            ref key,
            hash,
            side,
        } = self.ring[at];
        let found = self.table.find(hash, key);
        let current = found.filter(|&i| self.table.at_mut(i).is_some_and(|c| !c.is_new_connection(side, seg)));
        let slot = match current {
            Some(i) => i,
            None => {
                let (i, replaced) = self
                    .table
                    .insert_at(hash, Connection::new(self.next_id, *key, frame, time));
                if let Some(c) = replaced {
                    sink.at(Order {
                        seq,
                        phase: Phase::Replaced,
                    });
                    Self::done(c, now, sink);
                }
                sink.at(Order {
                    seq,
                    phase: Phase::Started,
                });
                sink.started(self.next_id);
                self.next_id += 1;
                self.stats.flows += 1;
                i
            }
        };
        let Some(conn) = self.table.at_mut(slot) else {
            return;
        };
        if conn.wants_look_ahead(side, seg) {
            // The flow's next segment among the next LOOKAHEAD analysed (of
            // any part: all of this part's among them are queued behind this one).
            let next = (self.done..self.queued)
                .map(|i| &self.ring[i % RING])
                .take_while(|q| q.seq <= seq + LOOKAHEAD as u64)
                .find(|q| q.hash == hash && q.key == *key);
            if let Some(q) = next {
                conn.look_ahead(side, seg, &q.pkt.tcp, q.frame, q.side);
            }
        }
        let got = conn.segment(frame, time, side, seg, ttl, self.cfg.events, self.cfg.keep_timeline);
        match got.kind {
            Kind::KeepaliveProbe => self.stats.probes += 1,
            Kind::ZeroWindowProbe => self.stats.zero_window_probes += 1,
            Kind::Retransmission => self.stats.retransmissions += 1,
            _ => {}
        }
        if let Some(ev) = got.event.filter(|_| self.cfg.events != Events::None) {
            sink.at(Order {
                seq,
                phase: Phase::Segment,
            });
            sink.segment(&ev);
            sink.progressed(&ev, conn);
        }
    }

    /// Runs the sweeps due before segment `seq`.
    #[inline]
    fn run_sweeps(&mut self, seq: u64, sink: &mut impl Sink) {
        while let Some(&(after, now)) = self.sweeps.front().filter(|s| s.0 < seq) {
            self.sweeps.pop_front();
            self.sweep(after, now, sink);
        }
    }

    #[cold]
    fn sweep(&mut self, after: u64, now: u64, sink: &mut impl Sink) {
        let cfg = &self.cfg;
        sink.at(Order {
            seq: after + 1,
            phase: Phase::Swept,
        });
        self.table.sweep(
            |c| {
                let quiet = now.saturating_sub(c.last_time);
                quiet >= cfg.idle_evict_ns || (c.closed_at.is_some() && quiet >= cfg.closed_evict_ns)
            },
            |c| c.id,
            |c| Self::done(c, now, sink),
        );
    }

    fn done(mut c: Connection, now: u64, sink: &mut impl Sink) {
        c.finish(now);
        sink.flow(c);
    }

    /// End of input: every remaining flow is reported, in order of first appearance.
    pub fn finish(&mut self, sink: &mut impl Sink) {
        self.finish_at(self.end(), sink);
    }

    /// When the input ended: its latest time, of any record.
    fn end(&self) -> u64 {
        self.now.max(self.latest)
    }

    /// A part's catching up once every segment up to `through` has been
    /// handed to it (`parallel`): it processes those whose lookahead window
    /// is complete and runs the sweeps due before the first it cannot yet,
    /// so that its output does not wait for segments of other parts.
    fn caught_up(&mut self, through: u64, sink: &mut impl Sink) {
        self.seq = through;
        while self.done < self.queued && self.ring[self.done % RING].seq + LOOKAHEAD as u64 <= through {
            self.process_next(sink);
        }
        let next = match self.done < self.queued {
            true => self.ring[self.done % RING].seq,
            false => through + 1,
        };
        self.run_sweeps(next, sink);
    }

    /// End of input at time `now`.
    fn finish_at(&mut self, now: u64, sink: &mut impl Sink) {
        self.flush(sink);
        sink.at(Order::END);
        self.table.drain_by_key(|c| c.id, |c| Self::done(c, now, sink));
    }
}

#[cfg(test)]
mod tests;
