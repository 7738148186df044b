//! The flow table: a hash map keyed by `FlowKey`, swept for evictable flows
//! at most once per `SWEEP_EVERY` of capture time and never more often than
//! once per table-size packets, so a sweep costs O(1) per packet amortized.

use super::key::FlowKey;
use std::collections::HashMap;

const SWEEP_EVERY_NS: u64 = 60_000_000_000;

pub struct FlowTable<T> {
    map: HashMap<FlowKey, T, ahash::RandomState>,
    last_sweep: u64,
    since_sweep: usize,
}

impl<T> Default for FlowTable<T> {
    fn default() -> Self {
        FlowTable {
            map: HashMap::with_hasher(ahash::RandomState::new()),
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

    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut T> {
        self.map.get_mut(key)
    }

    pub fn insert(&mut self, key: FlowKey, value: T) -> Option<T> {
        self.map.insert(key, value)
    }

    pub fn remove(&mut self, key: &FlowKey) -> Option<T> {
        self.map.remove(key)
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
        let keys: Vec<FlowKey> = self
            .map
            .iter()
            .filter(|(_, v)| evict(v))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some(v) = self.map.remove(&k) {
                out(v);
            }
        }
    }

    /// Empties the table, handing every flow to `out`.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.map.drain().map(|(_, v)| v)
    }
}
