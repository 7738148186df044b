//! `kaprobe watch` on the lab client's interface while the kernel's own
//! keepalive runs: answered, then blackholed until the abort (root; skipped
//! outside CI as a user).

mod common;
use common::lab::*;
use common::*;

use serde_json::Value;

/// `kaprobe watch -i` on the lab client's interface, `--json`, with `extra`.
fn watch_lab(lab: &Lab, extra: &[&str]) -> Background {
    let iface = lab.env("LAB_IF_C");
    let mut args = vec!["watch", "-i", &iface, "--json"];
    args.extend_from_slice(extra);
    Background::spawn(lab.kaprobe("c", &args))
}

/// (kind, frame) of each `segment` object, in order.
fn events(lines: &[Value]) -> Vec<(String, u64)> {
    lines
        .iter()
        .filter(|l| l["type"] == "segment")
        .map(|l| (l["kind"].as_str().unwrap().to_string(), l["frame"].as_u64().unwrap()))
        .collect()
}

/// Sends SIGINT to the process `pid` names, which ends `watch` (directly,
/// or by closing its pipe); it must exit 0. Its JSON lines.
fn stop(watch: Background, pid: &str) -> Vec<Value> {
    stop_with(watch, pid, 0)
}

/// As `stop`, with the exit code `watch` must give.
fn stop_with(watch: Background, pid: &str, want: i32) -> Vec<Value> {
    interrupt(pid);
    let (code, lines, err) = watch.finish(20);
    assert_eq!(code, want, "{err}");
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn interrupt(pid: &str) {
    let stopped = std::process::Command::new("kill").args(["-INT", pid]).status().unwrap();
    assert!(stopped.success());
}

/// The last line is the summary, of one flow with keepalive.
fn assert_summary(lines: &[Value]) {
    let summary = lines.last().unwrap();
    assert_eq!(
        (&summary["type"], &summary["keepalive_flows"]),
        (&"summary".into(), &1.into())
    );
}

#[test]
fn watch_says_each_event_as_it_happens_and_as_verify_would() {
    let Some(lab) = Lab::up("wat", &[]) else {
        return;
    };
    let dump = lab.capture("tcpdump.pcap", "c");
    let own = lab.path("watch.pcap");
    let mut watch = watch_lab(&lab, &["--pcap", own.to_str().unwrap(), "--duration", "60"]);
    let client = lab.client("client.jsonl", &ka_client_args("1", &[]));
    // Said while it runs, not at its end: an answer, then (blackholed) the abort.
    watch.wait_line("keepalive_ack", 20);
    lab.ok("fault", &["blackhole"]);
    watch.wait_line("keepalive_abort", 20);
    let _ = client.wait_with_output();
    lab.stop_captures();
    let pid = watch.pid().to_string();
    let lines = stop(watch, &pid);
    let said = events(&lines);
    let kinds: Vec<&str> = said.iter().map(|(k, _)| k.as_str()).collect();
    // Answered rounds (at least the one waited for), then three unanswered probes and the abort.
    let answered = kinds.iter().filter(|k| **k == "keepalive_ack").count();
    assert!(answered >= 1, "{said:?}");
    let mut expected = ["keepalive_probe", "keepalive_ack"].repeat(answered);
    expected.extend([
        "keepalive_probe",
        "keepalive_probe",
        "keepalive_probe",
        "keepalive_abort",
    ]);
    assert_eq!(kinds, expected, "{said:?}");
    // verify on watch's own recording: the same events, kinds and frames, in order.
    let v = verify_json(&own, &[]);
    let verified: Vec<(String, u64)> = v
        .segments
        .iter()
        .map(|s| (s["kind"].as_str().unwrap().to_string(), s["frame"].as_u64().unwrap()))
        .collect();
    assert_eq!(said, verified);
    // And tcpdump's recording of the same traffic: the same kinds in order
    // (tcpdump may have seen a round more, had watch started later).
    let d = verify_json(&dump, &[]);
    let dumped: Vec<&str> = d.segments.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert!(dumped.ends_with(&kinds), "{dumped:?} vs {kinds:?}");
    // No drops; the flow and the summary at the end.
    assert!(lines.iter().all(|l| l["type"] != "drops"), "{lines:?}");
    let flow = lines.iter().find(|l| l["type"] == "flow").expect("a flow object");
    assert_eq!((&flow["outcome"], &flow["count"]), (&"timed_out".into(), &3.into()));
    assert_summary(&lines);
}

/// `tcpdump -w - | kaprobe watch -r -`: the same events, said as they come
/// through the pipe (the abort before tcpdump is stopped), then the summary
/// when the pipe closes.
#[test]
fn watch_reads_a_pipe_from_tcpdump_as_it_comes() {
    let Some(lab) = Lab::up("watp", &[]) else {
        return;
    };
    let iface = lab.env("LAB_IF_C");
    let ns = lab.env("LAB_NS_C");
    let pidfile = lab.path("tcpdump.pid");
    let script = format!(
        "( tcpdump -i {iface} -U -w - tcp 2>/dev/null & echo $! > {pid}; wait ) | {kaprobe} watch -r - --json",
        pid = pidfile.display(),
        kaprobe = env!("CARGO_BIN_EXE_kaprobe"),
    );
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", &ns, "sh", "-c", &script]);
    let mut watch = Background::spawn(c);
    wait_until("tcpdump to start", 10, || {
        std::fs::read_to_string(&pidfile).is_ok_and(|p| p.trim().parse::<u32>().is_ok())
    });
    // tcpdump needs a moment to attach before the first segment.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let client = lab.client("client.jsonl", &ka_client_args("1", &[]));
    watch.wait_line("keepalive_ack", 20);
    lab.ok("fault", &["blackhole"]);
    watch.wait_line("keepalive_abort", 20);
    let _ = client.wait_with_output();
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let lines = stop(watch, pid.trim());
    let kinds: Vec<String> = events(&lines).into_iter().map(|(k, _)| k).collect();
    let tail: Vec<&str> = kinds.iter().rev().take(4).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "keepalive_probe",
            "keepalive_probe",
            "keepalive_probe",
            "keepalive_abort"
        ],
        "{kinds:?}"
    );
    assert!(kinds.contains(&"keepalive_ack".to_string()));
    assert_summary(&lines);
}

