//! `kaprobe probe` against real Linux TCP peers in the namespace lab (scripts/lab.sh):
//! kaprobe runs in the client namespace (`ip netns exec`), the lab's peer.py echo server
//! answers on 10.77.101.2 / fd77:0:0:101::2 port 7077. Every test has its own lab, torn
//! down by a guard (tests/common/lab.rs); root only (skipped outside CI as a user).
//!
//! Assertions are on events, order, counts and sequence numbers; timing only as
//! generous lower bounds.

mod common;
use common::lab::*;
use common::*;

use kaprobe::keepalive::style::AckRule;
use kaprobe::keepalive::{ProbeInputs, ProbeShape, Style};
use kaprobe::wire::build::tcp_segment;
use kaprobe::wire::Seq;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

const PROBE: &str = "keepalive_probe";
const ACK: &str = "keepalive_ack";
const V4: &str = "10.77.101.2:7077";
const V6: &str = "[fd77:0:0:101::2]:7077";

/// A finished `kaprobe probe --json` run.
struct Probed {
    code: i32,
    events: Vec<Value>,
    stderr: String,
}

impl Probed {
    fn of(code: i32, lines: &[String], stderr: String) -> Probed {
        let events = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}\nstderr: {stderr}")))
            .collect();
        Probed { code, events, stderr }
    }

    fn run(mut c: Command) -> Probed {
        let out = c.output().expect("run kaprobe probe");
        let stdout = text(&out.stdout);
        let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
        Probed::of(out.status.code().unwrap_or(-1), &lines, text(&out.stderr))
    }

    fn of_type(&self, t: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == t).collect()
    }

    /// The session's events in order (the run's `summary`, last, left out).
    fn types(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .filter(|t| t != "summary")
            .collect()
    }

    fn one(&self, t: &str) -> &Value {
        let v = self.of_type(t);
        assert_eq!(v.len(), 1, "expected one {t}: {:?}", self.types());
        v[0]
    }

    /// The one session's verdict: its last event, followed only by the run's summary.
    fn verdict(&self) -> &Value {
        let [.., last, summary] = self.events.as_slice() else {
            panic!("no verdict and summary; stderr: {}", self.stderr);
        };
        assert_eq!(summary["type"], "summary", "the summary comes last: {:?}", self.types());
        assert_eq!(u(&summary["sessions"]), 1, "{summary}");
        assert_eq!(last["type"], "verdict", "the verdict comes last: {:?}", self.types());
        assert_eq!(last["session"], 1, "{last}");
        last
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Every answer acknowledges SND.NXT (= probe seq + 1) with the peer's current seq
/// (= the probe's ack field), and answers the probe before it.
fn answers_match_probes(p: &Probed, dsack: bool) {
    let sent: HashMap<u64, &Value> = p.of_type("probe_sent").into_iter().map(|e| (u(&e["n"]), e)).collect();
    let acked = p.of_type("probe_acked");
    assert!(!acked.is_empty(), "{:?}", p.types());
    for a in acked {
        let probe = sent[&u(&a["n"])];
        assert_eq!(u(&a["ack"]), (u(&probe["seq"]) + 1) % (1 << 32), "{a} vs {probe}");
        assert_eq!(a["seq"], probe["ack"], "{a} vs {probe}");
        assert_eq!(a["dsack"], dsack, "{a}");
        assert!(a["rtt_ms"].as_f64().unwrap() >= 0.0);
    }
}

/// Kinds of the classified segments in a recording (one flow).
fn kinds(file: &Path) -> (Verified, Vec<String>) {
    let v = verify_json(file, &[]);
    assert_eq!(v.flows.len(), 1, "{}: {:?}", file.display(), v.flows);
    let k = v.kinds_of(u(&v.flows[0]["flow_id"]));
    (v, k)
}

/// tshark (Wireshark's dissector) labels exactly kaprobe's probes "TCP Keep-Alive"
/// and the answers "TCP Keep-Alive ACK" in the recording.
fn tshark_agrees(file: &Path, v: &Verified) {
    if tshark().is_none() {
        assert!(!in_ci(), "tshark is missing in CI (scripts/setup.sh installs it)");
        eprintln!("skipped: tshark check: tshark not installed");
        return;
    }
    assert_eq!(
        tshark_frames(file, "tcp.analysis.keep_alive"),
        v.frames_of(PROBE),
        "Keep-Alive"
    );
    assert_eq!(
        tshark_frames(file, "tcp.analysis.keep_alive_ack"),
        v.frames_of(ACK),
        "Keep-Alive ACK"
    );
    let info = Command::new("tshark")
        .args(["-n", "-r", file.to_str().unwrap()])
        .output()
        .unwrap();
    let info = text(&info.stdout);
    assert!(
        info.contains("[TCP Keep-Alive]") && info.contains("[TCP Keep-Alive ACK]"),
        "{info}"
    );
}

/// Each probe's TSval is at least the TSval of every earlier segment of the prober's
/// kernel (what a Linux peer's PAWS check demands).
fn tsvals_current(file: &Path, v: &Verified) {
    if tshark().is_none() {
        return;
    }
    let out = Command::new("tshark")
        .args([
            "-n",
            "-r",
            file.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.options.timestamp.tsval",
        ])
        .output()
        .unwrap();
    let probes = v.frames_of(PROBE);
    let prober_port = v.flows[0]["client"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let mut kernel_max: Option<u64> = None;
    let mut checked = 0;
    for l in text(&out.stdout).lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let (frame, port, tsval) = (
            f[0].parse::<u64>().unwrap(),
            f[1],
            f.get(2).and_then(|t| t.parse::<u64>().ok()),
        );
        if port != prober_port {
            continue;
        }
        let Some(ts) = tsval else { continue };
        if probes.contains(&frame) {
            assert!(
                ts >= kernel_max.unwrap(),
                "probe frame {frame}: TSval {ts} < kernel's {kernel_max:?}"
            );
            checked += 1;
        } else {
            kernel_max = Some(kernel_max.map_or(ts, |m| m.max(ts)));
        }
    }
    assert_eq!(checked, probes.len(), "every probe carries a TSval");
}

/// `kaprobe probe --connect TARGET --send hello --json --pcap FILE EXTRA...` in the client
/// namespace, two answered rounds.
fn answered_run(lab: &Lab, target: &str, style: &str, file: &str) -> (Probed, std::path::PathBuf) {
    let pcap = lab.path(file);
    let p = Probed::run(lab.kaprobe(
        "c",
        &[
            "probe",
            "--connect",
            target,
            "--send",
            "hello",
            "--idle",
            "600ms",
            "--interval",
            "1s",
            "--rounds",
            "2",
            "--style",
            style,
            "--json",
            "--pcap",
            pcap.to_str().unwrap(),
        ],
    ));
    assert_eq!(p.code, 0, "{style}: {:?}\n{}", p.types(), p.stderr);
    assert_eq!(
        p.types(),
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
    let v = p.verdict();
    assert_eq!(
        (v["outcome"].as_str(), v["reason"].as_str()),
        (Some("alive"), Some("rounds"))
    );
    assert_eq!((u(&v["probes"]), u(&v["answered"]), u(&v["unanswered"])), (2, 2, 0));
    let ex = p.one("exchanged");
    assert_eq!((u(&ex["sent"]), u(&ex["received"])), (5, 5), "the echo server echoed");
    let s = p.one("session");
    assert_eq!(s["handshake_seen"], true);
    assert_eq!(s["style"], style);
    let st = Style::parse(style).unwrap();
    for probe in p.of_type("probe_sent") {
        assert_eq!(probe["rel_seq"], 5, "SND.NXT - 1 after 5 bytes");
        let ack = match st.info().ack {
            AckRule::RcvNxt => 6,
            AckRule::RcvNxtMinusOne => 5,
        };
        assert_eq!(probe["rel_ack"], ack, "RCV.NXT (- 1 for {style}) after the 5-byte echo");
        assert_eq!(probe["len"], st.payload_len());
    }
    (p, pcap)
}

#[test]
fn linux_and_windows_styles_answered_ipv4_with_timestamps() {
    let Some(lab) = Lab::up("pr4", &[]) else {
        return;
    };
    let (p, pcap) = answered_run(&lab, V4, "linux", "linux.pcap");
    let s = p.one("session");
    assert_eq!((&s["timestamps"], &s["sack"]), (&Value::Bool(true), &Value::Bool(true)));
    assert!(p.of_type("probe_sent").iter().all(|e| e["tsval"].is_u64()));
    answers_match_probes(&p, false);
    let (v, k) = kinds(&pcap);
    assert_eq!(k, [PROBE, ACK].repeat(2));
    assert_eq!(v.flows[0]["violations"].as_array().unwrap().len(), 0, "{}", v.flows[0]);
    tshark_agrees(&pcap, &v);
    tsvals_current(&pcap, &v);

    let (p, pcap) = answered_run(&lab, V4, "windows", "windows.pcap");
    answers_match_probes(&p, true);
    let (v, k) = kinds(&pcap);
    assert_eq!(k, [PROBE, ACK].repeat(2));
    tshark_agrees(&pcap, &v);
    tsvals_current(&pcap, &v);
}

#[test]
fn linux_and_windows_styles_answered_ipv6_without_timestamps() {
    let Some(lab) = Lab::up("pr6", &["--sysctl", "net.ipv4.tcp_timestamps=0"]) else {
        return;
    };
    for (style, dsack) in [("linux", false), ("windows", true)] {
        let (p, pcap) = answered_run(&lab, V6, style, &format!("{style}.pcap"));
        let s = p.one("session");
        assert!(s["local"].as_str().unwrap().starts_with("[fd77:"), "{s}");
        assert_eq!(s["timestamps"], false, "{s}");
        assert!(p.of_type("probe_sent").iter().all(|e| e["tsval"].is_null()));
        answers_match_probes(&p, dsack);
        let (v, k) = kinds(&pcap);
        assert_eq!(k, [PROBE, ACK].repeat(2), "{style}");
        tshark_agrees(&pcap, &v);
    }
}

/// Every style of the table, live against a Linux peer: each probe on the wire is, byte for
/// byte, what the shared builder makes of the session's state (the builder `explain probe`
/// shows, tests/explain.rs), it carries TSopt as the table says, and the peer answers it.
#[test]
fn every_style_sends_the_builders_probe_and_is_answered() {
    let Some(lab) = Lab::up("prst", &[]) else {
        return;
    };
    for style in Style::ALL {
        let (p, pcap) = answered_run(&lab, V4, style.name(), &format!("{style}.pcap"));
        let s = p.one("session");
        assert_eq!(s["timestamps"], true, "{s}");
        let addr = |k: &str| s[k].as_str().unwrap().parse::<SocketAddr>().unwrap();
        let mut frames = Vec::new();
        kaprobe::capture::read_file(&pcap, |r| frames.push(r.data.to_vec())).unwrap();
        for e in p.of_type("probe_sent") {
            assert_eq!(e["tsval"].is_u64(), style.probe_has_ts(true), "{style}: {e}");
            let inputs = ProbeInputs {
                snd_nxt: Seq(u(&s["snd_nxt"]) as u32),
                rcv_nxt: Seq(u(&s["rcv_nxt"]) as u32),
                window: u(&e["window"]) as u16,
                timestamp: e["tsval"].as_u64().map(|v| (v as u32, u(&e["tsecr"]) as u32)),
            };
            let shape = ProbeShape::build(style, None, &inputs, u(&e["n"]));
            let mut tcp = Vec::new();
            tcp_segment(&shape.segment(addr("local"), addr("remote")), &mut tcp).unwrap();
            assert!(
                frames.iter().any(|f| f.windows(tcp.len()).any(|w| w == tcp)),
                "{style} probe {}: {tcp:02x?} is not in {}",
                e["n"],
                pcap.display()
            );
        }
        let (_, k) = kinds(&pcap);
        assert_eq!(k, [PROBE, ACK].repeat(2), "{style}");
    }
}

/// kaprobe in the background, `--json`; returns once its session is set up.
fn start(lab: &Lab, args: &[&str]) -> Background {
    let mut all = vec!["probe", "--json"];
    all.extend_from_slice(args);
    let mut b = Background::spawn(lab.kaprobe("c", &all));
    b.wait_line("\"type\":\"session\"", 10);
    b
}

#[test]
fn blackholed_peer_count_probes_at_the_interval_then_dead_and_abort() {
    let Some(lab) = Lab::up("prbh", &[]) else {
        return;
    };
    let pcap = lab.path("bh.pcap");
    let b = start(
        &lab,
        &[
            "--connect",
            V4,
            "--send",
            "hello",
            "--idle",
            "1s",
            "--interval",
            "600ms",
            "--count",
            "3",
            "--pcap",
            pcap.to_str().unwrap(),
        ],
    );
    lab.ok("fault", &["blackhole"]);
    let (code, lines, err) = b.finish(15);
    let p = Probed::of(code, &lines, err);
    assert_eq!(p.code, 1, "dead is a verdict against the user: {}", p.stderr);
    assert_eq!(
        p.types(),
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
    let v = p.verdict();
    assert_eq!(
        (v["outcome"].as_str(), v["reason"].as_str()),
        (Some("dead"), Some("count"))
    );
    assert_eq!((u(&v["probes"]), u(&v["answered"]), u(&v["unanswered"])), (3, 0, 3));
    // The configured interval between probes (a generous lower bound only).
    let times: Vec<u64> = p.of_type("probe_sent").iter().map(|e| u(&e["time_ns"])).collect();
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= 550_000_000,
            "probes {} ms apart",
            (w[1] - w[0]) / 1_000_000
        );
    }
    let probe = p.of_type("probe_sent")[0];
    let abort = p.one("abort");
    assert_eq!(
        u(&abort["seq"]),
        (u(&probe["seq"]) + 1) % (1 << 32),
        "abort RST seq = SND.NXT"
    );

    let (v, k) = kinds(&pcap);
    assert_eq!(k, [PROBE, PROBE, PROBE, "keepalive_abort"]);
    assert_eq!(v.segments.last().unwrap()["flags"], "R.");
    let r = kaprobe(&[
        "verify",
        "-q",
        "--expect",
        "interval=600ms,count=3,outcome=timed_out",
        pcap.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn rebooted_peer_resets_the_first_probe_after_the_reboot() {
    let Some(lab) = Lab::up("prrb", &[]) else {
        return;
    };
    let mut b = start(
        &lab,
        &[
            "--connect",
            V4,
            "--send",
            "hello",
            "--idle",
            "1500ms",
            "--interval",
            "1s",
        ],
    );
    b.wait_line("\"type\":\"probe_acked\"", 10);
    lab.ok("fault", &["reboot"]);
    let (code, lines, err) = b.finish(15);
    let p = Probed::of(code, &lines, err);
    assert_eq!(p.code, 1, "{}", p.stderr);
    let t = p.types();
    assert_eq!(
        t[t.len() - 3..],
        ["probe_sent", "probe_reset", "verdict"],
        "the first probe after the reboot is reset: {t:?}"
    );
    assert_eq!(p.of_type("probe_sent").len(), 2, "{t:?}");
    let (sent, reset) = (p.of_type("probe_sent")[1], p.one("probe_reset"));
    assert_eq!(reset["n"], sent["n"]);
    assert_eq!(reset["seq"], sent["ack"], "RST seq = the probe's ack field");
    let v = p.verdict();
    assert_eq!(
        (v["outcome"].as_str(), v["reason"].as_str()),
        (Some("reset"), Some("reset"))
    );
    assert_eq!((u(&v["answered"]), u(&v["resets"])), (1, 1));
}

/// (kind, rel seq, rel ack, len) of every classified segment.
fn shape(v: &Verified) -> Vec<(String, u64, u64, u64)> {
    v.segments
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_string(),
                u(&s["rel_seq"]),
                s["rel_ack"].as_u64().unwrap_or(0),
                u(&s["len"]),
            )
        })
        .collect()
}

/// The same session (100 bytes echoed, then idle) probed by the kernel's own keepalive
/// (peer.py, TCP_KEEPIDLE 1 / KEEPINTVL 1 / KEEPCNT 3) and by kaprobe with the same
/// parameters: recorded separately (tcpdump for the kernel, kaprobe's --pcap for its own),
/// `verify` sees the same probes and answers with the same seq/ack/len. Once with the
/// peer answering, once blackholed (probes, then the abort).
#[test]
fn kernel_keepalive_and_kaprobe_give_the_same_probes_and_answers() {
    let Some(lab) = Lab::up("prcmp", &[]) else {
        return;
    };
    let hundred = "x".repeat(100);
    for blackhole in [false, true] {
        let tag = if blackhole { "blackhole" } else { "answered" };
        let kcap = lab.capture_filtered(&format!("kernel-{tag}.pcap"), "c", &["tcp", "port", "40001"]);
        let mut client_args = ka_client_args("1", &["--bind-port", "40001"]);
        if !blackhole {
            client_args.extend(["--close-after", "3.5"]);
        }
        let client = lab.client(&format!("{tag}.jsonl"), &client_args);
        let ours = lab.path(&format!("kaprobe-{tag}.pcap"));
        let mut args = vec![
            "--connect",
            V4,
            "--bind-port",
            "40002",
            "--send",
            &hundred,
            "--idle",
            "1s",
            "--interval",
            "1s",
            "--count",
            "3",
            "--pcap",
            ours.to_str().unwrap(),
        ];
        if !blackhole {
            args.extend(["--rounds", "3"]);
        }
        let b = start(&lab, &args);
        if blackhole {
            let st = lab.path(&format!("{tag}.jsonl"));
            wait_until("the kernel client's exchange", 10, || has_event(&st, "exchanged"));
            lab.ok("fault", &["blackhole"]);
        }
        let (code, lines, err) = b.finish(20);
        let out = client.wait_with_output().unwrap();
        assert!(out.status.success(), "client: {}", text(&out.stderr));
        lab.stop_captures();
        if blackhole {
            lab.ok("heal", &[]);
        }
        let p = Probed::of(code, &lines, err);
        assert_eq!(p.verdict()["outcome"], if blackhole { "dead" } else { "alive" });

        let (kv, kk) = kinds(&kcap);
        let (ov, ok) = kinds(&ours);
        let want: Vec<&str> = if blackhole {
            vec![PROBE, PROBE, PROBE, "keepalive_abort"]
        } else {
            [PROBE, ACK].repeat(3)
        };
        assert_eq!(kk, want, "{tag}: the kernel");
        assert_eq!(ok, want, "{tag}: kaprobe");
        assert_eq!(shape(&kv), shape(&ov), "{tag}: kernel vs kaprobe");
        assert_eq!(kv.flows[0]["outcome"], ov.flows[0]["outcome"], "{tag}");
    }
}

#[test]
fn server_side_probing_of_an_accepted_connection() {
    let Some(lab) = Lab::up("prsrv", &[]) else {
        return;
    };
    // kaprobe listens in the server namespace (port 7078); peer.py connects from the client.
    let ns_s = lab.env("LAB_NS_S");
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &ns_s, env!("CARGO_BIN_EXE_kaprobe")]).args([
        "probe",
        "--listen",
        "7078",
        "--json",
        "--idle",
        "600ms",
        "--rounds",
        "2",
        "--duration",
        "15s",
    ]);
    let b = Background::spawn(c);
    wait_until("kaprobe to listen", 10, || {
        lab.ok("exec", &["s", "ss", "-Hltn"]).contains(":7078")
    });
    let client = lab.client(
        "client.jsonl",
        &[
            "-6",
            "--port",
            "7078",
            "--send",
            "100",
            "--close-after",
            "5",
            "--timeout",
            "10",
        ],
    );
    let (code, lines, err) = b.finish(15);
    let _ = client.wait_with_output();
    let p = Probed::of(code, &lines, err);
    assert_eq!(p.code, 0, "{}", p.stderr);
    let s = p.one("session");
    assert_eq!(s["mode"], "listen");
    assert_eq!(s["local"], "[fd77:0:0:101::2]:7078", "{s}");
    assert_eq!(s["handshake_seen"], true);
    answers_match_probes(&p, false);
    for probe in p.of_type("probe_sent") {
        assert_eq!(
            (probe["rel_seq"].as_u64(), probe["rel_ack"].as_u64()),
            (Some(0), Some(101))
        );
    }
    assert_eq!(p.verdict()["outcome"], "alive");
}

