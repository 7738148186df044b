//! Shared helpers for integration tests: run the real binary, parse its JSON Lines.

#![allow(dead_code)]

pub mod lab;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The project's own recorded captures.
pub fn capture(name: &str) -> PathBuf {
    repo().join("captures").join(name)
}

/// The workplace's public captures, when this clone sits beside them.
pub fn public_dir() -> Option<PathBuf> {
    let d = repo().join("../shared/captures/public");
    d.is_dir().then_some(d)
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn kaprobe(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_kaprobe"))
        .args(args)
        .output()
        .expect("run kaprobe");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kaprobe verify --json` on one file, parsed.
pub struct Verified {
    pub code: i32,
    pub segments: Vec<Value>,
    pub flows: Vec<Value>,
    pub summary: Value,
}

pub fn verify_json(path: &Path, extra: &[&str]) -> Verified {
    let p = path.to_str().unwrap();
    let mut args = vec!["verify", "--json"];
    args.extend_from_slice(extra);
    args.push(p);
    let r = kaprobe(&args);
    assert!(r.code == 0 || r.code == 1, "{p}: exit {} stderr {}", r.code, r.stderr);
    let mut v = Verified {
        code: r.code,
        segments: vec![],
        flows: vec![],
        summary: Value::Null,
    };
    for line in r.stdout.lines() {
        let o: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{p}: bad JSON line {line}: {e}"));
        match o["type"].as_str() {
            Some("segment") => v.segments.push(o),
            Some("flow") => v.flows.push(o),
            Some("summary") => v.summary = o,
            _ => {}
        }
    }
    assert!(v.summary.is_object(), "{p}: no summary line");
    v
}

impl Verified {
    /// Kinds of the classified segments of one flow, in capture order.
    pub fn kinds_of(&self, flow_id: u64) -> Vec<String> {
        self.segments
            .iter()
            .filter(|s| s["flow_id"] == flow_id)
            .map(|s| s["kind"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn kind_counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for s in &self.segments {
            *m.entry(s["kind"].as_str().unwrap().to_string()).or_insert(0) += 1;
        }
        m
    }

    pub fn frames_of(&self, kind: &str) -> Vec<u64> {
        self.segments
            .iter()
            .filter(|s| s["kind"] == kind)
            .map(|s| s["frame"].as_u64().unwrap())
            .collect()
    }
}

pub fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// tshark, when installed. CI installs it, so there its absence is a failure.
pub fn tshark() -> Option<PathBuf> {
    let found = find_tshark();
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "tshark is not installed but CI is set"
    );
    found
}

fn find_tshark() -> Option<PathBuf> {
    Command::new("tshark")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("tshark"))
}

/// Frame numbers tshark flags with a display filter.
pub fn tshark_frames(path: &Path, filter: &str) -> Vec<u64> {
    let out = Command::new("tshark")
        .args([
            "-n",
            "-r",
            path.to_str().unwrap(),
            "-Y",
            filter,
            "-T",
            "fields",
            "-e",
            "frame.number",
        ])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// kaprobe's keepalive probes and answers are exactly the frames tshark flags.
pub fn assert_agrees_with_tshark(path: &Path, v: &Verified) {
    let name = path.display();
    let probes = tshark_frames(path, "tcp.analysis.keep_alive");
    assert_eq!(v.frames_of("keepalive_probe"), probes, "{name}: probes");
    let answers = tshark_frames(path, "tcp.analysis.keep_alive_ack");
    assert_eq!(v.frames_of("keepalive_ack"), answers, "{name}: answers");
}
