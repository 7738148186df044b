use super::*;
use crate::wire::build::{ethernet_frame, SegmentSpec};
use crate::wire::Flags;
use std::net::SocketAddr;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A 1-byte keepalive probe with a timestamp, as an Ethernet frame.
fn probe_frame(src: &str, dst: &str, vlan: &[u16]) -> Vec<u8> {
    let mut spec = SegmentSpec::new(addr(src), addr(dst), Seq(999), Seq(5000), Flags::ACK);
    spec.timestamp = Some((42, 7));
    spec.payload = &[0];
    spec.vlan = vlan;
    let mut out = Vec::new();
    ethernet_frame(&spec, &mut out).unwrap();
    out
}

const ETH_HEADER: usize = 14;

fn check_probe(p: &Packet) {
    assert_eq!(p.tcp.seq, Seq(999));
    assert_eq!(p.tcp.ack, Seq(5000));
    assert_eq!(p.tcp.payload_len, 1);
    assert_eq!(p.tcp.first_byte, Some(0));
    assert_eq!(p.tcp.options.timestamp, Some((42, 7)));
    assert!(p.tcp.flags.ack());
    assert_eq!(p.ttl, 64, "TTL / hop limit as built");
}

#[test]
fn ethernet_ipv4() {
    let f = probe_frame("10.0.0.1:40000", "10.0.0.2:80", &[]);
    let p = decode(LinkType::Ethernet, &f, false).unwrap();
    check_probe(&p);
    assert_eq!(p.src, "10.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!((p.tcp.src_port, p.tcp.dst_port), (40000, 80));
    assert_eq!(p.vlan, [0, 0]);
    assert!(!p.truncated);
}

#[test]
fn ethernet_ipv6() {
    let f = probe_frame("[fd00::1]:40000", "[fd00::2]:80", &[]);
    let p = decode(LinkType::Ethernet, &f, false).unwrap();
    check_probe(&p);
    assert_eq!(p.dst, "fd00::2".parse::<IpAddr>().unwrap());
}

#[test]
fn vlan_and_qinq_ids_are_kept() {
    let one = decode(
        LinkType::Ethernet,
        &probe_frame("10.0.0.1:1", "10.0.0.2:2", &[42]),
        false,
    )
    .unwrap();
    assert_eq!(one.vlan, [42, 0]);
    check_probe(&one);
    let two = decode(
        LinkType::Ethernet,
        &probe_frame("10.0.0.1:1", "10.0.0.2:2", &[10, 20]),
        false,
    )
    .unwrap();
    assert_eq!(two.vlan, [10, 20]);
    check_probe(&two);
}

#[test]
fn linux_cooked_v1_and_v2() {
    let f = probe_frame("10.0.0.1:1", "10.0.0.2:2", &[]);
    let ip = &f[ETH_HEADER..];
    // SLL: packet type, ARPHRD, addr len, 8-byte addr, protocol.
    let mut sll = vec![0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(ip);
    check_probe(&decode(LinkType::LinuxSll, &sll, false).unwrap());
    // SLL2: protocol, reserved, ifindex, ARPHRD, packet type, addr len, 8-byte addr.
    let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    sll2.extend_from_slice(ip);
    check_probe(&decode(LinkType::LinuxSll2, &sll2, false).unwrap());
}

#[test]
fn raw_ip_and_loopback() {
    let f = probe_frame("10.0.0.1:1", "10.0.0.2:2", &[]);
    let ip = &f[ETH_HEADER..];
    check_probe(&decode(LinkType::RawIp, ip, false).unwrap());
    let mut null = 2u32.to_ne_bytes().to_vec();
    null.extend_from_slice(ip);
    check_probe(&decode(LinkType::Null, &null, false).unwrap());
    let f6 = probe_frame("[fd00::1]:1", "[fd00::2]:2", &[]);
    let mut lo = 24u32.to_be_bytes().to_vec();
    lo.extend_from_slice(&f6[ETH_HEADER..]);
    check_probe(&decode(LinkType::Loop, &lo, false).unwrap());
}

#[test]
fn snaplen_truncation_keeps_declared_length() {
    let mut spec = SegmentSpec::new(addr("10.0.0.1:1"), addr("10.0.0.2:2"), Seq(1), Seq(1), Flags::ACK);
    let data = [7u8; 500];
    spec.payload = &data;
    let mut f = Vec::new();
    ethernet_frame(&spec, &mut f).unwrap();
    f.truncate(ETH_HEADER + 20 + 20 + 10);
    let p = decode(LinkType::Ethernet, &f, true).unwrap();
    assert_eq!(p.tcp.payload_len, 500);
    assert!(p.truncated);
}

#[test]
fn ip_length_beyond_a_whole_frame_is_not_believed() {
    // The wire carried fewer bytes than the IP header claims (seen in the
    // Wireshark telnet sample): the captured bytes are the packet.
    let f = probe_frame("10.0.0.1:1", "10.0.0.2:2", &[]);
    let p = decode(LinkType::Ethernet, &f[..f.len() - 1], false).unwrap();
    assert_eq!(p.tcp.payload_len, 0);
    assert!(!p.truncated);
}

/// `tcpdump -s 54`: the fixed TCP header kept, the options (here a
/// timestamp) cut. A segment with its options unknown, by either path.
#[test]
fn snaplen_that_cuts_the_options_keeps_the_segment() {
    let f = probe_frame("10.0.0.1:1", "10.0.0.2:2", &[]);
    let cut = &f[..ETH_HEADER + 20 + 20];
    let p = decode(LinkType::Ethernet, cut, true).unwrap();
    assert_eq!((p.tcp.seq, p.tcp.ack, p.tcp.payload_len), (Seq(999), Seq(5000), 1));
    assert_eq!(p.tcp.options, TcpOptions::cut());
    assert_eq!(p.tcp.first_byte, None);
    assert!(p.truncated);
    // The same frame in a cooked capture takes etherparse's path.
    let mut sll = vec![0u8; 16];
    sll[14..16].copy_from_slice(&[0x08, 0x00]);
    sll.extend_from_slice(&cut[ETH_HEADER..]);
    assert_eq!(decode(LinkType::LinuxSll, &sll, true).map(|p| p.tcp), Ok(p.tcp));
    // Without snaplen, bytes missing from a header are damage, not a cut.
    assert_eq!(decode(LinkType::Ethernet, cut, false), Err(Skip::Truncated));
}

#[test]
fn cut_inside_tcp_header_is_skipped() {
    let f = probe_frame("10.0.0.1:1", "10.0.0.2:2", &[]);
    assert_eq!(
        decode(LinkType::Ethernet, &f[..ETH_HEADER + 20 + 8], false),
        Err(Skip::Truncated)
    );
    assert_eq!(decode(LinkType::Ethernet, &f[..3], false), Err(Skip::Truncated));
    assert_eq!(decode(LinkType::LinuxSll2, &[0x08], false), Err(Skip::Truncated));
}

#[test]
fn non_tcp_is_skipped() {
    assert_eq!(decode(LinkType::RawIp, &[0x50, 0, 0], false), Err(Skip::NotTcp));
    // ARP over Ethernet.
    let mut arp = vec![0u8; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    assert_eq!(decode(LinkType::Ethernet, &arp, false), Err(Skip::NotTcp));
}

#[test]
fn built_segments_carry_linux_option_layout() {
    let f = probe_frame("10.0.0.1:1", "10.0.0.2:2", &[]);
    // Ethernet 14 + IPv4 20 + TCP fixed 20: options start with NOP, NOP, TS.
    assert_eq!(&f[ETH_HEADER + 40..ETH_HEADER + 44], &[1, 1, 8, 10]);
}

mod fast_path {
    use super::*;
    use proptest::prelude::*;

    /// A built frame (IPv4 or IPv6, 0–2 VLAN tags, options, payload) and
    /// where its IP header starts.
    fn built() -> impl Strategy<Value = (Vec<u8>, usize)> {
        (
            any::<bool>(),
            0usize..3,
            any::<(u32, u32, u16, u8)>(),
            prop::option::of(any::<(u32, u32)>()),
            prop::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(v6, tags, (seq, ack, window, flags), ts, payload)| {
                let (src, dst) = if v6 {
                    (addr("[fd00::1]:40000"), addr("[fd00::2]:80"))
                } else {
                    (addr("10.0.0.1:40000"), addr("10.0.0.2:80"))
                };
                let mut spec = SegmentSpec::new(src, dst, Seq(seq), Seq(ack), flags);
                spec.window = window;
                spec.timestamp = ts;
                spec.payload = &payload;
                let vlan = [100, 200];
                spec.vlan = &vlan[..tags];
                let mut out = Vec::new();
                ethernet_frame(&spec, &mut out).unwrap();
                (out, ETH_HEADER + 4 * tags)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        /// Wherever the fast path answers, on built frames and on frames with
        /// header bits flipped, it answers what etherparse's lax path does.
        #[test]
        fn agrees_with_the_lax_path(
            (frame, ip) in built(),
            flips in prop::collection::vec((0usize..96, 0u8..8), 0..6),
            cut in prop::option::of(any::<prop::sample::Index>()),
        ) {
            let mut f = frame;
            for (at, bit) in flips {
                let i = at % f.len();
                f[i] ^= 1 << bit;
            }
            if let Some(c) = cut {
                f.truncate(c.index(f.len() + 1));
            }
            for link in [LinkType::Ethernet, LinkType::RawIp] {
                let bytes = if link == LinkType::RawIp { f.get(ip..).unwrap_or(&[]) } else { &f[..] };
                for snapped in [false, true] {
                    if let Some(p) = fast::decode(link, bytes, snapped) {
                        prop_assert_eq!(Ok(p), lax(link, bytes, snapped));
                    }
                }
            }
        }
    }

    /// What the fast path leaves to the lax one, which counts or skips it.
    #[test]
    fn leaves_fragments_and_odd_headers_alone() {
        let f = probe_frame("10.0.0.1:1", "10.0.0.2:2", &[]);
        let ip = ETH_HEADER;
        let tweaked = |at: usize, or: u8| {
            let mut g = f.clone();
            g[at] |= or;
            g
        };
        for (what, g) in [
            ("more fragments", tweaked(ip + 6, 0x20)),
            ("fragment offset", tweaked(ip + 7, 0x01)),
            ("IHL 15 beyond the packet", tweaked(ip, 0x0f)),
            ("TCP data offset 15", tweaked(ip + 20 + 12, 0xf0)),
            ("three VLAN tags", {
                let mut g = probe_frame("10.0.0.1:1", "10.0.0.2:2", &[1, 2]);
                g.splice(20..20, [0x81, 0x00, 0x00, 0x03]);
                g
            }),
        ] {
            assert_eq!(fast::decode(LinkType::Ethernet, &g, false), None, "{what}");
        }
        let mut jumbo = probe_frame("[fd00::1]:1", "[fd00::2]:2", &[]);
        jumbo[ip + 4..ip + 6].fill(0);
        assert_eq!(
            fast::decode(LinkType::Ethernet, &jumbo, true),
            None,
            "IPv6 payload length 0"
        );
    }

    /// A capture cut by snaplen (`tcpdump -s 128`) keeps the fast path: the
    /// payload length is the IP header's, and the packet is marked truncated.
    #[test]
    fn answers_frames_cut_after_the_tcp_header() {
        for (src, dst) in [("10.0.0.1:1", "10.0.0.2:2"), ("[fd00::1]:1", "[fd00::2]:2")] {
            let payload = [7u8; 1000];
            let mut spec = SegmentSpec::new(addr(src), addr(dst), Seq(1), Seq(2), Flags::ACK);
            spec.payload = &payload;
            let mut f = Vec::new();
            ethernet_frame(&spec, &mut f).unwrap();
            f.truncate(128);
            let p = fast::decode(LinkType::Ethernet, &f, true).expect("fast path");
            assert_eq!(
                (p.tcp.payload_len, p.truncated, p.tcp.first_byte),
                (1000, true, Some(7))
            );
            assert_eq!(Ok(p), lax(LinkType::Ethernet, &f, true));
            // Not cut by snaplen: an IP length beyond the bytes is not believed.
            assert_eq!(fast::decode(LinkType::Ethernet, &f, false), None);
        }
    }

    #[test]
    fn answers_the_common_frames() {
        for vlan in [&[][..], &[7], &[7, 8]] {
            for (src, dst) in [("10.0.0.1:1", "10.0.0.2:2"), ("[fd00::1]:1", "[fd00::2]:2")] {
                let f = probe_frame(src, dst, vlan);
                let p = fast::decode(LinkType::Ethernet, &f, false).expect("fast path");
                check_probe(&p);
                assert_eq!(&p.vlan[..vlan.len()], vlan);
            }
        }
    }
}
