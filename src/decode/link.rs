//! Link-layer types a capture can declare, by their LINKTYPE/DLT numbers.

/// The link layers kaprobe decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    /// Linux cooked capture v1 (`tcpdump -i any` before 4.99).
    LinuxSll,
    /// Linux cooked capture v2 (`tcpdump -i any` since 4.99).
    LinuxSll2,
    /// Raw IPv4 or IPv6, version from the first nibble.
    RawIp,
    Ipv4,
    Ipv6,
    /// BSD loopback: 4-byte address family in host byte order.
    Null,
    /// OpenBSD loopback: 4-byte address family in network byte order.
    Loop,
}

impl LinkType {
    /// Maps LINKTYPE_* values (as in pcap/pcapng headers) and the DLT_* values
    /// libpcap reports on this platform.
    pub fn from_code(code: u32) -> Option<LinkType> {
        Some(match code {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            // LINKTYPE_RAW; DLT_RAW is 12 on Linux and 14 on some BSDs.
            101 | 12 | 14 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            LinkType::Ethernet => "Ethernet",
            LinkType::LinuxSll => "Linux cooked v1 (SLL)",
            LinkType::LinuxSll2 => "Linux cooked v2 (SLL2)",
            LinkType::RawIp => "raw IP",
            LinkType::Ipv4 => "raw IPv4",
            LinkType::Ipv6 => "raw IPv6",
            LinkType::Null => "BSD loopback (null)",
            LinkType::Loop => "OpenBSD loopback",
        }
    }
}
