//! `kaprobe explain`: annotated probes per style, timing, ladders (text and
//! SVG), a capture's frame with the classifier's reasoning, and the synthetic
//! scenarios — judged by `kaprobe verify` and, when installed, by tshark.
//!
//! Deterministic text output is compared with golden files in tests/golden/;
//! `KAPROBE_BLESS=1 cargo test --test explain` rewrites them.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_kaprobe"))
        .args(args)
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .output()
        .expect("run kaprobe");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(args: &[&str]) -> String {
    let r = run(args);
    assert_eq!(
        r.code,
        0,
        "kaprobe {}: exit {}, stderr: {}",
        args.join(" "),
        r.code,
        r.stderr
    );
    r.stdout
}

/// A usage error: exit 2, one line `kaprobe: <what>: <why>` on stderr, nothing on stdout.
fn usage_error(args: &[&str]) -> String {
    let r = run(args);
    assert_eq!(
        r.code,
        2,
        "kaprobe {}: exit {} (stdout {})",
        args.join(" "),
        r.code,
        r.stdout
    );
    assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
    assert!(r.stderr.starts_with("kaprobe: "), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    r.stderr
}

/// Compares `actual` with tests/golden/NAME, or rewrites it with KAPROBE_BLESS=1.
fn golden(name: &str, actual: &str) {
    let path = repo().join("tests/golden").join(name);
    if std::env::var_os("KAPROBE_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with KAPROBE_BLESS=1 cargo test --test explain",
            path.display()
        )
    });
    if expected == actual {
        return;
    }
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let at = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    let mut msg = format!(
        "output differs from {} at line {} ({} lines expected, {} got)\n",
        path.display(),
        at + 1,
        e.len(),
        a.len()
    );
    for i in at.saturating_sub(2)..(at + 3).min(e.len().max(a.len())) {
        if let Some(x) = e.get(i) {
            msg += &format!("  expected {:>4}: {x}\n", i + 1);
        }
        if let Some(y) = a.get(i) {
            msg += &format!("  got      {:>4}: {y}\n", i + 1);
        }
    }
    msg += "if the change is intended: KAPROBE_BLESS=1 cargo test --test explain, and review the diff";
    panic!("{msg}");
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("kaprobe-explain-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------- explain probe

#[test]
fn probe_per_style_matches_golden() {
    for style in ["linux", "windows", "bsd42", "lwip", "smoltcp"] {
        let out = ok(&["explain", "probe", "--style", style]);
        golden(&format!("probe_{style}.txt"), &out);
    }
    let out = ok(&["explain", "probe", "--timestamps", "--ipv6"]);
    golden("probe_linux_timestamps_ipv6.txt", &out);
    let out = ok(&[
        "explain",
        "probe",
        "--style",
        "lwip",
        "--timestamps",
        "--seq",
        "0",
        "--ack",
        "77",
    ]);
    golden("probe_lwip_timestamps_seq0.txt", &out);
}

#[test]
fn probe_names_the_rule_and_verifies_checksums() {
    for style in ["linux", "windows", "bsd42", "lwip", "smoltcp"] {
        for extra in [&[][..], &["--timestamps", "--ipv6"][..]] {
            let mut args = vec!["explain", "probe", "--style", style];
            args.extend_from_slice(extra);
            let out = ok(&args);
            let checks: Vec<&str> = out
                .lines()
                .filter(|l| l.trim_start().starts_with("checksums:"))
                .collect();
            assert_eq!(checks.len(), 2, "{style}: probe and answer");
            for c in checks {
                assert!(
                    c.contains("TCP 0x") && c.contains("correct") && !c.contains("WRONG"),
                    "{c}"
                );
            }
            assert!(
                out.contains("seq = SND.NXT − 1 = 1000: one byte the peer already has, so it must answer"),
                "{style}"
            );
            assert!(out.contains("ack = RCV.NXT = 1001 = probe seq + 1"), "{style}");
            assert!(out.contains("seq = SND.NXT (1001) instead of SND.NXT − 1"), "{style}");
            assert!(out.contains("2 bytes of payload"), "{style}");
        }
    }
    // The wrong variants and the peer's reaction.
    let out = ok(&["explain", "probe", "--timestamps"]);
    assert!(out.contains("a Linux peer: no answer. A zero-length segment at exactly RCV.NXT (1001)"));
    assert!(out.contains("stale TSval"));
    assert!(out.contains("TCP_RFC7323_PAWS_ACK"));
    // One-byte styles: the answer carries a D-SACK block.
    let out = ok(&["explain", "probe", "--style", "windows"]);
    assert!(out.contains("D-SACK [1000, 1001)"));
    assert!(out.contains("00 00 03 e8 00 00 03 e9"), "the D-SACK block's bytes");
    // 4.2BSD: ack one below RCV.NXT.
    let out = ok(&["explain", "probe", "--style", "bsd42"]);
    assert!(out.contains("ack = RCV.NXT − 1 = 5000"));
}

/// The first frame `explain probe` dumps (the probe), reassembled from its hex rows.
fn first_dump(out: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    let rows = out
        .lines()
        .skip_while(|l| !l.contains("keepalive probe: "))
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("checksums:"));
    for l in rows {
        let Some(off) = l.get(2..6).and_then(|o| usize::from_str_radix(o, 16).ok()) else {
            continue; // the column header and layer titles
        };
        assert_eq!(off, bytes.len(), "rows are contiguous: {l}");
        for b in l.get(10..l.len().min(33)).unwrap_or("").split_whitespace() {
            bytes.push(u8::from_str_radix(b, 16).unwrap_or_else(|_| panic!("hex byte '{b}' in {l}")));
        }
    }
    bytes
}

