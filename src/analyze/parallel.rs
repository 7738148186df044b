//! The analyzer on several threads (`verify --threads N`), saying exactly
//! what one analyzer would, in the same order.
//!
//! The reading thread decodes each record and does what concerns every
//! flow at once: it counts records, drops what the filter drops, numbers
//! the segments, keeps the time and decides when sweeps are due. It hands
//! each segment, with that place, to the worker whose part of the flows
//! (by hash) holds its flow, and every sweep to every worker. A worker
//! analyses its segments as one analyzer would, and tags its output with
//! its place in the input (`Order`); the reading thread merges the workers'
//! output back into that order, numbering flows in order of first
//! appearance as one analyzer numbers them, while the workers go on.

use super::{Analyzer, Config, Connection, Order, Place, Queued, SegmentEvent, Sink, Stats, RING};
use crate::decode::{decode_into, LinkType, Packet};
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Segments per batch (over all workers): enough that handing a batch over
/// costs little beside analysing it, few enough that it stays in the CPU's cache.
const BATCH: usize = 8 << 10;

/// What a worker is handed, in input order. Sweeps are rare, and boxing
/// the segments would allocate for each.
#[allow(clippy::large_enum_variant)]
enum Entry {
    /// A segment of one of its flows, with its place.
    Segment(Queued),
    /// A sweep due after segment `after`, at time `now`.
    Sweep { after: u64, now: u64 },
}

/// Nearly every item is a segment: boxing them would allocate for each.
#[allow(clippy::large_enum_variant)]
enum Item {
    Started {
        id: u64,
    },
    Segment(SegmentEvent),
    /// Boxed: a flow is seven cache lines, and every item would be as big.
    Flow(Box<Connection>),
}

/// How far a worker's output has come: it will say nothing placed before
/// this (a place, and among flows that leave at that place, the number of
/// the segment that started the flow: flows leave in order of their start).
type Mark = (Order, u64);

/// A worker's mark once it has said everything.
const FINAL: Mark = (Order::END, u64::MAX);

/// Flows handed over at a time at the end of input, rather than all at
/// once: the end's memory stays that of the flows still open.
const END_CHUNK: usize = 1024;

/// One worker's output, each item with its place and, for flows, the
/// number of the segment that started it.
struct Recorder {
    at: Option<Order>,
    items: Vec<(Order, u64, Item)>,
    /// The worker's flows still open: its id for each → the segment that started it.
    starts: HashMap<u64, u64>,
    said: SyncSender<Said>,
    /// Flows handed over at a time at the end.
    end_chunk: usize,
}

impl Recorder {
    fn place(&self) -> Order {
        self.at.expect("the analyzer places its output")
    }

    fn push(&mut self, start: u64, item: Item) {
        let at = self.place();
        self.items.push((at, start, item));
        // The flows still open at the end leave in order of their start:
        // none of this worker's that follow comes before this one.
        if at == Order::END && self.items.len() >= self.end_chunk {
            self.hand_over((Order::END, start + 1), Vec::new());
        }
    }

    fn hand_over(&mut self, mark: Mark, emptied: Vec<Entry>) {
        // The reader gone (it panicked): nobody is listening, and the worker ends with its jobs.
        let _ = self.said.send((std::mem::take(&mut self.items), mark, emptied));
    }
}

impl Sink for Recorder {
    fn segment(&mut self, ev: &SegmentEvent) {
        self.push(0, Item::Segment(*ev));
    }
    fn flow(&mut self, conn: Connection) {
        let start = self.starts.remove(&conn.id).expect("a flow ends after it starts");
        self.push(start, Item::Flow(Box::new(conn)));
    }
    fn at(&mut self, at: Order) {
        self.at = Some(at);
    }
    fn started(&mut self, id: u64) {
        let start = self.place().seq;
        self.starts.insert(id, start);
        self.push(start, Item::Started { id });
    }
}

enum Job {
    /// Entries; the number of the last segment analysed before the batch
    /// ended; an emptied list to say what the worker found in.
    Batch(Vec<Entry>, u64, Vec<(Order, u64, Item)>),
    /// End of input, at this time.
    Finish(u64),
}

/// What a worker says after a job (at the end, after each `END_CHUNK`
/// flows): its output, how far it has come, and the emptied batch for the
/// reader to fill again.
type Said = (Vec<(Order, u64, Item)>, Mark, Vec<Entry>);