/// What users hit: each a one-line `kaprobe: <what>: <why>` and exit 2, nothing left behind.
#[test]
fn errors_are_one_line_exit_2_and_leave_nothing() {
    let Some(lab) = Lab::up("prerr", &[]) else {
        return;
    };
    let pcap = lab.path("never.pcap");
    let p = pcap.to_str().unwrap();
    let check = |mut c: Command, want: &str| {
        let out = c.output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{want}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.starts_with("kaprobe: ") && err.contains(want),
            "want {want:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    };
    check(
        lab.kaprobe("c", &["probe", "--connect", "10.77.101.2:7079", "--pcap", p]),
        "connect 10.77.101.2:7079: connection refused",
    );
    check(
        lab.kaprobe("c", &["probe", "--connect", V4, "-i", "nope0", "--pcap", p]),
        "interface nope0: no such interface",
    );
    // The middlebox namespace has no default route.
    check(
        lab.kaprobe("m", &["probe", "--connect", "10.77.250.1:7077", "--pcap", p]),
        "route to 10.77.250.1: network is unreachable",
    );
    // Not root and no CAP_NET_RAW.
    let ns = lab.env("LAB_NS_C");
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &ns,
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ])
    .args(["--inh-caps=-all", "--bounding-set=-all", env!("CARGO_BIN_EXE_kaprobe")])
    .args(["probe", "--connect", V4]);
    check(c, "raw socket: operation not permitted");
    check(
        lab.kaprobe("c", &["probe", "--connect", V4, "--style", "os2"]),
        "unknown style",
    );
    let left: Vec<_> = std::fs::read_dir(&lab.dir).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // The failed connects left no socket behind in the client namespace.
    let ss = lab.ok("exec", &["c", "ss", "-tan"]);
    assert!(!ss.contains(":7079"), "{ss}");
}

