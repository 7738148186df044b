//! The flow table's hash index: open addressing with linear probing over
//! 8-byte entries (32 bits of the key's hash, slot number + 1; 0 is empty).
//! Why not a general hash map: a packet's entry sits at an address computed
//! from its hash alone, so the entry can be prefetched as soon as the packet
//! is decoded, before any memory is read — the one thing hashbrown cannot
//! offer, and with tens of thousands of flows these cache misses are most of
//! the per-packet cost. Deletion shifts entries back (no tombstones).

/// Index positions and tags come from these 32 bits of the hash.
#[inline]
fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

pub struct HashIndex {
    entries: Vec<u64>,
    len: usize,
}

impl Default for HashIndex {
    fn default() -> Self {
        HashIndex {
            entries: vec![0; MIN_CAPACITY],
            len: 0,
        }
    }
}

const MIN_CAPACITY: usize = 1024;

impl HashIndex {
    pub fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    fn home(&self, tag: u32) -> usize {
        tag as usize & self.mask()
    }

    /// Starts loading the entry `hash` starts its probe at.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        super::prefetch::lines(self.entries.as_ptr().wrapping_add(self.home(tag(hash))), 8);
    }

    /// The slots whose entries carry `hash`'s tag, in probe order, for the
    /// caller to check the keys of.
    #[inline]
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let (t, mask) = (tag(hash), self.mask());
        let mut i = self.home(t);
        std::iter::from_fn(move || loop {
            let e = self.entries[i];
            if e == 0 {
                return None;
            }
            i = (i + 1) & mask;
            if (e >> 32) as u32 == t {
                return Some((e as u32) - 1);
            }
        })
    }

    /// Adds `slot` under `hash` (the caller knows it is not there yet).
    pub fn insert(&mut self, hash: u64, slot: u32) {
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        self.place(((tag(hash) as u64) << 32) | (slot as u64 + 1));
        self.len += 1;
    }

    fn place(&mut self, entry: u64) {
        let mask = self.mask();
        let mut i = self.home((entry >> 32) as u32);
        while self.entries[i] != 0 {
            i = (i + 1) & mask;
        }
        self.entries[i] = entry;
    }

    fn grow(&mut self) {
        let bigger = vec![0; self.entries.len() * 2];
        let old = std::mem::replace(&mut self.entries, bigger);
        for e in old.into_iter().filter(|&e| e != 0) {
            self.place(e);
        }
    }

    /// Removes `slot`'s entry, found under `hash`; false when it is not there.
    pub fn remove(&mut self, hash: u64, slot: u32) -> bool {
        let mask = self.mask();
        let want = ((tag(hash) as u64) << 32) | (slot as u64 + 1);
        let mut i = self.home(tag(hash));
        loop {
            match self.entries[i] {
                0 => return false,
                e if e == want => break,
                _ => i = (i + 1) & mask,
            }
        }
        // Backward-shift: move later entries of the cluster into the hole when
        // their home is not in (hole, their position].
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let e = self.entries[j];
            if e == 0 {
                break;
            }
            let home = self.home((e >> 32) as u32);
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.entries[hole] = e;
                hole = j;
            }
        }
        self.entries[hole] = 0;
        self.len -= 1;
        true
    }

    /// Every slot in the index, in no particular order.
    #[cfg(test)]
    pub fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().filter(|&&e| e != 0).map(|&e| e as u32 - 1)
    }

    pub fn clear(&mut self) {
        *self = HashIndex::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Crowded: hashes on seven home positions around the end of the index,
    /// so one long cluster wraps and shifts, and some keys share a whole tag.
    /// Otherwise spread out, so short clusters form and break up.
    fn hash(k: u16, crowded: bool) -> u64 {
        let tag = if crowded {
            ((k % 7) as u32).wrapping_sub(3) | ((k as u32 >> 3) << 16)
        } else {
            (k as u32).wrapping_mul(0x9e37_79b1)
        };
        ((tag as u64) << 32) | k as u64
    }

    proptest! {
        /// Against a HashMap model: after any sequence of inserts and removes,
        /// every present key is found among its candidates and no removed one is.
        #[test]
        fn behaves_like_a_map(
            crowded in any::<bool>(),
            ops in prop::collection::vec((any::<bool>(), 0u16..3000), 1..4000),
        ) {
            let hash = |k| hash(k, crowded);
            let mut idx = HashIndex::default();
            let mut model: HashMap<u16, u32> = HashMap::new();
            let mut next = 0u32;
            for (add, k) in ops {
                if add && !model.contains_key(&k) {
                    idx.insert(hash(k), next);
                    model.insert(k, next);
                    next += 1;
                } else if !add {
                    let had = model.remove(&k);
                    prop_assert_eq!(idx.remove(hash(k), had.unwrap_or(u32::MAX - 1)), had.is_some());
                }
            }
            prop_assert_eq!(idx.len(), model.len());
            for (k, slot) in &model {
                prop_assert!(idx.candidates(hash(*k)).any(|s| s == *slot), "key {} lost", k);
            }
            let mut all: Vec<u32> = idx.slots().collect();
            let mut want: Vec<u32> = model.values().copied().collect();
            all.sort_unstable();
            want.sort_unstable();
            prop_assert_eq!(all, want);
        }
    }
}
