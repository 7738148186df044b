//! What the handshake settled (docs/tcp-keepalive.md §8).

/// Timestamps are in use (RFC 7323 §3.2): both SYNs carried TSopt. `syn` is
/// each SYN's TSopt when that SYN was seen. Without both SYNs, a TSopt seen in
/// either direction says they were negotiated: a stack sends TSopt only then.
pub fn timestamps(syn: [Option<bool>; 2], tsopt_seen: [bool; 2]) -> bool {
    match syn {
        [Some(a), Some(b)] => a && b,
        _ => tsopt_seen[0] || tsopt_seen[1],
    }
}

/// SACK is in use (RFC 2018): both SYNs carried SACK-permitted; without both
/// SYNs, a SACK block seen in either direction says so.
pub fn sack(syn: [Option<bool>; 2], blocks_seen: [bool; 2]) -> bool {
    match syn {
        [Some(a), Some(b)] => a && b,
        _ => blocks_seen[0] || blocks_seen[1],
    }
}

/// The shift that applies to the window field of a direction's non-SYN
/// segments (RFC 7323 §2.2): its own SYN's, when both SYNs carried the window
/// scale option, else none. A shift above 14 is taken as 14 (§2.3).
pub fn window_shift(own_syn_ws: Option<u8>, other_syn_ws: Option<u8>) -> u8 {
    match (own_syn_ws, other_syn_ws) {
        (Some(s), Some(_)) => s.min(14),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_syns_decide_else_what_was_seen() {
        assert!(timestamps([Some(true), Some(true)], [false, false]));
        assert!(!timestamps([Some(true), Some(false)], [true, true]));
        assert!(timestamps([None, Some(true)], [false, true]));
        assert!(!timestamps([None, None], [false, false]));
        assert!(sack([Some(true), Some(true)], [false, false]));
        assert!(!sack([Some(true), Some(false)], [true, false]));
        assert!(sack([None, None], [false, true]));
    }

    #[test]
    fn window_scale_needs_both_syns() {
        assert_eq!(window_shift(Some(7), Some(10)), 7);
        assert_eq!(window_shift(Some(7), None), 0);
        assert_eq!(window_shift(None, Some(7)), 0);
        assert_eq!(window_shift(Some(20), Some(0)), 14);
    }
}