/// An application's connection from local port `port` (peer.py, kernel keepalive off),
/// idle after its data, closing after 6-8 s: kaprobe attaches with `--provoke` and probes
/// on its behalf for two rounds. Returns kaprobe's events and what the application saw.
fn attach_and_provoke(lab: &Lab, port: &str) -> (Probed, Value) {
    let client = lab.client(
        "client.jsonl",
        &[
            "--bind-port",
            port,
            "--send",
            "100",
            "--echo",
            "--close-after",
            "8",
            "--timeout",
            "12",
        ],
    );
    let st = lab.path("client.jsonl");
    wait_until("the client's exchange", 10, || has_event(&st, "exchanged"));
    let tuple = format!("10.77.1.1:{port}-10.77.101.2:7077");
    let p = Probed::run(lab.kaprobe(
        "c",
        &[
            "probe",
            "--attach",
            &tuple,
            "--provoke",
            "--idle",
            "500ms",
            "--rounds",
            "2",
            "--json",
        ],
    ));
    assert_eq!(p.code, 0, "{:?}\n{}", p.types(), p.stderr);
    let s = p.one("session");
    assert_eq!(
        (s["mode"].as_str(), s["handshake_seen"].as_bool()),
        (Some("attach"), Some(false))
    );
    assert_eq!(s["timestamps"], true, "learned from a duplicate ACK's TSopt");
    answers_match_probes(&p, false);
    let v = p.verdict();
    assert_eq!((v["outcome"].as_str(), u(&v["answered"])), (Some("alive"), 2), "{v}");
    // The application's connection is untouched: it closes normally later.
    let out = client.wait_with_output().unwrap();
    let app: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(app["outcome"], "closed", "{app}");
    (p, app)
}

