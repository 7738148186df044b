//! Builds Ethernet frames holding one TCP segment, with checksums, on top of
//! etherparse's `PacketBuilder`. Used for probes, synthetic captures and test fixtures.

use super::{Flags, Seq};
use etherparse::{PacketBuilder, TcpHeader, TcpOptionElement, VlanId};
use std::net::{IpAddr, SocketAddr};

/// Everything that goes into one TCP segment.
#[derive(Clone, Debug)]
pub struct SegmentSpec<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: Seq,
    pub ack: Seq,
    pub flags: Flags,
    pub window: u16,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamp: Option<(u32, u32)>,
    /// At most three blocks fit beside a timestamp option.
    pub sack: &'a [(Seq, Seq)],
    pub payload: &'a [u8],
    /// 802.1Q ids, outermost first; at most two.
    pub vlan: &'a [u16],
}

impl<'a> SegmentSpec<'a> {
    pub fn new(src: SocketAddr, dst: SocketAddr, seq: Seq, ack: Seq, flags: u8) -> Self {
        SegmentSpec {
            src,
            dst,
            seq,
            ack,
            flags: Flags(flags),
            window: 502,
            mss: None,
            wscale: None,
            sack_permitted: false,
            timestamp: None,
            sack: &[],
            payload: &[],
            vlan: &[],
        }
    }
}

/// Why a segment could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("source and destination must both be IPv4 or both IPv6")]
    MixedFamilies,
    #[error("VLAN id {0} is out of range 0..4095")]
    VlanId(u16),
    #[error("at most two VLAN tags are supported")]
    TooManyVlans,
    #[error("TCP options do not fit: {0}")]
    Options(String),
    #[error("payload too large: {0}")]
    Write(String),
}

/// A locally administered MAC made from the host's address (its last four
/// bytes), so each host keeps one MAC in both directions of a built session.
pub fn mac_of(addr: IpAddr) -> [u8; 6] {
    let tail = match addr {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x00, tail[0], tail[1], tail[2], tail[3]]
}

/// Appends the Ethernet frame for `spec` to `out`.
pub fn ethernet_frame(spec: &SegmentSpec, out: &mut Vec<u8>) -> Result<(), BuildError> {
    let header = tcp_header(spec)?;
    let eth = PacketBuilder::ethernet2(mac_of(spec.src.ip()), mac_of(spec.dst.ip()));
    let vid = |v: u16| VlanId::try_new(v).map_err(|_| BuildError::VlanId(v));
    let step = match *spec.vlan {
        [] => eth.ip(ip_headers(spec)?),
        [one] => eth.single_vlan(vid(one)?).ip(ip_headers(spec)?),
        [outer, inner] => eth.double_vlan(vid(outer)?, vid(inner)?).ip(ip_headers(spec)?),
        _ => return Err(BuildError::TooManyVlans),
    };
    step.tcp_header(header)
        .write(out, spec.payload)
        .map_err(|e| BuildError::Write(e.to_string()))
}

/// Appends the IP packet (IPv4 or IPv6 header, TCP header, payload) for `spec`:
/// what a raw IP socket with a hand-made header sends. VLAN tags are ignored.
pub fn ip_packet(spec: &SegmentSpec, out: &mut Vec<u8>) -> Result<(), BuildError> {
    PacketBuilder::ip(ip_headers(spec)?)
        .tcp_header(tcp_header(spec)?)
        .write(out, spec.payload)
        .map_err(|e| BuildError::Write(e.to_string()))
}

/// Appends the TCP segment alone (header with checksum over `spec`'s addresses,
/// then payload): what a raw socket sends when the kernel writes the IP header.
pub fn tcp_segment(spec: &SegmentSpec, out: &mut Vec<u8>) -> Result<(), BuildError> {
    let mut h = tcp_header(spec)?;
    h.checksum = match (spec.src.ip(), spec.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => h.calc_checksum_ipv4_raw(s.octets(), d.octets(), spec.payload),
        (IpAddr::V6(s), IpAddr::V6(d)) => h.calc_checksum_ipv6_raw(s.octets(), d.octets(), spec.payload),
        _ => return Err(BuildError::MixedFamilies),
    }
    .map_err(|e| BuildError::Write(e.to_string()))?;
    h.write(out).map_err(|e| BuildError::Write(e.to_string()))?;
    out.extend_from_slice(spec.payload);
    Ok(())
}

fn ip_headers(spec: &SegmentSpec) -> Result<etherparse::IpHeaders, BuildError> {
    use etherparse::{IpHeaders, IpNumber, Ipv4Header, Ipv6Header};
    match (spec.src.ip(), spec.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = Ipv4Header::new(0, 64, IpNumber::TCP, s.octets(), d.octets())
                .map_err(|e| BuildError::Write(e.to_string()))?;
            h.dont_fragment = true;
            Ok(IpHeaders::Ipv4(h, Default::default()))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => Ok(IpHeaders::Ipv6(
            Ipv6Header {
                traffic_class: 0,
                flow_label: Default::default(),
                payload_length: 0,
                next_header: IpNumber::TCP,
                hop_limit: 64,
                source: s.octets(),
                destination: d.octets(),
            },
            Default::default(),
        )),
        _ => Err(BuildError::MixedFamilies),
    }
}

fn tcp_header(spec: &SegmentSpec) -> Result<TcpHeader, BuildError> {
    let mut h = TcpHeader::new(spec.src.port(), spec.dst.port(), spec.seq.0, spec.window);
    h.acknowledgment_number = spec.ack.0;
    let f = spec.flags;
    (h.fin, h.syn, h.rst, h.psh, h.ack, h.urg) =
        (f.fin(), f.syn(), f.rst(), f.has(Flags::PSH), f.ack(), f.has(Flags::URG));
    let mut opts: Vec<TcpOptionElement> = Vec::with_capacity(8);
    if let Some(mss) = spec.mss {
        opts.push(TcpOptionElement::MaximumSegmentSize(mss));
    }
    if spec.sack_permitted {
        opts.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
    }
    if let Some((val, ecr)) = spec.timestamp {
        // Linux's layout: on a SYN after MSS and SACK-permitted, elsewhere
        // NOP, NOP, TS so that the timestamp is 4-byte aligned.
        if !spec.flags.syn() {
            opts.extend([TcpOptionElement::Noop, TcpOptionElement::Noop]);
        }
        opts.push(TcpOptionElement::Timestamp(val, ecr));
    }
    if let Some(ws) = spec.wscale {
        opts.push(TcpOptionElement::Noop);
        opts.push(TcpOptionElement::WindowScale(ws));
    }
    if let Some((first, rest)) = spec.sack.split_first() {
        let mut more = [None; 3];
        for (slot, b) in more.iter_mut().zip(rest) {
            *slot = Some((b.0 .0, b.1 .0));
        }
        opts.push(TcpOptionElement::Noop);
        opts.push(TcpOptionElement::Noop);
        opts.push(TcpOptionElement::SelectiveAcknowledgement(
            (first.0 .0, first.1 .0),
            more,
        ));
    }
    h.set_options(&opts).map_err(|e| BuildError::Options(e.to_string()))?;
    Ok(h)
}