/// For every style, `explain probe` shows byte for byte what `kaprobe probe` puts on the wire
/// for the same session state: the shared builder, the shared segment, wire::build (as
/// live/engine.rs send_probe and live/send.rs do). Fails if explain builds its probe another
/// way, or if the probe path stops being the table's.
#[test]
fn probe_shows_the_bytes_probe_sends_for_every_style() {
    use kaprobe::explain::probe::ProbeParams;
    use kaprobe::keepalive::{ProbeShape, Style};
    use kaprobe::wire::build::{ip_packet, tcp_segment};
    let cases: [(&[&str], bool, bool, u32, u32); 3] = [
        (&[], false, false, 1001, 5001),
        (&["--timestamps", "--ipv6"], true, true, 1001, 5001),
        (&["--timestamps", "--seq", "0", "--ack", "77"], false, true, 0, 77),
    ];
    for style in Style::ALL {
        for (extra, ipv6, timestamps, snd_nxt, rcv_nxt) in cases {
            let p = ProbeParams {
                style,
                snd_nxt,
                rcv_nxt,
                ipv6,
                timestamps,
            };
            // The probe path: the first probe of a session in this state.
            let shape = ProbeShape::build(style, None, &p.inputs(), 1);
            let (me, peer) = p.endpoints();
            let spec = shape.segment(me, peer);
            let (mut ip, mut tcp) = (Vec::new(), Vec::new());
            ip_packet(&spec, &mut ip).unwrap();
            tcp_segment(&spec, &mut tcp).unwrap();
            assert!(
                ip.ends_with(&tcp),
                "{style}: one segment either way the sender builds it"
            );

            let mut args = vec!["explain", "probe", "--style", style.name()];
            args.extend_from_slice(extra);
            let shown = first_dump(&ok(&args));
            assert_eq!(
                shown.len(),
                14 + ip.len(),
                "{style} {extra:?}: Ethernet header + IP packet"
            );
            assert_eq!(shown[14..], ip[..], "{style} {extra:?}: explain shows what probe sends");
            assert_eq!(shown.len() - 14 - tcp.len(), if ipv6 { 40 } else { 20 });
            assert_eq!(shape.len(), style.payload_len() as u32, "{style}");
            if style == Style::Bsd42 {
                assert_ne!(shape.payload, Some(0), "the 4.2BSD byte is garbage, not zero");
            }
        }
    }
}

#[test]
fn probe_usage_errors() {
    let e = usage_error(&["explain", "probe", "--style", "vms"]);
    assert!(e.contains("unknown style 'vms'"), "{e}");
    usage_error(&["explain", "probe", "--seq", "-1"]);
    let e = usage_error(&["explain"]);
    assert!(e.contains("say what to explain"), "{e}");
}

// ---------------------------------------------------------------- explain timing

