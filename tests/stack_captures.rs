//! Other TCP stacks' own keepalive, recorded from the lab by
//! `scripts/record-stacks.sh` (captures/README.md): `verify` classifies every
//! frame and infers each stack's idle, interval and count within its timer's
//! granularity. Needs no root: the captures are files.

mod common;
use common::*;

use serde_json::Value;

const PROBE: &str = "keepalive_probe";
const ACK: &str = "keepalive_ack";
const ABORT: &str = "keepalive_abort";

/// The one flow of a capture, and its classified segments' kinds.
fn flow(name: &str) -> (Verified, Value, Vec<String>) {
    let (v, f, kinds) = probing_flow(name);
    assert_eq!(v.flows.len(), 1, "{name}: {:?}", v.flows);
    (v, f, kinds)
}

/// The one flow with keepalive probes, and its classified segments' kinds.
fn probing_flow(name: &str) -> (Verified, Value, Vec<String>) {
    let v = verify_json(&capture(name), &[]);
    let probing: Vec<&Value> = v.flows.iter().filter(|f| f["probes"] != 0).collect();
    assert_eq!(probing.len(), 1, "{name}: {:?}", v.flows);
    let f = probing[0].clone();
    let kinds = v.kinds_of(f["flow_id"].as_u64().unwrap());
    (v, f, kinds)
}

fn near(v: &Value, want: f64, tol: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() <= tol)
}

#[test]
fn smoltcp_probes_with_one_byte_on_one_timer_and_resets_at_its_timeout() {
    let (v, f, kinds) = flow("smoltcp_ka_answered.pcap");
    assert_eq!(
        kinds,
        [PROBE, ACK].repeat(4),
        "answered every second until the client closed"
    );
    assert_eq!(
        (f["prober"].as_str(), f["outcome"].as_str()),
        (Some("server"), Some("closed"))
    );
    assert!(near(&f["idle_s"], 1.0, 0.05), "{f}");
    // smoltcp's probe carries one byte (0x00).
    for s in v.segments.iter().filter(|s| s["kind"] == PROBE) {
        assert_eq!(s["len"], 1, "{s}");
    }

    let (_, f, kinds) = flow("smoltcp_ka_dead.pcap");
    assert_eq!(kinds, [PROBE, PROBE, PROBE, ABORT]);
    assert_eq!(f["outcome"], "timed_out");
    assert!(near(&f["interval_s"], 1.0, 0.05) && f["count"] == 3, "{f}");
}

#[test]
fn lwip_probes_with_no_options_its_idle_rounded_up_by_its_500ms_timer() {
    let (v, f, kinds) = flow("lwip_ka_answered.pcap");
    assert_eq!(kinds, [PROBE, ACK].repeat(3));
    assert_eq!(
        (f["prober"].as_str(), f["outcome"].as_str()),
        (Some("server"), Some("closed"))
    );
    // Configured 1 s; lwIP's slow timer (500 ms) makes it up to 1.5 s.
    assert!(near(&f["idle_s"], 1.25, 0.26), "{f}");
    // lwIP's probe is empty.
    for s in v.segments.iter().filter(|s| s["kind"] == PROBE) {
        assert_eq!(s["len"], 0, "{s}");
    }

    let (_, f, kinds) = flow("lwip_ka_dead.pcap");
    assert_eq!(
        kinds,
        [PROBE, PROBE, PROBE, ABORT],
        "RST|ACK one interval after the last probe"
    );
    assert_eq!(f["outcome"], "timed_out");
    assert!(near(&f["interval_s"], 1.0, 0.05) && f["count"] == 3, "{f}");
}

#[test]
fn gvisor_probes_with_timestamps_and_gives_up_without_a_rst() {
    let (v, f, kinds) = flow("gvisor_ka_answered.pcap");
    assert_eq!(kinds, [PROBE, ACK].repeat(4));
    assert_eq!(
        (f["prober"].as_str(), f["outcome"].as_str()),
        (Some("server"), Some("closed"))
    );
    assert!(near(&f["idle_s"], 1.0, 0.05), "{f}");
    // Empty probes; gVisor negotiated timestamps and keeps TSopt on its probes
    // (no missing_timestamp violation).
    for s in v.segments.iter().filter(|s| s["kind"] == PROBE) {
        assert_eq!(s["len"], 0, "{s}");
    }
    assert_eq!(f["violations"], serde_json::json!([]), "{f}");

    // Three unanswered probes and then nothing: no RST, while the capture goes
    // on (another connection, 4.5 s after the last probe).
    let (v, f, kinds) = probing_flow("gvisor_ka_dead.pcap");
    assert_eq!(v.summary["flows"], 2);
    assert_eq!(kinds, [PROBE, PROBE, PROBE]);
    assert_eq!(
        (f["outcome"].as_str(), f["silent"].as_bool()),
        (Some("timed_out"), Some(true))
    );
    assert!(near(&f["interval_s"], 1.0, 0.05) && f["count"] == 3, "{f}");
    // The capture's other traffic counts as time going on even when --flow
    // leaves it out.
    let port = f["client"].as_str().unwrap().rsplit(':').next().unwrap();
    let only = verify_json(&capture("gvisor_ka_dead.pcap"), &["--flow", &format!(":{port}")]);
    assert_eq!(only.flows.len(), 1);
    assert_eq!(only.flows[0]["silent"], true);
}
