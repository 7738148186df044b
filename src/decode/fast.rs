//! The common case, read straight from the bytes: Ethernet (untagged or up to
//! two 802.1Q tags) or raw IP carrying an unfragmented TCP segment in IPv4 or
//! in IPv6 without extension headers, whole or (snaplen) cut anywhere after
//! the TCP header's fixed 20 bytes. Why by hand: this runs on every packet, and etherparse's
//! validating slices cost several times more than the few fixed-offset reads
//! needed here. Anything unusual (cooked captures,
//! frames cut inside the headers, an IP length beyond the bytes without
//! snaplen, fragments, IP options that do not add up, extension headers)
//! returns `None` and takes etherparse's lax path, which handles everything;
//! a property test checks both paths agree wherever this one answers.

use super::{LinkType, Packet};
use crate::wire::{be16, be32, Flags, Segment, Seq, TcpOptions};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const ETH_HEADER: usize = 14;
const VLAN_TAG: usize = 4;
const IPV6_HEADER: usize = 40;
const TCP: u8 = 6;

/// The common case as a value (for tests).
#[cfg(test)]
pub fn decode(link: LinkType, frame: &[u8], snapped: bool) -> Option<Packet> {
    let mut p = Packet::default();
    decode_into(link, frame, snapped, &mut p).then_some(p)
}

/// Decodes into `out`, field by field, when this path applies (`out` is left
/// partly written otherwise). `snapped` as for `super::decode`: only then is
/// an IP length beyond the captured bytes believed.
#[inline]
pub fn decode_into(link: LinkType, frame: &[u8], snapped: bool, out: &mut Packet) -> bool {
    parse(link, frame, snapped, out).is_some()
}

#[inline(always)]
fn parse(link: LinkType, frame: &[u8], snapped: bool, out: &mut Packet) -> Option<()> {
    let mut vlan = [0u16; 2];
    let ip = match link {
        LinkType::Ethernet => {
            let mut at = 12;
            let mut tags = 0;
            loop {
                match be16(frame.get(..at + 2)?, at) {
                    0x0800 | 0x86dd => break,
                    0x8100 | 0x88a8 if tags < 2 => {
                        vlan[tags] = be16(frame.get(..at + 4)?, at + 2) & 0x0fff;
                        tags += 1;
                        at += VLAN_TAG;
                    }
                    _ => return None,
                }
            }
            debug_assert_eq!(at, ETH_HEADER - 2 + tags * VLAN_TAG);
            &frame[at + 2..]
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => frame,
        _ => return None,
    };
    // `tcp` is what was captured of the segment, `declared` its length per the IP header.
    let (src, dst, tcp, declared, ttl) = match ip.first()? >> 4 {
        4 => {
            let ihl = (ip[0] & 0x0f) as usize * 4;
            let h = ip.get(..20)?;
            let total = be16(h, 2) as usize;
            // MF set or a fragment offset: a fragment, for the lax path to count.
            let fragment = be16(h, 6) & 0x3fff != 0;
            if ihl < 20 || h[9] != TCP || fragment || total < ihl || ihl > ip.len() || (total > ip.len() && !snapped) {
                return None;
            }
            let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
            let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
            (src, dst, &ip[ihl..total.min(ip.len())], total - ihl, h[8])
        }
        6 => {
            let h = ip.get(..IPV6_HEADER)?;
            let total = IPV6_HEADER + be16(h, 4) as usize;
            if h[6] != TCP || total == IPV6_HEADER || (total > ip.len() && !snapped) {
                return None;
            }
            let addr = |at: usize| IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&h[at..at + 16]).unwrap()));
            (
                addr(8),
                addr(24),
                &ip[IPV6_HEADER..total.min(ip.len())],
                total - IPV6_HEADER,
                h[7],
            )
        }
        _ => return None,
    };
    tcp_into(tcp, declared, snapped, &mut out.tcp)?;
    out.vlan = vlan;
    out.src = src;
    out.dst = dst;
    out.truncated = declared > tcp.len();
    out.ttl = ttl;
    Some(())
}

/// The TCP segment from `tcp`, what was captured of it, `declared` bytes
/// long per the IP header. A short snaplen (`snapped`) that kept the 20-byte
/// fixed header but cut the options still gives seq, ack, flags, window and
/// the payload length: all the classifier needs; the options are `cut`.
#[inline(always)]
pub(super) fn tcp_into(tcp: &[u8], declared: usize, snapped: bool, seg: &mut Segment) -> Option<()> {
    let t = tcp.get(..20)?;
    let doff = (t[12] >> 4) as usize * 4;
    let cut = doff > tcp.len();
    if doff < 20 || doff > declared || (cut && !snapped) {
        return None;
    }
    seg.src_port = be16(t, 0);
    seg.dst_port = be16(t, 2);
    seg.seq = Seq(be32(t, 4));
    seg.ack = Seq(be32(t, 8));
    seg.flags = Flags(t[13]);
    seg.window = be16(t, 14);
    seg.payload_len = (declared - doff) as u32;
    if cut {
        seg.first_byte = None;
        seg.options = TcpOptions::cut();
    } else {
        seg.first_byte = tcp[doff..].first().copied();
        seg.options = TcpOptions::parse(&tcp[20..doff]);
    }
    Some(())
}
