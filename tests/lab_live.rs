//! Live lab tests: bring up a namespace lab (scripts/lab.sh: client - middlebox - server,
//! real Linux TCP on both ends), run a scenario, capture it on the wire and check with
//! `kaprobe verify` what the kernel did — and with the lab's peer what the application saw.
//!
//! Root only. Without namespaces a test FAILS when running as root or when CI is set, and
//! only skips (printing "skipped: ...") as a normal user outside CI.
//!
//! Every test has its own lab (name = test tag + this process's pid, owner = this process),
//! torn down by `Lab`'s Drop even when an assertion fails; a run that was killed leaves
//! labs whose owner is gone, which the first test of the next run removes (`lab.sh cleanup`).
//! Assertions are on kinds, counts and order; the only timing bound is RTT >= the delay.

mod common;
use common::lab::*;
use common::*;

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command};

const PROBE: &str = "keepalive_probe";
const ACK: &str = "keepalive_ack";
const DEATH_MASK: &str = "EPOLLIN|EPOLLERR|EPOLLHUP";

/// What the client application saw: the one JSON line peer.py prints at the end.
fn app_result(child: Child) -> Value {
    let out = child.wait_with_output().expect("wait for the client");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "client failed: {}\n{stdout}", text(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("client output {stdout:?}: {e}"))
}

fn flow_by_port(v: &Verified, port: u16) -> &Value {
    let suffix = format!(":{port}");
    v.flows
        .iter()
        .find(|f| f["client"].as_str().is_some_and(|c| c.ends_with(&suffix)))
        .unwrap_or_else(|| panic!("no flow from port {port}: {:?}", v.flows))
}

fn kinds(v: &Verified, f: &Value) -> Vec<String> {
    v.kinds_of(f["flow_id"].as_u64().unwrap())
}

/// [probe, ack] repeated, at least `min` times.
fn answered_rounds(k: &[String], min: usize, what: &str) {
    assert!(
        k.len() >= 2 * min && k.len().is_multiple_of(2) && k.chunks(2).all(|p| p == [PROBE, ACK]),
        "{what}: expected >= {min} answered probe rounds, got {k:?}"
    );
}

