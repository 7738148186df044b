//! The flow table: a hash index (`HashIndex`) over a slab of flows. The
//! index stays small (8 bytes an entry), and growing it moves no flows.
//! Callers hash a key once (`hash`) and pass the hash along, so that a
//! packet's flow can be loaded into the cache in two steps while earlier
//! packets are processed: `prefetch` (the index entry, whose address follows
//! from the hash), `prefetch_flow` (the flow the entry names), then `find`.
//! Swept for evictable flows at most once per `SWEEP_EVERY_NS` of capture
//! time and never more often than once per table-size packets, so a sweep
//! costs O(1) per packet amortized.

use super::index::HashIndex;
use super::key::FlowKey;
use super::prefetch;

const SWEEP_EVERY_NS: u64 = 60_000_000_000;

/// A flow knows its own key, so the table does not store it again.
pub trait Keyed: Sized {
    /// Bytes from the start that looking a flow up and updating it touch:
    /// what `prefetch_flow` loads.
    const HOT: usize = std::mem::size_of::<Self>();

    fn key(&self) -> &FlowKey;
}

pub struct FlowTable<T> {
    index: HashIndex,
    slots: Vec<Option<T>>,
    free: Vec<u32>,
    hasher: ahash::RandomState,
    last_sweep: u64,
    since_sweep: usize,
}

impl<T: Keyed> Default for FlowTable<T> {
    fn default() -> Self {
        FlowTable {
            index: HashIndex::default(),
            slots: Vec::new(),
            free: Vec::new(),
            hasher: ahash::RandomState::new(),
            last_sweep: 0,
            since_sweep: 0,
        }
    }
}

impl<T: Keyed> FlowTable<T> {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    /// The hash every other call takes with the key.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// First step of loading a flow into the cache: its index entry.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        self.index.prefetch(hash);
    }

    /// Second step, once the entry has arrived: the hot part of the flow it names.
    #[inline]
    pub fn prefetch_flow(&self, hash: u64) {
        if let Some(i) = self.index.candidates(hash).next() {
            let p = self.slots.as_ptr().wrapping_add(i as usize) as *const u8;
            // From the start of the line the flow begins in, to its end.
            let skew = p as usize % 64;
            prefetch::lines(
                p.wrapping_sub(skew),
                skew + T::HOT.min(std::mem::size_of::<Option<T>>()),
            );
        }
    }

    /// The flow `hash` most likely names, once `prefetch_flow` has loaded it:
    /// for prefetching what it points to (the key is not checked).
    #[inline]
    pub fn peek(&self, hash: u64) -> Option<&T> {
        let i = self.index.candidates(hash).next()?;
        self.slots[i as usize].as_ref()
    }

    /// The slot of `key`'s flow, for `at_mut`.
    #[inline]
    pub fn find(&self, hash: u64, key: &FlowKey) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .candidates(hash)
            .find(|&i| slots[i as usize].as_ref().is_some_and(|s| s.key() == key))
    }

    /// The flow in a slot `find` or `insert_at` returned.
    #[inline]
    pub fn at_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// Inserts a flow (`hash` is its key's), returning its slot and the flow
    /// with that key it replaces.
    pub fn insert_at(&mut self, hash: u64, value: T) -> (u32, Option<T>) {
        debug_assert_eq!(hash, self.hash(value.key()));
        let old = self.remove(hash, value.key());
        let slot = Some(value);
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(hash, i);
        (i, old)
    }

    pub fn remove(&mut self, hash: u64, key: &FlowKey) -> Option<T> {
        let i = self.find(hash, key)?;
        self.take(i)
    }

    fn take(&mut self, i: u32) -> Option<T> {
        let v = self.slots[i as usize].take()?;
        self.index.remove(self.hash(v.key()), i);
        self.free.push(i);
        Some(v)
    }

    /// Whether a sweep is due at capture time `now`; counts one packet.
    pub fn sweep_due(&mut self, now: u64) -> bool {
        self.since_sweep += 1;
        now.saturating_sub(self.last_sweep) >= SWEEP_EVERY_NS && self.since_sweep >= self.len()
    }

    /// Removes the flows `evict` says so, handing each to `out` in the order
    /// `order` gives.
    pub fn sweep<K: Ord>(
        &mut self,
        now: u64,
        mut evict: impl FnMut(&T) -> bool,
        order: impl Fn(&T) -> K,
        out: impl FnMut(T),
    ) {
        self.last_sweep = now;
        self.since_sweep = 0;
        let gone: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| self.slots[i as usize].as_ref().is_some_and(&mut evict))
            .collect();
        let mut gone: Vec<T> = gone.into_iter().filter_map(|i| self.take(i)).collect();
        gone.sort_unstable_by_key(|v| order(v));
        gone.into_iter().for_each(out);
    }

    /// Empties the table, handing every flow to `out` in the order `order` gives.
    pub fn drain_by_key<K: Ord>(&mut self, order: impl Fn(&T) -> K, out: impl FnMut(T)) {
        let mut all: Vec<T> = self.slots.drain(..).flatten().collect();
        all.sort_unstable_by_key(|v| order(v));
        all.into_iter().for_each(out);
        self.index.clear();
        self.free.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Endpoint;

    fn key(port: u16) -> FlowKey {
        let e = |p| Endpoint {
            addr: "10.0.0.1".parse().unwrap(),
            port: p,
        };
        FlowKey::new(e(port), e(80), [0, 0]).0
    }

    #[derive(Debug, PartialEq)]
    struct Flow(FlowKey, &'static str);

    impl Keyed for Flow {
        fn key(&self) -> &FlowKey {
            &self.0
        }
    }

    #[test]
    fn slots_are_reused_and_values_found() {
        let mut t = FlowTable::default();
        let h = |t: &FlowTable<Flow>, p| t.hash(&key(p));
        t.insert_at(h(&t, 1), Flow(key(1), "a"));
        t.insert_at(h(&t, 2), Flow(key(2), "b"));
        assert_eq!(t.remove(h(&t, 1), &key(1)), Some(Flow(key(1), "a")));
        let (slot, _) = t.insert_at(h(&t, 3), Flow(key(3), "c"));
        assert_eq!(t.slots.len(), 2, "freed slot reused");
        assert_eq!(t.find(h(&t, 3), &key(3)), Some(slot));
        assert_eq!(t.find(h(&t, 1), &key(1)), None);
        assert_eq!(t.at_mut(slot).map(|f| f.1), Some("c"));
        assert_eq!(t.insert_at(h(&t, 3), Flow(key(3), "d")).1, Some(Flow(key(3), "c")));
        let mut out = Vec::new();
        t.drain_by_key(|v| v.1, |v| out.push(v.1));
        assert_eq!(out, ["b", "d"]);
        assert!(t.is_empty());
    }
}
