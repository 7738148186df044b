//! `kaprobe probe` with many sessions at once (`--sessions`, several
//! `--connect`) against the lab's real Linux peer: one engine, one capture,
//! one raw socket per family. Root only (skipped outside CI as a user); each
//! test has its own lab, torn down by its guard.

mod common;
use common::lab::*;
use common::*;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const V4: &str = "10.77.101.2:7077";
const V6: &str = "[fd77:0:0:101::2]:7077";

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A finished `probe --json` run: its events by session, and its summary.
struct Many {
    code: i32,
    by_session: BTreeMap<u64, Vec<Value>>,
    summary: Value,
    stderr: String,
}

impl Many {
    fn of(code: i32, lines: &[String], stderr: String) -> Many {
        let events: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}\nstderr: {stderr}")))
            .collect();
        let (summary, rest) = events
            .split_last()
            .unwrap_or_else(|| panic!("no output; stderr: {stderr}"));
        assert_eq!(summary["type"], "summary", "the summary comes last");
        let mut by_session: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
        for e in rest {
            assert_ne!(e["type"], "summary", "one summary: {e}");
            by_session.entry(u(&e["session"])).or_default().push(e.clone());
        }
        Many {
            code,
            by_session,
            summary: summary.clone(),
            stderr,
        }
    }

    fn types(&self, s: u64) -> Vec<&str> {
        self.by_session[&s]
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect()
    }

    /// Each session's verdict: its last event, exactly one.
    fn verdicts(&self) -> Vec<&Value> {
        self.by_session
            .iter()
            .filter(|(s, _)| **s > 0)
            .map(|(s, evs)| {
                let v = evs.last().unwrap();
                assert_eq!(v["type"], "verdict", "session {s}: {:?}", self.types(*s));
                assert_eq!(self.types(*s).iter().filter(|t| **t == "verdict").count(), 1);
                v
            })
            .collect()
    }
}

#[test]
fn two_hundred_sessions_alive_then_two_hundred_dead_when_the_peer_is_blackholed() {
    let Some(lab) = Lab::up("many", &[]) else {
        return;
    };
    let pcap = lab.path("many.pcap");
    let out = run(lab.kaprobe(
        "c",
        &[
            "probe",
            "--connect",
            V4,
            "--sessions",
            "200",
            "--send",
            "hi",
            "--idle",
            "1s",
            "--interval",
            "1s",
            "--rounds",
            "2",
            "--json",
            "--pcap",
            pcap.to_str().unwrap(),
        ],
    ));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    let m = Many::of(out.status.code().unwrap_or(-1), &lines, text(&out.stderr));
    assert_eq!(m.code, 0, "every session alive: {}", m.stderr);
    let ids: BTreeSet<u64> = m.by_session.keys().copied().filter(|s| *s > 0).collect();
    assert_eq!(ids, (1..=200).collect(), "session ids 1..=200");
    let mut locals = BTreeSet::new();
    for (s, v) in (1..).zip(m.verdicts()) {
        assert_eq!(
            (v["outcome"].as_str(), v["reason"].as_str()),
            (Some("alive"), Some("rounds")),
            "{v}"
        );
        assert_eq!(
            (u(&v["probes"]), u(&v["answered"]), u(&v["unanswered"])),
            (2, 2, 0),
            "{v}"
        );
        assert_eq!(
            m.types(s),
            [
                "exchanged",
                "session",
                "probe_sent",
                "probe_acked",
                "probe_sent",
                "probe_acked",
                "verdict"
            ]
        );
        assert_eq!(v["remote"], V4);
        locals.insert(v["local"].as_str().unwrap().to_string());
    }
    assert_eq!(locals.len(), 200, "200 distinct connections");
    let s = &m.summary;
    assert_eq!((u(&s["sessions"]), u(&s["alive"])), (200, 200), "{s}");
    assert_eq!(
        (u(&s["probes"]), u(&s["answered"]), u(&s["unanswered"])),
        (400, 400, 0),
        "{s}"
    );
    assert!(s["lateness_ms"]["p99"].as_f64().is_some(), "{s}");

    // One recording holds every session: 200 flows, each two probes answered.
    let v = verify_json(&pcap, &[]);
    assert_eq!(v.flows.len(), 200);
    assert_eq!(v.frames_of("keepalive_probe").len(), 400);
    assert_eq!(v.frames_of("keepalive_ack").len(), 400);

    // The same, the peer blackholed once every session has exchanged data.
    let mut b = Background::spawn(lab.kaprobe(
        "c",
        &[
            "probe",
            "--connect",
            V4,
            "--sessions",
            "200",
            "--send",
            "hi",
            "--idle",
            "3s",
            "--interval",
            "500ms",
            "--count",
            "3",
            "--json",
        ],
    ));
    b.wait_lines("\"type\":\"session\"", 200, 30);
    lab.ok("fault", &["blackhole"]);
    let (code, lines, err) = b.finish(30);
    let m = Many::of(code, &lines, err);
    assert_eq!(m.code, 1, "dead is a verdict against the user: {}", m.stderr);
    for (s, v) in (1..).zip(m.verdicts()) {
        assert_eq!(
            (v["outcome"].as_str(), v["reason"].as_str()),
            (Some("dead"), Some("count")),
            "{v}"
        );
        assert_eq!(
            (u(&v["probes"]), u(&v["answered"]), u(&v["unanswered"])),
            (3, 0, 3),
            "{v}"
        );
        assert_eq!(
            m.types(s),
            [
                "exchanged",
                "session",
                "probe_sent",
                "probe_unanswered",
                "probe_sent",
                "probe_unanswered",
                "probe_sent",
                "probe_unanswered",
                "abort",
                "verdict"
            ]
        );
    }
    let s = &m.summary;
    assert_eq!((u(&s["sessions"]), u(&s["dead"]), u(&s["alive"])), (200, 200, 0), "{s}");
    assert_eq!((u(&s["probes"]), u(&s["unanswered"])), (600, 600), "{s}");
}