/// kaprobe follows a connection another process owns and provokes it into showing its
/// sequence numbers.
#[test]
fn attach_to_another_processs_idle_connection_with_provoke() {
    let Some(lab) = Lab::up("pratt", &[]) else {
        return;
    };
    attach_and_provoke(&lab, "40005");
}

/// The arguments shared by the stop-condition tests: answered probes, no --rounds.
const ALIVE: [&str; 9] = [
    "--connect",
    V4,
    "--send",
    "hello",
    "--idle",
    "1s",
    "--interval",
    "1s",
    "--count",
];

/// `--duration` ends a session with an answering peer by itself: alive, exit 0.
#[test]
fn duration_stops_an_answered_session_alive() {
    let Some(lab) = Lab::up("prdur", &[]) else {
        return;
    };
    let mut args = vec!["probe"];
    args.extend(ALIVE);
    args.extend(["3", "--duration", "2500ms", "--json"]);
    let b = Background::spawn(lab.kaprobe("c", &args));
    let (code, lines, err) = b.finish(15);
    let p = Probed::of(code, &lines, err);
    assert_eq!(p.code, 0, "{:?}\n{}", p.types(), p.stderr);
    let t = p.types();
    let v = p.verdict();
    assert_eq!(
        (v["outcome"].as_str(), v["reason"].as_str()),
        (Some("alive"), Some("duration"))
    );
    assert_eq!(t.iter().filter(|t| *t == "verdict").count(), 1, "{t:?}");
    assert!(!p.of_type("probe_acked").is_empty(), "{t:?}");
    assert!(p.of_type("probe_unanswered").is_empty(), "{t:?}");
    assert_eq!(u(&v["unanswered"]), 0);
    assert!(u(&v["answered"]) >= 1);
    answers_match_probes(&p, false);
}

