//! `kaprobe replay`: a recorded capture's keepalive re-enacted against the
//! lab's live peers (root; skipped outside CI as a user), and its bad input
//! (no root needed: it fails before anything is opened).

mod common;
use common::lab::*;
use common::*;

use serde_json::Value;

const V4: &str = "10.77.101.2:7077";
const V6: &str = "[fd77:0:0:101::2]:7077";

/// `replay --json --pcap` of `capture` in the lab: (exit code, `replayed`
/// lines, `replayed_flow` lines, the final `replay` object, stderr, the
/// recording of the live sessions).
struct Replayed {
    code: i32,
    probes: Vec<Value>,
    flows: Vec<Value>,
    report: Value,
    stderr: String,
    pcap: std::path::PathBuf,
}

fn replay(lab: &Lab, capture_name: &str, to: &str, extra: &[&str]) -> Replayed {
    let pcap = lab.path(&format!("replay-{capture_name}.pcap"));
    let file = capture(capture_name);
    let mut args = vec![
        "replay",
        file.to_str().unwrap(),
        "--to",
        to,
        "--json",
        "--pcap",
        pcap.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(lab.kaprobe("c", &args));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let of = |t: &str| lines.iter().filter(|l| l["type"] == t).cloned().collect::<Vec<_>>();
    let report = of("replay")
        .pop()
        .unwrap_or_else(|| panic!("no replay line: {}", text(&out.stderr)));
    Replayed {
        code: out.status.code().unwrap_or(-1),
        probes: of("replayed"),
        flows: of("replayed_flow"),
        report,
        stderr: text(&out.stderr),
        pcap,
    }
}

fn column(rows: &[Value], key: &str, inner: &str) -> Vec<Value> {
    rows.iter().map(|r| r[key][inner].clone()).collect()
}

/// The live recording as `verify` reads it: (lengths of the probes in order,
/// how many were answered).
fn live_probes(pcap: &std::path::Path) -> (Vec<u64>, usize) {
    let v = verify_json(pcap, &[]);
    let probes = v.segments.iter().filter(|s| s["kind"] == "keepalive_probe");
    let lens = probes.map(|s| s["len"].as_u64().unwrap()).collect();
    (lens, v.frames_of("keepalive_ack").len())
}

#[test]
fn captures_answered_by_linux_are_answered_the_same_live() {
    let Some(lab) = Lab::up("rpl", &[]) else {
        return;
    };
    // 0-byte probes answered with an ACK, 1-byte ones with a D-SACK, over IPv4 and IPv6.
    for (name, to, answer, len) in [
        ("linux_ka_answered_v4.pcap", V4, "ack", 0),
        ("windows_style_probe_dsack.pcap", V4, "ack_dsack", 1),
        ("linux_ka_answered_v6.pcap", V6, "ack", 0),
    ] {
        let r = replay(&lab, name, to, &[]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let frames: Vec<u64> = r.probes.iter().map(|p| p["frame"].as_u64().unwrap()).collect();
        assert_eq!(frames, [8, 10, 12], "{name}: every probe, in the capture's order");
        assert!(r.probes.iter().all(|p| p["same"] == true), "{name}: {:?}", r.probes);
        assert_eq!(
            column(&r.probes, "live", "answer"),
            vec![Value::from(answer); 3],
            "{name}"
        );
        assert_eq!(
            column(&r.probes, "capture", "answer"),
            vec![Value::from(answer); 3],
            "{name}"
        );
        assert_eq!(
            (&r.flows[0]["capture"], &r.flows[0]["live"]),
            (&"alive".into(), &"alive".into())
        );
        assert_eq!(
            (&r.report["same"], &r.report["different"]),
            (&3.into(), &0.into()),
            "{name}"
        );
        // What went on the wire is what the capture had: 3 probes of its length, all answered.
        assert_eq!(live_probes(&r.pcap), (vec![len; 3], 3), "{name}");
    }
}

#[test]
fn many_flows_replay_at_once_and_a_mid_session_capture_says_what_it_assumed() {
    let Some(lab) = Lab::up("rplm", &[]) else {
        return;
    };
    let r = replay(&lab, "linux_ka_many_flows.pcap", V4, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        (&r.report["flows"], &r.report["probes"], &r.report["same"]),
        (&20.into(), &40.into(), &40.into())
    );
    assert_eq!(r.flows.len(), 20);
    let v = verify_json(&r.pcap, &[]);
    assert_eq!(v.flows.len(), 20, "one live connection per flow");
    assert_eq!(v.frames_of("keepalive_probe").len(), 40);
    // For people: many flows come grouped, not one table each.
    let file = capture("linux_ka_many_flows.pcap");
    let out = run(lab.kaprobe("c", &["replay", file.to_str().unwrap(), "--to", V4]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let human = text(&out.stdout);
    let group: Vec<&str> = human.lines().filter(|l| l.contains("same ×2")).collect();
    assert_eq!(group.len(), 1, "{human}");
    let cols: Vec<&str> = group[0].split_whitespace().collect();
    assert_eq!(cols, ["20", "alive", "alive", "same", "×2", "flow", "1"], "{human}");
    assert!(
        !human.contains("frame"),
        "no flow in full when all are the same:\n{human}"
    );
    assert!(human.contains("summary: 20 flows, 40 probes: 40 same, 0 different, 0 unresolved"));

    let r = replay(&lab, "linux_ka_mid_session.pcap", V4, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.probes.len(), 2);
    let notes = r.flows[0]["notes"].to_string();
    assert!(notes.contains("starts with a probe"), "{notes}");
}

#[test]
fn a_blackholed_capture_is_answered_live_and_that_is_a_difference() {
    let Some(lab) = Lab::up("rplb", &[]) else {
        return;
    };
    let r = replay(&lab, "linux_ka_blackhole_abort.pcap", V4, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.probes.len(), 3, "the three probes; the abort RST is not a probe");
    for p in &r.probes {
        assert_eq!(
            (&p["capture"]["answer"], &p["live"]["answer"]),
            (&"none".into(), &"ack".into())
        );
        assert_eq!((&p["same"], &p["difference"]), (&false.into(), &"answered live".into()));
    }
    assert_eq!(
        (&r.flows[0]["capture"], &r.flows[0]["live"]),
        (&"unanswered".into(), &"alive".into())
    );
    assert_eq!(r.flows[0]["capture_outcome"], "timed_out");
    assert_eq!(r.report["different"], 3);

    // Nothing listens on the next port: every session fails, and that is the run's error.
    let file = capture("linux_ka_blackhole_abort.pcap");
    let out = run(lab.kaprobe("c", &["replay", file.to_str().unwrap(), "--to", "10.77.101.2:7078"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("connection refused"), "{err}");
}

/// Answers that come back after the next probe went (a 1.5 s path, probes
/// 1 s apart) are matched to their own probes, as `verify` matched them in
/// the capture: by the session's rule (TSecr, then the round trip), not by
/// which probe went last.
#[test]
fn late_answers_through_a_slow_path_are_matched_to_their_probes() {
    let Some(lab) = Lab::up("rpld", &[]) else {
        return;
    };
    lab.ok("fault", &["delay", "1500ms"]);
    let r = replay(&lab, "linux_ka_late_answers.pcap", V4, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.probes.len(), 4);
    assert!(r.probes.iter().all(|p| p["same"] == true), "{:?}", r.probes);
    for p in &r.probes {
        // The fault delays each probe by 1.5 s at least: a round trip below
        // that would be the answer to an earlier probe.
        let rtt = p["live"]["rtt_ms"].as_f64().unwrap();
        assert!(rtt >= 1500.0, "frame {}: live rtt {rtt} ms", p["frame"]);
    }
    // verify pairs the live recording's answers the same way.
    let v = verify_json(&r.pcap, &[]);
    let answered: Vec<&Value> = v.segments.iter().filter(|s| s["kind"] == "keepalive_ack").collect();
    assert_eq!(answered.len(), 4);
    let probes = v.frames_of("keepalive_probe");
    let pairs: Vec<u64> = answered.iter().map(|a| a["answers"].as_u64().unwrap()).collect();
    assert_eq!(pairs, probes, "each answer to its own probe, in order");
}

/// A peer application that drops the connection (here with a RST, 0.3 s
/// after accepting it, well before the first probe at ~1 s) makes every
/// probe draw a RST; the flow says why, so it is not taken for keepalive.
#[test]
fn a_peer_that_closes_the_connection_is_named_as_the_reason() {
    let Some(lab) = Lab::up("rplc", &[]) else {
        return;
    };
    lab.ok("server", &["--abort-after", "0.3"]);
    let r = replay(&lab, "linux_ka_answered_v4.pcap", V4, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(column(&r.probes, "live", "answer"), vec![Value::from("rst"); 3]);
    assert_eq!(r.flows[0]["live"], "reset");
    let notes = r.flows[0]["notes"].to_string();
    assert!(
        notes.contains("closed the connection live (RST) before the first probe"),
        "{notes}"
    );
}

#[test]
fn smoltcp_answers_a_one_byte_probe_without_d_sack() {
    let Some(lab) = Lab::up("rplsm", &["--peer", "smoltcp"]) else {
        return;
    };
    let r = replay(&lab, "windows_style_probe_dsack.pcap", V4, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(column(&r.probes, "live", "answer"), vec![Value::from("ack"); 3]);
    assert!(
        r.probes.iter().all(|p| p["difference"] == "D-SACK missing"),
        "{:?}",
        r.probes
    );
    assert_eq!(live_probes(&r.pcap), (vec![1; 3], 3));
}

#[test]
fn speed_scales_the_gaps_and_warns_when_it_would_meet_the_peers_rate_limit() {
    let Some(lab) = Lab::up("rpls", &[]) else {
        return;
    };
    // 1.2×: probes ~0.85 s apart, well outside a Linux peer's 500 ms limit.
    let r = replay(&lab, "linux_ka_answered_v4.pcap", V4, &["--speed", "1.2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["speed"], 1.2);
    assert_eq!(live_probes(&r.pcap), (vec![0; 3], 3));
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    // 4×: the second probe would go ~0.26 s after the first answered one.
    let r = replay(&lab, "linux_ka_answered_v4.pcap", V4, &["--speed", "4"]);
    assert_ne!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("at --speed 4, the probe of frame 10 (flow 1) comes within 500ms"),
        "{}",
        r.stderr
    );
    assert_eq!(live_probes(&r.pcap).0, vec![0; 3], "every probe still goes, in order");
}

#[test]
fn replay_refuses_what_it_cannot_replay_before_it_opens_anything() {
    let cap = |n: &str| capture(n).to_str().unwrap().to_string();
    // Targets inside the lab's range: nothing is sent, as each fails first.
    for (args, says) in [
        (
            vec!["replay".into(), cap("linux_zero_window.pcap"), "--to".into(), V4.into()],
            "linux_zero_window.pcap: no flow with keepalive probes to replay",
        ),
        (
            vec![
                "replay".into(),
                cap("linux_ka_answered_v4.pcap"),
                "--to".into(),
                V4.into(),
                "--flow".into(),
                ":9".into(),
            ],
            "no flow with keepalive probes matching --flow to replay",
        ),
        (
            vec!["replay".into(), "/nonexistent.pcap".into(), "--to".into(), V4.into()],
            "/nonexistent.pcap: no such file",
        ),
        (
            vec![
                "replay".into(),
                cap("linux_ka_answered_v4.pcap"),
                "--to".into(),
                V4.into(),
                "--speed".into(),
                "0".into(),
            ],
            "a factor from 0.001",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = kaprobe(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty());
    }
}

/// The plan is `verify`'s reading of the capture, turned into what a live
/// session sends (no root: nothing is opened).
#[test]
fn the_plan_is_verifys_reading_of_each_capture() {
    use kaprobe::conform::{Kind, Ts, Variant};
    let plan = |n: &str| kaprobe::cli::replay::plan(&capture(n), None).unwrap();
    let probe = |byte, ts| Variant::Crafted {
        back: 1,
        byte,
        ts,
        ack_delta: 0,
    };
    let shapes = |f: &kaprobe::replay::FlowPlan| f.probes.iter().map(|p| p.variant).collect::<Vec<_>>();
    let kinds = |f: &kaprobe::replay::FlowPlan| f.probes.iter().map(|p| p.capture.kind).collect::<Vec<_>>();

    let p = plan("linux_ka_answered_v4.pcap");
    assert_eq!((p.plans.len(), p.without_keepalive), (1, 0));
    let f = &p.plans[0];
    let frames: Vec<u64> = f.probes.iter().map(|p| p.frame).collect();
    assert_eq!(frames, [8, 10, 12]);
    assert_eq!(shapes(f), vec![probe(None, Ts::Current); 3]);
    assert_eq!(kinds(f), vec![Kind::Ack; 3]);
    assert_eq!(
        (f.prober.as_str(), f.prober_data),
        ("client", true),
        "it had sent 100 bytes"
    );
    assert!(f.notes.is_empty(), "{:?}", f.notes);
    // The first probe's time is the idle verify measured before it.
    let v = verify_json(&capture("linux_ka_answered_v4.pcap"), &[]);
    let idle = &v.flows[0]["directions"][0]["idle"];
    let first = f.probes[0].at_ns as f64 / 1e9;
    let (lo, hi) = (idle["min_s"].as_f64().unwrap(), idle["max_s"].as_f64().unwrap());
    assert!(
        (lo - 1e-3..=hi + 1e-3).contains(&first),
        "{first} s against verify's idle {idle}"
    );
    assert!(f.probes.windows(2).all(|w| w[0].at_ns < w[1].at_ns));

    let f = &plan("windows_style_probe_dsack.pcap").plans[0];
    assert_eq!(shapes(f), vec![probe(Some(0), Ts::Current); 3]);
    assert_eq!(kinds(f), vec![Kind::AckDsack; 3]);

    let f = &plan("linux_ka_blackhole_abort.pcap").plans[0];
    assert_eq!(kinds(f), vec![Kind::None; 3]);
    assert_eq!(f.outcome, "timed_out");

    // Timestamps never negotiated: the probes' missing TSopt is not copied.
    let f = &plan("linux_ka_nots_nosack.pcap").plans[0];
    assert_eq!(shapes(f), vec![probe(None, Ts::Current); 3]);

    // Answers after the next probe: each with its own probe, 1.5 s later.
    let f = &plan("linux_ka_late_answers.pcap").plans[0];
    assert_eq!(kinds(f), vec![Kind::Ack; 4]);
    assert!(f.probes.iter().all(|p| p.capture.rtt_ns.unwrap() > 1_400_000_000));

    // No handshake, the first segment a probe: both said, data assumed.
    let f = &plan("linux_ka_mid_session.pcap").plans[0];
    assert_eq!((f.probes.len(), f.probes[0].at_ns, f.prober_data), (2, 0, true));
    let notes = f.notes.join("; ");
    assert!(
        notes.contains("starts with a probe") && notes.contains("no handshake"),
        "{notes}"
    );

    // No keepalive at all: nothing planned, the flow counted.
    let p = plan("linux_retrans_1byte.pcap");
    assert_eq!((p.plans.len(), p.without_keepalive), (0, 1));
}
