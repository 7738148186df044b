//! The namespace lab (scripts/lab.sh) for live tests: one lab per test, named after
//! the test and this process, torn down by `Lab`'s Drop even when an assertion fails.
//!
//! Root only. Without namespaces a test FAILS when running as root or when CI is set,
//! and only skips (printing "skipped: ...") as a normal user outside CI.

use super::repo;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Once;
use std::time::{Duration, Instant};

pub fn lab_sh() -> Command {
    let mut c = Command::new("bash");
    c.arg(repo().join("scripts/lab.sh"));
    c
}

pub fn run(mut c: Command) -> Output {
    c.stdin(Stdio::null()).output().expect("run scripts/lab.sh")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| text(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

pub struct Lab {
    pub name: String,
    pub dir: PathBuf,
}

impl Lab {
    /// A fresh lab, or None (test skipped) when not root and not in CI.
    pub fn up(tag: &str, opts: &[&str]) -> Option<Lab> {
        if !can_run(tag) {
            return None;
        }
        static CLEANUP: Once = Once::new();
        CLEANUP.call_once(|| {
            let mut c = lab_sh();
            c.arg("cleanup");
            let out = run(c);
            assert!(out.status.success(), "lab.sh cleanup: {}", text(&out.stderr));
        });
        let pid = std::process::id().to_string();
        let name = format!("{tag}{pid}");
        let dir = std::env::temp_dir().join(format!("kaprobe-lab-live-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = lab_sh();
        c.args(["up", &name, "--owner", &pid]).args(opts);
        let out = run(c);
        assert!(
            out.status.success(),
            "{tag}: could not bring the lab up (root, with ip, nft, tcpdump, ethtool, python3, iptables: scripts/setup.sh):\n{}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout).trim(), name);
        Some(Lab { name, dir })
    }

    pub fn cmd(&self, sub: &str, args: &[&str]) -> Command {
        let mut c = lab_sh();
        c.arg(sub).arg(&self.name).args(args);
        c
    }

    /// `lab.sh SUB NAME ARGS...`, which must succeed; its stdout.
    pub fn ok(&self, sub: &str, args: &[&str]) -> String {
        let out = run(self.cmd(sub, args));
        assert!(
            out.status.success(),
            "lab.sh {sub} {} {}: {}",
            self.name,
            args.join(" "),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Start tcpdump at `at` (c, mc, ms, s) into FILE in the test's directory, with
    /// an optional BPF filter (default `tcp`).
    pub fn capture(&self, file: &str, at: &str) -> PathBuf {
        self.capture_filtered(file, at, &[])
    }

    pub fn capture_filtered(&self, file: &str, at: &str, filter: &[&str]) -> PathBuf {
        let p = self.path(file);
        let mut args = vec!["start", p.to_str().unwrap(), "--at", at];
        args.extend_from_slice(filter);
        self.ok("capture", &args);
        p
    }

    pub fn stop_captures(&self) {
        self.ok("capture", &["stop"]);
    }

    /// peer.py client in the client namespace, in the background; progress events go to
    /// STATUS (a file in the test's directory).
    pub fn client(&self, status: &str, args: &[&str]) -> Child {
        let st = self.path(status);
        self.cmd("client", &[])
            .args(args)
            .args(["--status", st.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lab.sh client")
    }

    pub fn server_log(&self) -> Vec<Value> {
        self.ok("log", &[])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("server log line {l}: {e}")))
            .collect()
    }

    /// `lab.sh env` as key/value pairs: namespaces, interfaces, addresses.
    pub fn env(&self, key: &str) -> String {
        let all = self.ok("env", &[]);
        all.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
            .unwrap_or_else(|| panic!("lab.sh env has no {key}:\n{all}"))
    }

    /// The real kaprobe binary inside the lab's namespace `role` (c, m, s).
    pub fn kaprobe(&self, role: &str, args: &[&str]) -> Command {
        let ns = self.env(&format!("LAB_NS_{}", role.to_uppercase()));
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns, env!("CARGO_BIN_EXE_kaprobe")]).args(args);
        c.stdin(Stdio::null());
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = run(self.cmd("down", &[]));
        if !out.status.success() {
            eprintln!("lab.sh down {}: {}", self.name, text(&out.stderr));
        }
        if std::thread::panicking() {
            eprintln!("{}: captures kept in {}", self.name, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Poll until `cond` holds (every 20 ms), at most `secs` seconds.
pub fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < end, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn has_event(status: &Path, event: &str) -> bool {
    std::fs::read_to_string(status)
        .map(|s| s.contains(&format!("\"event\":\"{event}\"")))
        .unwrap_or(false)
}

/// A program in the background whose stdout lines are read as they come.
pub struct Background {
    child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Background {
    pub fn spawn(mut c: Command) -> Background {
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a background program");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Background {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `secs`) for a stdout line containing `needle`.
    pub fn wait_line(&mut self, needle: &str, secs: u64) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!("no line with {needle:?} after {secs} s; got:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits (at most `secs`) until `n` stdout lines contain `needle`.
    pub fn wait_lines(&mut self, needle: &str, n: usize, secs: u64) {
        let end = Instant::now() + Duration::from_secs(secs);
        while self.seen.iter().filter(|l| l.contains(needle)).count() < n {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!(
                    "{} of {n} lines with {needle:?} after {secs} s; got:\n{}",
                    self.seen.iter().filter(|l| l.contains(needle)).count(),
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the exit (at most `secs`, then kills); (exit code, every stdout line, stderr).
    pub fn finish(mut self, secs: u64) -> (i32, Vec<String>, String) {
        let end = Instant::now() + Duration::from_secs(secs);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("still running after {secs} s; stdout so far:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(l);
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status.code().unwrap_or(-1), std::mem::take(&mut self.seen), err)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `peer.py client` arguments the lab tests share: keepalive idle `idle` s,
/// interval 1 s, count 3; 100 bytes echoed first; a 20 s limit; then `extra`.
pub fn ka_client_args<'a>(idle: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--idle",
        idle,
        "--intvl",
        "1",
        "--cnt",
        "3",
        "--send",
        "100",
        "--echo",
        "--timeout",
        "20",
    ];
    v.extend_from_slice(extra);
    v
}

/// Whether lab tests can run here (root); says "skipped" when not, and fails
/// when CI is set but this is not root.
pub fn can_run(tag: &str) -> bool {
    if !is_root() {
        assert!(
            !in_ci(),
            "{tag}: CI is set but this is not root: the lab tests need root for network namespaces"
        );
        eprintln!("skipped: {tag}: lab tests need root (network namespaces); run as root or in CI");
        return false;
    }
    true
}
