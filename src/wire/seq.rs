//! TCP sequence numbers compared modulo 2^32 (RFC 9293 §3.4).

use std::fmt;

/// A sequence or acknowledgment number. Ordering is by signed distance, so a
/// session whose numbers cross 2^32 still compares correctly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seq(pub u32);

impl Seq {
    /// `self + n` with wrap-around.
    pub fn plus(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }

    /// `self - n` with wrap-around.
    pub fn minus(self, n: u32) -> Seq {
        Seq(self.0.wrapping_sub(n))
    }

    /// Signed distance `self - other`; positive when `self` is later.
    pub fn diff(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    pub fn after(self, other: Seq) -> bool {
        self.diff(other) > 0
    }

    pub fn at_or_after(self, other: Seq) -> bool {
        self.diff(other) >= 0
    }

    pub fn before(self, other: Seq) -> bool {
        self.diff(other) < 0
    }

    /// The later of two numbers.
    pub fn max(self, other: Seq) -> Seq {
        if other.after(self) {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_across_wrap() {
        let before_wrap = Seq(u32::MAX - 1);
        let after_wrap = before_wrap.plus(5);
        assert_eq!(after_wrap, Seq(3));
        assert!(after_wrap.after(before_wrap));
        assert!(before_wrap.before(after_wrap));
        assert_eq!(after_wrap.diff(before_wrap), 5);
        assert_eq!(before_wrap.max(after_wrap), after_wrap);
        assert_eq!(Seq(0).minus(1), Seq(u32::MAX));
    }

    #[test]
    fn equal_is_neither_before_nor_after() {
        assert!(!Seq(7).after(Seq(7)));
        assert!(!Seq(7).before(Seq(7)));
        assert!(Seq(7).at_or_after(Seq(7)));
    }
}
