//! A TCP segment reduced to what keepalive analysis needs. Built from
//! etherparse's zero-copy `TcpSlice`; plain `Copy` data, no allocation.

use super::seq::Seq;
use etherparse::{TcpOptionElement, TcpOptionsIterator};

/// TCP header flags as the wire byte 13.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(pub u8);

impl Flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    pub fn syn(self) -> bool {
        self.has(Self::SYN)
    }
    pub fn fin(self) -> bool {
        self.has(Self::FIN)
    }
    pub fn rst(self) -> bool {
        self.has(Self::RST)
    }
    pub fn ack(self) -> bool {
        self.has(Self::ACK)
    }

    /// tcpdump-style letters, e.g. `S.` for SYN+ACK, `R` for a bare RST.
    pub fn letters(self) -> &'static str {
        const NAMES: [(u8, &str); 12] = [
            (Flags::SYN | Flags::ACK, "S."),
            (Flags::SYN, "S"),
            (Flags::FIN | Flags::PSH | Flags::ACK, "FP."),
            (Flags::FIN | Flags::ACK, "F."),
            (Flags::FIN, "F"),
            (Flags::RST | Flags::ACK, "R."),
            (Flags::RST, "R"),
            (Flags::PSH | Flags::ACK, "P."),
            (Flags::PSH, "P"),
            (Flags::ACK, "."),
            (Flags::URG | Flags::ACK, "U."),
            (0, "none"),
        ];
        let core = self.0 & 0x3f;
        NAMES.iter().find(|(bits, _)| *bits == core).map_or("other", |(_, n)| n)
    }
}

/// A Linux peer answers out-of-window segments, 0-byte keepalive probes
/// among them, at most once per this long per socket (`tcp_invalid_ratelimit`).
/// A 1-byte probe's D-SACK answer is not limited.
pub const PEER_ANSWER_RATE_LIMIT_NS: u64 = 500_000_000;

/// Up to four SACK blocks, as the header has room for.
pub const MAX_SACK_BLOCKS: usize = 4;

/// The TCP options keepalive analysis cares about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// (TSval, TSecr)
    pub timestamp: Option<(u32, u32)>,
    pub sack: [(Seq, Seq); MAX_SACK_BLOCKS],
    pub sack_len: u8,
    /// Options could not be parsed to the end (bad length byte, truncation).
    pub malformed: bool,
}

impl TcpOptions {
    pub fn parse(raw: &[u8]) -> TcpOptions {
        let mut o = TcpOptions::default();
        // What nearly every Linux segment carries: NOP, NOP, timestamp.
        if let [1, 1, 8, 10, v @ ..] = raw {
            if v.len() == 8 {
                let val = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                let ecr = u32::from_be_bytes([v[4], v[5], v[6], v[7]]);
                o.timestamp = Some((val, ecr));
                return o;
            }
        }
        for el in TcpOptionsIterator::from_slice(raw) {
            match el {
                Ok(TcpOptionElement::MaximumSegmentSize(v)) => o.mss = Some(v),
                Ok(TcpOptionElement::WindowScale(v)) => o.wscale = Some(v),
                Ok(TcpOptionElement::SelectiveAcknowledgementPermitted) => o.sack_permitted = true,
                Ok(TcpOptionElement::Timestamp(val, ecr)) => o.timestamp = Some((val, ecr)),
                Ok(TcpOptionElement::SelectiveAcknowledgement(first, rest)) => {
                    o.push_sack(first);
                    rest.iter().flatten().for_each(|b| o.push_sack(*b));
                }
                Ok(TcpOptionElement::Noop) => {}
                Err(_) => {
                    o.malformed = true;
                    break;
                }
            }
        }
        o
    }

    fn push_sack(&mut self, (left, right): (u32, u32)) {
        if (self.sack_len as usize) < MAX_SACK_BLOCKS {
            self.sack[self.sack_len as usize] = (Seq(left), Seq(right));
            self.sack_len += 1;
        }
    }

    pub fn sack_blocks(&self) -> &[(Seq, Seq)] {
        &self.sack[..self.sack_len as usize]
    }
}

/// One TCP segment's header facts. `payload_len` is the length the IP header
/// declares, which can exceed what a snaplen-truncated capture holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: Seq,
    pub ack: Seq,
    pub flags: Flags,
    pub window: u16,
    pub payload_len: u32,
    /// First payload byte when captured (1-byte probes carry 0x00 or garbage).
    pub first_byte: Option<u8>,
    pub options: TcpOptions,
}

impl Segment {
    /// Sequence space the segment occupies: payload plus one each for SYN and FIN.
    pub fn seq_len(&self) -> u32 {
        self.payload_len + self.flags.syn() as u32 + self.flags.fin() as u32
    }

    /// The sequence number after this segment.
    pub fn end(&self) -> Seq {
        self.seq.plus(self.seq_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_syn_options() {
        // MSS 1460, SACK-permitted, TS 100/0, NOP, WS 7 — a Linux SYN.
        let raw = [2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 100, 0, 0, 0, 0, 1, 3, 3, 7];
        let o = TcpOptions::parse(&raw);
        assert_eq!(o.mss, Some(1460));
        assert!(o.sack_permitted);
        assert_eq!(o.timestamp, Some((100, 0)));
        assert_eq!(o.wscale, Some(7));
        assert!(!o.malformed);
    }

    #[test]
    fn parses_the_common_timestamp_layout() {
        let o = TcpOptions::parse(&[1, 1, 8, 10, 0, 0, 1, 0, 0, 0, 0, 9]);
        assert_eq!(o.timestamp, Some((256, 9)));
        assert_eq!(o.sack_len, 0);
    }

    #[test]
    fn parses_dsack_block() {
        // NOP NOP SACK [999, 1000) — the D-SACK a Linux peer sends for a 1-byte probe.
        let raw = [1, 1, 5, 10, 0, 0, 3, 231, 0, 0, 3, 232];
        let o = TcpOptions::parse(&raw);
        assert_eq!(o.sack_blocks(), &[(Seq(999), Seq(1000))]);
    }

    #[test]
    fn flags_malformed_options() {
        // A timestamp option that claims 10 bytes but has 4.
        let o = TcpOptions::parse(&[8, 10, 0, 0]);
        assert!(o.malformed);
    }

    #[test]
    fn flag_letters() {
        assert_eq!(Flags(Flags::SYN | Flags::ACK).letters(), "S.");
        assert_eq!(Flags(Flags::RST).letters(), "R");
        assert_eq!(Flags(Flags::PSH | Flags::ACK).letters(), "P.");
    }
}
