//! A flow's notable events for the text report, bounded so that memory
//! follows flows, not events: the first `HEAD` (how it began) and the last
//! `TAIL` (how it ended, which is where a time-out or a reset is), with a
//! count of those between. `--json` has every event.

use std::collections::VecDeque;

/// Holds `Step`s in a flow; generic so that it can be tested on numbers.
#[derive(Clone, Debug)]
pub struct Timeline<T> {
    head: Vec<T>,
    tail: VecDeque<T>,
    /// Events between the head and the tail, counted and let go.
    skipped: u32,
}

impl<T> Default for Timeline<T> {
    fn default() -> Self {
        Timeline {
            head: Vec::new(),
            tail: VecDeque::new(),
            skipped: 0,
        }
    }
}

impl<T> Timeline<T> {
    /// The first notable events: how keepalive began.
    pub const HEAD: usize = 8;
    /// Room for the last answered rounds, a default Linux give-up (nine
    /// unanswered probes) and the abort RST after it.
    pub const TAIL: usize = 24;

    pub fn push(&mut self, s: T) {
        // Reserved whole, once: growing by doubling would hold up to twice the room.
        if self.head.len() < Self::HEAD {
            if self.head.capacity() == 0 {
                self.head.reserve_exact(Self::HEAD);
            }
            self.head.push(s);
            return;
        }
        if self.tail.capacity() == 0 {
            self.tail.reserve_exact(Self::TAIL);
        }
        if self.tail.len() == Self::TAIL {
            self.tail.pop_front();
            self.skipped += 1;
        }
        self.tail.push_back(s);
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_empty()
    }

    pub fn head(&self) -> &[T] {
        &self.head
    }

    /// Events let go between the head and the tail.
    pub fn skipped(&self) -> u32 {
        self.skipped
    }

    pub fn tail(&self) -> impl Iterator<Item = &T> {
        self.tail.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_and_the_last_and_counts_the_rest() {
        let mut t = Timeline::default();
        assert!(t.is_empty());
        for f in 1..=200u64 {
            t.push(f);
        }
        assert_eq!(t.head(), (1..=8).collect::<Vec<_>>());
        assert_eq!(t.tail().copied().collect::<Vec<_>>(), (177..=200).collect::<Vec<_>>());
        assert_eq!(t.skipped(), 200 - 8 - 24);
    }

    #[test]
    fn a_short_story_is_kept_whole() {
        let mut t = Timeline::default();
        for f in 1..=32u64 {
            t.push(f);
        }
        let all: Vec<u64> = t.head().iter().chain(t.tail()).copied().collect();
        assert_eq!(all, (1..=32).collect::<Vec<_>>());
        assert_eq!(t.skipped(), 0);
    }
}