/// A worker thread's loop: its segments of every batch, then its flows at the end.
fn work(mut an: Analyzer, jobs: Receiver<Job>, said: SyncSender<Said>, end_chunk: usize) -> Analyzer {
    let mut out = Recorder {
        at: None,
        items: Vec::new(),
        starts: HashMap::new(),
        said,
        end_chunk,
    };
    for job in jobs {
        match job {
            Job::Batch(mut batch, through, items) => {
                // The reader's emptied list: its memory is reused, not freed on another thread.
                out.items = items;
                for e in batch.drain(..) {
                    match e {
                        Entry::Segment(p) => {
                            an.ring[an.queued % RING].pkt = p.pkt;
                            an.queue(p.frame, p.time, p.seq, p.now, p.key, p.side, p.hash, &mut out);
                        }
                        Entry::Sweep { after, now } => an.sweeps.push_back((after, now)),
                    }
                }
                an.caught_up(through, &mut out);
                out.hand_over((an.frontier(), 0), batch);
            }
            Job::Finish(now) => {
                an.finish_at(now, &mut out);
                out.hand_over(FINAL, Vec::new());
            }
        }
    }
    an
}

/// The workers' output waiting to be merged, and the flows' numbers so far.
struct Merge {
    waiting: Vec<VecDeque<(Order, u64, Item)>>,
    /// Each worker's mark, and the emptied lists it said its last in.
    marks: Vec<Mark>,
    spare: Vec<Vec<(Order, u64, Item)>>,
    /// Everything before this has been said by every worker.
    settled: Mark,
    /// (worker, the worker's id for a flow) → the flow's id.
    ids: HashMap<(usize, u64), u64>,
    next_id: u64,
}

impl Merge {
    /// Hands `sink` everything settled, in order.
    fn run(&mut self, sink: &mut impl Sink) {
        loop {
            let next = (0..self.waiting.len())
                .filter_map(|w| Some((self.waiting[w].front()?, w)))
                .filter(|((at, first, _), _)| (*at, *first) < self.settled)
                .min_by_key(|((at, first, _), _)| (*at, *first))
                .map(|(_, w)| w);
            let Some(w) = next else { return };
            let Some((at, _, item)) = self.waiting[w].pop_front() else {
                return;
            };
            sink.at(at);
            let known = "a flow's start comes before its events";
            match item {
                Item::Started { id } => {
                    self.ids.insert((w, id), self.next_id);
                    self.next_id += 1;
                }
                Item::Segment(mut ev) => {
                    ev.flow_id = *self.ids.get(&(w, ev.flow_id)).expect(known);
                    sink.segment(&ev);
                }
                Item::Flow(mut c) => {
                    c.id = self.ids.remove(&(w, c.id)).expect(known);
                    sink.flow(*c);
                }
            }
        }
    }

    /// Takes one message from each worker that has more to say, and how
    /// far all of them have come; returns the emptied batches.
    fn collect(&mut self, said: &[Receiver<Said>]) -> Vec<Vec<Entry>> {
        let mut emptied = Vec::with_capacity(said.len());
        for (w, from) in said.iter().enumerate() {
            if self.marks[w] == FINAL {
                continue;
            }
            // Its sender gone before its last word: the worker panicked (the
            // message is above). Its flows are missing: nothing right can follow.
            let Ok((mut items, mark, batch)) = from.recv() else {
                panic!("verify: worker thread {w} stopped");
            };
            self.waiting[w].extend(items.drain(..));
            self.marks[w] = mark;
            self.spare[w] = items;
            emptied.push(batch);
        }
        self.settled = self.marks.iter().copied().min().unwrap_or(FINAL);
        emptied
    }
}

pub struct Parallel {
    /// Counts, numbers and times every segment, and keeps no flows.
    front: Analyzer,
    jobs: Vec<SyncSender<Job>>,
    said: Vec<Receiver<Said>>,
    workers: Vec<JoinHandle<Analyzer>>,
    /// Segments per batch.
    batch: usize,
    /// Each worker's batch being filled, and how many segments they hold.
    filling: Vec<Vec<Entry>>,
    filled: usize,
    /// A batch is with the workers and they have not said so yet.
    out: bool,
    scratch: Packet,
    merge: Merge,
}

impl Parallel {
    /// Analysis on `threads` worker threads (at least one).
    pub fn new(cfg: Config, threads: usize) -> Parallel {
        Self::with_batch(cfg, threads, BATCH)
    }

