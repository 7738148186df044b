//! `kaprobe watch` on the lab client's interface while the kernel's own
//! keepalive runs: answered, then blackholed until the abort (root; skipped
//! outside CI as a user).

mod common;
use common::lab::*;
use common::*;

use serde_json::Value;

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
    let stopped = std::process::Command::new("kill").args(["-INT", pid]).status().unwrap();
    assert!(stopped.success());
    let (code, lines, err) = watch.finish(20);
    assert_eq!(code, 0, "{err}");
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
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
    let iface = lab.env("LAB_IF_C");
    let mut watch = Background::spawn(lab.kaprobe(
        "c",
        &[
            "watch",
            "-i",
            &iface,
            "--json",
            "--pcap",
            own.to_str().unwrap(),
            "--duration",
            "60",
        ],
    ));
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
