//! What one direction of a connection has shown on the wire so far.

use crate::wire::{Segment, Seq};

/// The options a SYN (or SYN-ACK) offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynInfo {
    pub isn: Seq,
    pub wscale: Option<u8>,
    pub timestamps: bool,
    pub sack_permitted: bool,
    pub mss: Option<u16>,
}

/// Per-direction sequence state. Sizes are fixed: no allocation per flow.
#[derive(Clone, Copy, Debug, Default)]
pub struct Direction {
    /// At least one segment was seen in this direction.
    pub seen: bool,
    pub syn: Option<SynInfo>,
    /// Highest sequence number sent plus its length (SND.NXT as seen on the wire).
    pub next_seq: Seq,
    /// Highest acknowledgment this direction has sent (what it has received
    /// of the other direction), and the frame that first carried it.
    pub acked: Option<Seq>,
    pub acked_frame: u64,
    /// Last advertised window (scaled when the shift is known).
    pub window: Option<u32>,
    /// Last (TSval, TSecr); and whether any segment carried a timestamp.
    pub ts: Option<(u32, u32)>,
    pub fin: bool,
    pub rst: bool,
    /// TTL (hop limit) of this direction's last non-RST segment.
    pub ttl: Option<u8>,
    /// Capture time of the last segment sent in this direction.
    pub last_time: u64,
    /// Capture time of the last segment that restarts the other side's
    /// keepalive clock: keepalive and zero-window probes do not (Linux drops
    /// them before `tcp_ack`), everything else does.
    pub last_live_time: Option<u64>,
    /// This direction sent payload in the capture (so a byte at SND.NXT − 1
    /// that was never acknowledged is known to be data).
    pub data_seen: bool,
    pub packets: u64,
    pub payload_bytes: u64,
}

impl Direction {
    /// Takes a segment sent in this direction into account. `wshift` is the
    /// window scale that applies to this direction's non-SYN segments.
    pub fn update(&mut self, seg: &Segment, frame: u64, time: u64, wshift: u8) {
        let f = seg.flags;
        if f.syn() {
            self.syn = Some(SynInfo {
                isn: seg.seq,
                // RFC 7323 §2.3: a shift above 14 is taken as 14.
                wscale: seg.options.wscale.map(|w| w.min(14)),
                timestamps: seg.options.timestamp.is_some(),
                sack_permitted: seg.options.sack_permitted,
                mss: seg.options.mss,
            });
        }
        let end = seg.end();
        self.next_seq = if self.seen { self.next_seq.max(end) } else { end };
        // A RST's ACK and window say nothing about the connection's state (a
        // Linux RST advertises window 0; it is not a zero window).
        if f.rst() {
            self.rst = true;
        } else {
            if f.ack() && self.acked.is_none_or(|a| seg.ack.after(a)) {
                self.acked = Some(seg.ack);
                self.acked_frame = frame;
            }
            let shift = if f.syn() { 0 } else { wshift.min(14) };
            self.window = Some((seg.window as u32) << shift);
        }
        if seg.options.timestamp.is_some() {
            self.ts = seg.options.timestamp;
        }
        self.fin |= f.fin();
        self.seen = true;
        self.last_time = time;
        self.data_seen |= seg.payload_len > 0;
        self.packets += 1;
        self.payload_bytes += seg.payload_len as u64;
    }

    /// Sequence number relative to this direction's ISN, where the SYN was seen.
    pub fn relative(&self, seq: Seq) -> Option<u32> {
        self.syn.map(|s| seq.0.wrapping_sub(s.isn.0))
    }
}
