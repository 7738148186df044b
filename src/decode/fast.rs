//! The common case without the lax slicer's copies: Ethernet (untagged) or
//! raw IP carrying a whole, unfragmented TCP segment in IPv4 or in IPv6
//! without extension headers. Parsing is etherparse's header slices; anything
//! else (VLAN tags, cooked captures, truncation, fragments, extension
//! headers) returns `None` and takes the lax path, which handles everything.

use super::{LinkType, Packet};
use crate::wire::{Flags, Segment, Seq, TcpOptions};
use etherparse::{IpNumber, Ipv4HeaderSlice, Ipv6HeaderSlice, TcpHeaderSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const ETH_HEADER: usize = 14;
const IPV6_HEADER: usize = 40;

pub fn decode(link: LinkType, frame: &[u8]) -> Option<Packet> {
    let ip = match link {
        LinkType::Ethernet => match frame.get(12..14)? {
            [0x08, 0x00] | [0x86, 0xdd] => &frame[ETH_HEADER..],
            _ => return None,
        },
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => frame,
        _ => return None,
    };
    let (src, dst, tcp, ttl) = match ip.first()? >> 4 {
        4 => {
            let h = Ipv4HeaderSlice::from_slice(ip).ok()?;
            let total = h.total_len() as usize;
            if h.protocol() != IpNumber::TCP
                || h.is_fragmenting_payload()
                || total < h.slice().len()
                || total > ip.len()
            {
                return None;
            }
            let src = IpAddr::V4(Ipv4Addr::from(h.source()));
            let dst = IpAddr::V4(Ipv4Addr::from(h.destination()));
            (src, dst, &ip[h.slice().len()..total], h.ttl())
        }
        6 => {
            let h = Ipv6HeaderSlice::from_slice(ip).ok()?;
            let total = IPV6_HEADER + h.payload_length() as usize;
            if h.next_header() != IpNumber::TCP || total == IPV6_HEADER || total > ip.len() {
                return None;
            }
            let src = IpAddr::V6(Ipv6Addr::from(h.source()));
            let dst = IpAddr::V6(Ipv6Addr::from(h.destination()));
            (src, dst, &ip[IPV6_HEADER..total], h.hop_limit())
        }
        _ => return None,
    };
    let t = TcpHeaderSlice::from_slice(tcp).ok()?;
    let payload = &tcp[t.slice().len()..];
    Some(Packet {
        vlan: [0, 0],
        src,
        dst,
        tcp: Segment {
            src_port: t.source_port(),
            dst_port: t.destination_port(),
            seq: Seq(t.sequence_number()),
            ack: Seq(t.acknowledgment_number()),
            flags: Flags(t.slice()[13]),
            window: t.window_size(),
            payload_len: payload.len() as u32,
            first_byte: payload.first().copied(),
            options: TcpOptions::parse(t.options()),
        },
        truncated: false,
        ttl,
    })
}
