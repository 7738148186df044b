//! A side's round trip, measured the way TCP measures it (RFC 6298 §3): one
//! segment timed at a time — the SYN (or SYN/ACK), then the first data
//! segment — until the other side acknowledges it. For a retransmitted
//! segment the acknowledgment's TSecr says which transmission it answers
//! (RFC 7323 §4); without timestamps it is taken for the first one's (an
//! upper bound, where Karn's rule would give nothing): on a path slower than
//! the initial RTO every early segment is sent twice, and the round trip is
//! what pairs answers with probes when it is longer than the interval
//! (`answer::pick`).

use crate::wire::{Segment, Seq};

/// Segments timed per side: the handshake and the first data segment.
const TIMED: u8 = 2;

#[derive(Clone, Copy, Debug, Default)]
struct Sent {
    at: u64,
    tsval: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Timed {
    /// The sequence number after the timed segment: an ACK of it or beyond answers it.
    end: Seq,
    first: Sent,
    /// The latest retransmission, if any.
    again: Option<Sent>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct RttSampler {
    timed: Option<Timed>,
    taken: u8,
    /// The side's first data segment has been timed (or passed).
    data_timed: bool,
    /// The latest round trip measured.
    pub sample: Option<u64>,
}

impl RttSampler {
    /// Something is being timed (the caller need only pass segments while it is,
    /// and segments that could start a timing: a SYN, the side's first data;
    /// any other segment is ignored, so passing every one gives the same samples).
    pub fn busy(&self) -> bool {
        self.timed.is_some()
    }

    /// A segment this side sent at `t`.
    pub fn sent(&mut self, seg: &Segment, t: u64) {
        if seg.seq_len() == 0 || seg.flags.rst() {
            return;
        }
        let now = Sent {
            at: t,
            tsval: seg.options.timestamp.map(|ts| ts.0),
        };
        match &mut self.timed {
            // The timed segment again: a retransmission.
            Some(tm) if !seg.end().after(tm.end) => tm.again = Some(now),
            Some(_) => {}
            // Only a SYN (or SYN/ACK) and the side's first data segment are timed.
            None if self.taken < TIMED && (seg.flags.syn() || (seg.payload_len > 0 && !self.data_timed)) => {
                self.taken += 1;
                self.data_timed |= seg.payload_len > 0;
                self.timed = Some(Timed {
                    end: seg.end(),
                    first: now,
                    again: None,
                });
            }
            None => {}
        }
    }

    /// A segment the other side sent at `t`: a sample when it acknowledges the timed one.
    pub fn acked(&mut self, seg: &Segment, t: u64) {
        let Some(tm) = self.timed.filter(|tm| seg.flags.ack() && !seg.ack.before(tm.end)) else {
            return;
        };
        self.timed = None;
        let ecr = seg.options.timestamp.map(|ts| ts.1);
        let from = match (tm.again, ecr) {
            (None, _) | (Some(_), None) => Some(tm.first),
            (Some(again), Some(_)) => [tm.first, again].into_iter().find(|s| s.tsval == ecr),
        };
        if let Some(s) = from {
            self.sample = Some(t.saturating_sub(s.at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Flags, TcpOptions};

    const MS: u64 = 1_000_000;

    fn seg(flags: u8, seq: u32, ack: u32, len: u32, ts: Option<(u32, u32)>) -> Segment {
        Segment {
            seq: Seq(seq),
            ack: Seq(ack),
            flags: Flags(flags),
            payload_len: len,
            options: TcpOptions {
                timestamp: ts,
                ..TcpOptions::default()
            },
            ..Segment::default()
        }
    }

    #[test]
    fn handshake_then_first_data() {
        let mut r = RttSampler::default();
        r.sent(&seg(Flags::SYN, 100, 0, 0, None), 0);
        assert!(r.busy());
        r.acked(&seg(Flags::SYN | Flags::ACK, 900, 101, 0, None), 1500 * MS);
        assert_eq!(r.sample, Some(1500 * MS));
        r.sent(&seg(Flags::ACK, 101, 901, 0, None), 1500 * MS);
        assert!(!r.busy(), "a bare ACK is not timed");
        r.sent(&seg(Flags::ACK, 101, 901, 5, None), 1501 * MS);
        r.acked(&seg(Flags::ACK, 901, 103, 0, None), 2000 * MS);
        assert!(r.busy(), "a partial ACK does not answer it");
        r.acked(&seg(Flags::ACK, 901, 106, 0, None), 3001 * MS);
        assert_eq!(r.sample, Some(1500 * MS));
        r.sent(&seg(Flags::ACK, 106, 901, 5, None), 4000 * MS);
        assert!(!r.busy(), "two segments are timed, no more");
        // A FIN, or a second data segment, starts nothing even when nothing else was timed.
        let mut r = RttSampler::default();
        r.sent(&seg(Flags::ACK, 101, 901, 5, None), 0);
        r.acked(&seg(Flags::ACK, 901, 106, 0, None), 10 * MS);
        r.sent(&seg(Flags::ACK, 106, 901, 5, None), 20 * MS);
        r.sent(&seg(Flags::ACK | Flags::FIN, 111, 901, 0, None), 20 * MS);
        assert!(!r.busy());
        assert_eq!(r.sample, Some(10 * MS));
    }

    #[test]
    fn a_retransmitted_syn_is_timed_from_the_transmission_tsecr_names() {
        // The SYN waits 1.5 s on the path; the kernel sends it again after 1 s.
        let mut r = RttSampler::default();
        r.sent(&seg(Flags::SYN, 100, 0, 0, Some((10, 0))), 0);
        r.sent(&seg(Flags::SYN, 100, 0, 0, Some((1010, 0))), 1000 * MS);
        r.acked(&seg(Flags::SYN | Flags::ACK, 900, 101, 0, Some((5, 10))), 1500 * MS);
        assert_eq!(r.sample, Some(1500 * MS), "TSecr echoes the first SYN");
        // An echo of neither transmission: no sample.
        let mut r = RttSampler::default();
        r.sent(&seg(Flags::SYN, 100, 0, 0, Some((10, 0))), 0);
        r.sent(&seg(Flags::SYN, 100, 0, 0, Some((1010, 0))), 1000 * MS);
        r.acked(&seg(Flags::SYN | Flags::ACK, 900, 101, 0, Some((5, 7))), 1500 * MS);
        assert_eq!(r.sample, None);
        // Without timestamps: from the first transmission, an upper bound.
        let mut r = RttSampler::default();
        r.sent(&seg(Flags::SYN, 100, 0, 0, None), 0);
        r.sent(&seg(Flags::SYN, 100, 0, 0, None), 1000 * MS);
        r.acked(&seg(Flags::SYN | Flags::ACK, 900, 101, 0, None), 1500 * MS);
        assert_eq!(r.sample, Some(1500 * MS));
    }
}
