//! `kaprobe verify` on the captures recorded from real Linux kernels by
//! scripts/record-captures.sh (described in captures/README.md). Assertions are
//! in terms that survive re-recording: kind sequences, counts, parameters.

mod common;
use common::*;

const PROBE: &str = "keepalive_probe";
const ACK: &str = "keepalive_ack";

fn only_flow(v: &Verified) -> &serde_json::Value {
    assert_eq!(v.flows.len(), 1, "flows: {:?}", v.flows);
    &v.flows[0]
}

fn secs(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Linux with idle=1s: the timer fires a little late, never early.
fn about_one_second(v: &serde_json::Value) {
    let s = secs(v);
    assert!((0.95..1.5).contains(&s), "expected about 1 s, got {s}");
}

fn answered_three_times(file: &str, prober: &str) {
    let v = verify_json(&capture(file), &[]);
    let f = only_flow(&v);
    let id = f["flow_id"].as_u64().unwrap();
    assert_eq!(v.kinds_of(id), [PROBE, ACK].repeat(3), "{file}");
    assert_eq!(f["prober"], prober, "{file}");
    assert_eq!(
        (f["probes"].as_u64(), f["answered"].as_u64(), f["unanswered"].as_u64()),
        (Some(3), Some(3), Some(0))
    );
    assert_eq!(f["outcome"], "closed", "{file}: keepalive answered, then FIN");
    about_one_second(&f["idle_s"]);
    assert_eq!(
        f["violations"].as_array().unwrap().len(),
        0,
        "{file}: {}",
        f["violations"]
    );
    // Each answer points at the probe right before it, and acks probe seq + 1.
    for pair in v.segments.chunks(2) {
        assert_eq!(pair[1]["answers"], pair[0]["frame"]);
        assert_eq!(
            pair[1]["ack"].as_u64().unwrap(),
            (pair[0]["seq"].as_u64().unwrap() + 1) % (1 << 32)
        );
        assert_eq!(pair[0]["len"], 0, "Linux probes carry no data");
    }
    assert_eq!(v.code, 0);
}

#[test]
fn linux_client_keepalive_answered_ipv4() {
    answered_three_times("linux_ka_answered_v4.pcap", "client");
}

#[test]
fn linux_client_keepalive_answered_ipv6() {
    answered_three_times("linux_ka_answered_v6.pcap", "client");
}

#[test]
fn nanosecond_pcap_and_pcapng_read_alike() {
    answered_three_times("linux_ka_answered_v4_nano.pcap", "client");
    answered_three_times("linux_ka_answered_v4.pcapng", "client");
    let us = verify_json(&capture("linux_ka_answered_v4.pcap"), &[]);
    let ng = verify_json(&capture("linux_ka_answered_v4.pcapng"), &[]);
    let frames = |v: &Verified| {
        v.segments
            .iter()
            .map(|s| (s["frame"].clone(), s["seq"].clone(), s["kind"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(frames(&us), frames(&ng));
}

#[test]
fn timestamps_and_sack_off() {
    answered_three_times("linux_ka_nots_nosack.pcap", "client");
}

#[test]
fn server_side_keepalive_inherited_from_listener_in_sll2() {
    answered_three_times("linux_ka_server_sll2.pcap", "server");
}

#[test]
fn blackholed_peer_three_probes_then_abort() {
    let v = verify_json(&capture("linux_ka_blackhole_abort.pcap"), &[]);
    let f = only_flow(&v);
    assert_eq!(
        v.kinds_of(f["flow_id"].as_u64().unwrap()),
        [PROBE, PROBE, PROBE, "keepalive_abort"]
    );
    assert_eq!(f["count"], 3);
    assert_eq!(f["outcome"], "timed_out");
    about_one_second(&f["idle_s"]);
    about_one_second(&f["interval_s"]);
    // The expectation the socket options set holds; a wrong one fails with exit 1.
    let path = capture("linux_ka_blackhole_abort.pcap");
    let p = path.to_str().unwrap();
    let ok = kaprobe(&["verify", "--expect", "idle=1s,interval=1s,count=3,outcome=timed_out", p]);
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    assert!(
        ok.stdout.contains("expect: flow 1") && ok.stdout.contains(": ok"),
        "{}",
        ok.stdout
    );
    let bad = kaprobe(&["verify", "--expect", "idle=5s,count=9", p]);
    assert_eq!(bad.code, 1);
    assert!(bad.stdout.contains("FAILED idle: expected 5s"), "{}", bad.stdout);
    assert!(
        bad.stdout.contains("FAILED count: expected 9, measured 3"),
        "{}",
        bad.stdout
    );
}

#[test]
fn rebooted_peer_answers_probe_with_rst() {
    let v = verify_json(&capture("linux_ka_reboot_rst.pcap"), &[]);
    let f = only_flow(&v);
    let kinds = v.kinds_of(f["flow_id"].as_u64().unwrap());
    assert_eq!(kinds.last().map(String::as_str), Some("keepalive_rst"), "{kinds:?}");
    // Answered rounds while the peer was up, then the probe the RST answers.
    let n = kinds.len();
    assert!(n >= 2 && kinds[n - 2] == PROBE, "{kinds:?}");
    assert!(kinds[..n - 2].chunks(2).all(|p| p == [PROBE, ACK]), "{kinds:?}");
    let rst = v.segments.last().unwrap();
    let probe = &v.segments[v.segments.len() - 2];
    assert_eq!(rst["answers"], probe["frame"]);
    assert_eq!(rst["seq"], probe["ack"], "RST seq = the probe's ACK field");
    assert_eq!(rst["flags"], "R", "ACK flag clear");
    assert_eq!(f["outcome"], "reset");
    // The RST comes from the server's own kernel: same TTL as its other segments.
    assert_eq!(f["reset_by"], "peer");
}

#[test]
fn one_byte_retransmissions_are_not_keepalive() {
    let v = verify_json(&capture("linux_retrans_1byte.pcap"), &[]);
    let c = v.kind_counts();
    assert!(c.get("retransmission").copied().unwrap_or(0) >= 3, "{c:?}");
    assert_eq!(c.len(), 1, "only retransmissions: {c:?}");
    assert_eq!(v.summary["probes"], 0);
}

#[test]
fn zero_window_probes_are_not_keepalive() {
    let v = verify_json(&capture("linux_zero_window.pcap"), &[]);
    let c = v.kind_counts();
    assert!(c.get("zero_window_probe").copied().unwrap_or(0) >= 2, "{c:?}");
    assert!(c.keys().all(|k| k.starts_with("zero_window_")), "{c:?}");
    assert_eq!(v.summary["probes"], 0);
}

#[test]
fn many_concurrent_flows_each_answered_twice() {
    let v = verify_json(&capture("linux_ka_many_flows.pcap"), &[]);
    assert_eq!(v.flows.len(), 20);
    for f in &v.flows {
        assert_eq!(v.kinds_of(f["flow_id"].as_u64().unwrap()), [PROBE, ACK].repeat(2));
        assert_eq!(f["outcome"], "closed");
    }
}

#[test]
fn pcapng_with_two_link_types_is_read_whole() {
    let v = verify_json(&capture("mixed_linktypes.pcapng"), &[]);
    assert_eq!(v.flows.len(), 2, "one flow per interface");
    for f in &v.flows {
        assert_eq!(v.kinds_of(f["flow_id"].as_u64().unwrap()), [PROBE, ACK].repeat(2));
    }
    let total = v.summary["packets"].as_u64().unwrap();
    let tcp = v.summary["tcp_packets"].as_u64().unwrap();
    assert_eq!(total, tcp, "every record of both link types decoded");
}

#[test]
fn flow_filter_selects_one_flow() {
    let path = capture("linux_ka_many_flows.pcap");
    let all = verify_json(&path, &[]);
    let client = all.flows[3]["client"].as_str().unwrap().to_string();
    let one = verify_json(&path, &["--flow", &client]);
    assert_eq!(one.flows.len(), 1);
    assert_eq!(one.flows[0]["client"], client.as_str());
}

#[test]
fn human_output_shows_table_and_timeline() {
    let r = kaprobe(&["verify", capture("linux_ka_blackhole_abort.pcap").to_str().unwrap()]);
    assert_eq!(r.code, 0);
    for needle in [
        "prober",
        "client",
        "keepalive_probe",
        "keepalive_abort",
        "timed_out",
        "count 3",
    ] {
        assert!(r.stdout.contains(needle), "missing {needle}:\n{}", r.stdout);
    }
}

/// What the lab's client application saw for a capture (captures/app-results.jsonl).
fn app_result(file: &str) -> serde_json::Value {
    let all = std::fs::read_to_string(capture("app-results.jsonl")).unwrap();
    all.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["file"] == file)
        .unwrap_or_else(|| panic!("no app result for {file}"))["client"]
        .clone()
}

fn answered_rounds(kinds: &[String], min: usize, file: &str) {
    assert!(
        kinds.len() >= 2 * min && kinds.len().is_multiple_of(2) && kinds.chunks(2).all(|p| p == [PROBE, ACK]),
        "{file}: expected >= {min} answered rounds, got {kinds:?}"
    );
}

#[test]
fn middlebox_idle_timeout_drops_the_flow_probes_vanish_then_abort() {
    let file = "linux_ka_middlebox_idle_drop.pcap";
    let v = verify_json(&capture(file), &[]);
    let f = only_flow(&v);
    assert_eq!(
        v.kinds_of(f["flow_id"].as_u64().unwrap()),
        [PROBE, PROBE, PROBE, "keepalive_abort"]
    );
    assert_eq!(f["count"], 3);
    assert_eq!(f["outcome"], "timed_out");
    about_one_second(&f["interval_s"]);
    let idle = secs(&f["idle_s"]);
    assert!((3.95..4.6).contains(&idle), "idle {idle}, keepalive idle was 4 s");
    let p = capture(file);
    let ok = kaprobe(&[
        "verify",
        "--expect",
        "idle=4s,interval=1s,count=3,outcome=timed_out",
        p.to_str().unwrap(),
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    let app = app_result(file);
    assert_eq!(app["so_error"], "ETIMEDOUT");
    assert_eq!(app["epoll"], "EPOLLIN|EPOLLERR|EPOLLHUP");
}

#[test]
fn middlebox_idle_timeout_kept_alive_by_shorter_keepalive() {
    let file = "linux_ka_middlebox_idle_alive.pcap";
    let v = verify_json(&capture(file), &[]);
    let f = only_flow(&v);
    let kinds = v.kinds_of(f["flow_id"].as_u64().unwrap());
    answered_rounds(&kinds, 4, file);
    assert_eq!(f["outcome"], "closed");
    about_one_second(&f["idle_s"]);
    // Alive through the 2 s idle timeout more than twice over.
    let last_ack = v.segments.last().unwrap()["time"].as_f64().unwrap();
    let first = f["first_time"].as_f64().unwrap();
    assert!(last_ack - first > 4.0, "flow alive for {} s", last_ack - first);
    assert_eq!(v.code, 0);
    assert_eq!(app_result(file)["outcome"], "closed");
}

#[test]
fn middlebox_idle_timeout_reset_looks_like_a_rebooted_peer() {
    let file = "linux_ka_middlebox_idle_reset.pcap";
    let v = verify_json(&capture(file), &[]);
    let f = only_flow(&v);
    assert_eq!(v.kinds_of(f["flow_id"].as_u64().unwrap()), [PROBE, "keepalive_rst"]);
    let (probe, rst) = (&v.segments[0], &v.segments[1]);
    assert_eq!(rst["answers"], probe["frame"]);
    assert_eq!(rst["seq"], probe["ack"], "RST seq = the probe's ACK field");
    assert_eq!(rst["flags"], "R", "ACK flag clear");
    assert_eq!(f["outcome"], "reset");
    // Same shape as a rebooted peer's RST, but one hop closer: the TTL tells.
    assert_eq!(f["reset_by"], "path");
    assert_eq!(f["reset_ttl"], serde_json::json!([64, 63]));
    let idle = secs(&f["idle_s"]);
    assert!((3.95..4.6).contains(&idle), "idle {idle}, keepalive idle was 4 s");
    let app = app_result(file);
    assert_eq!(app["so_error"], "ECONNRESET");
    assert_eq!(app["epoll"], "EPOLLIN|EPOLLERR|EPOLLHUP");
}

#[test]
fn delayed_path_answers_come_at_least_50ms_later() {
    let file = "linux_ka_delay_50ms.pcap";
    let v = verify_json(&capture(file), &[]);
    let f = only_flow(&v);
    answered_rounds(&v.kinds_of(f["flow_id"].as_u64().unwrap()), 3, file);
    for s in v.segments.iter().filter(|s| s["kind"] == ACK) {
        let rtt = s["rtt_ms"].as_f64().unwrap();
        assert!(rtt >= 50.0, "{file}: rtt {rtt} ms: {s}");
    }
    assert!(f["directions"][0]["rtt_ms"]["min"].as_f64().unwrap() >= 50.0);
    assert_eq!(f["outcome"], "closed");
    about_one_second(&f["idle_s"]);
}

#[test]
fn outage_unanswered_probes_then_answered_connection_survives() {
    let file = "linux_ka_outage_recovered.pcap";
    let v = verify_json(&capture(file), &[]);
    let f = only_flow(&v);
    let kinds = v.kinds_of(f["flow_id"].as_u64().unwrap());
    // Unanswered probes during the outage, then answered rounds.
    let unanswered = kinds.iter().take_while(|k| *k == PROBE).count() - 1;
    assert!(unanswered >= 1, "{kinds:?}");
    answered_rounds(&kinds[unanswered..], 2, file);
    assert_eq!(f["unanswered"].as_u64(), Some(unanswered as u64));
    assert_eq!(f["outcome"], "closed", "not timed out: cnt 5 was never reached");
    assert!(!kinds.iter().any(|k| k == "keepalive_abort"));
    assert_eq!(app_result(file)["outcome"], "closed");
}

#[test]
fn kaprobe_windows_style_probes_answered_with_dsack() {
    let file = "windows_style_probe_dsack.pcap";
    let v = verify_json(&capture(file), &[]);
    let f = only_flow(&v);
    assert_eq!(v.kinds_of(f["flow_id"].as_u64().unwrap()), [PROBE, ACK].repeat(3));
    assert_eq!(f["prober"], "client");
    assert_eq!(
        (f["probes"].as_u64(), f["answered"].as_u64(), f["unanswered"].as_u64()),
        (Some(3), Some(3), Some(0))
    );
    assert_eq!(f["outcome"], "closed", "{file}: answered, then kaprobe's FIN");
    about_one_second(&f["idle_s"]);
    assert_eq!(f["violations"].as_array().unwrap().len(), 0, "{}", f["violations"]);
    for pair in v.segments.chunks(2) {
        let (probe, ack) = (&pair[0], &pair[1]);
        assert_eq!(probe["len"], 1, "a 1-byte probe");
        assert_eq!(
            (probe["rel_seq"].as_u64(), probe["rel_ack"].as_u64()),
            (Some(100), Some(101))
        );
        assert_eq!(ack["answers"], probe["frame"]);
        assert_eq!(ack["dsack"], true, "answered with a D-SACK block for the probe's byte");
        assert_eq!(ack["seq"], probe["ack"]);
        assert_eq!(
            ack["ack"].as_u64().unwrap(),
            (probe["seq"].as_u64().unwrap() + 1) % (1 << 32)
        );
    }
    assert_eq!(v.code, 0);
}

/// `kaprobe verify --json --all` on `path` and on the same bytes through a pipe
/// (`/dev/stdin`, streamed rather than mapped): the outputs, without the
/// summary's timings, must be identical.
fn pipe_reads_the_same_as_the_file(path: &std::path::Path) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let name = path.to_str().unwrap();
    let direct = kaprobe(&["verify", "--json", "--all", name]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_kaprobe"))
        .args(["verify", "--json", "--all", "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(path).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&bytes));
    let piped = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(
        piped.status.code(),
        Some(direct.code),
        "{name}: {}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let records = |out: &str| -> Vec<serde_json::Value> {
        let mut v: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        for r in v.iter_mut().filter(|r| r["type"] == "summary") {
            let o = r.as_object_mut().unwrap();
            o.remove("elapsed_s");
            o.remove("packets_per_s");
        }
        v
    };
    let piped = records(&String::from_utf8_lossy(&piped.stdout).replace("/dev/stdin", name));
    let direct = records(&direct.stdout);
    assert!(direct.len() > 2, "{name}: {direct:?}");
    assert!(piped == direct, "{name}: the pipe gave something else");
}

/// Every capture, pcap and pcapng, reads the same through a pipe as mapped.
#[test]
fn a_pipe_reads_the_same_as_the_file() {
    let mut files: Vec<_> = std::fs::read_dir(repo().join("captures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    assert!(files.iter().any(|p| p.extension().unwrap() == "pcapng"), "{files:?}");
    files.iter().for_each(|f| pipe_reads_the_same_as_the_file(f));
}

/// A capture large enough that the mapped reader lets go of pages behind it
/// and the streamed one refills its buffer many times: a lab session repeated
/// on 7,500 client ports (about 11 MB), read the same both ways.
#[test]
fn a_large_capture_reads_the_same_through_a_pipe() {
    let src = std::fs::read(capture("linux_ka_answered_v4.pcap")).unwrap();
    let (header, records) = src.split_at(24);
    assert_eq!(
        &header[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian microsecond pcap"
    );
    let mut out = header.to_vec();
    for copy in 0..7500u16 {
        let mut at = 0;
        while at < records.len() {
            let caplen = u32::from_le_bytes(records[at + 8..at + 12].try_into().unwrap()) as usize;
            let mut rec = records[at..at + 16 + caplen].to_vec();
            let ts = u32::from_le_bytes(rec[..4].try_into().unwrap()) + copy as u32 * 10;
            rec[..4].copy_from_slice(&ts.to_le_bytes());
            // Ethernet + IPv4 (no options): the client's port is the source or the destination.
            for port_at in [16 + 14 + 20, 16 + 14 + 20 + 2] {
                if rec[port_at..port_at + 2] == 40001u16.to_be_bytes() {
                    rec[port_at..port_at + 2].copy_from_slice(&(20000 + copy).to_be_bytes());
                }
            }
            out.extend(rec);
            at += 16 + caplen;
        }
    }
    assert!(out.len() > 10 << 20, "{} bytes", out.len());
    let path = std::env::temp_dir().join(format!("kaprobe-large-{}.pcap", std::process::id()));
    std::fs::write(&path, &out).unwrap();
    pipe_reads_the_same_as_the_file(&path);
    let v = verify_json(&path, &[]);
    assert_eq!(v.flows.len(), 7500, "one flow per copy");
    std::fs::remove_file(&path).unwrap();
}

/// `tcpdump -s 54`: the TCP header's fixed 20 bytes kept, every option cut.
/// seq, ack, flags and the length from the IP header are all the classifier
/// needs; the options are unknown, not absent (no missing-TSopt violation).
#[test]
fn a_short_snaplen_that_cuts_the_options_still_classifies_every_frame() {
    let file = "linux_ka_snaplen_54.pcap";
    answered_three_times(file, "client");
    let v = verify_json(&capture(file), &[]);
    assert_eq!(v.summary["truncated_headers"], 0);
    assert_eq!(v.summary["options_cut"], v.summary["tcp_packets"]);
    for s in &v.segments {
        assert_eq!(s["options_cut"], true, "{s}");
    }
    // Wireshark flags none of these probes.
    if tshark().is_some() {
        assert_eq!(
            tshark_frames(&capture(file), "tcp.analysis.keep_alive"),
            Vec::<u64>::new()
        );
    }
}

/// A path whose round trip (1.5 s) is longer than the interval (1 s): each
/// answer arrives after the next probe and is paired with its own probe.
#[test]
fn answers_that_arrive_after_the_next_probe_are_paired_with_their_own() {
    let file = "linux_ka_late_answers.pcap";
    let v = verify_json(&capture(file), &[]);
    let f = only_flow(&v);
    let probes = v.frames_of(PROBE);
    let answers: Vec<&serde_json::Value> = v.segments.iter().filter(|s| s["kind"] == ACK).collect();
    assert!(probes.len() >= 4, "{probes:?}");
    assert_eq!(answers.len(), probes.len(), "every probe answered");
    assert_eq!(f["unanswered"], 0);
    let paired: Vec<u64> = answers.iter().map(|a| a["answers"].as_u64().unwrap()).collect();
    assert_eq!(paired, probes, "in order, each to its own probe");
    for a in &answers {
        let rtt = a["rtt_ms"].as_f64().unwrap();
        assert!(
            rtt >= 1500.0,
            "the path's 1.5 s, not the time since the latest probe: {a}"
        );
    }
    // At least one answer came after a later probe had left.
    assert!(answers
        .iter()
        .zip(&probes[1..])
        .any(|(a, &p)| a["frame"].as_u64().unwrap() > p));
}

/// A capture started between the data and the first probe: the first frame
/// is a probe with nothing before it; its answer, acknowledging one byte
/// past a segment with none, says so.
#[test]
fn a_capture_that_starts_with_a_probe_classifies_it_by_its_answer() {
    let file = "linux_ka_mid_session.pcap";
    let v = verify_json(&capture(file), &[]);
    let f = only_flow(&v);
    assert_eq!(v.kinds_of(f["flow_id"].as_u64().unwrap()), [PROBE, ACK, PROBE, ACK]);
    assert_eq!(v.frames_of(PROBE), [1, 3]);
    assert_eq!((f["probes"].as_u64(), f["answered"].as_u64()), (Some(2), Some(2)));
    assert_eq!(f["outcome"], "closed");
}
