//! A frame as a list of named fields: offset, bytes, name, value and a
//! one-line meaning, from the link layer through IP and TCP to the options
//! and payload, with both checksums recomputed. Headers are read with
//! etherparse's slices; only the TCP option list is walked here (for the
//! offsets), each option decoded by etherparse's option iterator.
//! Lax: a frame cut short or not TCP is annotated as far as it goes.

use crate::decode::LinkType;
use etherparse::{
    Ethernet2HeaderSlice, IpNumber, Ipv4HeaderSlice, Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, SingleVlanHeaderSlice,
    TcpHeaderSlice, TcpOptionElement, TcpOptionsIterator,
};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Which header a field belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Link,
    Vlan,
    Ipv4,
    Ipv6,
    Ipv6Ext,
    Tcp,
    TcpOptions,
    Payload,
    Trailer,
}

impl Layer {
    pub fn title(self, link: LinkType) -> &'static str {
        match self {
            Layer::Link => match link {
                LinkType::Ethernet => "Ethernet II",
                LinkType::LinuxSll => "Linux cooked header (SLL)",
                LinkType::LinuxSll2 => "Linux cooked header v2 (SLL2)",
                LinkType::Null | LinkType::Loop => "loopback header",
                LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => "link",
            },
            Layer::Vlan => "802.1Q VLAN tag",
            Layer::Ipv4 => "IPv4",
            Layer::Ipv6 => "IPv6",
            Layer::Ipv6Ext => "IPv6 extension header",
            Layer::Tcp => "TCP",
            Layer::TcpOptions => "TCP options",
            Layer::Payload => "TCP payload",
            Layer::Trailer => "after the IP packet",
        }
    }
}

/// One field of a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub offset: usize,
    pub len: usize,
    pub layer: Layer,
    /// Stable name (Wireshark's where it has one), for looking a field up.
    pub key: &'static str,
    pub name: String,
    pub value: String,
    pub meaning: String,
}

/// A recomputed checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Correct(u16),
    Wrong {
        found: u16,
        expected: u16,
    },
    /// Cannot be checked (payload cut by the capture's snaplen).
    Unverifiable(u16),
}

impl Check {
    fn of(found: u16, expected: u16) -> Check {
        if found == expected {
            Check::Correct(found)
        } else {
            Check::Wrong { found, expected }
        }
    }

    pub fn is_correct(self) -> bool {
        matches!(self, Check::Correct(_))
    }

    pub fn describe(self) -> String {
        match self {
            Check::Correct(v) => format!("0x{v:04x} correct"),
            Check::Wrong { found, expected } => format!(
                "0x{found:04x} WRONG, should be 0x{expected:04x} (usual on the sending host when the NIC computes checksums)"
            ),
            Check::Unverifiable(v) => format!("0x{v:04x} not verifiable: the capture cut the payload"),
        }
    }
}

/// A frame taken apart.
#[derive(Clone, Debug)]
pub struct Annotated {
    pub link: LinkType,
    pub bytes: Vec<u8>,
    pub fields: Vec<Field>,
    pub ip_checksum: Option<Check>,
    pub tcp_checksum: Option<Check>,
    /// Why the walk stopped before the end of TCP, if it did.
    pub stopped: Option<String>,
}

impl Annotated {
    pub fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// Replaces a field's meaning with one that knows the context (why this value).
    pub fn explain(&mut self, key: &str, meaning: impl Into<String>) {
        if let Some(f) = self.fields.iter_mut().find(|f| f.key == key) {
            f.meaning = meaning.into();
        }
    }

    /// The field's bytes.
    pub fn bytes_of(&self, f: &Field) -> &[u8] {
        &self.bytes[f.offset.min(self.bytes.len())..(f.offset + f.len).min(self.bytes.len())]
    }

