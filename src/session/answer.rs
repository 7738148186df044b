//! Is this segment the answer to a probe, and to which (docs/tcp-keepalive.md §3, §9, §10, §11).

use crate::wire::{Segment, Seq};

/// `seg`, from the peer, is the ACK that answers a probe at `probe_seq`: no
/// SYN, FIN, RST or data, acknowledging the probe's byte + 1, and (when known)
/// sent from the peer's current sequence number `peer_next`, as a duplicate
/// ACK is. Its window may have changed: that is still the answer. A D-SACK
/// block for other bytes says it answers a duplicate of those (data resent
/// on a slow path), not the probe, whose only D-SACK is its own byte.
#[inline]
pub fn is_ack_answer(seg: &Segment, probe_seq: Seq, peer_next: Option<Seq>) -> bool {
    let f = seg.flags;
    f.ack()
        && !(f.syn() || f.fin() || f.rst())
        && seg.payload_len == 0
        && seg.ack == probe_seq.plus(1)
        && peer_next.is_none_or(|n| seg.seq == n)
        && seg
            .options
            .sack_blocks()
            .first()
            .is_none_or(|b| b.1.after(seg.ack) || *b == (probe_seq, probe_seq.plus(1)))
}

/// `seg`, from the peer, is a RST answering a probe whose ACK field was
/// `probe_ack`: a host without the connection answers a segment that carries
/// an ACK with a RST whose seq is that ACK (RFC 9293 §3.10.7.1).
#[inline]
pub fn is_rst_answer(seg: &Segment, probe_ack: Seq) -> bool {
    seg.flags.rst() && seg.seq == probe_ack
}

/// The answer carries a D-SACK block for the probe's byte (RFC 2883 §4): the
/// first SACK block starts at the probe's seq and lies below the cumulative ACK.
#[inline]
pub fn dsack(seg: &Segment, probe_seq: Seq) -> bool {
    seg.options
        .sack_blocks()
        .first()
        .is_some_and(|b| b.0 == probe_seq && !b.1.after(seg.ack))
}

/// A probe still waiting for its answer: when it left, and its TSval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub time: u64,
    pub tsval: Option<u32>,
}

/// Which of the probes still waiting (`cands`, oldest first) an answer seen at
/// `at` answers, when the path's round trip can be longer than the interval
/// between probes and several are in flight at once:
/// 1. the one whose TSval the answer's TSecr echoes, when exactly one does. A
///    peer echoes the TSval of the latest segment it took in window (RFC 7323
///    §4.3): a 1-byte probe is, so its answer names it; a 0-byte probe is not,
///    and a Linux peer's answer to it echoes an older segment, matching none;
/// 2. else, when the session's round trip `rtt` is known (its handshake, or
///    the previous answer), the probe whose round trip would come closest to
///    it: answers come back in the order the probes left, one round trip
///    later, and a probe that was lost is passed over;
/// 3. else the latest: with nothing to go on, a lost probe is likelier than a
///    round trip longer than the interval.
///
/// Probes sent after `at` cannot be answered by it.
pub fn pick(cands: &[Candidate], at: u64, tsecr: Option<u32>, rtt: Option<u64>) -> Option<usize> {
    let sent = cands.iter().take_while(|c| c.time <= at).count();
    let cands = &cands[..sent];
    if let Some(ecr) = tsecr {
        let mut echoed = cands.iter().enumerate().filter(|(_, c)| c.tsval == Some(ecr));
        if let (Some((i, _)), None) = (echoed.next(), echoed.next()) {
            return Some(i);
        }
    }
    match rtt {
        Some(r) => (0..cands.len()).min_by_key(|&i| (at - cands[i].time).abs_diff(r)),
        None => cands.len().checked_sub(1),
    }
}