/// SIGINT (Ctrl-C) after an answered probe: the verdict (alive, interrupted), exit 0,
/// nothing left running.
#[test]
fn sigint_stops_an_answered_session_with_its_verdict() {
    let Some(lab) = Lab::up("print", &[]) else {
        return;
    };
    let mut args = vec!["probe"];
    args.extend(ALIVE);
    args.extend(["3", "--json"]);
    let mut b = Background::spawn(lab.kaprobe("c", &args));
    b.wait_line("\"type\":\"probe_acked\"", 10);
    let pid = b.pid();
    // `ip netns exec` execs kaprobe itself: the child is kaprobe.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe, Path::new(env!("CARGO_BIN_EXE_kaprobe")), "pid {pid}");
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGINT) }, 0);
    let (code, lines, err) = b.finish(10);
    let p = Probed::of(code, &lines, err);
    assert_eq!(p.code, 0, "{:?}\n{}", p.types(), p.stderr);
    let t = p.types();
    let v = p.verdict();
    assert_eq!(
        (v["outcome"].as_str(), v["reason"].as_str()),
        (Some("alive"), Some("interrupted"))
    );
    assert_eq!(t.iter().filter(|t| *t == "verdict").count(), 1, "{t:?}");
    let acked = t.iter().position(|t| t == "probe_acked").unwrap();
    assert!(acked < t.len() - 1, "{t:?}");
    assert!(p.of_type("probe_unanswered").is_empty(), "{t:?}");
    answers_match_probes(&p, false);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "kaprobe {pid} still there"
    );
}