    /// The annotated dump, one line per field (long fields wrap their bytes),
    /// a heading per header, and the checksum verdicts.
    pub fn render(&self, indent: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{indent}{:<6}  {:<23}  {:<18}  {:<20}  meaning",
            "offset", "bytes", "field", "value"
        );
        let mut layer = None;
        for f in &self.fields {
            if layer != Some(f.layer) {
                layer = Some(f.layer);
                let _ = writeln!(out, "{indent}{}", f.layer.title(self.link));
            }
            let bytes = self.bytes_of(f);
            let shown = &bytes[..bytes.len().min(MAX_SHOWN)];
            let mut rows = shown.chunks(8).map(hex).collect::<Vec<_>>();
            if rows.is_empty() {
                rows.push(String::new());
            }
            if bytes.len() > MAX_SHOWN {
                if let Some(last) = rows.last_mut() {
                    last.push_str(" …");
                }
            }
            let line = format!(
                "{indent}{:04x}    {:<23}  {:<18}  {:<20}  {}",
                f.offset, rows[0], f.name, f.value, f.meaning
            );
            let _ = writeln!(out, "{}", line.trim_end());
            for (i, r) in rows.iter().enumerate().skip(1) {
                let _ = writeln!(out, "{indent}{:04x}    {r}", f.offset + i * 8);
            }
        }
        if let Some(why) = &self.stopped {
            let _ = writeln!(out, "{indent}(stopped: {why})");
        }
        let mut checks = Vec::new();
        if let Some(c) = self.ip_checksum {
            checks.push(format!("IPv4 header {}", c.describe()));
        }
        if let Some(c) = self.tcp_checksum {
            checks.push(format!("TCP {}", c.describe()));
        }
        if !checks.is_empty() {
            let _ = writeln!(out, "{indent}checksums: {}", checks.join("; "));
        }
        out
    }
}

/// Bytes of one field shown at most (payloads are cut, with "…").
const MAX_SHOWN: usize = 16;

pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{x:02x}");
    }
    s
}

struct Walk<'a> {
    link: LinkType,
    b: &'a [u8],
    fields: Vec<Field>,
    layer: Layer,
}

impl Walk<'_> {
    fn add(&mut self, offset: usize, len: usize, key: &'static str, name: &str, value: String, meaning: String) {
        self.fields.push(Field {
            offset,
            len,
            layer: self.layer,
            key,
            name: name.to_string(),
            value,
            meaning,
        });
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        Some(u16::from_be_bytes([*self.b.get(at)?, *self.b.get(at + 1)?]))
    }
}

fn mac(m: &[u8]) -> String {
    m.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

fn ether_type_name(t: u16) -> &'static str {
    match t {
        0x0800 => "IPv4",
        0x86dd => "IPv6",
        0x8100 => "802.1Q VLAN tag",
        0x88a8 => "802.1ad VLAN tag",
        0x9100 => "VLAN tag (QinQ)",
        0x0806 => "ARP",
        _ => "other",
    }
}

/// Takes `frame` (captured with link type `link`) apart.
pub fn annotate(link: LinkType, frame: &[u8]) -> Annotated {
    let mut w = Walk {
        link,
        b: frame,
        fields: Vec::new(),
        layer: Layer::Link,
    };
    let (ip_checksum, tcp_checksum, stopped) = match walk(&mut w) {
        Ok((ip, tcp)) => (ip, tcp, None),
        Err(Stop { ip, why }) => (ip, None, Some(why)),
    };
    Annotated {
        link,
        bytes: frame.to_vec(),
        fields: w.fields,
        ip_checksum,
        tcp_checksum,
        stopped,
    }
}

struct Stop {
    ip: Option<Check>,
    why: String,
}

fn stop<T>(why: impl Into<String>) -> Result<T, Stop> {
    Err(Stop {
        ip: None,
        why: why.into(),
    })
}

/// What the link layer says comes next.
enum Next {
    EtherType(u16),
    IpByVersion,
}