    /// As `new`, handing segments to the workers `batch` at a time, and
    /// flows at the end at most as many (tests use small batches to cross
    /// batch boundaries often).
    pub fn with_batch(cfg: Config, threads: usize, batch: usize) -> Parallel {
        let n = threads.max(1);
        let batch = batch.max(1);
        let end_chunk = batch.min(END_CHUNK);
        let hasher = ahash::RandomState::new();
        let (mut jobs, mut said, mut workers) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let an = Analyzer::with_hasher(cfg.clone(), hasher.clone());
            // Two jobs queued: a worker does not wait for the reader to hand one over.
            let (job_tx, job_rx) = sync_channel(2);
            let (said_tx, said_rx) = sync_channel(2);
            workers.push(std::thread::spawn(move || work(an, job_rx, said_tx, end_chunk)));
            jobs.push(job_tx);
            said.push(said_rx);
        }
        Parallel {
            front: Analyzer::with_hasher(cfg, hasher),
            jobs,
            said,
            workers,
            batch,
            filling: (0..n).map(|_| Vec::with_capacity(batch / n + 1)).collect(),
            filled: 0,
            out: false,
            scratch: Packet::default(),
            merge: Merge {
                waiting: (0..n).map(|_| VecDeque::new()).collect(),
                marks: vec![(Order::START, 0); n],
                spare: (0..n).map(|_| Vec::new()).collect(),
                settled: (Order::START, 0),
                ids: HashMap::new(),
                next_id: 1,
            },
        }
    }

    /// One captured frame, as `Analyzer::frame` takes it.
    pub fn frame(&mut self, frame: u64, time: u64, link: LinkType, data: &[u8], snapped: bool, sink: &mut impl Sink) {
        match decode_into(link, data, snapped, &mut self.scratch) {
            Ok(()) => self.place(frame, time, sink),
            Err(why) => self.front.skipped(time, why),
        }
    }

    /// One decoded TCP segment, as `Analyzer::packet` takes it.
    pub fn packet(&mut self, frame: u64, time: u64, pkt: &Packet, sink: &mut impl Sink) {
        self.scratch = *pkt;
        self.place(frame, time, sink);
    }

    /// Places the segment in `scratch` and hands it to its flow's worker.
    fn place(&mut self, frame: u64, time: u64, sink: &mut impl Sink) {
        let pkt = &self.scratch;
        let (key, side, hash) = self.front.identify(pkt);
        let Some(Place { seq, now, sweep }) = self.front.admit(time, pkt.truncated, pkt.tcp.options.cut, &key) else {
            return;
        };
        let w = (hash % self.filling.len() as u64) as usize;
        self.filling[w].push(Entry::Segment(Queued {
            frame,
            time,
            seq,
            now,
            pkt: *pkt,
            key,
            side,
            hash,
        }));
        if sweep {
            for f in &mut self.filling {
                f.push(Entry::Sweep { after: seq, now });
            }
        }
        self.filled += 1;
        if self.filled >= self.batch {
            self.send(sink);
        }
    }

    /// Hands each worker its batch, then merges what they said about the
    /// batch before.
    fn send(&mut self, sink: &mut impl Sink) {
        let through = self.front.seq;
        for ((j, f), spare) in self.jobs.iter().zip(&mut self.filling).zip(&mut self.merge.spare) {
            let _ = j.send(Job::Batch(std::mem::take(f), through, std::mem::take(spare)));
        }
        self.filled = 0;
        if std::mem::replace(&mut self.out, true) {
            self.take(sink);
        }
    }

    /// Merges what the workers said about the batch they were on, and keeps
    /// the batches they emptied to fill again.
    fn take(&mut self, sink: &mut impl Sink) {
        let emptied = self.merge.collect(&self.said);
        self.merge.run(sink);
        for (f, e) in self.filling.iter_mut().zip(emptied) {
            if f.is_empty() {
                *f = e;
            }
        }
    }

    /// End of input: every worker's remaining flows, in order. Returns the
    /// counts over all workers.
    pub fn finish(mut self, sink: &mut impl Sink) -> Stats {
        if self.filled > 0 || self.filling.iter().any(|f| !f.is_empty()) {
            self.send(sink);
        }
        if std::mem::replace(&mut self.out, false) {
            self.take(sink);
        }
        let now = self.front.end();
        for j in &self.jobs {
            let _ = j.send(Job::Finish(now));
        }
        // The flows still open, a chunk from each worker at a time.
        while self.merge.settled != FINAL {
            self.merge.collect(&self.said);
            self.merge.run(sink);
        }
        self.jobs.clear();
        let mut stats = self.front.stats;
        for w in self.workers.drain(..) {
            let an = w.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            stats.add_flow_counts(&an.stats);
        }
        stats
    }
}

impl Drop for Parallel {
    /// Dropped without `finish` (the input could not be used): the workers
    /// see their job lists end and stop; they are waited for, so none
    /// outlives the file it was analysing.
    fn drop(&mut self) {
        self.jobs.clear();
        self.said.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