#[test]
fn several_targets_each_get_their_sessions_and_a_refused_one_fails_alone() {
    let Some(lab) = Lab::up("mtgt", &[]) else {
        return;
    };
    // IPv4 and IPv6 targets at once, and a port nobody listens on.
    let out = run(lab.kaprobe(
        "c",
        &[
            "probe",
            "--connect",
            V4,
            "--connect",
            V6,
            "--connect",
            "10.77.101.2:7079",
            "--sessions",
            "3",
            "--idle",
            "300ms",
            "--rounds",
            "1",
            "--json",
        ],
    ));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    let m = Many::of(out.status.code().unwrap_or(-1), &lines, text(&out.stderr));
    assert_eq!(m.code, 1, "not every session alive: {}", m.stderr);
    let mut by_remote: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
    for v in m.verdicts() {
        by_remote
            .entry(v["remote"].as_str().unwrap().into())
            .or_default()
            .push((
                v["outcome"].as_str().unwrap().into(),
                v["error"].as_str().map(str::to_string),
            ));
    }
    let alive = vec![("alive".to_string(), None); 3];
    assert_eq!(by_remote[V4], alive);
    assert_eq!(by_remote[V6], alive);
    let refused = Some("connect 10.77.101.2:7079: connection refused".to_string());
    assert_eq!(by_remote["10.77.101.2:7079"], vec![("failed".to_string(), refused); 3]);
    let s = &m.summary;
    assert_eq!((u(&s["sessions"]), u(&s["alive"]), u(&s["failed"])), (9, 6, 3), "{s}");

    // For people: with more than a few sessions, the verdicts grouped at the end.
    let out = run(lab.kaprobe(
        "c",
        &[
            "probe",
            "--connect",
            V4,
            "--connect",
            V6,
            "--sessions",
            "6",
            "--idle",
            "300ms",
            "--rounds",
            "1",
        ],
    ));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("alive: 12 sessions\n"), "{stdout}");
    assert!(
        stdout.contains("summary: 12 sessions: 12 alive; 12 probes, 12 answered"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("probe 1"),
        "no per-event lines with many sessions: {stdout}"
    );
}
