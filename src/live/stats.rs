//! Bounded aggregates a run keeps however long it runs and however many
//! sessions it has: round trips (min/avg/max) and a histogram of probe
//! lateness (percentiles).

use super::event::{ms, Lateness, RttStats};

/// Min, sum, max and count of round trips, nanoseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct RttAgg {
    min: u64,
    max: u64,
    sum: u64,
    n: u64,
}

impl RttAgg {
    pub fn add(&mut self, rtt: u64) {
        self.min = if self.n == 0 { rtt } else { self.min.min(rtt) };
        self.max = self.max.max(rtt);
        self.sum = self.sum.saturating_add(rtt);
        self.n += 1;
    }

    pub fn merge(&mut self, o: &RttAgg) {
        if o.n == 0 {
            return;
        }
        self.min = if self.n == 0 { o.min } else { self.min.min(o.min) };
        self.max = self.max.max(o.max);
        self.sum = self.sum.saturating_add(o.sum);
        self.n += o.n;
    }

    pub fn stats(&self) -> Option<RttStats> {
        (self.n > 0).then(|| RttStats {
            min: ms(self.min),
            avg: ms(self.sum / self.n),
            max: ms(self.max),
        })
    }
}

/// Lateness histogram: 1 µs buckets below 10 ms, 1 ms buckets up to 10 s,
/// and the exact maximum.
#[derive(Clone, Debug)]
pub struct LatenessHist {
    fine: Vec<u32>,
    coarse: Vec<u32>,
    over: u64,
    n: u64,
    max: u64,
}

const FINE: u64 = 10_000; // µs
const COARSE: u64 = 10_000; // ms

impl Default for LatenessHist {
    fn default() -> Self {
        LatenessHist {
            fine: vec![0; FINE as usize],
            coarse: vec![0; COARSE as usize],
            over: 0,
            n: 0,
            max: 0,
        }
    }
}

impl LatenessHist {
    /// One probe that left `late` nanoseconds after it was due.
    pub fn add(&mut self, late: u64) {
        let us = late / 1_000;
        if us < FINE {
            self.fine[us as usize] += 1;
        } else if us / 1_000 < COARSE {
            self.coarse[(us / 1_000) as usize] += 1;
        } else {
            self.over += 1;
        }
        self.n += 1;
        self.max = self.max.max(late);
    }

    /// The bucket's upper edge (ns) where the `q` quantile falls.
    fn quantile(&self, q: f64) -> u64 {
        let rank = ((self.n as f64 * q).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, c) in self.fine.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                return ((i as u64 + 1) * 1_000).min(self.max);
            }
        }
        for (i, c) in self.coarse.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                return ((i as u64 + 1) * 1_000_000).min(self.max);
            }
        }
        self.max
    }

    pub fn lateness(&self) -> Option<Lateness> {
        (self.n > 0).then(|| Lateness {
            p50: ms(self.quantile(0.50)),
            p99: ms(self.quantile(0.99)),
            max: ms(self.max),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{LatenessHist, RttAgg};

    #[test]
    fn lateness_percentiles_come_from_the_histogram_and_never_pass_the_maximum() {
        let mut h = LatenessHist::default();
        assert!(h.lateness().is_none());
        // 98 probes 20 µs late, one 500 µs, one 30 ms.
        for _ in 0..98 {
            h.add(20_000);
        }
        h.add(500_000);
        h.add(30_000_000);
        let l = h.lateness().unwrap();
        assert_eq!(l.p50, 0.021);
        assert_eq!(l.p99, 0.501);
        assert_eq!(l.max, 30.0);
        let mut one = LatenessHist::default();
        one.add(7_200_000_000_000);
        assert_eq!(one.lateness().unwrap().p99, 7_200_000.0);
    }

    #[test]
    fn round_trips_merge() {
        let (mut a, mut b) = (RttAgg::default(), RttAgg::default());
        a.add(2_000_000);
        b.add(1_000_000);
        b.add(6_000_000);
        a.merge(&b);
        let s = a.stats().unwrap();
        assert_eq!((s.min, s.avg, s.max), (1.0, 3.0, 6.0));
        assert!(RttAgg::default().stats().is_none());
    }
}
