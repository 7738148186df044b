//! Property tests for the decoder and sequence arithmetic:
//! (a) `decode` never panics, on arbitrary bytes and on mutated valid frames,
//!     for every link type;
//! (b) frames built by `ethernet_frame` decode to what was built;
//! (c) cutting a built frame anywhere never panics, and with `snapped` the
//!     payload length still comes from the IP header;
//! (d) `Seq` ordering across wrap-around.

use kaprobe::decode::{decode, LinkType, Packet, Skip};
use kaprobe::wire::build::{ethernet_frame, SegmentSpec};
use kaprobe::wire::{Flags, Seq};
use proptest::prelude::*;
use proptest::sample::Index;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const ALL_LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Loop,
];

const ETH_HEADER: usize = 14;
const VLAN_TAG: usize = 4;
/// FIN | SYN | RST | PSH | ACK.
const FLAG_MASK: u8 = Flags::FIN | Flags::SYN | Flags::RST | Flags::PSH | Flags::ACK;

/// One segment to build.
#[derive(Clone, Debug)]
struct Case {
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload: Vec<u8>,
    timestamp: Option<(u32, u32)>,
    vlan: Vec<u16>,
}

impl Case {
    fn spec(&self) -> SegmentSpec<'_> {
        let mut s = SegmentSpec::new(
            SocketAddr::new(self.src, self.src_port),
            SocketAddr::new(self.dst, self.dst_port),
            Seq(self.seq),
            Seq(self.ack),
            self.flags,
        );
        s.window = self.window;
        s.payload = &self.payload;
        s.timestamp = self.timestamp;
        s.vlan = &self.vlan;
        s
    }

    fn frame(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ethernet_frame(&self.spec(), &mut out).expect("build frame");
        out
    }

    /// Offset of the IP header in the Ethernet frame.
    fn ip_start(&self) -> usize {
        ETH_HEADER + VLAN_TAG * self.vlan.len()
    }

    fn tcp_start(&self) -> usize {
        self.ip_start() + if self.src.is_ipv4() { 20 } else { 40 }
    }

    /// Bytes of TCP options in the built frame.
    fn tcp_options_len(&self) -> usize {
        let f = self.frame();
        self.tcp_end(&f) - self.tcp_start() - 20
    }

    /// Offset just past the TCP header (data offset from the built frame).
    fn tcp_end(&self, frame: &[u8]) -> usize {
        let t = self.tcp_start();
        t + (frame[t + 12] >> 4) as usize * 4
    }

    fn vlan_ids(&self) -> [u16; 2] {
        [
            self.vlan.first().copied().unwrap_or(0),
            self.vlan.get(1).copied().unwrap_or(0),
        ]
    }

    /// Every header field decoded equals what was built.
    fn check_headers(&self, p: &Packet) -> Result<(), TestCaseError> {
        self.check_fixed(p)?;
        prop_assert_eq!(p.tcp.options.timestamp, self.timestamp);
        Ok(())
    }

    /// The addresses and the TCP header's fixed 20 bytes equal what was built.
    fn check_fixed(&self, p: &Packet) -> Result<(), TestCaseError> {
        prop_assert_eq!(p.src, self.src);
        prop_assert_eq!(p.dst, self.dst);
        prop_assert_eq!(p.tcp.src_port, self.src_port);
        prop_assert_eq!(p.tcp.dst_port, self.dst_port);
        prop_assert_eq!(p.tcp.seq, Seq(self.seq));
        prop_assert_eq!(p.tcp.ack, Seq(self.ack));
        prop_assert_eq!(p.tcp.flags, Flags(self.flags));
        prop_assert_eq!(p.tcp.window, self.window);
        prop_assert_eq!(p.vlan, self.vlan_ids());
        Ok(())
    }
}

fn case() -> impl Strategy<Value = Case> {
    let addrs = prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>())
            .prop_map(|(s, d)| (IpAddr::V4(Ipv4Addr::from(s)), IpAddr::V4(Ipv4Addr::from(d)))),
        (any::<[u8; 16]>(), any::<[u8; 16]>())
            .prop_map(|(s, d)| (IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(d)))),
    ];
    (
        addrs,
        any::<(u16, u16, u32, u32)>(),
        any::<u8>().prop_map(|f| f & FLAG_MASK),
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..64),
        prop::option::of(any::<(u32, u32)>()),
        prop::collection::vec(1u16..=4094, 0..=2),
    )
        .prop_map(
            |((src, dst), (src_port, dst_port, seq, ack), flags, window, payload, timestamp, vlan)| Case {
                src,
                dst,
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                window,
                payload,
                timestamp,
                vlan,
            },
        )
}

