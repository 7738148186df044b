//! What one direction of a connection has shown on the wire so far.

use crate::wire::{Segment, Seq};

/// Which of `Direction`'s optional fields hold a value, and its flags.
mod bit {
    pub const SEEN: u16 = 1;
    pub const SYN: u16 = 1 << 1;
    pub const SYN_WSCALE: u16 = 1 << 2;
    pub const SYN_TS: u16 = 1 << 3;
    pub const ACKED: u16 = 1 << 4;
    pub const WINDOW: u16 = 1 << 5;
    pub const TS: u16 = 1 << 6;
    pub const TTL: u16 = 1 << 7;
    pub const LIVE: u16 = 1 << 8;
    pub const FIN: u16 = 1 << 9;
    pub const RST: u16 = 1 << 10;
    pub const DATA: u16 = 1 << 11;
    pub const SYN_SACK: u16 = 1 << 12;
    pub const SACK: u16 = 1 << 13;
    pub const TIMED: u16 = 1 << 14;
    /// The snaplen cut the SYN's options: what it offered is unknown.
    pub const SYN_CUT: u16 = 1 << 15;
}

/// Per-direction sequence state, 48 bytes: every segment reads both
/// directions of its flow, so they are kept small (optional values are a
/// field plus a bit in `has`, not `Option`s with their padding).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Direction {
    /// Highest sequence number sent plus its length (SND.NXT as seen on the wire).
    pub next_seq: Seq,
    acked: Seq,
    window: u32,
    tsval: u32,
    isn: Seq,
    has: u16,
    wscale: u8,
    ttl: u8,
    last_live_time: u64,
    /// The frame that first carried the highest acknowledgment (`acked`).
    pub acked_frame: u64,
    pub packets: u64,
}

impl Direction {
    #[inline]
    fn is(&self, b: u16) -> bool {
        self.has & b != 0
    }

    /// At least one segment was seen in this direction.
    #[inline]
    pub fn seen(&self) -> bool {
        self.is(bit::SEEN)
    }

    /// The SYN carried the window scale option: its shift (at most 14).
    #[inline]
    pub fn syn_wscale(&self) -> Option<u8> {
        self.is(bit::SYN_WSCALE).then_some(self.wscale)
    }

    /// This direction's SYN was seen, with its options, and offered timestamps.
    #[inline]
    pub fn syn_timestamps(&self) -> Option<bool> {
        self.syn_options_known().then_some(self.is(bit::SYN_TS))
    }

    /// The SYN was seen and the capture kept its options (a short snaplen
    /// may cut them: then what was offered is unknown, not "nothing").
    #[inline]
    fn syn_options_known(&self) -> bool {
        self.has & (bit::SYN | bit::SYN_CUT) == bit::SYN
    }

    /// This direction's SYN was seen and offered SACK.
    #[inline]
    pub fn syn_sack(&self) -> Option<bool> {
        self.syn_options_known().then_some(self.is(bit::SYN_SACK))
    }

    /// This direction has sent SACK blocks.
    #[inline]
    pub fn sack_seen(&self) -> bool {
        self.is(bit::SACK)
    }

    /// A segment of this direction is being timed for its round trip (set
    /// by the owner of the sampler: a bit here, read with the hot state,
    /// says whether the sampler needs a look).
    #[inline]
    pub fn timed(&self) -> bool {
        self.is(bit::TIMED)
    }

    pub fn set_timed(&mut self, on: bool) {
        if on {
            self.has |= bit::TIMED;
        } else {
            self.has &= !bit::TIMED;
        }
    }

    /// The ISN of this direction's SYN, when seen.
    #[inline]
    pub fn isn(&self) -> Option<Seq> {
        self.is(bit::SYN).then_some(self.isn)
    }

    /// Highest acknowledgment this direction has sent (what it has received
    /// of the other direction).
    #[inline]
    pub fn acked(&self) -> Option<Seq> {
        self.is(bit::ACKED).then_some(self.acked)
    }

    /// Last advertised window (scaled when the shift is known).
    #[inline]
    pub fn window(&self) -> Option<u32> {
        self.is(bit::WINDOW).then_some(self.window)
    }

