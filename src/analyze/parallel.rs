//! The analyzer on several threads (`verify --threads N`), saying exactly
//! what one analyzer would, in the same order.
//!
//! The reading thread decodes each record into a batch; each full batch goes
//! to every worker. A worker holds one part of the flows (by hash): it counts
//! every record and numbers every segment of the batch, so all workers agree
//! on time, on the lookahead window and on when sweeps are due, but it
//! analyses only its own flows. Its output is tagged with its place in the
//! input (`Order`), and the reading thread merges the workers' output back
//! into that order, numbering flows in order of first appearance as one
//! analyzer numbers them, while the workers go on with the next batch.

use super::{Analyzer, Config, Connection, Order, Part, Phase, SegmentEvent, Sink, Stats};
use crate::decode::{decode_into, LinkType, Packet, Skip};
use crate::flow::{FlowKey, Side};
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Records per batch: enough that handing a batch over costs little beside
/// analysing it, few enough that a batch stays in the CPU's cache.
const BATCH: usize = 8 << 10;

/// A record decoded ahead, on any thread, for every part to read.
#[derive(Clone, Copy, Default)]
pub struct Decoded {
    pub frame: u64,
    pub time: u64,
    pub what: What,
    pub pkt: Packet,
    pub key: FlowKey,
    pub side: Side,
    pub hash: u64,
}

/// What a record held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum What {
    /// A link type kaprobe does not decode: not counted here.
    #[default]
    Unknown,
    NoSegment(Skip),
    Segment,
}

impl Decoded {
    fn fill(&mut self, link: LinkType, data: &[u8], snapped: bool, hasher: &ahash::RandomState) {
        self.what = match decode_into(link, data, snapped, &mut self.pkt) {
            Err(why) => What::NoSegment(why),
            Ok(()) => {
                (self.key, self.side) = FlowKey::of(&self.pkt);
                self.hash = hasher.hash_one(self.key);
                What::Segment
            }
        };
    }
}

enum Item {
    Started {
        id: u64,
    },
    Segment(SegmentEvent),
    /// Boxed: a flow is seven cache lines, and every item would be as big.
    Flow(Box<Connection>),
}

/// One part's output, each item with its place and, for flows, first frame.
#[derive(Default)]
struct Recorder {
    at: Option<Order>,
    items: Vec<(Order, u64, Item)>,
}

impl Recorder {
    fn push(&mut self, first_frame: u64, item: Item) {
        let at = self.at.expect("the analyzer places its output");
        self.items.push((at, first_frame, item));
    }
}

impl Sink for Recorder {
    fn segment(&mut self, ev: &SegmentEvent) {
        self.push(0, Item::Segment(*ev));
    }
    fn flow(&mut self, conn: Connection) {
        self.push(conn.first_frame, Item::Flow(Box::new(conn)));
    }
    fn at(&mut self, at: Order) {
        self.at = Some(at);
    }
    fn started(&mut self, id: u64, first_frame: u64) {
        self.push(first_frame, Item::Started { id });
    }
}

/// What a worker says after a batch: its output, and how far it has come.
type Said = (Vec<(Order, u64, Item)>, Order);

enum Job {
    Batch(Arc<Vec<Decoded>>),
    Finish,
}

/// A worker thread's loop: its part of every batch, then its flows at the end.
fn work(mut an: Analyzer, jobs: Receiver<Job>, said: SyncSender<Said>) -> Analyzer {
    let mut out = Recorder::default();
    for job in jobs {
        match job {
            Job::Batch(batch) => {
                for d in batch.iter() {
                    match d.what {
                        What::Unknown => {}
                        What::NoSegment(why) => an.skipped(d.time, why),
                        What::Segment => an.decoded(d, &mut out),
                    }
                }
                // Let go of the batch before saying so: the reader reuses it.
                drop(batch);
            }
            Job::Finish => an.finish(&mut out),
        }
        if said.send((std::mem::take(&mut out.items), an.frontier())).is_err() {
            break;
        }
    }
    an
}

/// The parts' output waiting to be merged, and the flows' numbers so far.
struct Merge {
    waiting: Vec<VecDeque<(Order, u64, Item)>>,
    /// Everything before this has been said by every part.
    settled: Order,
    /// (part, the part's id for a flow) → the flow's id.
    ids: HashMap<(usize, u64), u64>,
    next_id: u64,
}

impl Merge {
    /// Hands `sink` everything settled, in order.
    fn run(&mut self, sink: &mut impl Sink) {
        loop {
            let next = (0..self.waiting.len())
                .filter_map(|p| Some((self.waiting[p].front()?, p)))
                .filter(|((at, _, _), _)| *at < self.settled)
                .min_by_key(|((at, first, _), _)| (*at, *first))
                .map(|(_, p)| p);
            let Some(p) = next else { return };
            let Some((at, first, item)) = self.waiting[p].pop_front() else {
                return;
            };
            sink.at(at);
            match item {
                Item::Started { id } => {
                    self.ids.insert((p, id), self.next_id);
                    sink.started(self.next_id, first);
                    self.next_id += 1;
                }
                Item::Segment(mut ev) => {
                    ev.flow_id = self.ids.get(&(p, ev.flow_id)).copied().unwrap_or_default();
                    sink.segment(&ev);
                }
                Item::Flow(mut c) => {
                    c.id = self.ids.remove(&(p, c.id)).unwrap_or_default();
                    sink.flow(*c);
                }
            }
        }
    }