/// `watch -r FILE` says what `verify` says of a file: the same segment
/// events (kind and frame, in order) and the same exit code, on every
/// recorded capture and on the public ones (no root needed).
#[test]
fn watch_on_a_file_says_what_verify_says() {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(repo().join("captures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    match public_dir() {
        Some(d) => files.extend(
            std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng")),
        ),
        None => eprintln!("skipped: no public captures"),
    }
    files.sort();
    assert!(files.len() > 20);
    let pick = |out: &str| -> Vec<(String, u64)> {
        let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        events(&lines)
    };
    for f in &files {
        let p = f.to_str().unwrap();
        let w = kaprobe(&["watch", "-r", p, "--json"]);
        let v = kaprobe(&["verify", "--json", p]);
        assert_eq!(pick(&w.stdout), pick(&v.stdout), "{p}");
        assert_eq!(w.code, v.code, "{p}: {}", w.stderr);
    }
}

#[test]
fn watch_reads_what_it_can_of_a_damaged_file_and_says_why_it_stopped() {
    let whole = std::fs::read(capture("linux_ka_blackhole_abort.pcap")).unwrap();
    let dir = std::env::temp_dir().join(format!("kaprobe-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() - 20]).unwrap();
    let r = kaprobe(&["watch", "-r", cut.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.contains("keepalive_probe"), "{}", r.stdout);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("record 11"), "{}", r.stderr);
    let r = kaprobe(&["watch", "-r", dir.join("none.pcap").to_str().unwrap()]);
    assert_eq!((r.code, r.stdout.as_str()), (2, ""), "{}", r.stderr);
    assert!(r.stderr.contains("no such file"), "{}", r.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--expect` as flows progress: a flow that breaks it is said the moment it
/// does (here at the kernel's abort, while `watch` still runs), one that keeps
/// it is never said; on a terminal the table shows the flow probing into
/// silence, then its end and what it broke, and the screen is left for the
/// closing table. Three watchers of the same traffic at once.
#[test]
fn watch_checks_expectations_as_flows_go_and_draws_its_table() {
    let Some(lab) = Lab::up("wate", &[]) else {
        return;
    };
    let iface = lab.env("LAB_IF_C");
    let bin = env!("CARGO_BIN_EXE_kaprobe");
    let own = lab.path("watch.pcap");
    let mut broken = watch_lab(&lab, &["--expect", "count=5", "--pcap", own.to_str().unwrap()]);
    let mut kept = watch_lab(&lab, &["--expect", "idle=1s,interval=1s,count=3,outcome=timed_out"]);
    // The table, on a terminal `script` gives it (exec: its child is kaprobe).
    let cmd = format!("stty rows 30 cols 180; exec {bin} watch -i {iface} --expect count=5");
    let mut c = std::process::Command::new("ip");
    c.args([
        "netns",
        "exec",
        &lab.env("LAB_NS_C"),
        "script",
        "-qfec",
        &cmd,
        "/dev/null",
    ]);
    let table = Background::spawn(c);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let client = lab.client("client.jsonl", &ka_client_args("1", &[]));
    broken.wait_line("keepalive_ack", 20);
    lab.ok("fault", &["blackhole"]);
    // Said at the abort, while watch runs: the flow does not end before it is stopped.
    let alert: Value = serde_json::from_str(&broken.wait_line(r#""type":"expect""#, 20)).unwrap();
    let _ = client.wait_with_output();
    kept.wait_line("keepalive_abort", 20);
    // The table drew the abort and the broken count before it is stopped.
    let mut table = table;
    table.wait_line("FAILED count", 20);
    let pid = broken.pid().to_string();
    let lines = stop_with(broken, &pid, 1);
    let pid = kept.pid().to_string();
    let kept = stop(kept, &pid);
    interrupt(&child_of(table.pid()).to_string());
    let (code, screen, err) = table.finish(20);
    assert_eq!(code, 1, "{err}");

    // The alert: the count, at the abort's frame, while the flow was open.
    let abort = lines
        .iter()
        .find(|l| l["kind"] == "keepalive_abort")
        .expect("the abort");
    assert_eq!(alert["expectation"], "count");
    assert_eq!(alert["frame"], abort["frame"], "{alert}");
    assert_eq!(alert["ended"], false);
    assert!(alert["failed"].as_str().unwrap().contains("measured 3"), "{alert}");
    // Said once; the flow's end repeats it as verify would, and the exit says it.
    assert_eq!(lines.iter().filter(|l| l["type"] == "expect").count(), 1);
    let flow = lines.iter().find(|l| l["type"] == "flow").unwrap();
    assert_eq!(flow["expectation_failures"].as_array().unwrap().len(), 1, "{flow}");
    assert_eq!(lines.last().unwrap()["expectation_failures"], 1);
    // verify --expect on what watch recorded: the same failure.
    let v = kaprobe(&["verify", "--json", "--expect", "count=5", own.to_str().unwrap()]);
    assert_eq!(v.code, 1, "{}", v.stderr);
    let vflow: Value = v
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["type"] == "flow")
        .unwrap();
    assert_eq!(vflow["expectation_failures"], flow["expectation_failures"]);

    // What holds is never said.
    assert!(kept.iter().all(|l| l["type"] != "expect"), "{kept:?}");
    let flow = kept.iter().find(|l| l["type"] == "flow").unwrap();
    assert_eq!(flow["expectation_failures"], serde_json::json!([]));

    // The table: frames drawn from the top (ESC[1;1H), in order: the flow
    // answered, then unanswered probes in a row, then its abort and the
    // broken count; then the screen left, the alert and the closing summary.
    let screen = screen.join("\n");
    let (drawn, after) = screen.split_once("\x1b[?1049l").expect("the screen left");
    assert!(drawn.contains("\x1b[?1049h"), "alternate screen");
    let rows: Vec<Vec<String>> = drawn
        .split("\x1b[1;1H")
        .filter_map(|frame| {
            frame
                .split("\r\n")
                .map(|l| l.replace("\x1b[K", "").replace("\x1b[J", ""))
                .find(|l| l.starts_with("  1 "))
                .map(|l| l.split_whitespace().map(str::to_string).collect())
        })
        .collect();
    // flow, src, >, dst, prober, idle, interval, probes, answered, in a row, last event...
    let states: Vec<(String, String)> = rows.iter().map(|r| (r[9].clone(), r[13..].join(" "))).collect();
    let first = |p: &dyn Fn(&(String, String)) -> bool| states.iter().position(p);
    let alive = first(&|s| s.1.starts_with("alive")).expect("an answered round drawn");
    let in_a_row = first(&|s| s.0 != "0").expect("unanswered probes in a row drawn");
    let ended = first(&|s| s.1.starts_with("timed_out") && s.1.contains("FAILED count")).expect("the abort drawn");
    assert!(alive < in_a_row && in_a_row < ended, "{states:?}");
    assert!(after.contains("expect: flow 1"), "{after}");
    assert!(after.contains("1 expectation failure"), "{after}");
}

/// The child of process `pid` (`script`'s: the program it runs).
fn child_of(pid: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    children.split_whitespace().next().expect("a child").parse().unwrap()
}

/// `watch -r FILE --expect` gives what `verify --expect` gives: each flow's
/// failures and the exit code; and what it said along the way names only
/// expectations the flow failed in the end.
#[test]
fn watch_expectations_on_a_file_are_verifys() {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(repo().join("captures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    let json = |out: &str| -> Vec<Value> { out.lines().map(|l| serde_json::from_str(l).unwrap()).collect() };
    let failures = |lines: &[Value]| -> Vec<(u64, Value)> {
        lines
            .iter()
            .filter(|l| l["type"] == "flow" && l.get("expectation_failures").is_some())
            .map(|l| (l["flow_id"].as_u64().unwrap(), l["expectation_failures"].clone()))
            .collect()
    };
    let mut alerts = 0;
    for spec in ["count=3,outcome=alive", "idle=1s,interval=1s"] {
        for f in &files {
            let p = f.to_str().unwrap();
            let w = kaprobe(&["watch", "-r", p, "--json", "--expect", spec]);
            let v = kaprobe(&["verify", "--json", "--expect", spec, p]);
            assert_eq!(w.code, v.code, "{p} {spec}: {}", w.stderr);
            let (wl, vl) = (json(&w.stdout), json(&v.stdout));
            let (wf, vf) = (failures(&wl), failures(&vl));
            assert_eq!(wf, vf, "{p} {spec}");
            for a in wl.iter().filter(|l| l["type"] == "expect") {
                alerts += 1;
                let id = a["flow_id"].as_u64().unwrap();
                let name = a["expectation"].as_str().unwrap();
                let (_, end) = wf.iter().find(|(f, _)| *f == id).expect("a flow checked");
                let end = end.as_array().unwrap();
                // A failure said is one at the end, unless it was said to hold after all.
                let failed_at_end = end.iter().any(|t| t.as_str().unwrap().starts_with(name));
                assert_eq!(
                    failed_at_end,
                    a["holds"] == false,
                    "{p} {spec}: said {a}, at the end {end:?}"
                );
            }
        }
    }
    assert!(alerts > 20, "{alerts}");
}

/// A flow first seen mid-session opens with a probe whose answer comes
/// 600 ms later, while the pipe is quiet: `watch` waits for that answer,
/// which alone tells the probe is one, and says both, as `verify` does.
#[test]
fn watch_waits_for_the_answer_that_tells_a_mid_session_probe() {
    use kaprobe::synth::{End, Session};
    use std::io::Write as _;
    let mut s = Session::new(
        "10.9.0.1:40000".parse().unwrap(),
        "10.9.0.2:80".parse().unwrap(),
        1000,
        5000,
    );
    let probe = s.probe(End::Client, &[]).unwrap().to_vec();
    let answer = s.probe_ack(End::Server, false).unwrap().to_vec();
    let header = pcap_header();
    let (first, second) = (record(0, &probe), record(600_000, &answer));
    let (watch, mut pipe) = watch_stdin();
    pipe.write_all(&header).unwrap();
    pipe.write_all(&first).unwrap();
    pipe.flush().unwrap();
    // Quiet for longer than a segment otherwise waits (200 ms).
    std::thread::sleep(std::time::Duration::from_millis(500));
    pipe.write_all(&second).unwrap();
    drop(pipe);
    let out = watch.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr above");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<String> = events(&lines).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["keepalive_probe", "keepalive_ack"], "{lines:?}");
    // verify on the same records says the same.
    let dir = std::env::temp_dir().join(format!("kaprobe-watch-mid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mid.pcap");
    std::fs::write(&file, [header, first, second].concat()).unwrap();
    let v = verify_json(&file, &[]);
    let verified: Vec<&str> = v.segments.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(verified, kinds);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pipe whose first chunk holds the file header and records, then goes
/// quiet (`cat f.pcap` into a pipe that stays open): the records are said
/// while the pipe is still open, not when more comes.
#[test]
fn watch_says_a_pipes_first_chunk_while_the_pipe_is_quiet() {
    use std::io::{BufRead, BufReader, Write as _};
    let whole = std::fs::read(capture("linux_ka_mid_session.pcap")).unwrap();
    let (mut watch, mut pipe) = watch_stdin();
    pipe.write_all(&whole).unwrap();
    pipe.flush().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    // The pipe stays open: the first answer is said all the same.
    let mut said: Vec<String> = Vec::new();
    while !said.iter().any(|l| l.contains("keepalive_ack")) {
        match rx.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(l) => said.push(l),
            Err(_) => panic!("nothing said while the pipe is open: {said:?}"),
        }
    }
    assert!(said[0].contains("keepalive_probe"), "{said:?}");
    drop(pipe);
    assert_eq!(watch.wait().unwrap().code(), Some(0));
}

/// A pcap file header: microseconds, Ethernet.
fn pcap_header() -> Vec<u8> {
    let mut header = Vec::new();
    for v in [0xa1b2c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        header.extend(v.to_le_bytes());
    }
    header
}

/// A pcap record of `frame`, `us` microseconds into the capture.
fn record(us: u64, frame: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    let (sec, usec) = (1_700_000_000 + (us / 1_000_000) as u32, (us % 1_000_000) as u32);
    for v in [sec, usec, frame.len() as u32, frame.len() as u32] {
        r.extend(v.to_le_bytes());
    }
    r.extend(frame);
    r
}

/// What was said early is not the verdict: an idle first measured off and
/// back within tolerance by the end, and a close later turned into a reset,
/// give `verify`'s verdict (exit 0, no failures), and the early alert is
/// taken back in so many words.
#[test]
fn watch_takes_back_what_the_flow_mended_and_the_verdict_is_verifys() {
    use kaprobe::synth::{End, Session};
    let dir = std::env::temp_dir().join(format!("kaprobe-watch-mend-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A session opened, a request acknowledged; frames 1 ms apart.
    let opened = || {
        let mut s = Session::new(
            "10.9.0.1:40000".parse().unwrap(),
            "10.9.0.2:80".parse().unwrap(),
            1000,
            5000,
        );
        let mut frames: Vec<Vec<u8>> = s.handshake().unwrap().to_vec();
        frames.push(s.data(End::Client, b"hello").unwrap().to_vec());
        frames.push(s.ack(End::Server).unwrap().to_vec());
        let timed: Vec<(u64, Vec<u8>)> = frames.into_iter().zip(1..).map(|(f, i)| (i * 1000, f)).collect();
        (s, timed)
    };
    let file = |name: &str, timed: &[(u64, Vec<u8>)]| {
        let mut bytes = pcap_header();
        for (us, f) in timed {
            bytes.extend(record(*us, f));
        }
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    // Idle 10 s, then 1 s three times: the median is 1 s.
    let (mut s, mut timed) = opened();
    let mut t = timed.last().unwrap().0;
    for idle in [10_000_000, 1_000_000, 1_000_000, 1_000_000] {
        t += idle;
        timed.push((t, s.probe(End::Client, &[]).unwrap().to_vec()));
        t += 1000;
        timed.push((t, s.probe_ack(End::Server, false).unwrap().to_vec()));
    }
    let idle = file("idle.pcap", &timed);
    // The client closes, the server probes, the client resets.
    let (mut s, mut timed) = opened();
    let t = timed.last().unwrap().0;
    timed.push((t + 1_000_000, s.fin(End::Client).unwrap().to_vec()));
    timed.push((t + 3_000_000, s.probe(End::Server, &[]).unwrap().to_vec()));
    timed.push((t + 3_001_000, s.reset_unknown(End::Client).unwrap().to_vec()));
    let reset = file("reset.pcap", &timed);
    for (p, spec, mended) in [(&idle, "idle=1s", Some("idle")), (&reset, "outcome=reset", None)] {
        let p = p.to_str().unwrap();
        let v = kaprobe(&["verify", "--json", "--expect", spec, p]);
        let w = kaprobe(&["watch", "-r", p, "--json", "--expect", spec]);
        assert_eq!((v.code, w.code), (0, 0), "{spec}: {}{}", v.stdout, w.stdout);
        let lines: Vec<Value> = w.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let flow = lines.iter().find(|l| l["type"] == "flow").unwrap();
        assert_eq!(flow["expectation_failures"], serde_json::json!([]), "{spec}");
        assert_eq!(lines.last().unwrap()["expectation_failures"], 0, "{spec}");
        let said: Vec<&Value> = lines.iter().filter(|l| l["type"] == "expect").collect();
        match mended {
            // Said off at the first probe, then said to hold at the end.
            Some(what) => {
                assert_eq!(said.len(), 2, "{said:?}");
                assert_eq!(
                    (&said[0]["expectation"], &said[0]["holds"]),
                    (&what.into(), &false.into())
                );
                assert_eq!(
                    (&said[1]["expectation"], &said[1]["holds"]),
                    (&what.into(), &true.into())
                );
            }
            // A close is not an outcome for good while the flow is open.
            None => assert!(said.is_empty(), "{said:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kaprobe watch -r - --json` reading a pipe this test writes.
fn watch_stdin() -> (std::process::Child, std::process::ChildStdin) {
    use std::process::{Command, Stdio};
    let mut watch = Command::new(env!("CARGO_BIN_EXE_kaprobe"))
        .args(["watch", "-r", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pipe = watch.stdin.take().unwrap();
    (watch, pipe)
}

/// `watch --expect … | grep -m1 FAILED`: the reader goes away after the
/// first failure, and `watch`'s exit code still says a flow failed.
#[test]
fn watch_whose_reader_went_away_still_exits_with_the_verdict() {
    use std::io::{BufRead, BufReader, Write as _};
    let whole = std::fs::read(capture("linux_ka_blackhole_abort.pcap")).unwrap();
    for view in ["--json", "--lines"] {
        let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_kaprobe"))
            .args(["watch", "-r", "-", view, "--expect", "count=5"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut pipe = watch.stdin.take().unwrap();
        pipe.write_all(&whole).unwrap();
        pipe.flush().unwrap();
        // Read up to the failure, then stop reading (as grep -m1 does).
        let mut out = BufReader::new(watch.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("count: expected 5") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "{view}: no failure said");
        }
        drop(out);
        // More records, whose events meet the closed pipe while the flow is
        // still open (their flow is the same, seen again: `watch` may have
        // gone by then).
        let _ = pipe.write_all(&whole[24..]);
        drop(pipe);
        assert_eq!(watch.wait().unwrap().code(), Some(1), "{view}");
    }
}
