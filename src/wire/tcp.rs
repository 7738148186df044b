//! A TCP segment reduced to what keepalive analysis needs. Built from
//! etherparse's zero-copy `TcpSlice`; plain `Copy` data, no allocation.

use super::be32;
use super::seq::Seq;

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
    /// The capture's snaplen cut them off: what they held is unknown, not absent.
    pub cut: bool,
}

impl TcpOptions {
    /// Options the capture did not keep.
    pub fn cut() -> TcpOptions {
        TcpOptions {
            cut: true,
            ..TcpOptions::default()
        }
    }

    /// Walks the options (RFC 9293 §3.2): EOL ends them, NOP is one byte,
    /// every other kind carries its length. Unknown kinds (MPTCP, TFO, …) are
    /// skipped. A length that runs past the header, or a known kind with the
    /// wrong length, makes the rest unreadable: `malformed`. By hand rather
    /// than etherparse's iterator: it runs on every packet, and the iterator
    /// gives up on the first unknown kind.
    #[inline]
    pub fn parse(raw: &[u8]) -> TcpOptions {
        // What nearly every Linux segment carries (NOP, NOP, timestamp), or
        // nothing, inline; anything else out of line.
        match raw {
            [1, 1, 8, 10, v @ ..] if v.len() == 8 => TcpOptions {
                timestamp: Some((be32(v, 0), be32(v, 4))),
                ..TcpOptions::default()
            },
            [] => TcpOptions::default(),
            _ => Self::walk(raw),
        }
    }

    #[inline(never)]
    fn walk(raw: &[u8]) -> TcpOptions {
        let mut o = TcpOptions::default();
        let mut i = 0;
        while let Some(&kind) = raw.get(i) {
            match kind {
                0 => break,
                1 => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let len = raw.get(i + 1).map_or(0, |&l| l as usize);
            let Some(v) = raw.get(i + 2..i + len).filter(|_| len >= 2) else {
                o.malformed = true;
                break;
            };
            match (kind, v.len()) {
                (2, 2) => o.mss = Some(u16::from_be_bytes([v[0], v[1]])),
                (3, 1) => o.wscale = Some(v[0]),
                (4, 0) => o.sack_permitted = true,
                (5, n) if n % 8 == 0 && n > 0 => {
                    for b in v.chunks_exact(8) {
                        o.push_sack((be32(b, 0), be32(b, 4)));
                    }
                }
                (8, 8) => o.timestamp = Some((be32(v, 0), be32(v, 4))),
                (2..=5 | 8, _) => {
                    o.malformed = true;
                    break;
                }
                _ => {}
            }
            i += len;
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
    use proptest::prelude::*;

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
    fn skips_unknown_kinds() {
        // MPTCP (30, 4 bytes), then NOP NOP TS: the timestamp still counts.
        let o = TcpOptions::parse(&[30, 4, 0, 0, 1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6]);
        assert_eq!(o.timestamp, Some((5, 6)));
        assert!(!o.malformed);
        // EOL ends the list; what follows is padding.
        let o = TcpOptions::parse(&[0, 8, 10, 0, 0, 0, 5]);
        assert_eq!(o.timestamp, None);
        assert!(!o.malformed);
    }

    #[test]
    fn flags_wrong_lengths() {
        for raw in [
            &[2, 3, 5][..],
            &[8, 9, 0, 0, 0, 0, 0, 0, 0],
            &[5, 6, 0, 0, 0, 0],
            &[3, 1],
            &[30, 0],
        ] {
            assert!(TcpOptions::parse(raw).malformed, "{raw:?}");
        }
    }

    /// One well-formed option of a kind kaprobe reads.
    fn option() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(vec![1u8]),
            any::<u16>().prop_map(|m| vec![2, 4, (m >> 8) as u8, m as u8]),
            (0u8..15).prop_map(|w| vec![3, 3, w]),
            Just(vec![4, 2]),
            prop::collection::vec(any::<u8>(), 8).prop_map(|b| [vec![8, 10], b].concat()),
            (1usize..4)
                .prop_flat_map(|n| prop::collection::vec(any::<u8>(), 8 * n))
                .prop_map(|b| [vec![5, 2 + b.len() as u8], b].concat()),
        ]
    }

    proptest! {
        /// Lists of well-formed options, cut anywhere, read as etherparse reads them.
        #[test]
        fn agrees_with_etherparse(opts in prop::collection::vec(option(), 0..6), cut in any::<prop::sample::Index>()) {
            use etherparse::{TcpOptionElement as E, TcpOptionsIterator};
            let all = opts.concat();
            let raw = &all[..cut.index(all.len() + 1)];
            let mut want = TcpOptions::default();
            for el in TcpOptionsIterator::from_slice(raw) {
                match el {
                    Ok(E::MaximumSegmentSize(v)) => want.mss = Some(v),
                    Ok(E::WindowScale(v)) => want.wscale = Some(v),
                    Ok(E::SelectiveAcknowledgementPermitted) => want.sack_permitted = true,
                    Ok(E::Timestamp(v, e)) => want.timestamp = Some((v, e)),
                    Ok(E::SelectiveAcknowledgement(first, rest)) => {
                        want.push_sack(first);
                        rest.iter().flatten().for_each(|b| want.push_sack(*b));
                    }
                    Ok(E::Noop) => {}
                    Err(_) => {
                        want.malformed = true;
                        break;
                    }
                }
            }
            prop_assert_eq!(TcpOptions::parse(raw), want);
        }
    }

    #[test]
    fn flag_letters() {
        assert_eq!(Flags(Flags::SYN | Flags::ACK).letters(), "S.");
        assert_eq!(Flags(Flags::RST).letters(), "R");
        assert_eq!(Flags(Flags::PSH | Flags::ACK).letters(), "P.");
    }
}
