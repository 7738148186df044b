//! Bounded statistics of a duration: count, min, max, mean, and the median of
//! the most recent `KEPT` values. Fixed size, so memory per flow stays bounded.

const KEPT: usize = 16;

/// Three cache lines: count, min, max and sum, then the recent values.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
pub struct Samples {
    n: u32,
    min: u64,
    max: u64,
    sum: u128,
    recent: [u64; KEPT],
}

impl Samples {
    /// Starts loading what the next `push` writes: all of it, since which
    /// recent slot that is depends on `n`, and reading `n` here would wait
    /// for the very line being prefetched.
    #[inline]
    pub fn prefetch(&self) {
        crate::flow::prefetch::lines(self, std::mem::size_of::<Self>());
    }

    pub fn push(&mut self, v: u64) {
        if self.n == 0 || v < self.min {
            self.min = v;
        }
        self.max = self.max.max(v);
        self.sum += v as u128;
        self.recent[self.n as usize % KEPT] = v;
        self.n = self.n.saturating_add(1);
    }

    pub fn len(&self) -> u32 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn min(&self) -> Option<u64> {
        (self.n > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<u64> {
        (self.n > 0).then_some(self.max)
    }

    pub fn mean(&self) -> Option<u64> {
        (self.n > 0).then(|| (self.sum / self.n as u128) as u64)
    }

    /// Median of the recent values: robust to one late timer or lost answer.
    pub fn median(&self) -> Option<u64> {
        let k = (self.n as usize).min(KEPT);
        if k == 0 {
            return None;
        }
        let mut v = self.recent;
        let v = &mut v[..k];
        v.sort_unstable();
        Some(if k % 2 == 1 {
            v[k / 2]
        } else {
            (v[k / 2 - 1] + v[k / 2]) / 2
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_ignores_one_outlier() {
        let mut s = Samples::default();
        for v in [10, 10, 11, 500, 10] {
            s.push(v);
        }
        assert_eq!(s.median(), Some(10));
        assert_eq!(s.min(), Some(10));
        assert_eq!(s.max(), Some(500));
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn keeps_only_recent_values_for_the_median() {
        let mut s = Samples::default();
        (0..100).for_each(|_| s.push(1));
        (0..KEPT).for_each(|_| s.push(9));
        assert_eq!(s.median(), Some(9));
        assert_eq!(s.min(), Some(1));
        assert!(Samples::default().median().is_none());
    }
}