fn walk(w: &mut Walk) -> Result<(Option<Check>, Option<Check>), Stop> {
    let (mut at, next) = link_layer(w)?;
    let ether_type = match next {
        Next::EtherType(t) => t,
        Next::IpByVersion => match w.b.get(at).map(|v| v >> 4) {
            Some(4) => 0x0800,
            Some(6) => 0x86dd,
            Some(v) => return stop(format!("IP version {v} is neither 4 nor 6")),
            None => return stop("the frame ends before the IP header"),
        },
    };
    let mut ether_type = ether_type;
    // 802.1Q / QinQ tags, as many as there are.
    while matches!(ether_type, 0x8100 | 0x88a8 | 0x9100) {
        w.layer = Layer::Vlan;
        let v = SingleVlanHeaderSlice::from_slice(&w.b[at.min(w.b.len())..])
            .or_else(|e| stop(format!("VLAN tag cut short: {e}")))?;
        let (pcp, dei, vid) = (
            v.priority_code_point().value(),
            v.drop_eligible_indicator(),
            v.vlan_identifier().value(),
        );
        w.add(
            at,
            2,
            "vlan.tci",
            "tag control",
            format!("VLAN {vid}"),
            format!("priority {pcp}, drop eligible {}, VLAN id {vid}", dei as u8),
        );
        ether_type = v.ether_type().0;
        w.add(
            at + 2,
            2,
            "vlan.etype",
            "type",
            format!("0x{ether_type:04x}"),
            format!("{} follows", ether_type_name(ether_type)),
        );
        at += 4;
    }
    let (ip, proto_at, end) = match ether_type {
        0x0800 => ipv4(w, at)?,
        0x86dd => ipv6(w, at)?,
        t => return stop(format!("ether type 0x{t:04x} ({}) is not IP", ether_type_name(t))),
    };
    let tcp = tcp(w, &ip, proto_at, end).map_err(|why| Stop {
        ip: ip.check,
        why: why.why,
    })?;
    if end < w.b.len() {
        w.layer = Layer::Trailer;
        let n = w.b.len() - end;
        w.add(
            end,
            n,
            "eth.padding",
            "padding",
            format!("{n} bytes"),
            "Ethernet pads frames to 60 bytes; not part of the packet".into(),
        );
    }
    Ok((ip.check, Some(tcp)))
}

