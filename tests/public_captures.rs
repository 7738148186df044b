//! `kaprobe verify` on real public captures (../shared/captures/public, see
//! its README for sources), and a cross-check against tshark's keepalive
//! analysis: equal where Wireshark's rule is right, and right where it is not.

mod common;
use common::*;
use std::path::PathBuf;

fn public(name: &str) -> Option<PathBuf> {
    match public_dir() {
        Some(d) => Some(d.join(name)),
        None => {
            eprintln!("skipped: no public captures");
            None
        }
    }
}

/// Exact kind counts per file (every classified segment).
#[test]
fn classification_of_each_public_capture() {
    let expected: &[(&str, &[(&str, usize)])] = &[
        // nDPI avast: Windows-style 1-byte probes; two flows' servers give up after 2 probes.
        (
            "ka_ndpi_avast.pcap",
            &[("keepalive_probe", 35), ("keepalive_ack", 31), ("keepalive_abort", 2)],
        ),
        ("ka_ndpi_ocsp.pcapng", &[("keepalive_probe", 97), ("keepalive_ack", 97)]),
        (
            "ka_ndpi_anydesk.pcapng",
            &[("keepalive_probe", 8), ("keepalive_ack", 8)],
        ),
        (
            "ka_suricata_output-multi-eve_sll.pcap",
            &[("keepalive_probe", 1), ("keepalive_ack", 1)],
        ),
        (
            "ka_zeek_redis_pubsub_null.pcap",
            &[("keepalive_probe", 2), ("keepalive_ack", 2)],
        ),
        (
            "ka_suricata_pgsql-UnknownMessage_rawip.pcap",
            &[("keepalive_probe", 1), ("keepalive_ack", 1)],
        ),
        (
            "ka_ppa_http_espn_fail.pcapng",
            &[("keepalive_probe", 11), ("keepalive_ack", 9), ("keepalive_rst", 1)],
        ),
        // chrissanders/packets: Linux zero-window probes have the keepalive shape.
        (
            "tricky_ppa_tcp_zerowindowdead.pcapng",
            &[("zero_window_probe", 3), ("zero_window_ack", 3)],
        ),
        // zeek: the same 4-tuple on VLAN 42 and QinQ 10/20 is three flows, no probes.
        ("tricky_zeek_vlan-collisions.pcap", &[]),
        // Wireshark sample: empty segments 1 ms after unacked 1-byte data.
        ("tricky_wsample_telnet-raw.pcap", &[]),
        ("noka_suricata_http-body-hook-01_ipv6.pcap", &[]),
        ("noka_zeek_modbusBig.pcap", &[]),
    ];
    for (file, kinds) in expected {
        let Some(path) = public(file) else { return };
        let v = verify_json(&path, &[]);
        assert_eq!(v.kind_counts(), counts(kinds), "{file}");
    }
}

#[test]
fn vlan_collisions_are_three_flows() {
    let Some(path) = public("tricky_zeek_vlan-collisions.pcap") else {
        return;
    };
    let v = verify_json(&path, &["--all"]);
    assert_eq!(v.summary["flows"], 3);
    let mut vlans: Vec<String> = v.flows.iter().map(|f| f["vlan"].to_string()).collect();
    vlans.sort();
    assert_eq!(vlans, ["[10,20]", "[42]", "null"]);
}

