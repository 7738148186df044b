//! When a Linux peer's answer rate limit applies (docs/tcp-keepalive.md §3, §6).
//!
//! A Linux socket answers a segment outside its receive window with a
//! duplicate ACK at most once per `tcp_invalid_ratelimit` (500 ms), counted
//! from the last such answer it sent (`tcp_oow_rate_limited()`, per socket
//! `last_oow_ack_time`). A 0-byte probe at RCV.NXT − 1 is outside the window;
//! a 1-byte probe is inside it (its byte ends at RCV.NXT) and is answered by
//! the data path with a D-SACK, never limited — unless its ACK field is old
//! (4.2BSD's RCV.NXT − 1), which may draw a challenge ACK instead, limited too.
//!
//! The peer stamps its limiter when a limited probe *arrives*; the next probe
//! arrives one forward path delay after it was sent, as the earlier one did,
//! so the delay cancels out: the time between the two probes as sent (or
//! captured next to the prober) is the time the peer measures.

pub use crate::wire::tcp::PEER_ANSWER_RATE_LIMIT_NS;

/// A probe of `len` bytes whose ACK field is behind the peer's SND.NXT
/// (`ack_behind`) goes through the peer's limiter.
#[inline]
pub fn probe_is_limited(len: u32, ack_behind: bool) -> bool {
    len == 0 || ack_behind
}

/// The peer's answer to such a probe stamped its limiter: it answered a
/// 0-byte probe, or answered an old ACK without the D-SACK the data path
/// would have added (`sack`: SACK is in use, so a data-path answer would
/// carry one).
#[inline]
pub fn answer_stamps_limiter(len: u32, ack_behind: bool, dsack: bool, sack: bool) -> bool {
    len == 0 || (ack_behind && sack && !dsack)
}

/// A limited probe sent at `probe` falls inside the peer's limit: the peer
/// stamped its limiter for the probe sent at `stamped` (an earlier probe it
/// answered), less than 500 ms before.
#[inline]
pub fn within(stamped: Option<u64>, probe: u64) -> bool {
    stamped.is_some_and(|s| s <= probe && probe - s < PEER_ANSWER_RATE_LIMIT_NS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn zero_byte_and_old_ack_probes_are_limited_one_byte_are_not() {
        assert!(probe_is_limited(0, false));
        assert!(!probe_is_limited(1, false));
        assert!(probe_is_limited(1, true));
        assert!(answer_stamps_limiter(0, false, false, true));
        assert!(!answer_stamps_limiter(1, false, true, true));
        assert!(!answer_stamps_limiter(1, true, true, true));
        // bsd42 before any data: a challenge ACK, no D-SACK although SACK is on.
        assert!(answer_stamps_limiter(1, true, false, true));
        // Without SACK a data-path answer looks the same: not taken as limited.
        assert!(!answer_stamps_limiter(1, true, false, false));
    }

    #[test]
    fn the_limit_counts_from_the_last_answered_limited_probe() {
        // Probes every 200 ms, the first answered: the next two fall inside, the fourth not.
        let stamped = Some(1000 * MS);
        assert!(within(stamped, 1200 * MS));
        assert!(within(stamped, 1400 * MS));
        assert!(!within(stamped, 1500 * MS));
        assert!(!within(stamped, 1600 * MS));
        assert!(!within(None, 1200 * MS));
        // A stamp by a later probe says nothing about an earlier one.
        assert!(!within(stamped, 900 * MS));
    }
}