/// (Uid, Gid, CapBnd, NoNewPrivs) lines of every thread of process `pid`.
fn thread_credentials(pid: u32) -> Vec<[String; 4]> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .map(|t| {
            let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or_else(|| panic!("no {name} in {status}"))
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            [field("Uid:"), field("Gid:"), field("CapBnd:"), field("NoNewPrivs:")]
        })
        .collect()
}

/// Every thread of kaprobe `pid` (the engine's, which also reads the capture,
/// and the signal handler's) runs as `uid`/`gid` (real, effective, saved,
/// filesystem), with an empty capability bounding set and no_new_privs.
fn every_thread_unprivileged(pid: u32, uid: u32, gid: u32) {
    let threads = thread_credentials(pid);
    assert!(threads.len() >= 2, "engine and signal threads: {threads:?}");
    for t in threads {
        assert_eq!(
            t,
            [
                format!("{uid} {uid} {uid} {uid}"),
                format!("{gid} {gid} {gid} {gid}"),
                "0000000000000000".into(),
                "1".into()
            ]
        );
    }
}

/// The uid and gid `nobody` and `nogroup` have here (65534 when unnamed).
fn nobody() -> (u32, u32) {
    let id = |args: &[&str]| {
        let out = Command::new("getent").args(args).output().unwrap();
        text(&out.stdout)
            .split(':')
            .nth(2)
            .and_then(|v| v.parse().ok())
            .unwrap_or(65534)
    };
    (id(&["passwd", "nobody"]), id(&["group", "nogroup"]))
}

/// The kaprobe process `ip netns exec` became (it execs, so the child is kaprobe).
fn kaprobe_pid(b: &Background) -> u32 {
    let pid = b.pid();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe, Path::new(env!("CARGO_BIN_EXE_kaprobe")), "pid {pid}");
    pid
}

/// kaprobe probing an answered session into `pcap`, once its first answer
/// came; with its pid.
fn recording(lab: &Lab, pcap: &Path) -> (Background, u32) {
    let mut args = vec!["probe"];
    args.extend(ALIVE);
    args.extend(["3", "--json", "--pcap", pcap.to_str().unwrap()]);
    let mut b = Background::spawn(lab.kaprobe("c", &args));
    b.wait_line("\"type\":\"probe_acked\"", 10);
    let pid = kaprobe_pid(&b);
    (b, pid)
}

/// Names in a directory.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A session ended by a signal after its answers: verdict alive (interrupted), exit 0,
/// and a complete pcap with exactly the probes and answers the verdict counts.
fn ended_by_signal_with_verdict_and_pcap(b: Background, pcap: &Path) {
    let (code, lines, err) = b.finish(10);
    let p = Probed::of(code, &lines, err);
    assert_eq!(p.code, 0, "{:?}\n{}", p.types(), p.stderr);
    let v = p.verdict();
    assert_eq!(
        (v["outcome"].as_str(), v["reason"].as_str()),
        (Some("alive"), Some("interrupted"))
    );
    let (probes, answered) = (u(&v["probes"]), u(&v["answered"]));
    assert!(answered >= 1, "{v}");
    let (_, k) = kinds(pcap);
    assert_eq!(k.iter().filter(|k| *k == PROBE).count() as u64, probes, "{k:?}");
    assert_eq!(k.iter().filter(|k| *k == ACK).count() as u64, answered, "{k:?}");
}

