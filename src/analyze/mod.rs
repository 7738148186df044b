//! The capture analyzer: decoded packets in, classified segments and per-flow
//! reports out. Pure: time comes with each packet, output goes to a `Sink`.

mod classify;
mod connection;
mod event;
pub mod expect;
pub mod filter;
mod kind;
mod prober;
mod report;
mod samples;
mod step;

pub use classify::classify;
pub use connection::{Connection, Events, Keepalive, MAX_TIMELINE};
pub use event::{SegmentEvent, Violation, ViolationKind};
pub use expect::Expectations;
pub use filter::FlowFilter;
pub use kind::Kind;
pub use report::{secs, Estimate, FlowReport, Outcome, ProberReport};
pub use step::Step;

use crate::decode::{decode_into, LinkType, Packet, Skip};
use crate::flow::{FlowKey, FlowTable, Side};

/// Receives the analyzer's output as it is produced.
pub trait Sink {
    fn segment(&mut self, ev: &SegmentEvent);
    /// A flow is done (closed and quiet, idle too long, or end of input).
    fn flow(&mut self, conn: Connection);
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

/// Packets decoded ahead of processing, so their flows' cache lines are
/// loading while earlier packets are processed, in steps `STAGE` packets
/// apart: a packet's index entry is prefetched on arrival, then its flow,
/// then the flow's cold keepalive part, then it is processed.
const STAGE: usize = 4;
const LOOKAHEAD: usize = 3 * STAGE;
/// Ring size: a power of two above `LOOKAHEAD`.
const RING: usize = 16;

#[derive(Clone, Copy, Default)]
struct Queued {
    frame: u64,
    time: u64,
    pkt: Packet,
    key: FlowKey,
    hash: u64,
    side: Side,
}

pub struct Analyzer {
    cfg: Config,
    /// Packets waiting, in a fixed ring: `queued` were pushed, `done` processed.
    ring: [Queued; RING],
    queued: usize,
    done: usize,
    table: FlowTable<Connection>,
    next_id: u64,
    /// Latest record time so far; eviction runs on it so time going back cannot stall it.
    now: u64,
    /// Latest time of any record, filtered out or not TCP included: how long
    /// the capture went on, which a silent time-out is judged against.
    latest: u64,
    prev_time: Option<u64>,
    pub stats: Stats,
}

impl Analyzer {
    pub fn new(cfg: Config) -> Self {
        Analyzer {
            cfg,
            ring: [Queued::default(); RING],
            queued: 0,
            done: 0,
            table: FlowTable::default(),
            next_id: 1,
            now: 0,
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

    /// Queues the packet just written to the next ring slot. It is processed
    /// `LOOKAHEAD` packets later, once its flow is in the cache.
    #[inline]
    fn enqueue(&mut self, frame: u64, time: u64, sink: &mut impl Sink) {
        self.tick(time);
        let n = self.queued;
        let pkt = &self.ring[n % RING].pkt;
        self.stats.tcp_packets += 1;
        self.stats.truncated_payloads += pkt.truncated as u64;
        self.stats.options_cut += pkt.tcp.options.cut as u64;
        let (key, side) = FlowKey::of(pkt);
        if self.cfg.filter.as_ref().is_some_and(|f| !f.matches(&key)) {
            return;
        }
        let hash = self.table.hash(&key);
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
        (q.frame, q.time, q.key, q.hash, q.side) = (frame, time, key, hash, side);
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
    }

    #[inline]
    fn process_next(&mut self, sink: &mut impl Sink) {
        let at = self.done % RING;
        self.done += 1;
        self.process(at, sink);
    }

    /// Processes the packet in ring slot `at`, read in place (it is too big to copy for nothing).
    fn process(&mut self, at: usize, sink: &mut impl Sink) {
        let Queued {
            frame,
            time,
            pkt: Packet { ttl, tcp: ref seg, .. },
            ref key,
            hash,
            side,
        } = self.ring[at];
        // Eviction runs on processed time, not on the lookahead's.
        self.now = self.now.max(time);
        let found = self.table.find(hash, key);
        let current = found.filter(|&i| self.table.at_mut(i).is_some_and(|c| !c.is_new_connection(side, seg)));
        let slot = match current {
            Some(i) => i,
            None => {
                let (i, replaced) = self
                    .table
                    .insert_at(hash, Connection::new(self.next_id, *key, frame, time));
                let now = self.now;
                replaced.into_iter().for_each(|c| Self::done(c, now, sink));
                self.next_id += 1;
                self.stats.flows += 1;
                i
            }
        };
        let Some(conn) = self.table.at_mut(slot) else {
            return;
        };
        if conn.wants_look_ahead(side, seg) {
            // The flow's next segment among those queued behind this one: a
            // lookahead of up to LOOKAHEAD packets.
            let next = (self.done..self.queued)
                .map(|i| &self.ring[i % RING])
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
            sink.segment(&ev);
        }
        if self.table.sweep_due(self.now) {
            self.sweep(sink);
        }
    }

    fn sweep(&mut self, sink: &mut impl Sink) {
        let (now, cfg) = (self.now, &self.cfg);
        self.table.sweep(
            now,
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
        self.flush(sink);
        let now = self.now.max(self.latest);
        self.table.drain_by_key(|c| c.id, |c| Self::done(c, now, sink));
    }
}

#[cfg(test)]
mod tests;