fn expect_ok(file: &Path, spec: &str, flow: Option<&str>) {
    let p = file.to_str().unwrap();
    let mut args = vec!["verify", "--expect", spec];
    if let Some(f) = flow {
        args.extend(["--flow", f]);
    }
    args.push(p);
    let r = kaprobe(&args);
    assert_eq!(r.code, 0, "--expect {spec} failed:\n{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(": ok"), "{}", r.stdout);
}

fn assert_app(app: &Value, outcome: &str, so_error: &str, epoll: Option<&str>) {
    assert_eq!(app["outcome"], outcome, "{app}");
    assert_eq!(app["so_error"], so_error, "{app}");
    if let Some(m) = epoll {
        assert_eq!(app["epoll"], m, "{app}");
    }
}

const KA_1_1_3: [&str; 6] = ["--idle", "1", "--intvl", "1", "--cnt", "3"];

#[test]
fn blackholed_peer_three_probes_then_abort_app_sees_etimedout() {
    let Some(lab) = Lab::up("bh", &[]) else {
        return;
    };
    let cap = lab.capture("client.pcap", "c");
    let client = lab.client("client.jsonl", &ka_client_args("1", &[]));
    let st = lab.path("client.jsonl");
    wait_until("the data exchange", 10, || has_event(&st, "exchanged"));
    lab.ok("fault", &["blackhole"]);
    let app = app_result(client);
    lab.stop_captures();

    assert_app(&app, "error", "ETIMEDOUT", Some(DEATH_MASK));
    let v = verify_json(&cap, &[]);
    assert_eq!(v.flows.len(), 1, "{:?}", v.flows);
    let f = &v.flows[0];
    assert_eq!(kinds(&v, f), [PROBE, PROBE, PROBE, "keepalive_abort"]);
    assert_eq!(f["prober"], "client");
    assert_eq!(f["count"], 3);
    assert_eq!(f["outcome"], "timed_out");
    // The abort RST: seq = SND.NXT = probe seq + 1, ACK set.
    let abort = v.segments.last().unwrap();
    let probe = &v.segments[v.segments.len() - 2];
    assert_eq!(
        abort["seq"].as_u64().unwrap(),
        (probe["seq"].as_u64().unwrap() + 1) % (1 << 32)
    );
    assert_eq!(abort["flags"], "R.");
    // The parameters kaprobe infers are the socket options the client set.
    expect_ok(&cap, "idle=1s,interval=1s,count=3,outcome=timed_out", None);
}

#[test]
fn rebooted_peer_answers_next_probe_with_rst_app_sees_econnreset() {
    let Some(lab) = Lab::up("rb", &[]) else {
        return;
    };
    let cap = lab.capture("client.pcap", "c");
    let client = lab.client("client.jsonl", &ka_client_args("2", &[]));
    // Reboot once a probe was answered (kaprobe on the capture as it grows).
    wait_until("an answered probe", 15, || {
        let r = kaprobe(&["verify", "--json", cap.to_str().unwrap()]);
        r.stdout.contains("\"kind\":\"keepalive_ack\"")
    });
    lab.ok("fault", &["reboot"]);
    let app = app_result(client);
    lab.stop_captures();

    assert_app(&app, "error", "ECONNRESET", Some(DEATH_MASK));
    let v = verify_json(&cap, &[]);
    assert_eq!(v.flows.len(), 1, "{:?}", v.flows);
    let f = &v.flows[0];
    let k = kinds(&v, f);
    let n = k.len();
    assert!(n >= 4, "{k:?}");
    answered_rounds(&k[..n - 2], 1, "before the reboot");
    assert_eq!(k[n - 2..], [PROBE, "keepalive_rst"], "{k:?}");
    let rst = v.segments.last().unwrap();
    let probe = &v.segments[v.segments.len() - 2];
    assert_eq!(rst["answers"], probe["frame"]);
    assert_eq!(rst["seq"], probe["ack"], "RST seq = the probe's ACK field");
    assert_eq!(rst["flags"], "R");
    assert_eq!(f["outcome"], "reset");
    // The server really restarted and lost the connection without saying so on the wire.
    let log = lab.server_log();
    assert!(log.iter().any(|e| e["event"] == "vanished"), "{log:?}");
    assert_eq!(log.iter().filter(|e| e["event"] == "listening").count(), 2, "{log:?}");
}

/// Middlebox (NAT) forgets flows idle > 2 s and drops what it no longer knows. A client
/// with keepalive idle 3 s loses its flow: 3 probes vanish in the middlebox, the kernel
/// aborts. A client with idle 1 s keeps the same middlebox's state fresh and stays alive.
#[test]
fn middlebox_idle_timeout_drop_kills_long_idle_flow_short_idle_survives() {
    let Some(lab) = Lab::up("idrop", &["--nat"]) else {
        return;
    };
    lab.ok("fault", &["idle-timeout", "2s", "drop"]);
    let cap = lab.capture("client.pcap", "c");
    let srv = lab.capture("server.pcap", "s");
    let short = lab.client(
        "short.jsonl",
        &ka_client_args("1", &["--bind-port", "40001", "--close-after", "4"]),
    );
    let long = lab.client("long.jsonl", &ka_client_args("3", &["--bind-port", "40002"]));
    let (short, long) = (app_result(short), app_result(long));
    lab.stop_captures();

    assert_app(&short, "closed", "none", None);
    assert_app(&long, "error", "ETIMEDOUT", Some(DEATH_MASK));
    let v = verify_json(&cap, &[]);
    let fs = flow_by_port(&v, 40001);
    answered_rounds(&kinds(&v, fs), 2, "idle 1 s < timeout 2 s");
    assert_eq!(fs["outcome"], "closed");
    let fl = flow_by_port(&v, 40002);
    assert_eq!(kinds(&v, fl), [PROBE, PROBE, PROBE, "keepalive_abort"]);
    assert_eq!(fl["outcome"], "timed_out");
    expect_ok(&cap, "idle=3s,interval=1s,count=3,outcome=timed_out", Some(":40002"));
    // Behind the middlebox the server saw the short flow's probes and none of the long's.
    let s = verify_json(&srv, &[]);
    assert_eq!(s.flows.len(), 1, "server side: {:?}", s.flows);
    assert_eq!(s.summary["probes"], fs["probes"], "server side");
    let status = lab.ok("status", &[]);
    assert!(
        status
            .lines()
            .any(|l| l.contains("forgotten") && !l.contains(" 0 packets")),
        "the middlebox counted no forgotten packets:\n{status}"
    );
}

#[test]
fn middlebox_idle_timeout_reset_answers_probe_with_rst() {
    let Some(lab) = Lab::up("irst", &["--nat"]) else {
        return;
    };
    lab.ok("fault", &["idle-timeout", "2", "reset"]);
    let cap = lab.capture("client.pcap", "c");
    let client = lab.client("client.jsonl", &ka_client_args("3", &[]));
    let app = app_result(client);
    lab.stop_captures();

    assert_app(&app, "error", "ECONNRESET", Some(DEATH_MASK));
    let v = verify_json(&cap, &[]);
    assert_eq!(v.flows.len(), 1, "{:?}", v.flows);
    let f = &v.flows[0];
    assert_eq!(kinds(&v, f), [PROBE, "keepalive_rst"]);
    let rst = v.segments.last().unwrap();
    assert_eq!(rst["seq"], v.segments[0]["ack"], "RST seq = the probe's ACK field");
    assert_eq!(rst["flags"], "R");
    assert_eq!(f["outcome"], "reset");
}

#[test]
fn delay_50ms_probes_answered_with_rtt_at_least_50ms() {
    let Some(lab) = Lab::up("dly", &[]) else {
        return;
    };
    lab.ok("fault", &["delay", "50ms"]);
    let cap = lab.capture("client.pcap", "c");
    let client = lab.client("client.jsonl", &ka_client_args("1", &["--close-after", "3.5"]));
    let app = app_result(client);
    lab.stop_captures();

    assert_app(&app, "closed", "none", None);
    let v = verify_json(&cap, &[]);
    assert_eq!(v.flows.len(), 1, "{:?}", v.flows);
    let f = &v.flows[0];
    answered_rounds(&kinds(&v, f), 2, "delay 50 ms");
    for s in v.segments.iter().filter(|s| s["kind"] == ACK) {
        let rtt = s["rtt_ms"].as_f64().unwrap();
        assert!(rtt >= 50.0, "keepalive ACK rtt {rtt} ms < 50 ms: {s}");
    }
    let min = f["directions"][0]["rtt_ms"]["min"].as_f64().unwrap();
    assert!(min >= 50.0, "flow rtt min {min} ms");
    // ... and so does the human report ("rtt MIN/AVG/MAX ms min/avg/max").
    let r = kaprobe(&["verify", cap.to_str().unwrap()]);
    let shown: f64 = r
        .stdout
        .split(", rtt ")
        .nth(1)
        .and_then(|t| t.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rtt in the report:\n{}", r.stdout));
    assert!(shown >= 50.0, "{}", r.stdout);
}

/// Keepalive set on the server's listening socket only; the accepted socket inherits it
/// and the server probes an IPv6 client that has no keepalive of its own.
#[test]
fn server_keepalive_inherited_from_listener_over_ipv6() {
    let Some(lab) = Lab::up("srv", &[]) else {
        return;
    };
    lab.ok("server", &KA_1_1_3);
    let cap = lab.capture("client.pcap", "c");
    let client = lab.client(
        "client.jsonl",
        &[
            "-6",
            "--send",
            "100",
            "--echo",
            "--close-after",
            "3.5",
            "--timeout",
            "20",
        ],
    );
    let app = app_result(client);
    lab.stop_captures();

    assert_app(&app, "closed", "none", None);
    assert!(app["remote"].as_str().unwrap().starts_with("[fd77:"), "{app}");
    let log = lab.server_log();
    let listening = log.iter().rev().find(|e| e["event"] == "listening").unwrap();
    let accepted = log.iter().find(|e| e["event"] == "accepted").unwrap();
    let want = serde_json::json!({"so_keepalive": 1, "idle": 1, "intvl": 1, "cnt": 3});
    assert_eq!(listening["keepalive"], want, "listener");
    assert_eq!(accepted["keepalive"], want, "accepted socket inherits");
    let v = verify_json(&cap, &[]);
    assert_eq!(v.flows.len(), 1, "{:?}", v.flows);
    let f = &v.flows[0];
    assert_eq!(f["prober"], "server");
    answered_rounds(&kinds(&v, f), 2, "server-side keepalive");
    assert_eq!(f["outcome"], "closed");
    expect_ok(&cap, "idle=1s,outcome=closed", None);
}

/// The server's own keepalive gives up on a client it cannot reach (the middlebox drops
/// 100 %): the server application sees ETIMEDOUT with EPOLLIN|EPOLLERR|EPOLLHUP.
#[test]
fn server_keepalive_gives_up_through_total_loss_server_app_sees_etimedout() {
    let Some(lab) = Lab::up("loss", &[]) else {
        return;
    };
    lab.ok("server", &KA_1_1_3);
    let cap = lab.capture("server.pcap", "s");
    let mut client = lab.client("client.jsonl", &["--send", "100", "--echo", "--timeout", "20"]);
    let st = lab.path("client.jsonl");
    wait_until("the data exchange", 10, || has_event(&st, "exchanged"));
    lab.ok("fault", &["loss", "100%"]);
    wait_until("the server to give up", 15, || {
        lab.server_log().iter().any(|e| e["event"] == "closed")
    });
    lab.ok("heal", &["loss"]);
    let _ = client.kill();
    let _ = client.wait();
    lab.stop_captures();

    let log = lab.server_log();
    let closed = log.iter().find(|e| e["event"] == "closed").unwrap();
    assert_eq!(closed["how"], "error", "{closed}");
    assert_eq!(closed["so_error"], "ETIMEDOUT", "{closed}");
    assert_eq!(closed["epoll"], DEATH_MASK, "{closed}");
    let v = verify_json(&cap, &[]);
    assert_eq!(v.flows.len(), 1, "{:?}", v.flows);
    let f = &v.flows[0];
    assert_eq!(f["prober"], "server");
    assert_eq!(kinds(&v, f), [PROBE, PROBE, PROBE, "keepalive_abort"]);
    expect_ok(&cap, "idle=1s,interval=1s,count=3,outcome=timed_out", None);
}

fn netns_list() -> String {
    text(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout)
}

/// A lab whose owner died is listed as abandoned and removed by `cleanup`; a dropped `Lab`
/// leaves no namespace behind.
#[test]
fn abandoned_labs_are_listed_and_cleaned_up() {
    if !is_root() {
        assert!(!in_ci(), "CI is set but this is not root");
        eprintln!("skipped: lab cleanup: lab tests need root (network namespaces)");
        return;
    }
    let mut owner = Command::new("sleep").arg("60").spawn().unwrap();
    let name = format!("orphan{}", std::process::id());
    let mut c = lab_sh();
    c.args(["up", &name, "--owner", &owner.id().to_string()]);
    let out = run(c);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ns_prefix = format!("kaprobe-lab-{}-{name}-", owner.id());
    assert_eq!(netns_list().matches(&ns_prefix).count(), 3);
    let listed = |state: &str| {
        let mut c = lab_sh();
        c.arg("list");
        text(&run(c).stdout)
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&name) && l.contains(state))
    };
    assert!(listed("live"));
    owner.kill().unwrap();
    owner.wait().unwrap();
    assert!(listed("abandoned"));
    let mut c = lab_sh();
    c.arg("cleanup");
    let out = run(c);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(netns_list().matches(&ns_prefix).count(), 0, "{}", netns_list());

    // Drop tears down.
    let lab = Lab::up("drop", &[]).unwrap();
    let prefix = format!("kaprobe-lab-{}-{}-", std::process::id(), lab.name);
    assert_eq!(netns_list().matches(&prefix).count(), 3);
    drop(lab);
    assert_eq!(netns_list().matches(&prefix).count(), 0, "{}", netns_list());
}