/// SIGTERM and SIGHUP end a session as Ctrl-C does: the verdict, a complete pcap
/// that `verify` reads, nothing else in the directory. Meanwhile, as plain root,
/// every thread runs as nobody with no capabilities to get back.
#[test]
fn sigterm_and_sighup_end_a_session_with_its_verdict_and_pcap() {
    let Some(lab) = Lab::up("prterm", &[]) else {
        return;
    };
    let (uid, gid) = nobody();
    for (sig, name) in [(libc::SIGTERM, "term.pcap"), (libc::SIGHUP, "hup.pcap")] {
        let pcap = lab.path(name);
        let (b, pid) = recording(&lab, &pcap);
        every_thread_unprivileged(pid, uid, gid);
        assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
        ended_by_signal_with_verdict_and_pcap(b, &pcap);
    }
    assert_eq!(names_in(&lab.dir), ["hup.pcap", "term.pcap"], "no partial file");
}

/// SIGKILL mid-session: the pcap never had a name, and its linker exits without
/// giving it one; nothing is left in the directory.
#[test]
fn sigkill_leaves_no_file_behind() {
    let Some(lab) = Lab::up("prkill", &[]) else {
        return;
    };
    let pcap = lab.path("killed.pcap");
    let (b, pid) = recording(&lab, &pcap);
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let linker: Vec<&str> = children.split_whitespace().collect();
    assert_eq!(linker.len(), 1, "one linker: {children:?}");
    let linker = format!("/proc/{}/status", linker[0]);
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let (code, _, _) = b.finish(10);
    assert_eq!(code, -1, "killed");
    wait_until("the linker to exit", 10, || {
        std::fs::read_to_string(&linker).map_or(true, |s| s.contains("State:\tZ"))
    });
    assert!(names_in(&lab.dir).is_empty(), "left behind: {:?}", names_in(&lab.dir));
}

/// As under sudo (SUDO_UID/SUDO_GID of a user who may not write the directory): the
/// session runs as that user, and the pcap still lands in the root-owned 0755
/// directory, owned by the user.
#[test]
fn under_sudo_the_pcap_lands_in_a_root_owned_directory() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(lab) = Lab::up("prsudo", &[]) else {
        return;
    };
    let (uid, gid) = (4242, 4343);
    let dir = lab.path("root-only");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o755));
    let pcap = dir.join("sudo.pcap");
    let mut args = vec!["probe"];
    args.extend(ALIVE);
    args.extend(["3", "--json", "--pcap", pcap.to_str().unwrap()]);
    let mut c = lab.kaprobe("c", &args);
    c.env("SUDO_UID", uid.to_string()).env("SUDO_GID", gid.to_string());
    let mut b = Background::spawn(c);
    b.wait_line("\"type\":\"probe_acked\"", 10);
    let pid = kaprobe_pid(&b);
    every_thread_unprivileged(pid, uid, gid);
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGINT) }, 0);
    ended_by_signal_with_verdict_and_pcap(b, &pcap);
    let meta = std::fs::metadata(&pcap).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid), "given to the sudo user");
    assert_eq!(names_in(&dir), ["sudo.pcap"]);
}

/// `--connect` with an IPv6 address and port without brackets (which group is the
/// port?) or with no port: one line, exit 2, before anything is opened.
#[test]
fn connect_refuses_an_ambiguous_ipv6_address_and_a_missing_port() {
    for (target, want) in [
        (
            "fd77:0:0:101::2:7077",
            "kaprobe: --connect fd77:0:0:101::2:7077: ambiguous IPv6 address and port: write [ADDR]:PORT, e.g. [fd77:0:0:101::2]:7077\n",
        ),
        (
            "10.0.0.1",
            "kaprobe: --connect 10.0.0.1: the port is missing (write HOST:PORT)\n",
        ),
    ] {
        let r = kaprobe(&["probe", "--connect", target]);
        assert_eq!((r.code, r.stderr.as_str(), r.stdout.as_str()), (2, want, ""));
    }
}

/// Through a NAT (`lab.sh up --nat`) an out-of-window ACK sent to the peer is refused by
/// conntrack and answered with a RST that is not the peer's verdict. kaprobe provokes the
/// local end instead, learns the session and probes it: alive, and the application's
/// connection lives on. What nothing showed (SACK, window scale) is said to be unknown.
#[test]
fn attach_with_provoke_through_a_nat_learns_the_session_and_finds_it_alive() {
    let Some(lab) = Lab::up("prnat", &["--nat"]) else {
        return;
    };
    let (p, _) = attach_and_provoke(&lab, "40006");
    let s = p.one("session");
    assert_eq!((&s["sack"], &s["peer_wscale"]), (&Value::Null, &Value::Null), "{s}");
    assert_eq!(s["peer_window_bytes"], Value::Null, "{s}");
    // The provoking ACK went to the local end, not through the NAT: nothing answered it
    // with a RST (the old provoke drew one a second from the path).
    assert!(p.of_type("peer_reset").is_empty(), "{:?}", p.types());
}

/// `kaprobe probe --connect V4 --json --pcap FILE ARGS...` in the client namespace.
fn recorded(lab: &Lab, file: &str, args: &[&str]) -> (Probed, std::path::PathBuf) {
    let pcap = lab.path(file);
    let mut all = vec!["probe", "--connect", V4, "--json", "--pcap", pcap.to_str().unwrap()];
    all.extend_from_slice(args);
    (Probed::run(lab.kaprobe("c", &all)), pcap)
}

