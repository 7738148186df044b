//! `verify --threads N` says, byte for byte, what one thread says: on every
//! recorded and public capture, in every output mode, and with several files
//! at once (flow numbers restart per file either way).

mod common;
use common::*;
use std::path::PathBuf;

/// The first line where two runs differ, for a short message.
fn first_difference(a: &(i32, String, String), b: &(i32, String, String)) -> String {
    let line = |s: &str, n: usize| s.lines().nth(n).unwrap_or("").chars().take(300).collect::<String>();
    let n = (0..)
        .find(|&n| line(&a.1, n) != line(&b.1, n) || n > a.1.lines().count())
        .unwrap_or(0);
    format!(
        "exit {} vs {}; line {}: {:?} vs {:?}; stderr {:?} vs {:?}",
        a.0,
        b.0,
        n + 1,
        line(&a.1, n),
        line(&b.1, n),
        a.2,
        b.2
    )
}

/// The run's output without the one thing that may differ: how long it took.
fn timeless(out: &str) -> String {
    out.lines()
        .map(|l| match (l.find("\"elapsed_s\":"), l.rfind(" in ")) {
            (Some(_), _) => {
                let mut v: serde_json::Value = serde_json::from_str(l).expect("JSON summary");
                let o = v.as_object_mut().expect("an object");
                o.remove("elapsed_s");
                o.remove("packets_per_s");
                v.to_string()
            }
            (None, Some(at)) if l.starts_with("summary:") => l[..at].to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn captures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("captures"))
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    match public_dir() {
        Some(d) => files.extend(
            std::fs::read_dir(d)
                .unwrap()
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng")),
        ),
        None => eprintln!("skipped: no public captures (recorded captures only)"),
    }
    files.sort();
    files
}

#[test]
fn every_capture_says_the_same_on_one_thread_and_on_three() {
    let files = captures();
    assert!(files.len() >= 10, "recorded captures missing: {files:?}");
    let modes: [&[&str]; 4] = [&["--json", "--all"], &["--json"], &[], &["--all"]];
    for f in &files {
        let f = f.to_str().unwrap();
        for mode in modes {
            let run = |threads: &str| {
                let mut args = vec!["verify", "--threads", threads];
                args.extend_from_slice(mode);
                args.push(f);
                let r = kaprobe(&args);
                (r.code, timeless(&r.stdout), r.stderr)
            };
            let (one, three) = (run("1"), run("3"));
            assert!(
                one == three,
                "{f} {mode:?}: one thread and three differ: {}",
                first_difference(&one, &three)
            );
            assert!(!one.1.is_empty(), "{f} {mode:?}: no output");
        }
    }
}

#[test]
fn many_files_and_ladders_say_the_same_on_any_number_of_threads() {
    let files: Vec<String> = captures()
        .iter()
        .take(8)
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    let run = |threads: &str, extra: &[&str]| {
        let mut args = vec!["verify", "--threads", threads];
        args.extend_from_slice(extra);
        args.extend(files.iter().map(String::as_str));
        let r = kaprobe(&args);
        (r.code, timeless(&r.stdout), r.stderr)
    };
    for extra in [&["--json", "--all"][..], &["--ladder"][..]] {
        let one = run("1", extra);
        for n in ["2", "7"] {
            let many = run(n, extra);
            assert!(
                one == many,
                "{extra:?} on {n} threads: {}",
                first_difference(&one, &many)
            );
        }
    }
}

#[test]
fn threads_must_be_a_positive_number() {
    for bad in ["0", "x", "1025"] {
        let r = kaprobe(&[
            "verify",
            "--threads",
            bad,
            capture("linux_ka_answered_v4.pcap").to_str().unwrap(),
        ]);
        assert_eq!(r.code, 2, "--threads {bad}: {}", r.stderr);
        assert!(r.stderr.contains("--threads"), "{}", r.stderr);
    }
}