/// Takes a kept lab down when dropped, whatever the test did.
struct Kept(String);

impl Drop for Kept {
    fn drop(&mut self) {
        let mut c = lab_sh();
        c.args(["down", &self.0]);
        let _ = c.output();
    }
}

/// A lab brought up without an owner (by hand, from a one-shot shell) is kept until
/// `down`, whatever `cleanup` runs meanwhile; two `up` of one name never both succeed.
#[test]
fn a_lab_without_owner_is_kept_and_one_name_is_one_lab() {
    if !is_root() {
        assert!(!in_ci(), "CI is set but this is not root");
        eprintln!("skipped: lab lifecycle: lab tests need root (network namespaces)");
        return;
    }
    let name = format!("kept{}", std::process::id());
    let _guard = Kept(name.clone());
    // Two at once, from shells that exit at once.
    let spawn = || {
        let mut c = Command::new("bash");
        c.args(["-c", &format!("bash scripts/lab.sh up {name}")]);
        c.current_dir(env!("CARGO_MANIFEST_DIR"));
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let ok = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!(
        ok,
        1,
        "exactly one up succeeds: {} / {}",
        text(&a.stderr),
        text(&b.stderr)
    );
    let failed = if a.status.success() { &b } else { &a };
    assert!(
        text(&failed.stderr).contains(&format!("a lab called '{name}' exists already")),
        "{}",
        text(&failed.stderr)
    );
    let prefix = format!("kaprobe-lab-0-{name}-");
    assert_eq!(netns_list().matches(&prefix).count(), 3, "{}", netns_list());
    let mut c = lab_sh();
    c.arg("cleanup");
    assert!(run(c).status.success());
    assert_eq!(
        netns_list().matches(&prefix).count(),
        3,
        "kept through cleanup: {}",
        netns_list()
    );
    let mut c = lab_sh();
    c.arg("list");
    let list = text(&run(c).stdout);
    assert!(
        list.lines().any(|l| l.starts_with(&name) && l.contains(" kept ")),
        "{list}"
    );
    let mut c = lab_sh();
    c.args(["down", &name]);
    assert!(run(c).status.success());
    assert_eq!(netns_list().matches(&prefix).count(), 0, "{}", netns_list());
}