/// `probe --idle 200ms --interval 200ms` against a Linux peer: the peer answers a 0-byte
/// probe at most once per 500 ms, so some probes go unanswered. `verify` of the recording
/// flags exactly those (never a probe that was answered), and agrees with `probe`.
#[test]
fn verify_flags_only_the_probes_the_peers_rate_limit_left_unanswered() {
    let Some(lab) = Lab::up("prrl", &[]) else {
        return;
    };
    let (p, pcap) = recorded(
        &lab,
        "rl.pcap",
        &[
            "--send",
            "hi",
            "--idle",
            "200ms",
            "--interval",
            "200ms",
            "--duration",
            "3s",
        ],
    );
    let v = p.verdict();
    let limited: Vec<u64> = p
        .of_type("probe_unanswered")
        .iter()
        .filter(|e| e["rate_limited"] == true)
        .map(|e| u(&e["n"]))
        .collect();
    assert!(u(&v["answered"]) >= 2, "{v}");
    assert!(
        !limited.is_empty(),
        "some probes fall inside the peer's limit: {:?}",
        p.types()
    );
    assert_eq!(u(&v["unanswered_rate_limited"]), limited.len() as u64);
    let checked = verify_json(&pcap, &[]);
    let f = &checked.flows[0];
    let answered: std::collections::HashSet<u64> = checked
        .segments
        .iter()
        .filter(|s| s["kind"] == ACK)
        .map(|s| u(&s["answers"]))
        .collect();
    let probes = checked.frames_of(PROBE);
    let unanswered: Vec<u64> = probes.iter().copied().filter(|f| !answered.contains(f)).collect();
    let flagged: Vec<u64> = f["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == "probe_within_rate_limit")
        .map(|v| u(&v["frame"]))
        .collect();
    assert!(!flagged.is_empty());
    for fr in &flagged {
        assert!(!answered.contains(fr), "frame {fr} was answered yet flagged");
    }
    assert!(
        flagged.iter().all(|fr| unanswered.contains(fr)),
        "{flagged:?} vs {unanswered:?}"
    );
    // The same rule in both: every probe `probe` found limited, verify flags (verify also
    // judges the probes still pending when the session stopped).
    assert_eq!(u(&f["answered"]), u(&v["answered"]));
    assert!(flagged.len() >= limited.len(), "{flagged:?} vs probe's {limited:?}");
    assert!(flagged.len() <= limited.len() + u(&v["pending"]) as usize);
}

/// A path whose round trip (1.5 s) is longer than the interval (1 s): each answer comes
/// after the next probe left. `probe` and `verify` pair every answer with its own probe
/// (its round trip at least the delay) and count nothing unanswered, with and without
/// timestamps (a Linux peer's answer to a 0-byte probe does not echo its TSval).
#[test]
fn answers_slower_than_the_interval_pair_with_their_own_probes() {
    for ts in [true, false] {
        let Some(lab) = Lab::up(if ts { "prdl" } else { "prdn" }, &[]) else {
            return;
        };
        if !ts {
            lab.ok("exec", &["c", "sysctl", "-qw", "net.ipv4.tcp_timestamps=0"]);
        }
        lab.ok("fault", &["delay", "1500ms"]);
        let (p, pcap) = recorded(
            &lab,
            "delay.pcap",
            &["--send", "hello", "--idle", "1s", "--interval", "1s", "--rounds", "3"],
        );
        assert_eq!(p.code, 0, "ts {ts}: {:?}\n{}", p.types(), p.stderr);
        assert_eq!(p.one("session")["timestamps"], ts);
        let v = p.verdict();
        assert_eq!((u(&v["answered"]), u(&v["unanswered"])), (3, 0), "ts {ts}: {v}");
        let acked: Vec<u64> = p.of_type("probe_acked").iter().map(|a| u(&a["n"])).collect();
        assert_eq!(acked, [1, 2, 3], "ts {ts}: each answer is its own probe's");
        for a in p.of_type("probe_acked") {
            assert!(a["rtt_ms"].as_f64().unwrap() >= 1500.0, "ts {ts}: {a}");
        }
        answers_match_probes(&p, false);
        let checked = verify_json(&pcap, &[]);
        let f = &checked.flows[0];
        // The probe still in flight when `probe` stopped at its third answer has no
        // answer in the recording: the only one verify can count unanswered.
        let pending = u(&v["pending"]);
        assert!(pending <= 1, "ts {ts}: {v}");
        assert_eq!((u(&f["answered"]), u(&f["unanswered"])), (3, pending), "ts {ts}: {f}");
        let probes = checked.frames_of(PROBE);
        let answers: Vec<&Value> = checked.segments.iter().filter(|s| s["kind"] == ACK).collect();
        for (a, probe) in answers.iter().zip(&probes) {
            assert_eq!(u(&a["answers"]), *probe, "ts {ts}: answers in order");
            assert!(a["rtt_ms"].as_f64().unwrap() >= 1500.0, "ts {ts}: {a}");
        }
        assert!(
            f["violations"].as_array().unwrap().is_empty(),
            "ts {ts}: {}",
            f["violations"]
        );
    }
}
