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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Side {
    #[default]
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

/// Both endpoints and the VLAN ids, packed into five words so that the
/// per-packet work on a key (build, compare, hash) is a few word operations:
/// each address as 128 bits (IPv4 in the low 32), then one word holding both
/// ports, both 12-bit VLAN ids and the address family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowKey {
    lo: u128,
    hi: u128,
    tail: u64,
}

/// Bit of `tail` set for IPv6 (a VLAN id has 12 bits, so bit 15 of its lane is free).
const V6: u64 = 1 << 15;

impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(self.lo);
        h.write_u128(self.hi);
        h.write_u64(self.tail);
    }
}

fn word(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

impl FlowKey {
    /// The key of a packet and the side that sent it.
    #[inline]
    pub fn of(p: &Packet) -> (FlowKey, Side) {
        FlowKey::pack((p.src, p.tcp.src_port), (p.dst, p.tcp.dst_port), p.vlan)
    }

    /// The key of a flow between two endpoints (of one address family), and
    /// which side `a` is.
    pub fn new(a: Endpoint, b: Endpoint, vlan: [u16; 2]) -> (FlowKey, Side) {
        FlowKey::pack((a.addr, a.port), (b.addr, b.port), vlan)
    }

    #[inline]
    fn pack((src, sp): (IpAddr, u16), (dst, dp): (IpAddr, u16), vlan: [u16; 2]) -> (FlowKey, Side) {
        let v6 = if src.is_ipv6() { V6 } else { 0 };
        let (src, dst) = (word(src), word(dst));
        // Same order as comparing `Endpoint`s: address, then port.
        let (lo, hi, lp, hp, side) = if (src, sp) <= (dst, dp) {
            (src, dst, sp, dp, Side::Lo)
        } else {
            (dst, src, dp, sp, Side::Hi)
        };
        let tail =
            (lp as u64) << 48 | (hp as u64) << 32 | (vlan[0] as u64 & 0xfff) << 16 | (vlan[1] as u64 & 0xfff) | v6;
        (FlowKey { lo, hi, tail }, side)
    }

    pub fn endpoint(&self, side: Side) -> Endpoint {
        let (addr, port) = match side {
            Side::Lo => (self.lo, (self.tail >> 48) as u16),
            Side::Hi => (self.hi, (self.tail >> 32) as u16),
        };
        let addr = if self.tail & V6 != 0 {
            IpAddr::V6(addr.into())
        } else {
            IpAddr::V4((addr as u32).into())
        };
        Endpoint { addr, port }
    }

    pub fn lo(&self) -> Endpoint {
        self.endpoint(Side::Lo)
    }

    pub fn hi(&self) -> Endpoint {
        self.endpoint(Side::Hi)
    }

    /// Outer and inner VLAN ids (0: none).
    pub fn vlan(&self) -> [u16; 2] {
        [(self.tail >> 16) as u16 & 0xfff, self.tail as u16 & 0xfff]
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

    #[test]
    fn key_gives_back_its_endpoints_in_endpoint_order() {
        for (a, b) in [
            ("10.0.0.2:80", "10.0.0.1:5000"),
            ("10.0.0.1:80", "10.0.0.1:79"),
            ("[fd00::1]:443", "[fc00::ffff:1]:50000"),
            ("[::1]:1", "[::1]:2"),
        ] {
            let ep = |s: &str| {
                let sa: std::net::SocketAddr = s.parse().unwrap();
                Endpoint {
                    addr: sa.ip(),
                    port: sa.port(),
                }
            };
            let (a, b) = (ep(a), ep(b));
            let (k, side) = FlowKey::new(a, b, [5, 4095]);
            assert_eq!((k.lo(), k.hi()), (a.min(b), a.max(b)));
            assert_eq!(k.endpoint(side), a);
            assert_eq!(k.vlan(), [5, 4095]);
        }
    }

    #[test]
    fn ipv4_and_its_ipv6_mapped_form_are_two_flows() {
        let (a, _) = FlowKey::of(&packet("10.0.0.1", 1, "10.0.0.2", 2, [0, 0]));
        let (b, _) = FlowKey::of(&packet("::ffff:10.0.0.1", 1, "::ffff:10.0.0.2", 2, [0, 0]));
        assert_ne!(a, b);
        assert_eq!(b.lo().to_string(), "[::ffff:10.0.0.1]:1");
    }
}