/// The IP packet of `c` behind the link header `link` expects.
fn framed_for(link: LinkType, c: &Case) -> Vec<u8> {
    let eth = c.frame();
    if link == LinkType::Ethernet {
        return eth;
    }
    let ip = &eth[c.ip_start()..];
    let ethertype: u16 = if c.src.is_ipv4() { 0x0800 } else { 0x86dd };
    let mut f = Vec::new();
    match link {
        LinkType::LinuxSll => {
            f.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            f.extend_from_slice(&ethertype.to_be_bytes());
        }
        LinkType::LinuxSll2 => {
            f.extend_from_slice(&ethertype.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        }
        LinkType::Null => {
            let af: u32 = if c.src.is_ipv4() { 2 } else { 24 };
            f.extend_from_slice(&af.to_ne_bytes());
        }
        LinkType::Loop => {
            let af: u32 = if c.src.is_ipv4() { 2 } else { 24 };
            f.extend_from_slice(&af.to_be_bytes());
        }
        _ => {}
    }
    f.extend_from_slice(ip);
    f
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (a) Arbitrary bytes: no panic, whatever the link type.
    #[test]
    fn decode_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        for link in ALL_LINKS {
            for snapped in [false, true] {
                let _ = decode(link, &bytes, snapped);
            }
        }
    }

    /// (a) Valid frames with a few bytes overwritten and possibly cut: the
    /// mutations land in headers arbitrary bytes rarely reach.
    #[test]
    fn decode_never_panics_on_mutated_frames(
        c in case(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 1..8),
        cut in any::<Index>(),
    ) {
        for link in ALL_LINKS {
            let mut f = framed_for(link, &c);
            for (at, v) in &edits {
                let i = at.index(f.len());
                f[i] = *v;
            }
            let n = cut.index(f.len() + 1);
            for snapped in [false, true] {
                let _ = decode(link, &f, snapped);
                let _ = decode(link, &f[..n], snapped);
            }
        }
    }

    /// (b) Build then decode: every field comes back.
    #[test]
    fn built_frames_round_trip(c in case()) {
        let f = c.frame();
        for snapped in [false, true] {
            let p = decode(LinkType::Ethernet, &f, snapped)
                .map_err(|e| TestCaseError::fail(format!("{e:?} for {c:?}")))?;
            c.check_headers(&p)?;
            prop_assert_eq!(p.tcp.payload_len, c.payload.len() as u32);
            prop_assert_eq!(p.tcp.first_byte, c.payload.first().copied());
            prop_assert!(!p.truncated);
        }
    }

    /// (b) The same IP packet behind every other link header decodes the same.
    #[test]
    fn built_packets_round_trip_on_every_link(c in case()) {
        for link in ALL_LINKS {
            let f = framed_for(link, &c);
            let p = decode(link, &f, false)
                .map_err(|e| TestCaseError::fail(format!("{link:?}: {e:?}")))?;
            prop_assert_eq!(p.src, c.src);
            prop_assert_eq!(p.tcp.seq, Seq(c.seq));
            prop_assert_eq!(p.tcp.payload_len, c.payload.len() as u32);
            if link == LinkType::Ethernet {
                prop_assert_eq!(p.vlan, c.vlan_ids());
            }
        }
    }

    /// (c) Cut anywhere: no panic. With the TCP header whole, the headers
    /// still decode; the payload length is the IP header's when `snapped`,
    /// what was captured otherwise; `truncated` says whether bytes are missing.
    /// A snaplen that keeps the fixed 20 bytes but cuts the options gives the
    /// fixed fields with the options marked cut; without snaplen it is damage.
    #[test]
    fn truncated_frames(c in case(), cut in any::<Index>()) {
        let f = c.frame();
        let n = cut.index(f.len() + 1);
        let tcp_end = c.tcp_end(&f);
        let fixed_end = c.tcp_start() + 20;
        for snapped in [false, true] {
            let got = decode(LinkType::Ethernet, &f[..n], snapped);
            if n < tcp_end {
                if snapped && n >= fixed_end {
                    let p = got.map_err(|e| TestCaseError::fail(format!("cut at {n}: {e:?}")))?;
                    c.check_fixed(&p)?;
                    prop_assert!(p.tcp.options.cut && p.truncated);
                    prop_assert_eq!(p.tcp.payload_len, c.payload.len() as u32);
                } else {
                    prop_assert!(got.is_err(), "cut at {} of {}: {:?}", n, f.len(), got);
                }
                continue;
            }
            let p = got.map_err(|e| TestCaseError::fail(format!("cut at {n}: {e:?}")))?;
            c.check_headers(&p)?;
            let want = if snapped { c.payload.len() } else { n - tcp_end };
            prop_assert_eq!(p.tcp.payload_len, want as u32, "cut at {} of {}", n, f.len());
            prop_assert_eq!(p.truncated, snapped && n < f.len());
        }
    }

    /// (c) Cut anywhere before the end of the TCP header's fixed 20 bytes
    /// (link, VLAN, IP or TCP header), the frame is skipped as truncated, on
    /// every link type; so is a cut in the options without snaplen.
    /// Regression (Ethernet, SLL, SLL2): a cut inside the IP header gives NotTcp,
    /// while raw IP / null / loop give Truncated for the same IP bytes.
    #[test]
    fn cut_headers_are_skipped_as_truncated(c in case(), cut in any::<Index>()) {
        for link in ALL_LINKS {
            let f = framed_for(link, &c);
            let tcp_end = f.len() - c.payload.len();
            let fixed_end = tcp_end - c.tcp_options_len();
            let n = cut.index(tcp_end);
            if n >= fixed_end {
                prop_assert_eq!(decode(link, &f[..n], false), Err(Skip::Truncated));
                prop_assert!(decode(link, &f[..n], true).is_ok_and(|p| p.tcp.options.cut));
                continue;
            }
            for snapped in [false, true] {
                prop_assert_eq!(
                    decode(link, &f[..n], snapped),
                    Err(Skip::Truncated),
                    "{:?}: cut at {} of {} (TCP header ends at {})",
                    link,
                    n,
                    f.len(),
                    tcp_end
                );
            }
        }
    }

    /// (d) Adding less than 2^31 moves a sequence number forward, across wrap too.
    #[test]
    fn seq_add_is_after(a in any::<u32>(), d in 1u32..(1 << 31)) {
        let a = Seq(a);
        prop_assert!(a.plus(d).after(a));
        prop_assert!(a.before(a.plus(d)));
        prop_assert_eq!(a.plus(d).diff(a), d as i32);
    }
}
