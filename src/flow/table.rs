//! The flow table: a hash index (`HashIndex`) over a slab of flows. The
//! index stays small (8 bytes an entry), and growing it moves no flows: the
//! slab grows by fixed chunks, so memory is touched once, where a doubling
//! vector would copy its flows into fresh pages at every doubling (a third
//! of the table's memory again, each page zeroed by the kernel first).
//! Callers hash a key once (`hash`) and pass the hash along, so that a
//! packet's flow can be loaded into the cache in two steps while earlier
//! packets are processed: `prefetch` (the index entry, whose address follows
//! from the hash), `prefetch_flow` (the flow the entry names), then `find`.
//! When to sweep it for flows to evict is the caller's to decide.

use super::index::HashIndex;
use super::key::FlowKey;
use super::prefetch;

/// A flow knows its own key, so the table does not store it again.
pub trait Keyed: Sized {
    /// Bytes from the start that looking a flow up and updating it touch:
    /// what `prefetch_flow` loads.
    const HOT: usize = std::mem::size_of::<Self>();

    fn key(&self) -> &FlowKey;
}

/// Flows per slab chunk.
const CHUNK: usize = 1024;

pub struct FlowTable<T> {
    index: HashIndex,
    /// Slot `i` is `chunks[i / CHUNK][i % CHUNK]`; `used` slots were ever handed out.
    chunks: Vec<Box<[Option<T>]>>,
    used: u32,
    free: Vec<u32>,
    hasher: ahash::RandomState,
}

impl<T: Keyed> Default for FlowTable<T> {
    fn default() -> Self {
        FlowTable::with_hasher(ahash::RandomState::new())
    }
}

impl<T: Keyed> FlowTable<T> {
    /// A table hashing keys with `hasher`: tables that share one agree on every key's hash.
    pub fn with_hasher(hasher: ahash::RandomState) -> Self {
        FlowTable {
            index: HashIndex::default(),
            chunks: Vec::new(),
            used: 0,
            free: Vec::new(),
            hasher,
        }
    }

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

    #[inline]
    fn slot(&self, i: u32) -> Option<&Option<T>> {
        self.chunks.get(i as usize / CHUNK)?.get(i as usize % CHUNK)
    }

    #[inline]
    fn slot_mut(&mut self, i: u32) -> Option<&mut Option<T>> {
        self.chunks.get_mut(i as usize / CHUNK)?.get_mut(i as usize % CHUNK)
    }

    /// The slot `hash` most likely names: its first candidate, key unchecked.
    #[inline]
    fn likely(&self, hash: u64) -> Option<&Option<T>> {
        self.slot(self.index.candidates(hash).next()?)
    }

    /// Second step, once the entry has arrived: the hot part of the flow it names.
    #[inline]
    pub fn prefetch_flow(&self, hash: u64) {
        if let Some(slot) = self.likely(hash) {
            let p = slot as *const Option<T> as *const u8;
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
        self.likely(hash)?.as_ref()
    }

    /// The slot of `key`'s flow, for `at_mut`.
    #[inline]
    pub fn find(&self, hash: u64, key: &FlowKey) -> Option<u32> {
        self.index
            .candidates(hash)
            .find(|&i| self.slot(i).and_then(Option::as_ref).is_some_and(|s| s.key() == key))
    }

    /// The flow in a slot `find` or `insert_at` returned.
    #[inline]
    pub fn at(&self, slot: u32) -> Option<&T> {
        self.slot(slot)?.as_ref()
    }

    /// The flow in a slot `find` or `insert_at` returned, to change.
    #[inline]
    pub fn at_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.slot_mut(slot)?.as_mut()
    }

    /// Inserts a flow (`hash` is its key's), returning its slot and the flow
    /// with that key it replaces.
    pub fn insert_at(&mut self, hash: u64, value: T) -> (u32, Option<T>) {
        debug_assert_eq!(hash, self.hash(value.key()));
        let old = self.remove(hash, value.key());
        let i = self.free.pop().unwrap_or_else(|| {
            if self.used as usize == self.chunks.len() * CHUNK {
                self.chunks.push((0..CHUNK).map(|_| None).collect());
            }
            self.used += 1;
            self.used - 1
        });
        if let Some(s) = self.slot_mut(i) {
            *s = Some(value);
        }
        self.index.insert(hash, i);
        (i, old)
    }

