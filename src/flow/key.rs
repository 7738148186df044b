//! Flow identity: both directions of a connection meet under one key, and the
//! same 4-tuple on another VLAN is another flow.

use crate::decode::Packet;
use std::fmt;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// Which endpoint of a key sent a segment: `Lo` is the smaller endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Lo = 0,
    Hi = 1,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Lo => Side::Hi,
            Side::Hi => Side::Lo,
        }
    }
    pub fn idx(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
    pub vlan: [u16; 2],
}

/// Hashes the key as three words rather than field by field: it is hashed
/// on every packet.
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let word = |a: &IpAddr| match a {
            IpAddr::V4(v) => u32::from(*v) as u128,
            IpAddr::V6(v) => u128::from(*v) ^ (1 << 127),
        };
        h.write_u128(word(&self.lo.addr));
        h.write_u128(word(&self.hi.addr));
        let ports = (self.lo.port as u64) << 48 | (self.hi.port as u64) << 32;
        h.write_u64(ports | (self.vlan[0] as u64) << 16 | self.vlan[1] as u64);
    }
}

impl FlowKey {
    /// The key of a packet and the side that sent it.
    pub fn of(p: &Packet) -> (FlowKey, Side) {
        let src = Endpoint {
            addr: p.src,
            port: p.tcp.src_port,
        };
        let dst = Endpoint {
            addr: p.dst,
            port: p.tcp.dst_port,
        };
        let (lo, hi, side) = if src <= dst {
            (src, dst, Side::Lo)
        } else {
            (dst, src, Side::Hi)
        };
        (FlowKey { lo, hi, vlan: p.vlan }, side)
    }

    pub fn endpoint(&self, side: Side) -> Endpoint {
        match side {
            Side::Lo => self.lo,
            Side::Hi => self.hi,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Segment;

    fn packet(src: &str, sport: u16, dst: &str, dport: u16, vlan: [u16; 2]) -> Packet {
        Packet {
            vlan,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            tcp: Segment {
                src_port: sport,
                dst_port: dport,
                ..Segment::default()
            },
            truncated: false,
            ttl: 64,
        }
    }

    #[test]
    fn both_directions_share_a_key() {
        let (k1, s1) = FlowKey::of(&packet("10.0.0.2", 80, "10.0.0.1", 5000, [0, 0]));
        let (k2, s2) = FlowKey::of(&packet("10.0.0.1", 5000, "10.0.0.2", 80, [0, 0]));
        assert_eq!(k1, k2);
        assert_eq!(s1, s2.other());
        assert_eq!(k1.endpoint(s2).to_string(), "10.0.0.1:5000");
    }

    #[test]
    fn vlan_separates_flows() {
        let (a, _) = FlowKey::of(&packet("10.0.0.1", 1, "10.0.0.2", 2, [42, 0]));
        let (b, _) = FlowKey::of(&packet("10.0.0.1", 1, "10.0.0.2", 2, [10, 20]));
        assert_ne!(a, b);
    }

    #[test]
    fn ipv6_endpoint_is_bracketed() {
        let e = Endpoint {
            addr: "fd00::1".parse().unwrap(),
            port: 80,
        };
        assert_eq!(e.to_string(), "[fd00::1]:80");
    }
}