    /// Takes what each part said about a batch, and how far all of them have come.
    fn collect(&mut self, said: &[Receiver<Said>]) {
        let mut settled = Order::END;
        for (from, waiting) in said.iter().zip(&mut self.waiting) {
            // A worker that died (it panicked) has said its last: the panic is reported at `finish`.
            let Ok((items, frontier)) = from.recv() else { continue };
            waiting.extend(items);
            settled = settled.min(frontier);
        }
        self.settled = settled;
    }
}

pub struct Parallel {
    jobs: Vec<SyncSender<Job>>,
    said: Vec<Receiver<Said>>,
    workers: Vec<JoinHandle<Analyzer>>,
    hasher: ahash::RandomState,
    /// Records per batch.
    batch: usize,
    /// The batch being decoded, and the one the workers are on.
    filling: Vec<Decoded>,
    sent: Option<Arc<Vec<Decoded>>>,
    merge: Merge,
}

impl Parallel {
    /// Analysis on `threads` worker threads (at least one).
    pub fn new(cfg: Config, threads: usize) -> Parallel {
        Self::with_batch(cfg, threads, BATCH)
    }

    /// As `new`, handing records to the workers `batch` at a time (tests
    /// use small batches to cross batch boundaries often).
    pub fn with_batch(cfg: Config, threads: usize, batch: usize) -> Parallel {
        let of = threads.max(1);
        let hasher = ahash::RandomState::new();
        let (mut jobs, mut said, mut workers) = (Vec::new(), Vec::new(), Vec::new());
        for index in 0..of {
            let part = Part {
                index: index as u64,
                of: of as u64,
            };
            let an = Analyzer::part(cfg.clone(), part, hasher.clone());
            // Two batches queued: the workers never wait for the reader to hand one over.
            let (job_tx, job_rx) = sync_channel(2);
            let (said_tx, said_rx) = sync_channel(2);
            workers.push(std::thread::spawn(move || work(an, job_rx, said_tx)));
            jobs.push(job_tx);
            said.push(said_rx);
        }
        Parallel {
            jobs,
            said,
            workers,
            hasher,
            batch: batch.max(1),
            filling: Vec::with_capacity(batch.max(1)),
            sent: None,
            merge: Merge {
                waiting: (0..of).map(|_| VecDeque::new()).collect(),
                settled: Order {
                    seq: 0,
                    phase: Phase::Swept,
                },
                ids: HashMap::new(),
                next_id: 1,
            },
        }
    }

    /// One captured frame, as `Analyzer::frame` takes it; `link` is `None`
    /// for a link type kaprobe does not decode (not counted).
    pub fn frame(
        &mut self,
        frame: u64,
        time: u64,
        link: Option<LinkType>,
        data: &[u8],
        snapped: bool,
        sink: &mut impl Sink,
    ) {
        self.filling.push(Decoded {
            frame,
            time,
            ..Decoded::default()
        });
        if let (Some(link), Some(d)) = (link, self.filling.last_mut()) {
            d.fill(link, data, snapped, &self.hasher);
        }
        if self.filling.len() >= self.batch {
            self.send(sink);
        }
    }

    /// One decoded TCP segment, as `Analyzer::packet` takes it.
    pub fn packet(&mut self, frame: u64, time: u64, pkt: &Packet, sink: &mut impl Sink) {
        let (key, side) = FlowKey::of(pkt);
        self.filling.push(Decoded {
            frame,
            time,
            what: What::Segment,
            pkt: *pkt,
            key,
            side,
            hash: self.hasher.hash_one(key),
        });
        if self.filling.len() >= self.batch {
            self.send(sink);
        }
    }

    /// Hands the batch being filled to every worker, then merges what they
    /// said about the batch before.
    fn send(&mut self, sink: &mut impl Sink) {
        let batch = Arc::new(std::mem::take(&mut self.filling));
        for j in &self.jobs {
            let _ = j.send(Job::Batch(batch.clone()));
        }
        if let Some(before) = self.sent.replace(batch) {
            self.merge.collect(&self.said);
            self.merge.run(sink);
            // Every worker has let go of it: its memory is the next batch's.
            self.filling = Arc::try_unwrap(before).unwrap_or_default();
            self.filling.clear();
        }
    }

    /// End of input: every part's remaining flows, in order. Returns the
    /// counts over all parts.
    pub fn finish(mut self, sink: &mut impl Sink) -> Stats {
        if !self.filling.is_empty() {
            self.send(sink);
        }
        if self.sent.take().is_some() {
            self.merge.collect(&self.said);
            self.merge.run(sink);
        }
        for j in &self.jobs {
            let _ = j.send(Job::Finish);
        }
        self.merge.collect(&self.said);
        // Past the end, where the flows still open at the end of input sit.
        self.merge.settled = Order {
            seq: u64::MAX,
            phase: Phase::Segment,
        };
        self.merge.run(sink);
        self.jobs.clear();
        let parts: Vec<Analyzer> = self
            .workers
            .drain(..)
            .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        total(parts.iter().map(|a| &a.stats))
    }
}

/// Counts over all parts: each part counted every record, and its own flows.
fn total<'a>(parts: impl Iterator<Item = &'a Stats>) -> Stats {
    let mut all: Option<Stats> = None;
    for s in parts {
        match all.as_mut() {
            None => all = Some(*s),
            Some(t) => {
                t.flows += s.flows;
                t.probes += s.probes;
                t.zero_window_probes += s.zero_window_probes;
                t.retransmissions += s.retransmissions;
            }
        }
    }
    all.unwrap_or_default()
}