    /// Takes this direction's next segment (frame `frame`), seen ahead of its
    /// turn, as what it has acknowledged and advertised so far
    /// (`classify::answered_ahead`).
    pub fn acked_ahead(&mut self, next: &Segment, frame: u64) {
        self.acked = next.ack;
        self.acked_frame = frame;
        self.window = next.window as u32;
        self.has |= bit::ACKED | bit::WINDOW;
    }

    /// What the other side's answer, seen ahead, says of this direction: its
    /// SND.NXT is `next` (`classify::answered_ahead`).
    pub fn sent_ahead(&mut self, next: Seq) {
        if self.has & bit::SEEN == 0 {
            self.next_seq = next;
            self.has |= bit::SEEN;
        }
    }

    /// TSval of the last segment that carried a timestamp.
    #[inline]
    pub fn tsval(&self) -> Option<u32> {
        self.is(bit::TS).then_some(self.tsval)
    }

    /// TTL (hop limit) of this direction's last non-RST segment.
    #[inline]
    pub fn ttl(&self) -> Option<u8> {
        self.is(bit::TTL).then_some(self.ttl)
    }

    /// Capture time of the last segment that restarts the other side's
    /// keepalive clock: keepalive and zero-window probes do not (Linux drops
    /// them before `tcp_ack`), everything else does.
    #[inline]
    pub fn last_live_time(&self) -> Option<u64> {
        self.is(bit::LIVE).then_some(self.last_live_time)
    }

    pub fn fin(&self) -> bool {
        self.is(bit::FIN)
    }

    pub fn rst(&self) -> bool {
        self.is(bit::RST)
    }

    /// This direction sent payload in the capture (so a byte at SND.NXT − 1
    /// that was never acknowledged is known to be data).
    #[inline]
    pub fn data_seen(&self) -> bool {
        self.is(bit::DATA)
    }

    /// Takes a segment sent in this direction into account. `wshift` is the
    /// window scale that applies to this direction's non-SYN segments; `ttl`
    /// the segment's; `live` its time, unless it does not restart the other
    /// side's keepalive clock (a probe).
    /// Inlined: one caller, on every segment.
    #[inline(always)]
    pub fn update(&mut self, seg: &Segment, frame: u64, wshift: u8, ttl: u8, live: Option<u64>) {
        let f = seg.flags;
        // The presence bits, written back once.
        let mut has = self.has;
        if f.syn() {
            let o = &seg.options;
            self.isn = seg.seq;
            // RFC 7323 §2.3: a shift above 14 is taken as 14.
            self.wscale = o.wscale.map_or(0, |w| w.min(14));
            has &= !(bit::SYN_WSCALE | bit::SYN_TS | bit::SYN_SACK | bit::SYN_CUT);
            has |= bit::SYN
                | if o.cut { bit::SYN_CUT } else { 0 }
                | if o.wscale.is_some() { bit::SYN_WSCALE } else { 0 }
                | if o.timestamp.is_some() { bit::SYN_TS } else { 0 }
                | if o.sack_permitted { bit::SYN_SACK } else { 0 };
        }
        // A RST occupies no sequence space, and one from elsewhere on the path
        // may carry any seq: it moves SND.NXT only when nothing else was seen.
        if has & bit::SEEN == 0 {
            self.next_seq = seg.end();
        } else if !f.rst() {
            self.next_seq = self.next_seq.max(seg.end());
        }
        // A RST's ACK, window and TTL say nothing about the connection's state
        // (a Linux RST advertises window 0; it is not a zero window).
        if f.rst() {
            has |= bit::RST;
        } else {
            if f.ack() && (has & bit::ACKED == 0 || seg.ack.after(self.acked)) {
                self.acked = seg.ack;
                self.acked_frame = frame;
                has |= bit::ACKED;
            }
            let shift = if f.syn() { 0 } else { wshift.min(14) };
            self.window = (seg.window as u32) << shift;
            self.ttl = ttl;
            has |= bit::WINDOW | bit::TTL;
        }
        if let Some((tsval, _)) = seg.options.timestamp {
            self.tsval = tsval;
            has |= bit::TS;
        }
        if let Some(t) = live {
            self.last_live_time = t;
            has |= bit::LIVE;
        }
        if f.fin() {
            has |= bit::FIN;
        }
        if seg.payload_len > 0 {
            has |= bit::DATA;
        }
        if seg.options.sack_len > 0 {
            has |= bit::SACK;
        }
        self.has = has | bit::SEEN;
        self.packets += 1;
    }