fn link_layer(w: &mut Walk) -> Result<(usize, Next), Stop> {
    let b = w.b;
    match w.link {
        LinkType::Ethernet => {
            let e = Ethernet2HeaderSlice::from_slice(b).or_else(|e| stop(format!("Ethernet header cut short: {e}")))?;
            let t = e.ether_type().0;
            w.add(
                0,
                6,
                "eth.dst",
                "destination",
                mac(&e.destination()),
                "MAC address of the next hop".into(),
            );
            w.add(
                6,
                6,
                "eth.src",
                "source",
                mac(&e.source()),
                "MAC address of the sender".into(),
            );
            w.add(
                12,
                2,
                "eth.type",
                "type",
                format!("0x{t:04x}"),
                format!("{} follows", ether_type_name(t)),
            );
            Ok((14, Next::EtherType(t)))
        }
        LinkType::LinuxSll => {
            if b.len() < 16 {
                return stop("Linux cooked header cut short");
            }
            let t = w.u16_at(14).unwrap_or(0);
            let alen = w.u16_at(4).unwrap_or(0);
            w.add(
                0,
                2,
                "sll.pkttype",
                "packet type",
                w.u16_at(0).unwrap_or(0).to_string(),
                pkttype(w.u16_at(0).unwrap_or(0) as u8),
            );
            w.add(
                2,
                2,
                "sll.hatype",
                "ARPHRD type",
                w.u16_at(2).unwrap_or(0).to_string(),
                "link type of the interface (1: Ethernet)".into(),
            );
            w.add(
                4,
                2,
                "sll.halen",
                "address length",
                alen.to_string(),
                "bytes of the next field in use".into(),
            );
            w.add(
                6,
                8,
                "sll.src.eth",
                "address",
                mac(&b[6..6 + (alen as usize).min(8)]),
                "link-layer address of the sender".into(),
            );
            w.add(
                14,
                2,
                "sll.etype",
                "protocol",
                format!("0x{t:04x}"),
                format!("{} follows", ether_type_name(t)),
            );
            Ok((16, Next::EtherType(t)))
        }
        LinkType::LinuxSll2 => {
            if b.len() < 20 {
                return stop("Linux cooked v2 header cut short");
            }
            let t = w.u16_at(0).unwrap_or(0);
            let alen = b[11] as usize;
            w.add(
                0,
                2,
                "sll.etype",
                "protocol",
                format!("0x{t:04x}"),
                format!("{} follows", ether_type_name(t)),
            );
            w.add(2, 2, "sll.reserved", "reserved", "0".into(), "unused".into());
            let ifindex = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            w.add(
                4,
                4,
                "sll.ifindex",
                "interface index",
                ifindex.to_string(),
                "the interface the packet was seen on".into(),
            );
            w.add(
                8,
                2,
                "sll.hatype",
                "ARPHRD type",
                w.u16_at(8).unwrap_or(0).to_string(),
                "link type of the interface (1: Ethernet)".into(),
            );
            w.add(10, 1, "sll.pkttype", "packet type", b[10].to_string(), pkttype(b[10]));
            w.add(
                11,
                1,
                "sll.halen",
                "address length",
                alen.to_string(),
                "bytes of the next field in use".into(),
            );
            w.add(
                12,
                8,
                "sll.src.eth",
                "address",
                mac(&b[12..12 + alen.min(8)]),
                "link-layer address of the sender".into(),
            );
            Ok((20, Next::EtherType(t)))
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => Ok((0, Next::IpByVersion)),
        LinkType::Null | LinkType::Loop => {
            if b.len() < 4 {
                return stop("loopback header cut short");
            }
            let raw = [b[0], b[1], b[2], b[3]];
            let fam = if w.link == LinkType::Loop {
                u32::from_be_bytes(raw)
            } else {
                u32::from_le_bytes(raw).min(u32::from_be_bytes(raw))
            };
            w.add(
                0,
                4,
                "null.family",
                "address family",
                fam.to_string(),
                "2: IPv4; 24, 28 or 30: IPv6 (by OS)".into(),
            );
            Ok((4, Next::IpByVersion))
        }
    }
}

fn pkttype(t: u8) -> String {
    match t {
        0 => "0: addressed to this host".into(),
        1 => "1: broadcast".into(),
        2 => "2: multicast".into(),
        3 => "3: to another host".into(),
        4 => "4: sent by this host".into(),
        n => format!("{n}: other"),
    }
}

/// What the IP layer left for TCP.
struct Ip {
    check: Option<Check>,
    v4: Option<([u8; 4], [u8; 4])>,
    v6: Option<([u8; 16], [u8; 16])>,
    /// The IP packet is longer than what was captured.
    cut: bool,
}

fn ipv4(w: &mut Walk, at: usize) -> Result<(Ip, usize, usize), Stop> {
    w.layer = Layer::Ipv4;
    let h = Ipv4HeaderSlice::from_slice(&w.b[at.min(w.b.len())..]).or_else(|e| stop(format!("IPv4 header: {e}")))?;
    let ihl = h.ihl() as usize * 4;
    let total = h.total_len() as usize;
    w.add(
        at,
        1,
        "ip.version_ihl",
        "version, length",
        format!("4, {}", h.ihl()),
        format!("IPv4; header {} × 4 = {ihl} bytes", h.ihl()),
    );
    let ds = h.slice()[1];
    w.add(
        at + 1,
        1,
        "ip.dsfield",
        "DSCP, ECN",
        format!("{}, {}", h.dcp().value(), h.ecn().value()),
        if ds == 0 {
            "no special treatment, no congestion mark".into()
        } else {
            "differentiated services code point and ECN bits".into()
        },
    );
    w.add(
        at + 2,
        2,
        "ip.len",
        "total length",
        total.to_string(),
        format!("IP header {ihl} + TCP header + payload"),
    );
    w.add(
        at + 4,
        2,
        "ip.id",
        "identification",
        format!("0x{:04x}", h.identification()),
        "tells fragments of one packet apart".into(),
    );
    let frag = h.fragments_offset().value();
    w.add(
        at + 6,
        2,
        "ip.flags",
        "flags, fragment",
        format!(
            "{}{}offset {frag}",
            if h.dont_fragment() { "DF, " } else { "" },
            if h.more_fragments() { "MF, " } else { "" }
        ),
        if h.dont_fragment() {
            "don't fragment (path MTU discovery); a whole packet".into()
        } else {
            "may be fragmented on the way".into()
        },
    );
    w.add(
        at + 8,
        1,
        "ip.ttl",
        "TTL",
        h.ttl().to_string(),
        "hops left; each router takes one (a RST whose TTL differs from the peer's came from elsewhere)".into(),
    );
    let proto = h.protocol();
    w.add(
        at + 9,
        1,
        "ip.proto",
        "protocol",
        proto.0.to_string(),
        format!("{} follows", proto.keyword_str().unwrap_or("another protocol")),
    );
    let check = Check::of(h.header_checksum(), h.to_header().calc_header_checksum());
    w.add(
        at + 10,
        2,
        "ip.checksum",
        "header checksum",
        format!("0x{:04x}", h.header_checksum()),
        format!(
            "over the IP header only: {}",
            if check.is_correct() { "correct" } else { "WRONG" }
        ),
    );
    w.add(
        at + 12,
        4,
        "ip.src",
        "source",
        Ipv4Addr::from(h.source()).to_string(),
        "sender's address".into(),
    );
    w.add(
        at + 16,
        4,
        "ip.dst",
        "destination",
        Ipv4Addr::from(h.destination()).to_string(),
        "receiver's address".into(),
    );
    if ihl > 20 {
        w.add(
            at + 20,
            ihl - 20,
            "ip.options",
            "options",
            format!("{} bytes", ihl - 20),
            "IP options (rare)".into(),
        );
    }
    let fail = |why: String| Stop { ip: Some(check), why };
    if proto != IpNumber::TCP {
        return Err(fail(format!("protocol {} is not TCP", proto.0)));
    }
    if frag != 0 || h.more_fragments() {
        return Err(fail("a fragment: TCP is not decoded without reassembly".into()));
    }
    let end = at + total.max(ihl);
    let ip = Ip {
        check: Some(check),
        v4: Some((h.source(), h.destination())),
        v6: None,
        cut: end > w.b.len(),
    };
    Ok((ip, at + ihl, end.min(w.b.len())))
}

fn ipv6(w: &mut Walk, at: usize) -> Result<(Ip, usize, usize), Stop> {
    w.layer = Layer::Ipv6;
    let h = Ipv6HeaderSlice::from_slice(&w.b[at.min(w.b.len())..]).or_else(|e| stop(format!("IPv6 header: {e}")))?;
    w.add(
        at,
        4,
        "ipv6.vtcfl",
        "version, class, flow",
        format!("6, {}, 0x{:05x}", h.traffic_class(), h.flow_label().value()),
        "IPv6; traffic class (DSCP, ECN); flow label".into(),
    );
    let plen = h.payload_length() as usize;
    w.add(
        at + 4,
        2,
        "ipv6.plen",
        "payload length",
        plen.to_string(),
        "everything after this 40-byte header: TCP header + payload".into(),
    );
    let mut next = h.next_header();
    w.add(
        at + 6,
        1,
        "ipv6.nxt",
        "next header",
        next.0.to_string(),
        format!("{} follows", next.keyword_str().unwrap_or("another header")),
    );
    w.add(
        at + 7,
        1,
        "ipv6.hlim",
        "hop limit",
        h.hop_limit().to_string(),
        "IPv6's TTL: hops left".into(),
    );
    w.add(
        at + 8,
        16,
        "ipv6.src",
        "source",
        Ipv6Addr::from(h.source()).to_string(),
        "sender's address".into(),
    );
    w.add(
        at + 24,
        16,
        "ipv6.dst",
        "destination",
        Ipv6Addr::from(h.destination()).to_string(),
        "receiver's address".into(),
    );
    let end = at + 40 + plen;
    let mut p = at + 40;
    w.layer = Layer::Ipv6Ext;
    while next != IpNumber::TCP {
        if !Ipv6RawExtHeaderSlice::header_type_supported(next) {
            return stop(format!(
                "next header {} ({}) is not TCP",
                next.0,
                next.keyword_str().unwrap_or("unknown")
            ));
        }
        let e = Ipv6RawExtHeaderSlice::from_slice(&w.b[p.min(w.b.len())..])
            .or_else(|e| stop(format!("IPv6 extension header: {e}")))?;
        let n = e.slice().len();
        w.add(
            p,
            n,
            "ipv6.ext",
            next.keyword_str().unwrap_or("extension"),
            format!("{n} bytes"),
            format!("then {}", e.next_header().keyword_str().unwrap_or("another header")),
        );
        next = e.next_header();
        p += n;
    }
    let ip = Ip {
        check: None,
        v4: None,
        v6: Some((h.source(), h.destination())),
        cut: end > w.b.len(),
    };
    Ok((ip, p, end.min(w.b.len())))
}

fn tcp(w: &mut Walk, ip: &Ip, at: usize, end: usize) -> Result<Check, Stop> {
    w.layer = Layer::Tcp;
    let seg = &w.b[at.min(end)..end];
    let t = TcpHeaderSlice::from_slice(seg).or_else(|e| stop(format!("TCP header: {e}")))?;
    let hl = t.slice().len();
    w.add(
        at,
        2,
        "tcp.srcport",
        "source port",
        t.source_port().to_string(),
        "sender's port".into(),
    );
    w.add(
        at + 2,
        2,
        "tcp.dstport",
        "destination port",
        t.destination_port().to_string(),
        "receiver's port".into(),
    );
    w.add(
        at + 4,
        4,
        "tcp.seq",
        "sequence number",
        t.sequence_number().to_string(),
        "number of the first payload byte (or of the SYN or FIN)".into(),
    );
    w.add(
        at + 8,
        4,
        "tcp.ack",
        "ack number",
        t.acknowledgment_number().to_string(),
        if t.ack() {
            "the next byte expected from the other side: all before it arrived".into()
        } else {
            "not valid: the ACK flag is clear".into()
        },
    );
    w.add(
        at + 12,
        1,
        "tcp.hdr_len",
        "header length",
        format!("{} ({hl} bytes)", hl / 4),
        if hl > 20 {
            format!("{} × 4 bytes: 20 fixed + {} of options", hl / 4, hl - 20)
        } else {
            "5 × 4 bytes: no options".into()
        },
    );
    let flags = crate::wire::Flags(t.slice()[13]);
    w.add(
        at + 13,
        1,
        "tcp.flags",
        "flags",
        format!("0x{:02x} {}", flags.0, flag_names(flags.0)),
        flag_meaning(flags),
    );
    w.add(
        at + 14,
        2,
        "tcp.window_size_value",
        "window",
        t.window_size().to_string(),
        "bytes the sender can still receive, before scaling by the shift from the SYNs".into(),
    );
    let payload = &seg[hl.min(seg.len())..];
    let check = match (ip.cut, ip.v4, ip.v6) {
        (true, _, _) => Check::Unverifiable(t.checksum()),
        (false, Some((s, d)), _) => Check::of(t.checksum(), t.calc_checksum_ipv4_raw(s, d, payload).unwrap_or(0)),
        (false, None, Some((s, d))) => Check::of(t.checksum(), t.calc_checksum_ipv6_raw(s, d, payload).unwrap_or(0)),
        _ => Check::Unverifiable(t.checksum()),
    };
    w.add(
        at + 16,
        2,
        "tcp.checksum",
        "checksum",
        format!("0x{:04x}", t.checksum()),
        format!(
            "over a pseudo-header (addresses, protocol, length), the TCP header and payload: {}",
            match check {
                Check::Correct(_) => "correct",
                Check::Wrong { .. } => "WRONG",
                Check::Unverifiable(_) => "not verifiable",
            }
        ),
    );
    w.add(
        at + 18,
        2,
        "tcp.urgent_pointer",
        "urgent pointer",
        t.urgent_pointer().to_string(),
        if flags.has(crate::wire::Flags::URG) {
            "end of urgent data".into()
        } else {
            "unused: URG is clear".into()
        },
    );
    options(w, at + 20, t.options());
    if !payload.is_empty() {
        w.layer = Layer::Payload;
        let n = payload.len();
        let text: String = payload
            .iter()
            .take(12)
            .map(|&c| if (0x20..0x7f).contains(&c) { c as char } else { '.' })
            .collect();
        w.add(
            at + hl,
            n,
            "tcp.payload",
            "payload",
            format!("{n} byte{}", if n == 1 { "" } else { "s" }),
            format!("\"{text}{}\"", if n > 12 { "…" } else { "" }),
        );
    }
    Ok(check)
}

fn flag_names(bits: u8) -> String {
    let names = [
        (0x80, "CWR"),
        (0x40, "ECE"),
        (0x20, "URG"),
        (0x10, "ACK"),
        (0x08, "PSH"),
        (0x04, "RST"),
        (0x02, "SYN"),
        (0x01, "FIN"),
    ];
    let set: Vec<&str> = names.iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| *n).collect();
    if set.is_empty() {
        "none".into()
    } else {
        set.join(" ")
    }
}