#[test]
fn timing_matches_golden() {
    golden("timing_linux.txt", &ok(&["explain", "timing", "--preset", "linux"]));
    golden("timing_go.txt", &ok(&["explain", "timing", "--preset", "go"]));
    golden("timing_windows.txt", &ok(&["explain", "timing", "--preset", "windows"]));
    golden("timing_macos.txt", &ok(&["explain", "timing", "--preset", "macos"]));
    golden(
        "timing_given.txt",
        &ok(&[
            "explain",
            "timing",
            "--preset",
            "linux",
            "--idle",
            "5m",
            "--interval",
            "10s",
            "--count",
            "3",
            "--middlebox-timeout",
            "60s",
        ]),
    );
}

#[test]
fn timing_linux_defaults_detect_in_2h11m15s() {
    let out = ok(&["explain", "timing", "--preset", "linux"]);
    assert!(out.contains("dead peer declared  2h11m15s (7875s) = idle + count × interval = 7200s + 9 × 75s"));
    for m in ["AWS NLB", "Azure Load Balancer", "GCP", "Cisco Meraki"] {
        assert!(out.contains(&format!("warning: {m}")), "{m}");
    }
    assert!(
        out.contains("sysctl -w net.ipv4.tcp_keepalive_time=190"),
        "fix for the tightest (Azure 4 min)"
    );
    let lines: Vec<Value> = ok(&["explain", "timing", "--preset", "linux", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "timing");
    assert_eq!(lines[0]["dead_after_s"], 7875);
    assert_eq!(lines[0]["first_probe_s"], 7200);
    assert_eq!(lines[0]["probes_s"].as_array().unwrap().len(), 9);
    let aws = lines.iter().find(|l| l["name"] == "AWS NLB").unwrap();
    assert_eq!(
        (aws["type"].as_str(), aws["timeout_s"].as_u64()),
        (Some("middlebox"), Some(350))
    );
    assert_eq!(aws["loses"], true);
    assert_eq!(aws["fix_idle_s"], 280);
    let go: Value = serde_json::from_str(
        ok(&["explain", "timing", "--preset", "go", "--json"])
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(go["dead_after_s"], 150);
    assert_eq!(go["loses_to"].as_array().unwrap().len(), 0);
    let ut: Value = serde_json::from_str(
        ok(&[
            "explain",
            "timing",
            "--idle",
            "30s",
            "--interval",
            "5s",
            "--user-timeout",
            "42s",
            "--json",
        ])
        .lines()
        .next()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(ut["dead_after_s"], 45, "TCP_USER_TIMEOUT replaces the count");
}

#[test]
fn timing_reads_this_hosts_sysctls() {
    let r = run(&["explain", "timing", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t: Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    match std::fs::read_to_string("/proc/sys/net/ipv4/tcp_keepalive_time") {
        Ok(v) => {
            assert_eq!(t["idle_s"].as_u64(), v.trim().parse().ok());
            assert!(t["source"].as_str().unwrap().contains("this host"));
        }
        Err(_) => assert!(r.stderr.contains("using Linux defaults")),
    }
}

#[test]
fn timing_usage_errors() {
    let e = usage_error(&["explain", "timing", "--idle", "1.5s"]);
    assert!(e.contains("whole seconds"), "{e}");
    let e = usage_error(&["explain", "timing", "--preset", "linux", "--count", "0"]);
    assert!(e.contains("count must be at least 1"), "{e}");
    let e = usage_error(&["explain", "timing", "--preset", "vms"]);
    assert!(e.contains("unknown preset 'vms'"), "{e}");
}

// ---------------------------------------------------------------- ladders

/// The kinds on the arrows of a text ladder, top to bottom.
fn text_ladder_kinds(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains("|--") || l.contains("|<-"))
        .map(|l| {
            let inner = l.split('|').nth(1).unwrap();
            inner
                .trim_matches(|c: char| c == '-' || c == '<' || c == '>' || c == ' ' || c == 'x')
                .split(' ')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// `data-kind` of every step in an SVG document, after checking it is well-formed XML.
fn svg_kinds(path: &Path) -> (Vec<String>, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: not XML: {e}", path.display()));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.tag_name().namespace(), Some("http://www.w3.org/2000/svg"));
    let steps: Vec<String> = root
        .descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some("step"))
        .map(|n| {
            // Each step has its arrow and a label naming the kind.
            let label = n
                .children()
                .find(|c| c.attribute("class") == Some("label"))
                .and_then(|c| c.text())
                .unwrap_or_default();
            let kind = n.attribute("data-kind").unwrap().to_string();
            assert_eq!(label, kind);
            assert!(n.children().any(|c| c.has_tag_name("line")));
            kind
        })
        .collect();
    let ladders = root
        .descendants()
        .filter(|n| n.attribute("class") == Some("ladder"))
        .count();
    (steps, ladders)
}

#[test]
fn timeline_matches_golden_and_svg_shows_the_same_events() {
    let dir = Scratch::new("timeline");
    for outcome in ["alive", "dead", "reset"] {
        let svg = dir.path(&format!("{outcome}.svg"));
        let out = ok(&[
            "explain",
            "timeline",
            "--outcome",
            outcome,
            "--svg",
            svg.to_str().unwrap(),
        ]);
        golden(&format!("timeline_{outcome}.txt"), &out);
        let text = text_ladder_kinds(&out);
        let (svg_steps, ladders) = svg_kinds(&svg);
        assert_eq!(ladders, 1);
        assert_eq!(svg_steps, text, "{outcome}: SVG and text show the same events");
    }
    let out = ok(&[
        "explain",
        "timeline",
        "--idle",
        "10s",
        "--interval",
        "2s",
        "--count",
        "5",
        "--style",
        "windows",
    ]);
    golden("timeline_windows_dead.txt", &out);
    let kinds = text_ladder_kinds(&out);
    assert_eq!(kinds.iter().filter(|k| *k == "keepalive_probe").count(), 5);
    assert_eq!(kinds.last().map(String::as_str), Some("keepalive_abort"));
    assert!(out.contains("declared dead after 20s"));
    assert!(out.contains("gives up after 5 unanswered probes, 20s after the peer last spoke"));
}

#[test]
fn timeline_arrows_show_the_outcome() {
    let kinds = |o: &str| text_ladder_kinds(&ok(&["explain", "timeline", "--outcome", o]));
    let tail = |v: Vec<String>| v[6..].to_vec();
    assert_eq!(
        tail(kinds("alive")),
        ["keepalive_probe", "keepalive_ack", "keepalive_probe", "keepalive_ack"]
    );
    assert_eq!(
        tail(kinds("dead")),
        [
            "keepalive_probe",
            "keepalive_probe",
            "keepalive_probe",
            "keepalive_abort"
        ]
    );
    assert_eq!(tail(kinds("reset")), ["keepalive_probe", "keepalive_rst"]);
    let out = ok(&["explain", "timeline", "--outcome", "dead"]);
    assert_eq!(
        out.matches("-x ").count() + out.matches("-x|").count(),
        3,
        "unanswered probes end in x:\n{out}"
    );
    usage_error(&["explain", "timeline", "--outcome", "maybe"]);
    usage_error(&["explain", "timeline", "--count", "0"]);
}

#[test]
fn verify_ladder_draws_each_flow_and_the_svg_matches() {
    let dir = Scratch::new("ladder");
    let svg = dir.path("flows.svg");
    let files = [
        "captures/linux_ka_reboot_rst.pcap",
        "captures/linux_ka_blackhole_abort.pcap",
        "captures/linux_zero_window.pcap",
    ];
    let mut args = vec!["verify", "--ladder", "--svg", svg.to_str().unwrap()];
    args.extend_from_slice(&files);
    let r = run(&args);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let text_kinds = text_ladder_kinds(&r.stdout);
    let (svg_steps, ladders) = svg_kinds(&svg);
    assert_eq!(ladders, 3, "one ladder per shown flow");
    assert_eq!(svg_steps, text_kinds);
    assert!(text_kinds.contains(&"keepalive_rst".to_string()));
    assert!(text_kinds.contains(&"keepalive_abort".to_string()));
    assert!(text_kinds.contains(&"zero_window_probe".to_string()));
    // Every keepalive event verify reports is on the ladder, in order.
    for f in files {
        let v = verify_json(&repo().join(f), &[]);
        let kinds: Vec<String> = v
            .segments
            .iter()
            .map(|s| s["kind"].as_str().unwrap().to_string())
            .collect();
        let out = ok(&["verify", "--ladder", f]);
        let on_ladder: Vec<String> = text_ladder_kinds(&out)
            .into_iter()
            .filter(|k| !matches!(k.as_str(), "handshake" | "data" | "ack" | "fin" | "rst"))
            .collect();
        assert_eq!(on_ladder, kinds, "{f}");
    }
    usage_error(&["verify", "--ladder", "--json", files[0]]);
    usage_error(&["verify", "--svg", "x.svg", files[0]]);
}

// ---------------------------------------------------------------- explain frame

#[test]
fn frame_matches_golden_in_both_spellings() {
    let f = "captures/linux_ka_answered_v4.pcap";
    let a = ok(&["explain", f, "--frame", "8"]);
    let b = ok(&["explain", "frame", f, "8"]);
    assert_eq!(a, b);
    golden("frame_answered_v4_8.txt", &a);
    golden("frame_answered_v4_9.txt", &ok(&["explain", "frame", f, "9"]));
    assert!(a.contains("seq 964892815 = next expected 964892816 − 1"));
    assert!(a.contains("that byte was acknowledged by the peer in frame 5"));
    assert!(a.contains("peer window 64 × 1024 = 65536 > 0"));
    assert!(a.contains("answered by frame 9"));
}

/// The explanation reuses the analyzer: for every frame, the kind it names is
/// the kind `verify --all` reports.
#[test]
fn frame_kinds_agree_with_verify() {
    for name in [
        "linux_ka_blackhole_abort.pcap",
        "linux_retrans_1byte.pcap",
        "linux_ka_middlebox_idle_reset.pcap",
    ] {
        let path = capture(name);
        let v = verify_json(&path, &["--all"]);
        for s in &v.segments {
            let frame = s["frame"].as_u64().unwrap().to_string();
            let out = ok(&["explain", path.to_str().unwrap(), "--frame", &frame]);
            let kind = s["kind"].as_str().unwrap();
            assert!(
                out.contains(&format!("kaprobe's classifier: {kind}\n")),
                "{name} frame {frame}: verify says {kind}:\n{out}"
            );
            assert!(out.contains("checksums:"), "{name} frame {frame}");
        }
    }
    let retrans = verify_json(&capture("linux_retrans_1byte.pcap"), &[]).frames_of("retransmission");
    let out = ok(&[
        "explain",
        "frame",
        "captures/linux_retrans_1byte.pcap",
        &retrans[0].to_string(),
    ]);
    assert!(out.contains("was never acknowledged"), "{out}");
    assert!(out.contains("Wireshark says Keep-Alive"));
    let zw = verify_json(&capture("linux_zero_window.pcap"), &[]).frames_of("zero_window_probe");
    let out = ok(&[
        "explain",
        "frame",
        "captures/linux_zero_window.pcap",
        &zw[0].to_string(),
    ]);
    assert!(out.contains("⇒ zero-window probe"), "{out}");
}

#[test]
fn frame_errors_name_the_file_and_the_frame_count() {
    let e = usage_error(&["explain", "frame", "captures/linux_retrans_1byte.pcap", "99"]);
    assert!(e.contains("captures/linux_retrans_1byte.pcap"), "{e}");
    assert!(e.contains("frame 99 is out of range: the capture has 13 frames"), "{e}");
    let e = usage_error(&["explain", "captures/linux_retrans_1byte.pcap", "--frame", "0"]);
    assert!(e.contains("numbered from 1"), "{e}");
    let e = usage_error(&["explain", "frame", "no/such/file.pcap", "1"]);
    assert!(e.contains("no/such/file.pcap") && e.contains("no such file"), "{e}");
    let e = usage_error(&["explain", "captures/linux_retrans_1byte.pcap"]);
    assert!(e.contains("--frame N"), "{e}");
}

// ---------------------------------------------------------------- scenarios

fn scenario_list() -> Vec<Value> {
    ok(&["explain", "scenario", "--list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn scenario_list_matches_golden_and_covers_every_style_and_outcome() {
    golden("scenario_list.txt", &ok(&["explain", "scenario", "--list"]));
    let list = scenario_list();
    for style in ["linux", "windows", "bsd42", "lwip", "smoltcp"] {
        for outcome in ["alive", "dead", "reset"] {
            assert!(
                list.iter().any(|s| s["style"] == style && s["outcome"] == outcome),
                "{style}-{outcome}"
            );
        }
    }
}

/// Every scenario, written as pcap: `verify` classifies every frame exactly
/// as the scenario says, the flow ends as it says, and tshark (when
/// installed) labels exactly the frames the scenario says it does —
/// including where Wireshark's rule is known to be wrong.
#[test]
fn every_scenario_is_classified_exactly_by_verify_and_tshark() {
    let dir = Scratch::new("scenarios");
    let have_tshark = tshark().is_some();
    if !have_tshark {
        eprintln!("tshark not installed: checking kaprobe verify only");
    }
    let list = scenario_list();
    assert!(list.len() >= 15);
    for s in &list {
        let name = s["name"].as_str().unwrap();
        let path = dir.path(&format!("{name}.pcap"));
        let out = ok(&["explain", "scenario", name, "--pcap", path.to_str().unwrap()]);
        assert!(out.contains(&format!("scenario {name}")));
        let v = verify_json(&path, &["--all"]);
        assert_eq!(v.code, 0, "{name}: no violations expected");
        let kinds: Vec<&str> = v.segments.iter().map(|x| x["kind"].as_str().unwrap()).collect();
        let expected: Vec<&str> = s["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(kinds, expected, "{name}");
        let outcome = match s["outcome"].as_str() {
            Some("alive") => "alive",
            Some("dead") => "timed_out",
            Some("reset") => "reset",
            _ => "",
        };
        if !outcome.is_empty() {
            assert_eq!(v.flows.len(), 1, "{name}");
            assert_eq!(v.flows[0]["outcome"], outcome, "{name}");
        }
        if have_tshark {
            let labels = s["wireshark"].as_array().unwrap();
            for field in [
                "tcp.analysis.keep_alive",
                "tcp.analysis.keep_alive_ack",
                "tcp.analysis.window_update",
            ] {
                let want: Vec<u64> = labels
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.as_str() == Some(field))
                    .map(|(i, _)| i as u64 + 1)
                    .collect();
                assert_eq!(tshark_frames(&path, field), want, "{name}: {field}");
            }
        }
    }
    // The keepalive scenarios' probes are exactly Wireshark's Keep-Alives
    // and their answers its Keep-Alive ACKs; the look-alikes show its known mistakes.
    let by = |n: &str| list.iter().find(|s| s["name"] == n).unwrap();
    let ws = |n: &str, f: &str| {
        by(n)["wireshark"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l.as_str() == Some(f))
            .count()
    };
    assert_eq!(ws("retransmission-1byte", "tcp.analysis.keep_alive"), 3);
    assert_eq!(ws("zero-window", "tcp.analysis.keep_alive"), 3);
    assert_eq!(ws("window-update-answer", "tcp.analysis.window_update"), 2);
    assert_eq!(ws("window-update-answer", "tcp.analysis.keep_alive_ack"), 0);
}

#[test]
fn scenario_errors() {
    let e = usage_error(&["explain", "scenario", "nope", "--pcap", "/tmp/x.pcap"]);
    assert!(e.contains("no scenario 'nope'"), "{e}");
    let e = usage_error(&["explain", "scenario", "linux-alive", "--pcap", "/no/such/dir/x.pcap"]);
    assert!(e.contains("/no/such/dir/x.pcap"), "{e}");
    usage_error(&["explain", "scenario", "linux-alive"]);
}

/// A write that fails (the file size limit, as a full disk would) is reported
/// by name, one line, exit 2 — and no file, complete-looking or partial, is left.
#[test]
fn scenario_write_error_leaves_no_file() {
    let dir = Scratch::new("fsize");
    let path = dir.path("big.pcap");
    // SIGXFSZ ignored, so the write fails with EFBIG instead of killing kaprobe.
    let out = Command::new("sh")
        .args(["-c", "trap '' XFSZ; exec prlimit --fsize=100 \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_kaprobe"))
        .args(["explain", "scenario", "linux-alive", "--pcap", path.to_str().unwrap()])
        .output()
        .expect("run sh, prlimit, kaprobe");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("kaprobe: ") && err.contains("big.pcap: file too large"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let left: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