#[test]
fn out_of_order_timestamps_are_reported_not_fatal() {
    let Some(path) = public("ka_ndpi_avast.pcap") else {
        return;
    };
    let r = kaprobe(&["verify", "-q", path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("timestamped earlier than the record before"),
        "{}",
        r.stderr
    );
    let v = verify_json(&path, &[]);
    assert!(v.summary["time_backwards"].as_u64().unwrap() >= 1);
}

#[test]
fn inferred_idle_of_public_captures() {
    // ocsp: clients probe every 10 s, and one server probes after 60 s of the
    // client's silence (the client's own probes do not restart its clock);
    // redis: 15 s; espn: 45 s browser probes; anydesk: both ends every 10 s.
    let expected = [
        ("ka_ndpi_ocsp.pcapng", "client", 10.0),
        ("ka_ndpi_ocsp.pcapng", "server", 60.0),
        ("ka_zeek_redis_pubsub_null.pcap", "b", 15.0),
        ("ka_ppa_http_espn_fail.pcapng", "client", 45.0),
        ("ka_ndpi_anydesk.pcapng", "client", 10.0),
        ("ka_ndpi_anydesk.pcapng", "server", 10.0),
    ];
    for (file, role, idle) in expected {
        let Some(path) = public(file) else { return };
        let v = verify_json(&path, &[]);
        let dirs: Vec<_> = v
            .flows
            .iter()
            .flat_map(|f| f["directions"].as_array().unwrap().iter())
            .filter(|d| d["role"] == role && d["probes"].as_u64() > Some(0))
            .collect();
        assert!(!dirs.is_empty(), "{file}: no {role} probes");
        for d in dirs {
            let got = d["idle"]["s"]
                .as_f64()
                .unwrap_or_else(|| panic!("{file}: no idle in {d}"));
            assert!(
                (got - idle).abs() < idle * 0.1,
                "{file} {role} {}: idle {got}",
                d["from"]
            );
        }
    }
}

#[test]
fn agrees_with_tshark_where_tshark_is_right() {
    if tshark().is_none() {
        eprintln!("skipped: tshark not installed");
        return;
    }
    let agree = [
        "ka_ndpi_avast.pcap",
        "ka_ndpi_ocsp.pcapng",
        "ka_ndpi_anydesk.pcapng",
        "ka_suricata_output-multi-eve_sll.pcap",
        "ka_zeek_redis_pubsub_null.pcap",
        "ka_ppa_http_espn_fail.pcapng",
    ];
    for file in agree {
        let Some(path) = public(file) else { return };
        assert_agrees_with_tshark(&path, &verify_json(&path, &[]));
    }
    for file in [
        "linux_ka_answered_v4.pcap",
        "linux_ka_answered_v6.pcap",
        "linux_ka_server_sll2.pcap",
        "linux_ka_many_flows.pcap",
    ] {
        let path = capture(file);
        assert_agrees_with_tshark(&path, &verify_json(&path, &[]));
    }
}

/// The three known failures of Wireshark's rule (reference §4), each on a real capture.
#[test]
fn right_where_tshark_is_wrong() {
    if tshark().is_none() {
        eprintln!("skipped: tshark not installed");
        return;
    }
    // 1. A retransmitted 1-byte segment: tshark says Keep-Alive.
    let path = capture("linux_retrans_1byte.pcap");
    let v = verify_json(&path, &[]);
    let tshark_says = tshark_frames(&path, "tcp.analysis.keep_alive");
    assert!(!tshark_says.is_empty(), "tshark's false positive is expected here");
    assert_eq!(v.frames_of("retransmission"), tshark_says);
    assert!(v.frames_of("keepalive_probe").is_empty());

    // 2. Linux zero-window probes: tshark says Keep-Alive.
    let Some(path) = public("tricky_ppa_tcp_zerowindowdead.pcapng") else {
        return;
    };
    let v = verify_json(&path, &[]);
    assert_eq!(
        v.frames_of("zero_window_probe"),
        tshark_frames(&path, "tcp.analysis.keep_alive")
    );
    assert!(v.frames_of("keepalive_probe").is_empty());

    // 3. An answer that does not directly follow its probe (here the prober's FIN
    // came between): tshark's history rule calls it a Duplicate ACK; it acks
    // the probe's byte + 1, so it is the keepalive ACK. (The changed-window
    // case is covered by the classifier's unit tests.)
    let Some(path) = public("ka_suricata_pgsql-UnknownMessage_rawip.pcap") else {
        return;
    };
    let v = verify_json(&path, &[]);
    let acks = v.frames_of("keepalive_ack");
    assert_eq!(acks.len(), 1);
    assert!(tshark_frames(&path, "tcp.analysis.keep_alive_ack").is_empty());
    assert_eq!(
        tshark_frames(
            &path,
            &format!("frame.number == {} && tcp.analysis.duplicate_ack", acks[0])
        ),
        acks
    );

    // And look-alikes tshark flags in the telnet and VLAN samples are nothing here.
    for file in ["tricky_wsample_telnet-raw.pcap", "tricky_zeek_vlan-collisions.pcap"] {
        let Some(path) = public(file) else { return };
        assert!(!tshark_frames(&path, "tcp.analysis.keep_alive").is_empty(), "{file}");
        assert_eq!(verify_json(&path, &[]).summary["probes"], 0, "{file}");
    }
}