fn flag_meaning(f: crate::wire::Flags) -> String {
    if f.syn() && f.ack() {
        "SYN-ACK: the answer to a connection request".into()
    } else if f.syn() {
        "SYN: opens a connection".into()
    } else if f.rst() && f.ack() {
        "RST with ACK: the sender aborts the connection".into()
    } else if f.rst() {
        "RST without ACK: \"I know no such connection\"".into()
    } else if f.fin() {
        "FIN: the sender has no more data".into()
    } else if f.has(crate::wire::Flags::PSH) {
        "ACK, PSH: data, hand it to the application now".into()
    } else if f.ack() {
        "ACK only: the ack number is valid".into()
    } else {
        "no ACK: unusual after the handshake".into()
    }
}

fn options(w: &mut Walk, at: usize, raw: &[u8]) {
    w.layer = Layer::TcpOptions;
    let mut i = 0;
    while i < raw.len() {
        let off = at + i;
        match raw[i] {
            0 => {
                let n = raw.len() - i;
                w.add(
                    off,
                    n,
                    "tcp.options.eol",
                    "end of options",
                    format!("{n} byte{}", if n == 1 { "" } else { "s" }),
                    "the rest of the header is padding".into(),
                );
                return;
            }
            1 => {
                w.add(
                    off,
                    1,
                    "tcp.options.nop",
                    "NOP",
                    "1".into(),
                    "no-operation: pads the next option to a 4-byte boundary".into(),
                );
                i += 1;
                continue;
            }
            _ => {}
        }
        let len = raw.get(i + 1).copied().unwrap_or(0) as usize;
        if len < 2 || i + len > raw.len() {
            let n = raw.len() - i;
            w.add(
                off,
                n,
                "tcp.options.malformed",
                "malformed option",
                format!("kind {}", raw[i]),
                "its length byte runs past the header: not parsed".into(),
            );
            return;
        }
        let opt = &raw[i..i + len];
        match TcpOptionsIterator::from_slice(opt).next() {
            Some(Ok(TcpOptionElement::Timestamp(val, ecr))) => {
                w.add(
                    off,
                    2,
                    "tcp.options.timestamp",
                    "TSopt kind, length",
                    "8, 10".into(),
                    "timestamps option (RFC 7323)".into(),
                );
                w.add(
                    off + 2,
                    4,
                    "tcp.options.timestamp.tsval",
                    "TSval",
                    val.to_string(),
                    "the sender's timestamp clock now".into(),
                );
                w.add(
                    off + 6,
                    4,
                    "tcp.options.timestamp.tsecr",
                    "TSecr",
                    ecr.to_string(),
                    "echo of the latest TSval received from the other side".into(),
                );
            }
            Some(Ok(TcpOptionElement::SelectiveAcknowledgement(first, rest))) => {
                w.add(
                    off,
                    2,
                    "tcp.options.sack",
                    "SACK kind, length",
                    format!("5, {len}"),
                    "selective acknowledgment: blocks received beyond the ack number".into(),
                );
                for (n, (l, r)) in std::iter::once(first).chain(rest.into_iter().flatten()).enumerate() {
                    w.add(
                        off + 2 + n * 8,
                        8,
                        if n == 0 {
                            "tcp.options.sack.block1"
                        } else {
                            "tcp.options.sack.block"
                        },
                        &format!("SACK block {}", n + 1),
                        format!("{l}-{r}"),
                        format!("bytes [{l}, {r}) arrived"),
                    );
                }
            }
            Some(Ok(TcpOptionElement::MaximumSegmentSize(v))) => w.add(
                off,
                len,
                "tcp.options.mss",
                "MSS",
                v.to_string(),
                "largest segment the sender wants to receive".into(),
            ),
            Some(Ok(TcpOptionElement::WindowScale(v))) => w.add(
                off,
                len,
                "tcp.options.wscale",
                "window scale",
                v.to_string(),
                format!(
                    "its later windows count in units of 2^{v} = {} bytes",
                    1u32 << v.min(14)
                ),
            ),
            Some(Ok(TcpOptionElement::SelectiveAcknowledgementPermitted)) => w.add(
                off,
                len,
                "tcp.options.sack_perm",
                "SACK permitted",
                "yes".into(),
                "the sender understands SACK blocks".into(),
            ),
            _ => w.add(
                off,
                len,
                "tcp.options.unknown",
                "option",
                format!("kind {}", raw[i]),
                format!("{len} bytes, not decoded"),
            ),
        }
        i += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::build::{ethernet_frame, SegmentSpec};
    use crate::wire::{Flags, Seq};

    fn frame(v6: bool, vlan: &[u16], payload: &[u8]) -> Vec<u8> {
        let (a, b) = if v6 {
            ("[fd77::1]:40000", "[fd77::2]:7077")
        } else {
            ("10.77.1.1:40000", "10.77.101.2:7077")
        };
        let mut s = SegmentSpec::new(a.parse().unwrap(), b.parse().unwrap(), Seq(1000), Seq(5001), Flags::ACK);
        s.timestamp = Some((7, 9));
        s.sack = &[(Seq(5000), Seq(5001))];
        s.vlan = vlan;
        s.payload = payload;
        let mut out = Vec::new();
        ethernet_frame(&s, &mut out).unwrap();
        out
    }

    #[test]
    fn walks_every_byte_and_checks_checksums() {
        for (v6, vlan) in [(false, &[][..]), (true, &[][..]), (false, &[10u16, 20][..])] {
            let f = frame(v6, vlan, b"x");
            let a = annotate(LinkType::Ethernet, &f);
            assert!(a.stopped.is_none(), "{:?}", a.stopped);
            assert_eq!(a.tcp_checksum.map(Check::is_correct), Some(true));
            assert_eq!(a.ip_checksum.map(Check::is_correct), if v6 { None } else { Some(true) });
            // Fields tile the frame: each starts where the previous ended.
            let mut at = 0;
            for fld in &a.fields {
                assert_eq!(fld.offset, at, "{fld:?}");
                at += fld.len;
            }
            assert_eq!(at, f.len());
            assert_eq!(a.field("tcp.seq").unwrap().value, "1000");
            assert_eq!(a.field("tcp.options.timestamp.tsval").unwrap().value, "7");
            assert_eq!(a.field("tcp.options.sack.block1").unwrap().value, "5000-5001");
        }
    }

    #[test]
    fn a_corrupted_byte_fails_the_tcp_checksum() {
        let mut f = frame(false, &[], &[]);
        let n = f.len();
        f[n - 1] ^= 0xff;
        let a = annotate(LinkType::Ethernet, &f);
        assert!(matches!(a.tcp_checksum, Some(Check::Wrong { .. })));
        assert!(a.render("").contains("WRONG"));
    }

    #[test]
    fn stops_at_what_it_cannot_decode() {
        let f = frame(false, &[], &[]);
        let a = annotate(LinkType::Ethernet, &f[..30]);
        assert!(a.stopped.as_deref().unwrap().contains("IPv4 header"));
        let a = annotate(LinkType::RawIp, &f[14..]);
        assert!(a.stopped.is_none());
        assert_eq!(a.fields[0].key, "ip.version_ihl");
    }
}