    pub fn remove(&mut self, hash: u64, key: &FlowKey) -> Option<T> {
        let i = self.find(hash, key)?;
        self.take(i)
    }

    fn take(&mut self, i: u32) -> Option<T> {
        let v = self.slot_mut(i)?.take()?;
        self.index.remove(self.hash(v.key()), i);
        self.free.push(i);
        Some(v)
    }

    /// Removes the flows `evict` says so, handing each to `out` in the order
    /// `order` gives.
    pub fn sweep<K: Ord>(&mut self, mut evict: impl FnMut(&T) -> bool, order: impl Fn(&T) -> K, out: impl FnMut(T)) {
        self.take_in_order(|f| evict(f).then(|| order(f)), out);
    }

    /// Empties the table, handing every flow to `out` in the order `order` gives.
    pub fn drain_by_key<K: Ord>(&mut self, order: impl Fn(&T) -> K, out: impl FnMut(T)) {
        // Emptied first, the index has nothing for each take to look up and remove.
        self.index.clear();
        self.take_in_order(|f| Some(order(f)), out);
        self.chunks.clear();
        self.used = 0;
        self.free.clear();
    }

    /// Takes the flows `pick` gives a sort key, in key order. Only the keys
    /// and slot numbers are sorted: the flows are not copied into a list
    /// first, which at the end of a run would double the table's memory.
    fn take_in_order<K: Ord>(&mut self, mut pick: impl FnMut(&T) -> Option<K>, mut out: impl FnMut(T)) {
        let mut picked: Vec<(K, u32)> = (0..self.used)
            .filter_map(|i| Some((pick(self.slot(i)?.as_ref()?)?, i)))
            .collect();
        picked.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (_, i) in picked {
            if let Some(f) = self.take(i) {
                out(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{Endpoint, Side};

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
        assert_eq!(t.used, 2, "freed slot reused");
        assert_eq!(t.find(h(&t, 3), &key(3)), Some(slot));
        assert_eq!(t.find(h(&t, 1), &key(1)), None);
        assert_eq!(t.at_mut(slot).map(|f| f.1), Some("c"));
        assert_eq!(t.insert_at(h(&t, 3), Flow(key(3), "d")).1, Some(Flow(key(3), "c")));
        let mut out = Vec::new();
        t.drain_by_key(|v| v.1, |v| out.push(v.1));
        assert_eq!(out, ["b", "d"]);
        assert!(t.is_empty());
    }

    #[test]
    fn flows_across_chunks_are_found_and_drained() {
        let mut t = FlowTable::default();
        let h = |t: &FlowTable<Flow>, p| t.hash(&key(p));
        let n = 2 * CHUNK as u16 + 500;
        for p in 1..=n {
            t.insert_at(h(&t, p), Flow(key(p), "x"));
        }
        assert_eq!(t.chunks.len(), 3);
        for p in (1..=n).step_by(3) {
            assert!(t.remove(h(&t, p), &key(p)).is_some());
        }
        for p in n + 1..n + 300 {
            t.insert_at(h(&t, p), Flow(key(p), "y"));
        }
        assert_eq!(t.chunks.len(), 3, "freed slots reused before a new chunk");
        for p in 1..n + 300 {
            let found = t.find(h(&t, p), &key(p)).and_then(|i| t.at_mut(i)).map(|f| f.0);
            assert_eq!(found, (p > n || p % 3 != 1).then(|| key(p)), "port {p}");
        }
        let want = (n - n.div_ceil(3)) as usize + 299;
        assert_eq!(t.len(), want);
        // The client port: the endpoint that is not port 80.
        let port = |v: &Flow| {
            [Side::Lo, Side::Hi]
                .map(|s| v.0.endpoint(s).port)
                .into_iter()
                .find(|&p| p != 80)
        };
        let mut ports = Vec::new();
        t.drain_by_key(port, |v| ports.push(port(&v)));
        assert_eq!(ports.len(), want);
        assert!(ports.is_sorted(), "drained in key order");
        assert!(t.is_empty() && t.chunks.is_empty());
    }
}
