//! The flow table: a hash map from `FlowKey` to a slot in a slab of flows.
//! The map's buckets stay small (key + index), so lookups touch few cache
//! lines however large a flow's state is, and growing the map moves no flows.
//! Swept for evictable flows at most once per `SWEEP_EVERY_NS` of capture
//! time and never more often than once per table-size packets, so a sweep
//! costs O(1) per packet amortized.

use super::key::FlowKey;
use std::collections::HashMap;

const SWEEP_EVERY_NS: u64 = 60_000_000_000;

pub struct FlowTable<T> {
    map: HashMap<FlowKey, u32, ahash::RandomState>,
    slots: Vec<Option<T>>,
    free: Vec<u32>,
    last_sweep: u64,
    since_sweep: usize,
}

impl<T> Default for FlowTable<T> {
    fn default() -> Self {
        FlowTable {
            map: HashMap::with_hasher(ahash::RandomState::new()),
            slots: Vec::new(),
            free: Vec::new(),
            last_sweep: 0,
            since_sweep: 0,
        }
    }
}

impl<T> FlowTable<T> {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Starts loading `key`'s bucket and flow into the cache, so that a lookup
    /// a few packets later does not wait on memory: with many concurrent
    /// flows, cache misses on the table dominate the per-packet cost.
    #[inline]
    pub fn prefetch(&self, key: &FlowKey) {
        if let Some(&i) = self.map.get(key) {
            prefetch(self.slots.as_ptr().wrapping_add(i as usize));
        }
    }

    /// The slot of `key`'s flow, for `at_mut`: one hash lookup serves both a
    /// check and the update that follows.
    pub fn find(&self, key: &FlowKey) -> Option<u32> {
        self.map.get(key).copied()
    }

    /// The flow in a slot `find` or `insert` returned.
    pub fn at_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// Inserts a flow under `key`, returning its slot and the flow it replaces.
    pub fn insert_at(&mut self, key: FlowKey, value: T) -> (u32, Option<T>) {
        let old = self.remove(&key);
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(value);
                i
            }
            None => {
                self.slots.push(Some(value));
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert(key, i);
        (i, old)
    }

    pub fn remove(&mut self, key: &FlowKey) -> Option<T> {
        let i = self.map.remove(key)?;
        self.free.push(i);
        self.slots[i as usize].take()
    }

    /// Whether a sweep is due at capture time `now`; counts one packet.
    pub fn sweep_due(&mut self, now: u64) -> bool {
        self.since_sweep += 1;
        now.saturating_sub(self.last_sweep) >= SWEEP_EVERY_NS && self.since_sweep >= self.map.len()
    }

    /// Removes the flows `evict` says so, handing each to `out`.
    pub fn sweep(&mut self, now: u64, mut evict: impl FnMut(&T) -> bool, mut out: impl FnMut(T)) {
        self.last_sweep = now;
        self.since_sweep = 0;
        let slots = &self.slots;
        let keys: Vec<FlowKey> = self
            .map
            .iter()
            .filter(|(_, i)| slots[**i as usize].as_ref().is_some_and(&mut evict))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some(v) = self.remove(&k) {
                out(v);
            }
        }
    }

    /// Empties the table, handing every flow to `out` in the order `order` gives.
    pub fn drain_by_key<K: Ord>(&mut self, order: impl Fn(&T) -> K, mut out: impl FnMut(T)) {
        let mut idx: Vec<(K, u32)> = self
            .map
            .drain()
            .filter_map(|(_, i)| self.slots[i as usize].as_ref().map(|v| (order(v), i)))
            .collect();
        idx.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (_, i) in idx {
            if let Some(v) = self.slots[i as usize].take() {
                out(v);
            }
        }
        self.slots.clear();
        self.free.clear();
    }
}

/// Hints the CPU to load the cache lines of `*p` (at most 512 bytes).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let base = p as *const i8;
        let mut off = 0;
        while off < std::mem::size_of::<T>().min(512) {
            // SAFETY: a prefetch is only a hint; it never faults, whatever the address.
            unsafe { _mm_prefetch(base.wrapping_add(off), _MM_HINT_T0) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
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
        FlowKey {
            lo: e(port),
            hi: e(80),
            vlan: [0, 0],
        }
    }

    #[test]
    fn slots_are_reused_and_values_found() {
        let mut t = FlowTable::default();
        t.insert_at(key(1), "a");
        t.insert_at(key(2), "b");
        assert_eq!(t.remove(&key(1)), Some("a"));
        let (slot, _) = t.insert_at(key(3), "c");
        assert_eq!(t.slots.len(), 2, "freed slot reused");
        assert_eq!(t.find(&key(3)), Some(slot));
        assert_eq!(t.at_mut(slot), Some(&mut "c"));
        assert_eq!(t.insert_at(key(3), "d").1, Some("c"));
        let mut out = Vec::new();
        t.drain_by_key(|v| *v, |v| out.push(v));
        assert_eq!(out, ["b", "d"]);
        assert!(t.is_empty());
    }
}