/// A probe sent at `sent` is given up on at `now` (the next probe is due):
/// more than two round trips old, or at once when no round trip is known.
/// Until then it may still be answered (a path slower than the interval).
#[inline]
pub fn overdue(sent: u64, now: u64, rtt: Option<u64>) -> bool {
    rtt.is_none_or(|r| now.saturating_sub(sent) > r.saturating_mul(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Flags, TcpOptions};

    const S: u64 = 1_000_000_000;

    fn seg(flags: u8, seq: u32, ack: u32, len: u32) -> Segment {
        Segment {
            seq: Seq(seq),
            ack: Seq(ack),
            flags: Flags(flags),
            payload_len: len,
            ..Segment::default()
        }
    }

    #[test]
    fn the_answer_is_a_bare_ack_of_the_byte_after_the_probe() {
        let probe_seq = Seq(1000);
        assert!(is_ack_answer(
            &seg(Flags::ACK, 5001, 1001, 0),
            probe_seq,
            Some(Seq(5001))
        ));
        assert!(is_ack_answer(&seg(Flags::ACK, 5001, 1001, 0), probe_seq, None));
        // Not from the peer's current seq, carrying data, a FIN, acking something else.
        assert!(!is_ack_answer(
            &seg(Flags::ACK, 5000, 1001, 0),
            probe_seq,
            Some(Seq(5001))
        ));
        assert!(!is_ack_answer(&seg(Flags::ACK, 5001, 1001, 1), probe_seq, None));
        assert!(!is_ack_answer(
            &seg(Flags::ACK | Flags::FIN, 5001, 1001, 0),
            probe_seq,
            None
        ));
        assert!(!is_ack_answer(&seg(Flags::ACK, 5001, 1000, 0), probe_seq, None));
        assert!(!is_ack_answer(&seg(0, 5001, 1001, 0), probe_seq, None));
        // A D-SACK of other bytes answers their duplicate; of the probe's byte, the probe.
        let mut dup = seg(Flags::ACK, 5001, 1001, 0);
        dup.options.sack[0] = (Seq(996), Seq(1001));
        dup.options.sack_len = 1;
        assert!(!is_ack_answer(&dup, probe_seq, None));
        dup.options.sack[0] = (Seq(1000), Seq(1001));
        assert!(is_ack_answer(&dup, probe_seq, None));
        assert!(is_rst_answer(&seg(Flags::RST, 5001, 0, 0), Seq(5001)));
        assert!(!is_rst_answer(&seg(Flags::RST, 5000, 0, 0), Seq(5001)));
    }

    #[test]
    fn dsack_is_the_first_block_below_the_ack() {
        let mut s = seg(Flags::ACK, 5001, 1001, 0);
        s.options = TcpOptions {
            sack: [
                (Seq(1000), Seq(1001)),
                (Seq(0), Seq(0)),
                (Seq(0), Seq(0)),
                (Seq(0), Seq(0)),
            ],
            sack_len: 1,
            ..TcpOptions::default()
        };
        assert!(dsack(&s, Seq(1000)));
        assert!(!dsack(&s, Seq(999)));
        // A block above the cumulative ACK is an ordinary SACK, not a duplicate.
        s.ack = Seq(1000);
        assert!(!dsack(&s, Seq(1000)));
    }

    #[test]
    fn a_probe_is_overdue_after_two_round_trips() {
        assert!(overdue(0, S, None));
        assert!(overdue(0, S, Some(1_000_000)));
        assert!(!overdue(0, S, Some(S)));
        assert!(overdue(0, 3 * S + 1, Some(3 * S / 2)));
    }

    fn c(t: u64, ts: Option<u32>) -> Candidate {
        Candidate { time: t, tsval: ts }
    }

    #[test]
    fn tsecr_names_the_probe_when_exactly_one_matches() {
        let cands = [c(0, Some(10)), c(S, Some(11)), c(2 * S, Some(12))];
        assert_eq!(pick(&cands, 2 * S + 1, Some(11), None), Some(1));
        // An echo of an older segment (a Linux peer's answer to a 0-byte probe):
        // no match, and with no round trip known, the latest.
        assert_eq!(pick(&cands, 2 * S + 1, Some(3), None), Some(2));
        // Two probes sent in the same millisecond carry the same TSval: ambiguous.
        let same = [c(0, Some(10)), c(1, Some(10))];
        assert_eq!(pick(&same, 2, Some(10), Some(1)), Some(1));
    }

    #[test]
    fn without_timestamps_answers_come_in_order_one_round_trip_later() {
        // Round trip 1.5 s, a probe every second: the answer at 1.5 s is the first probe's.
        let cands = [c(0, None), c(S, None)];
        assert_eq!(pick(&cands, 3 * S / 2, None, Some(3 * S / 2)), Some(0));
        // With no round trip known, the latest.
        assert_eq!(pick(&cands, 3 * S / 2, None, None), Some(1));
        // Once a 1.5 s round trip is known, an answer at 2.5 s is the probe of 1 s.
        assert_eq!(pick(&cands, 5 * S / 2, None, Some(3 * S / 2)), Some(1));
        // A lost probe is passed over: 1 ms round trips, an answer 1 ms after the second probe.
        assert_eq!(pick(&cands, S + 1_000_000, None, Some(1_000_000)), Some(1));
        // A probe sent after the answer was seen cannot be its probe; nothing to answer.
        assert_eq!(pick(&[c(5 * S, None)], S, None, None), None);
        assert_eq!(pick(&[], S, Some(1), Some(1)), None);
    }
}