    /// Sequence number relative to this direction's ISN, where the SYN was seen.
    #[inline]
    pub fn relative(&self, seq: Seq) -> Option<u32> {
        self.isn().map(|isn| seq.0.wrapping_sub(isn.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Flags, TcpOptions};

    fn seg(flags: u8, seq: u32, ack: u32, len: u32) -> Segment {
        Segment {
            seq: Seq(seq),
            ack: Seq(ack),
            flags: Flags(flags),
            window: 100,
            payload_len: len,
            ..Segment::default()
        }
    }

    #[test]
    fn optional_fields_are_empty_until_set() {
        let d = Direction::default();
        assert!(!d.seen());
        assert_eq!((d.isn(), d.syn_wscale(), d.syn_timestamps()), (None, None, None));
        assert_eq!((d.acked(), d.window(), d.tsval()), (None, None, None));
        assert_eq!((d.ttl(), d.last_live_time(), d.relative(Seq(5))), (None, None, None));
        assert_eq!(std::mem::size_of::<Direction>(), 48);
    }

    /// A SYN whose options the snaplen cut offered what is unknown, not
    /// nothing: negotiation then goes by what later segments carry.
    #[test]
    fn a_syn_with_cut_options_offered_what_is_unknown() {
        let mut d = Direction::default();
        let mut syn = seg(0x02, 1000, 0, 0);
        syn.options = TcpOptions::cut();
        d.update(&syn, 1, 0, 64, Some(10));
        assert_eq!(
            (d.isn(), d.syn_timestamps(), d.syn_sack()),
            (Some(Seq(1000)), None, None)
        );
        // A later SYN (retransmitted, whole) settles it.
        syn.options = TcpOptions {
            timestamp: Some((7, 0)),
            ..TcpOptions::default()
        };
        d.update(&syn, 2, 0, 64, Some(11));
        assert_eq!((d.syn_timestamps(), d.syn_sack()), (Some(true), Some(false)));
    }

    #[test]
    fn syn_then_data_then_rst() {
        let mut d = Direction::default();
        let mut syn = seg(0x02, 1000, 0, 0);
        syn.options = TcpOptions {
            mss: Some(1460),
            wscale: Some(20),
            timestamp: Some((7, 0)),
            ..TcpOptions::default()
        };
        d.update(&syn, 1, 7, 64, Some(10));
        assert_eq!(
            (d.isn(), d.syn_wscale(), d.syn_timestamps()),
            (Some(Seq(1000)), Some(14), Some(true))
        );
        assert_eq!(
            (d.next_seq, d.window(), d.tsval(), d.acked()),
            (Seq(1001), Some(100), Some(7), None)
        );
        d.update(&seg(0x18, 1001, 500, 10), 2, 7, 64, None);
        assert_eq!((d.next_seq, d.acked(), d.acked_frame), (Seq(1011), Some(Seq(500)), 2));
        assert_eq!(
            (d.window(), d.relative(Seq(1011)), d.data_seen()),
            (Some(100 << 7), Some(11), true)
        );
        // An older ACK does not move `acked`; a RST's window is not recorded.
        d.update(&seg(0x14, 1011, 400, 0), 3, 7, 9, Some(30));
        assert_eq!(
            (d.acked(), d.acked_frame, d.window(), d.rst()),
            (Some(Seq(500)), 2, Some(100 << 7), true)
        );
        assert_eq!((d.packets, d.fin(), d.tsval()), (3, false, Some(7)));
        // A RST's TTL is not the direction's usual one; the live time is the
        // last segment's that was passed one (the data segment was not).
        assert_eq!((d.ttl(), d.last_live_time()), (Some(64), Some(30)));
        // A SYN without options clears what the first one offered.
        d.update(&seg(0x02, 9, 0, 0), 4, 0, 64, None);
        assert_eq!(
            (d.isn(), d.syn_wscale(), d.syn_timestamps()),
            (Some(Seq(9)), None, Some(false))
        );
    }
}
