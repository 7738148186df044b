//! `kaprobe conform` against the lab's Linux peer (root; skipped outside CI as
//! a user). A current Linux kernel is the reference the expectations describe,
//! so every case must come out as expected, and `verify` must read the same
//! run's recording the same way. Then gVisor, smoltcp and lwIP as the peer:
//! the answers that set each apart. tshark reads every recording alike.

mod common;
use common::lab::*;
use common::*;

use serde_json::Value;

const V4: &str = "10.77.101.2:7077";

/// `conform --json --pcap` against the lab's peer: exit 0, then (report, cases,
/// the recording as `verify` reads it). tshark must flag the same frames as
/// probes and answers: on these segments Wireshark's rule and kaprobe's agree.
fn battery(lab: &Lab) -> (Value, Vec<Value>, Verified) {
    battery_exiting(lab, 0)
}

/// `battery`, for a run that exits with `code`.
fn battery_exiting(lab: &Lab, code: i32) -> (Value, Vec<Value>, Verified) {
    let pcap = lab.path("conform.pcap");
    let out = run(lab.kaprobe("c", &["conform", V4, "--json", "--pcap", pcap.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
    let mut lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let report = lines.pop().unwrap();
    assert_eq!(report["type"], "conformance");
    let v = verify_json(&pcap, &[]);
    if tshark().is_some() {
        agrees_with_tshark_but_for_repeats(&pcap, &v);
    }
    (report, lines, v)
}

/// tshark flags the same probes, and the same answers but for a repeated one:
/// a peer that answers a probe twice (lwIP, to a probe whose ACK is ahead) has
/// both flagged by Wireshark, the second only as an ACK by kaprobe (one answer
/// per probe). Each such extra frame must repeat the flow's answer before it.
fn agrees_with_tshark_but_for_repeats(pcap: &std::path::Path, v: &Verified) {
    assert_eq!(
        v.frames_of("keepalive_probe"),
        tshark_frames(pcap, "tcp.analysis.keep_alive"),
        "probes"
    );
    let ours = v.frames_of("keepalive_ack");
    let theirs = tshark_frames(pcap, "tcp.analysis.keep_alive_ack");
    assert!(
        ours.iter().all(|f| theirs.contains(f)),
        "{ours:?} vs tshark's {theirs:?}"
    );
    let all = verify_json(pcap, &["--all"]).segments;
    let seg = |f: u64| all.iter().position(|s| s["frame"] == f).unwrap();
    for &f in theirs.iter().filter(|f| !ours.contains(f)) {
        let at = seg(f);
        let s = &all[at];
        let answer = all[..at]
            .iter()
            .rev()
            .find(|p| p["flow_id"] == s["flow_id"] && p["kind"] == "keepalive_ack")
            .unwrap_or_else(|| panic!("frame {f}: no answer before it"));
        assert_eq!(s["kind"], "ack", "frame {f}");
        assert_eq!((&s["seq"], &s["ack"]), (&answer["seq"], &answer["ack"]), "frame {f}");
    }
}

fn case<'a>(cases: &'a [Value], name: &str) -> &'a Value {
    cases.iter().find(|c| c["name"] == name).unwrap()
}

#[test]
fn the_battery_against_linux_is_as_expected_and_verify_agrees() {
    let Some(lab) = Lab::up("conf", &[]) else {
        return;
    };
    let (report, cases, v) = battery(&lab);
    assert_eq!(report["type"], "conformance");
    assert_eq!(
        (report["timestamps"].as_bool(), report["sack"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(
        report["styles_answered"],
        serde_json::json!(["linux", "windows", "bsd42", "lwip", "smoltcp"])
    );
    assert_eq!(report["deviations"], serde_json::json!([]), "{report}");
    assert_eq!(cases.len(), 16);
    let case = |name: &str| case(&cases, name);
    for c in &cases {
        assert_eq!(c["verdict"], "as_expected", "{c}");
    }
    // The answers that characterise Linux.
    assert_eq!(case("style_windows")["observed"], serde_json::json!(["ack_dsack"]));
    assert_eq!(
        case("two_zero_byte_within_500ms")["observed"],
        serde_json::json!(["ack", "none"]),
        "the 500 ms limit"
    );
    assert_eq!(
        case("ack_of_unsent_data")["observed"],
        serde_json::json!(["challenge_ack"])
    );
    assert_eq!(case("at_snd_nxt")["observed"], serde_json::json!(["none"]));
    // Each answer acknowledges SND.NXT (the probe's seq + 1, or its seq when at SND.NXT).
    let a = &case("style_linux");
    assert_eq!(
        a["answers"][0]["ack"].as_u64().unwrap(),
        (a["sent"][0]["seq"].as_u64().unwrap() + 1) % (1 << 32)
    );

    // verify reads the recording the same way: every segment sent at SND.NXT-1
    // is a keepalive probe, and every answer conform saw to one is its ACK.
    let not_probes = ["at_snd_nxt", "snd_nxt_minus_2", "ack_of_unsent_data"];
    let probe_cases: Vec<&Value> = cases
        .iter()
        .filter(|c| !not_probes.contains(&c["name"].as_str().unwrap()))
        .collect();
    let probes: usize = probe_cases.iter().map(|c| c["sent"].as_array().unwrap().len()).sum();
    let answered: usize = probe_cases
        .iter()
        .flat_map(|c| c["observed"].as_array().unwrap())
        .filter(|o| o.as_str() != Some("none"))
        .count();
    assert_eq!(v.frames_of("keepalive_probe").len(), probes);
    assert_eq!(v.frames_of("keepalive_ack").len(), answered);
    assert_eq!(v.flows.len(), probe_cases.len());

    // A case by name; an unknown name is a one-line error.
    let out = run(lab.kaprobe("c", &["conform", V4, "--case", "nope"]));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("kaprobe: --case nope: no such case (cases: style_linux,"),
        "{err}"
    );
}

/// smoltcp as the peer (`lab.sh up --peer smoltcp`: its TCP on a TAP bridged
/// with the server's veth): what sets it apart from Linux on the wire.
#[test]
fn smoltcp_answers_without_d_sack_and_ignores_a_4_2bsd_probe() {
    let Some(lab) = Lab::up("confsm", &["--peer", "smoltcp"]) else {
        return;
    };
    let (report, cases, _) = battery(&lab);
    let case = |name: &str| case(&cases, name);
    // SACK negotiated, timestamps not (no TSval generator).
    assert_eq!(
        (report["timestamps"].as_bool(), report["sack"].as_bool()),
        (Some(false), Some(true))
    );
    // A plain ACK for a 1-byte probe: no D-SACK although SACK was negotiated.
    assert_eq!(case("style_windows")["observed"], serde_json::json!(["ack"]));
    assert_eq!(
        case("two_one_byte_quickly")["observed"],
        serde_json::json!(["ack", "ack"])
    );
    // A 4.2BSD probe (ack RCV.NXT-1) draws nothing.
    assert_eq!(case("style_bsd42")["observed"], serde_json::json!(["none"]));
    assert_eq!(
        report["styles_answered"],
        serde_json::json!(["linux", "windows", "lwip", "smoltcp"])
    );
    // Like Linux: the basic probe, the challenge ACK, nothing for SND.NXT.
    assert_eq!(case("style_linux")["observed"], serde_json::json!(["ack"]));
    assert_eq!(
        case("ack_of_unsent_data")["observed"],
        serde_json::json!(["challenge_ack"])
    );
    assert_eq!(case("at_snd_nxt")["observed"], serde_json::json!(["none"]));
    for c in ["no_tsopt", "stale_tsval", "stale_tsval_one_byte", "tsval_ahead"] {
        assert_eq!(case(c)["verdict"], "skipped", "no timestamps: {c}");
    }
}

/// lwIP 2.1 as the peer (`lab.sh up --peer lwip`, Debian's liblwip-dev on a TAP):
/// no options at all, and no limit on answers to out-of-window probes.
#[test]
fn lwip_negotiates_no_options_and_answers_every_probe() {
    let Some(lab) = Lab::up("conflw", &["--peer", "lwip"]) else {
        return;
    };
    let (report, cases, _) = battery(&lab);
    let case = |name: &str| case(&cases, name);
    assert_eq!(
        (report["timestamps"].as_bool(), report["sack"].as_bool()),
        (Some(false), Some(false))
    );
    // Both 0-byte probes answered: no 500 ms limit.
    assert_eq!(
        case("two_zero_byte_within_500ms")["observed"],
        serde_json::json!(["ack", "ack"])
    );
    assert_eq!(
        report["deviations"],
        serde_json::json!(["two_zero_byte_within_500ms: expected ack then none, observed ack then ack"])
    );
    // Every style answered, a 4.2BSD probe included (a plain ACK: no SACK).
    assert_eq!(
        report["styles_answered"],
        serde_json::json!(["linux", "windows", "bsd42", "lwip", "smoltcp"])
    );
    assert_eq!(case("style_bsd42")["observed"], serde_json::json!(["ack"]));
    // A probe whose ACK is ahead of what lwIP sent is answered twice.
    let ahead = case("probe_ack_ahead");
    assert_eq!(
        (&ahead["observed"], &ahead["more_segments"]),
        (&serde_json::json!(["ack"]), &serde_json::json!([1]))
    );
    assert_eq!(case("style_linux")["more_segments"], serde_json::json!([0]));
}

/// gVisor's netstack as the peer (`lab.sh up --peer gvisor`: peer.py under
/// runsc): like Linux, but no D-SACK, and neither the challenge ACK nor PAWS.
#[test]
fn gvisor_answers_without_d_sack_and_ignores_an_ack_of_unsent_data() {
    let Some(lab) = Lab::up("confgv", &["--peer", "gvisor"]) else {
        return;
    };
    let (report, cases, _) = battery(&lab);
    let case = |name: &str| case(&cases, name);
    assert_eq!(
        (report["timestamps"].as_bool(), report["sack"].as_bool()),
        (Some(true), Some(true))
    );
    // A plain ACK for a 1-byte probe although SACK was negotiated.
    assert_eq!(case("style_windows")["observed"], serde_json::json!(["ack"]));
    assert_eq!(case("garbage_byte")["observed"], serde_json::json!(["ack"]));
    // Every style answered; a probe without TSopt too.
    assert_eq!(
        report["styles_answered"],
        serde_json::json!(["linux", "windows", "bsd42", "lwip", "smoltcp"])
    );
    assert_eq!(case("no_tsopt")["observed"], serde_json::json!(["ack"]));
    // Its own 500 ms limit on answers to out-of-window segments, like Linux's.
    assert_eq!(
        case("two_zero_byte_within_500ms")["observed"],
        serde_json::json!(["ack", "none"])
    );
    // Unlike Linux: a stale TSval is answered, and an ACK of data never sent
    // gets nothing (Linux sends a challenge ACK).
    assert_eq!(case("stale_tsval")["observed"], serde_json::json!(["ack"]));
    assert_eq!(case("ack_of_unsent_data")["observed"], serde_json::json!(["none"]));
    assert_eq!(case("at_snd_nxt")["observed"], serde_json::json!(["none"]));
}

/// ns-3 as the peer (`lab.sh up --peer ns3`: its TCP on a TAP, real-time
/// simulator): it never answers a 0-byte probe, so the style kaprobe probes
/// with by default goes unanswered and conform exits 1.
#[test]
fn ns3_never_answers_a_zero_byte_probe_so_conform_exits_1() {
    let Some(lab) = Lab::up("confns", &["--peer", "ns3"]) else {
        return;
    };
    let (report, cases, _) = battery_exiting(&lab, 1);
    let case = |name: &str| case(&cases, name);
    assert_eq!(
        (report["timestamps"].as_bool(), report["sack"].as_bool()),
        (Some(true), Some(true))
    );
    for c in [
        "style_linux",
        "style_lwip",
        "snd_nxt_minus_2",
        "no_tsopt",
        "tsval_ahead",
    ] {
        assert_eq!(case(c)["observed"], serde_json::json!(["none"]), "{c}");
    }
    assert_eq!(
        case("two_zero_byte_within_500ms")["observed"],
        serde_json::json!(["none", "none"])
    );
    // A 1-byte probe is answered, without D-SACK; 4.2BSD's (ACK one behind) is not.
    assert_eq!(case("style_windows")["observed"], serde_json::json!(["ack"]));
    assert_eq!(report["styles_answered"], serde_json::json!(["windows", "smoltcp"]));
}

/// README's stacks table is what `scripts/stacks-table.sh` measures here and
/// now: the lab's answers and the recordings in captures/ (the stacks'
/// versions aside, which name this machine's kernel and packages).
#[test]
fn the_readme_stacks_table_is_what_the_lab_measures() {
    if !can_run("stacks-table") {
        return;
    }
    let out = std::process::Command::new("bash")
        .arg(repo().join("scripts/stacks-table.sh"))
        .env("KAPROBE", env!("CARGO_BIN_EXE_kaprobe"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("| "))
            .map(|l| l.splitn(3, '|').nth(2).unwrap().to_string())
            .collect()
    };
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let (_, table) = readme.split_once("<!-- stacks-table: begin -->\n").unwrap();
    let (table, _) = table.split_once("<!-- stacks-table: end -->").unwrap();
    assert_eq!(
        rows(&text(&out.stdout)),
        rows(table),
        "README.md is out of date: run scripts/stacks-table.sh --readme"
    );
}
