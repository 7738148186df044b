//! Synthetic sessions (kaprobe::synth) written as pcap and judged by tshark:
//! Wireshark labels the built probes and answers as keepalive (so the wire
//! format is right by an independent judge), and where its history rule
//! fails — an answer whose window changed — kaprobe still names it.

mod common;
use common::*;
use kaprobe::report::pcap::PcapOut;
use kaprobe::synth::{End, Session};
use std::path::PathBuf;

const S: u64 = 1_000_000_000;

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("kaprobe-synth-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Handshake and data, then `rounds` keepalive rounds; `between` runs before each answer.
fn session(path: &std::path::Path, probe_len: usize, rounds: usize, mut between: impl FnMut(&mut Session)) {
    let mut s = Session::new(
        "10.0.0.1:40000".parse().unwrap(),
        "10.0.0.2:8080".parse().unwrap(),
        1000,
        900_000,
    );
    let mut out = PcapOut::create(path).unwrap();
    let mut t = 1_700_000_000 * S;
    let mut put = |t: &mut u64, dt: u64, f: &[u8]| {
        *t += dt;
        out.write(*t, f);
    };
    for f in s.handshake().unwrap() {
        put(&mut t, 1_000_000, &f);
    }
    put(
        &mut t,
        1_000_000,
        s.data(End::Client, b"GET / HTTP/1.0\r\n\r\n").unwrap(),
    );
    put(
        &mut t,
        1_000_000,
        s.data(End::Server, b"HTTP/1.0 200 OK\r\n\r\n").unwrap(),
    );
    put(&mut t, 1_000_000, s.ack(End::Client).unwrap());
    for _ in 0..rounds {
        put(&mut t, 30 * S, s.probe(End::Client, &[0u8; 1][..probe_len]).unwrap());
        between(&mut s);
        put(&mut t, 2_000_000, s.probe_ack(End::Server, probe_len == 1).unwrap());
    }
    out.finish().unwrap();
}

#[test]
fn tshark_labels_built_probes_and_answers_as_keepalive() {
    if tshark().is_none() {
        eprintln!("skipped: tshark not installed");
        return;
    }
    let dir = Scratch::new("labels");
    for len in [0, 1] {
        let path = dir.0.join(format!("probe{len}.pcap"));
        session(&path, len, 3, |_| {});
        let v = verify_json(&path, &[]);
        assert_agrees_with_tshark(&path, &v);
        assert_eq!(v.frames_of("keepalive_probe").len(), 3);
        // Checksums are right too (tshark validates them only when asked).
        let out = std::process::Command::new("tshark")
            .args([
                "-n",
                "-o",
                "tcp.check_checksum:TRUE",
                "-o",
                "ip.check_checksum:TRUE",
                "-r",
                path.to_str().unwrap(),
                "-Y",
                "tcp.checksum.status == \"Bad\" || ip.checksum.status == \"Bad\"",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(
            out.stdout.is_empty(),
            "bad checksums: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn answer_with_changed_window_is_a_keepalive_ack_not_a_window_update() {
    if tshark().is_none() {
        eprintln!("skipped: tshark not installed");
        return;
    }
    let dir = Scratch::new("window");
    let path = dir.0.join("window.pcap");
    let mut w = 502;
    session(&path, 0, 2, |s| {
        w += 100;
        s.set_window(End::Server, w);
    });
    let v = verify_json(&path, &[]);
    let acks = v.frames_of("keepalive_ack");
    assert_eq!(acks.len(), 2);
    assert!(
        tshark_frames(&path, "tcp.analysis.keep_alive_ack").is_empty(),
        "tshark misses them"
    );
    assert_eq!(
        tshark_frames(&path, "tcp.analysis.window_update"),
        acks,
        "tshark calls them window updates"
    );
}
