//! Link layer → IP → TCP. Lax: a frame cut short by snaplen is decoded as far
//! as it goes, and the TCP payload length comes from the IP header, not from
//! what was captured.

mod fast;
mod link;

pub use link::LinkType;

use crate::wire::{Flags, Segment, Seq, TcpOptions};
use etherparse::{EtherType, LaxIpPayloadSlice, LaxLinkExtSlice, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A decoded TCP segment with the addresses and VLAN tags that carried it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// 802.1Q ids, outermost first; 0 where absent.
    pub vlan: [u16; 2],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub tcp: Segment,
    /// The capture holds fewer bytes than the IP header declares.
    pub truncated: bool,
    /// IPv4 TTL or IPv6 hop limit: a RST whose TTL differs from the peer's
    /// other segments was made by something else on the path.
    pub ttl: u8,
}

impl Default for Packet {
    fn default() -> Self {
        let none = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        Packet {
            vlan: [0; 2],
            src: none,
            dst: none,
            tcp: Segment::default(),
            truncated: false,
            ttl: 0,
        }
    }
}

/// Why a frame yields no TCP segment. Not errors: captures hold all kinds of traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not IP, or IP but not TCP.
    NotTcp,
    /// A non-first IP fragment, or a first fragment (reassembly is out of scope).
    Fragment,
    /// Cut short inside the TCP header's fixed 20 bytes (or before it).
    Truncated,
}

const SLL2_HEADER_LEN: usize = 20;
const NULL_HEADER_LEN: usize = 4;

/// Decodes one frame of the given link type. `snapped`: the capture kept
/// fewer bytes than were on the wire (caplen < len), so lengths the IP header
/// declares are believed beyond what was captured. Otherwise the captured
/// bytes are the packet, and an IP length that claims more is wrong.
pub fn decode(link: LinkType, frame: &[u8], snapped: bool) -> Result<Packet, Skip> {
    let mut p = Packet::default();
    decode_into(link, frame, snapped, &mut p).map(|()| p)
}

/// `decode` into `out` (unspecified on error): the analyzer decodes straight
/// into its queue, so the common packet is written once and never copied.
#[inline]
pub fn decode_into(link: LinkType, frame: &[u8], snapped: bool, out: &mut Packet) -> Result<(), Skip> {
    if fast::decode_into(link, frame, snapped, out) {
        return Ok(());
    }
    *out = lax(link, frame, snapped)?;
    Ok(())
}

/// Every frame, through etherparse's lax slicer.
fn lax(link: LinkType, frame: &[u8], snapped: bool) -> Result<Packet, Skip> {
    let sliced = match link {
        // A match, not map_err: the sliced packet is large, and map_err copies it.
        LinkType::Ethernet => match LaxSlicedPacket::from_ethernet(frame) {
            Ok(p) => p,
            Err(_) => return Err(Skip::Truncated),
        },
        LinkType::LinuxSll => {
            // Protocol type at offset 14; the payload follows the 16-byte header.
            let proto = be16(frame, 14).ok_or(Skip::Truncated)?;
            LaxSlicedPacket::from_ether_type(EtherType(proto), &frame[16..])
        }
        LinkType::LinuxSll2 => {
            let proto = be16(frame, 0).ok_or(Skip::Truncated)?;
            let rest = frame.get(SLL2_HEADER_LEN..).ok_or(Skip::Truncated)?;
            LaxSlicedPacket::from_ether_type(EtherType(proto), rest)
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => from_ip(frame)?,
        LinkType::Null | LinkType::Loop => {
            let rest = frame.get(NULL_HEADER_LEN..).ok_or(Skip::Truncated)?;
            from_ip(rest)?
        }
    };
    to_packet(&sliced, snapped)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(crate::wire::be16(b.get(at..at + 2)?, 0))
}

fn from_ip(b: &[u8]) -> Result<LaxSlicedPacket<'_>, Skip> {
    match b.first().map(|v| v >> 4) {
        Some(4) | Some(6) => LaxSlicedPacket::from_ip(b).map_err(|_| Skip::Truncated),
        Some(_) => Err(Skip::NotTcp),
        None => Err(Skip::Truncated),
    }
}

fn to_packet(p: &LaxSlicedPacket, snapped: bool) -> Result<Packet, Skip> {
    let mut vlan = [0u16; 2];
    let mut tags = p.link_exts.iter().filter_map(|e| match e {
        LaxLinkExtSlice::Vlan(v) => Some(v.vlan_identifier().value()),
        LaxLinkExtSlice::Macsec(_) => None,
    });
    vlan[0] = tags.next().unwrap_or(0);
    vlan[1] = tags.next().unwrap_or(0);

    let (src, dst, payload, declared, ttl) = match &p.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let declared = declared_len(ip.payload(), snapped, || {
                let total = h.total_len() as usize;
                total.saturating_sub(h.slice().len() + ip.extensions().auth.map_or(0, |a| a.slice().len()))
            });
            (
                IpAddr::V4(Ipv4Addr::from(h.source())),
                IpAddr::V4(Ipv4Addr::from(h.destination())),
                ip.payload(),
                declared,
                h.ttl(),
            )
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            let declared = declared_len(ip.payload(), snapped, || {
                (h.payload_length() as usize).saturating_sub(ip.extensions().slice().len())
            });
            (
                IpAddr::V6(Ipv6Addr::from(h.source())),
                IpAddr::V6(Ipv6Addr::from(h.destination())),
                ip.payload(),
                declared,
                h.hop_limit(),
            )
        }
        // Cut inside the IP header (a small snaplen), or not IP at all.
        None if p.stop_err.is_some() => return Err(Skip::Truncated),
        _ => return Err(Skip::NotTcp),
    };
    if payload.ip_number != etherparse::IpNumber::TCP {
        return Err(Skip::NotTcp);
    }
    if payload.fragmented {
        return Err(Skip::Fragment);
    }
    let tcp = match &p.transport {
        Some(TransportSlice::Tcp(t)) => t,
        // etherparse wants the whole header; a snaplen that kept its fixed
        // part but cut the options still gives a segment (fast::tcp_into).
        _ => {
            let mut seg = Segment::default();
            fast::tcp_into(payload.payload, declared, snapped, &mut seg).ok_or(Skip::Truncated)?;
            return Ok(Packet {
                vlan,
                src,
                dst,
                tcp: seg,
                truncated: true,
                ttl,
            });
        }
    };
    let header_len = tcp.header_slice().len();
    let payload_len = declared.saturating_sub(header_len) as u32;
    let seg = Segment {
        src_port: tcp.source_port(),
        dst_port: tcp.destination_port(),
        seq: Seq(tcp.sequence_number()),
        ack: Seq(tcp.acknowledgment_number()),
        flags: Flags(tcp.slice()[13]),
        window: tcp.window_size(),
        payload_len,
        first_byte: tcp.payload().first().copied().filter(|_| payload_len > 0),
        options: TcpOptions::parse(tcp.options()),
    };
    Ok(Packet {
        vlan,
        src,
        dst,
        tcp: seg,
        truncated: payload.incomplete && snapped,
        ttl,
    })
}

/// The IP payload length the header declares when the capture cut it short;
/// otherwise what was captured (which also covers TSO's zero length field).
fn declared_len(payload: &LaxIpPayloadSlice, snapped: bool, from_header: impl Fn() -> usize) -> usize {
    if payload.incomplete && snapped {
        from_header().max(payload.payload.len())
    } else {
        payload.payload.len()
    }
}

#[cfg(test)]
mod tests;
