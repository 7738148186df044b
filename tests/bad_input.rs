//! Bad inputs to the real `kaprobe` binary: unreadable files must give exit
//! code 2 and exactly one stderr line `kaprobe: <file>: <why>` (with the record
//! number and, for classic pcap, the byte offset), never a panic or a hang;
//! readable files given alongside are still analysed.
//!
//! Tests marked `Regression:` pin bugs found and fixed in the readers and CLI.

use kaprobe::wire::build::{ethernet_frame, SegmentSpec};
use kaprobe::wire::{Flags, Seq};
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Running the binary

const TIMEOUT: Duration = Duration::from_secs(10);

struct Run {
    /// None when killed by a signal.
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `kaprobe ARGS...`, killing it and failing the test after `TIMEOUT`.
fn run<S: AsRef<OsStr>>(args: &[S]) -> Run {
    wait(spawn(args, Stdio::null()), args)
}

/// Starts `kaprobe ARGS...` with `stdin`, its output piped.
fn spawn<S: AsRef<OsStr>>(args: &[S], stdin: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kaprobe"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kaprobe")
}

/// Collects a `spawn`ed kaprobe's output and status, killing it and failing
/// the test when it runs longer than `TIMEOUT`.
fn wait<S: AsRef<OsStr>>(mut child: Child, args: &[S]) -> Run {
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for kaprobe") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_owned()).collect();
            panic!("kaprobe {shown:?} hung: still running after {TIMEOUT:?}, killed");
        }
        thread::sleep(Duration::from_millis(5));
    };
    let text = |h: thread::JoinHandle<Vec<u8>>| String::from_utf8_lossy(&h.join().unwrap()).into_owned();
    Run {
        code: status.code(),
        stdout: text(out),
        stderr: text(err),
    }
}

fn verify(files: &[&Path]) -> Run {
    let mut args: Vec<&OsStr> = vec![OsStr::new("verify")];
    args.extend(files.iter().map(|p| p.as_os_str()));
    run(&args)
}

fn assert_no_panic(r: &Run) {
    for text in [&r.stdout, &r.stderr] {
        assert!(
            !text.contains("panicked") && !text.contains("RUST_BACKTRACE"),
            "panic output:\n{}",
            r.stderr
        );
    }
    assert!(r.code.is_some(), "killed by a signal; stderr:\n{}", r.stderr);
}

/// Exit 2 and exactly one stderr line `kaprobe: ...` naming `path` and each of `want`.
fn assert_unreadable(r: &Run, path: &Path, want: &[&str]) -> String {
    assert_no_panic(r);
    assert_eq!(r.code, Some(2), "exit code; stderr:\n{}", r.stderr);
    let line = one_line(&r.stderr);
    assert!(line.starts_with("kaprobe: "), "stderr: {line}");
    let name = path.display().to_string();
    assert!(line.contains(&name), "stderr does not name {name}: {line}");
    for w in want {
        assert!(line.contains(w), "stderr lacks {w:?}: {line}");
    }
    line.to_string()
}

fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "want one stderr line, got:\n{stderr}");
    lines[0]
}

// ---------------------------------------------------------------------------
// Files

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("kaprobe-bad-input-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, bytes).expect("write scratch file");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const GLOBAL_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;
const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_RAW: u32 = 101;
const LINKTYPE_USER0: u32 = 147;

/// Classic pcap global header: microsecond magic, little-endian, version 2.4.
fn pcap_header(snaplen: u32, linktype: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(GLOBAL_HEADER);
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    h.extend_from_slice(&snaplen.to_le_bytes());
    h.extend_from_slice(&linktype.to_le_bytes());
    h
}

/// A 16-byte record header with explicit lengths, followed by `data`.
fn record_raw(ts_s: u32, caplen: u32, wire_len: u32, data: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(RECORD_HEADER + data.len());
    for v in [ts_s, 0, caplen, wire_len] {
        r.extend_from_slice(&v.to_le_bytes());
    }
    r.extend_from_slice(data);
    r
}

fn record(ts_s: u32, data: &[u8]) -> Vec<u8> {
    record_raw(ts_s, data.len() as u32, data.len() as u32, data)
}

/// An Ethernet/IPv4/TCP frame of one client→server flow (or the reverse).
fn tcp_frame(from_client: bool, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let (c, s) = ("10.1.0.1:40000".parse().unwrap(), "10.1.0.2:80".parse().unwrap());
    let (src, dst) = if from_client { (c, s) } else { (s, c) };
    let mut spec = SegmentSpec::new(src, dst, Seq(seq), Seq(ack), Flags::ACK);
    spec.payload = payload;
    let mut out = Vec::new();
    ethernet_frame(&spec, &mut out).expect("build frame");
    out
}

/// Four TCP frames: data, its ACK, a keepalive probe, its answer.
fn frames() -> Vec<Vec<u8>> {
    vec![
        tcp_frame(true, 1000, 5000, b"hello"),
        tcp_frame(false, 5000, 1005, b""),
        tcp_frame(true, 1004, 5000, b""),
        tcp_frame(false, 5000, 1005, b""),
    ]
}

/// A valid classic pcap holding `frames()`: data and ACK, 60 s idle, probe and answer.
fn valid_pcap() -> Vec<u8> {
    let mut f = pcap_header(65535, LINKTYPE_ETHERNET);
    for (fr, t) in frames().iter().zip([1, 1, 61, 61]) {
        f.extend(record(t, fr));
    }
    f
}

// pcapng, little-endian.
fn ng_block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    body.resize(body.len().div_ceil(4) * 4, 0);
    let len = (12 + body.len()) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend(body);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

fn ng_shb() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
    ng_block(0x0a0d_0d0a, &body)
}

fn ng_idb(linktype: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&linktype.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes()); // snaplen: none
    ng_block(1, &body)
}

fn ng_epb(iface: u32, ts_us: u32, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for v in [iface, 0, ts_us, data.len() as u32, data.len() as u32] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(data);
    ng_block(6, &body)
}

/// pcapng with an Ethernet interface, then (after one packet) a raw-IP one:
/// libpcap refuses the second interface, so the pcap-parser fallback reads on.
/// Returns the file's blocks in order and the byte offset after them.
fn mixed_pcapng() -> (Vec<u8>, usize) {
    let fr = frames();
    let mut f = ng_shb();
    f.extend(ng_idb(LINKTYPE_ETHERNET as u16));
    f.extend(ng_epb(0, 1, &fr[0]));
    f.extend(ng_idb(LINKTYPE_RAW as u16));
    f.extend(ng_epb(1, 2, &fr[1][14..])); // raw IP: without the Ethernet header
    let len = f.len();
    (f, len)
}

// ---------------------------------------------------------------------------
// Whole-file problems

#[test]
fn empty_file() {
    let s = Scratch::new("empty_file");
    let p = s.write("empty.pcap", b"");
    assert_unreadable(&verify(&[&p]), &p, &["empty"]);
}

#[test]
fn shorter_than_global_header() {
    let s = Scratch::new("shorter_than_global_header");
    let p = s.write("short.pcap", &pcap_header(65535, LINKTYPE_ETHERNET)[..10]);
    assert_unreadable(&verify(&[&p]), &p, &["header"]);
}

#[test]
fn global_header_only_is_a_valid_empty_capture() {
    let s = Scratch::new("global_header_only");
    let p = s.write("hdr.pcap", &pcap_header(65535, LINKTYPE_ETHERNET));
    let r = verify(&[&p]);
    assert_no_panic(&r);
    assert_eq!(r.code, Some(0), "stderr:\n{}", r.stderr);
    assert_eq!(r.stderr, "");
    assert!(r.stdout.contains(&format!("{}: 0 packets", p.display())));
}

#[test]
fn garbage_text() {
    let s = Scratch::new("garbage_text");
    let text = "Lorem ipsum dolor sit amet, this is not a capture file.\n".repeat(20);
    let p = s.write("garbage.pcap", text.as_bytes());
    assert_unreadable(&verify(&[&p]), &p, &["not a pcap"]);
}

#[test]
fn garbage_binary() {
    let s = Scratch::new("garbage_binary");
    // Deterministic pseudo-random bytes (xorshift).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let p = s.write("random.bin", &bytes);
    assert_unreadable(&verify(&[&p]), &p, &[]);
}

#[test]
fn directory() {
    let s = Scratch::new("directory");
    let d = s.path("adir.pcap");
    fs::create_dir(&d).unwrap();
    assert_unreadable(&verify(&[&d]), &d, &["directory"]);
}

#[test]
fn missing_file() {
    let s = Scratch::new("missing_file");
    let p = s.path("does-not-exist.pcap");
    assert_unreadable(&verify(&[&p]), &p, &["no such file"]);
}

// ---------------------------------------------------------------------------
// Record problems in classic pcap: record number and byte offset

/// Global header + records 1 and 2 whole; returns the file and record 3's offset.
fn two_good_records() -> (Vec<u8>, usize) {
    let fr = frames();
    let mut f = pcap_header(65535, LINKTYPE_ETHERNET);
    f.extend(record(1, &fr[0]));
    f.extend(record(2, &fr[1]));
    let off = f.len();
    assert_eq!(off, GLOBAL_HEADER + 2 * RECORD_HEADER + fr[0].len() + fr[1].len());
    (f, off)
}

#[test]
fn last_record_header_cut() {
    let s = Scratch::new("last_record_header_cut");
    let (mut f, off) = two_good_records();
    f.extend(&record(3, &frames()[2])[..7]);
    let p = s.write("cut-header.pcap", &f);
    assert_unreadable(&verify(&[&p]), &p, &["record 3", &format!("byte offset {off}")]);
}

#[test]
fn last_record_data_cut() {
    let s = Scratch::new("last_record_data_cut");
    let (mut f, off) = two_good_records();
    f.extend(&record(3, &frames()[2])[..RECORD_HEADER + 20]);
    let p = s.write("cut-data.pcap", &f);
    assert_unreadable(&verify(&[&p]), &p, &["record 3", &format!("byte offset {off}")]);
}

/// caplen a little over the file's snaplen (but within libpcap's per-link
/// maximum): libpcap reads the record, as tcpdump and Wireshark do. Sensible.
#[test]
fn caplen_over_snaplen_is_tolerated() {
    let s = Scratch::new("caplen_over_snaplen");
    let fr = frames();
    let big = tcp_frame(true, 1005, 5000, &[7u8; 150]);
    let mut f = pcap_header(100, LINKTYPE_ETHERNET);
    f.extend(record(1, &fr[0]));
    f.extend(record(2, &big)); // caplen 204 > snaplen 100
    f.extend(record(3, &fr[1]));
    let p = s.write("over-snaplen.pcap", &f);
    let r = verify(&[&p]);
    assert_no_panic(&r);
    assert_eq!(r.code, Some(0), "stderr:\n{}", r.stderr);
    assert_eq!(r.stderr, "");
    assert!(
        r.stdout.contains(&format!("{}: 3 packets", p.display())),
        "stdout:\n{}",
        r.stdout
    );
}

/// Regression: after a record whose caplen exceeds the snaplen, libpcap hands back a
/// caplen clamped to the snaplen, and the reader advances its byte offset by
/// that, not by the bytes in the file: record 3's offset is reported
/// caplen - snaplen = 104 bytes too small (215 instead of 319).
#[test]
fn offset_after_caplen_over_snaplen_is_exact() {
    let s = Scratch::new("offset_after_caplen_over_snaplen");
    let fr = frames();
    let big = tcp_frame(true, 1005, 5000, &[7u8; 150]);
    let mut f = pcap_header(100, LINKTYPE_ETHERNET);
    f.extend(record(1, &fr[0]));
    f.extend(record(2, &big));
    let off = f.len();
    f.extend(&record(3, &fr[1])[..5]);
    let p = s.write("over-snaplen-cut.pcap", &f);
    assert_unreadable(&verify(&[&p]), &p, &["record 3", &format!("byte offset {off})")]);
}

#[test]
fn caplen_absurdly_large() {
    let s = Scratch::new("caplen_absurdly_large");
    let (mut f, off) = two_good_records();
    f.extend(record_raw(3, 0x7fff_ffff, 0x7fff_ffff, &[0u8; 100]));
    let p = s.write("huge-caplen.pcap", &f);
    assert_unreadable(
        &verify(&[&p]),
        &p,
        &["record 3", &format!("byte offset {off}"), "2147483647"],
    );
}

#[test]
fn caplen_absurdly_large_in_first_record() {
    let s = Scratch::new("caplen_absurd_first");
    let mut f = pcap_header(65535, LINKTYPE_ETHERNET);
    f.extend(record_raw(1, u32::MAX, u32::MAX, &[0u8; 64]));
    let p = s.write("huge-caplen-1.pcap", &f);
    assert_unreadable(
        &verify(&[&p]),
        &p,
        &["record 1", &format!("byte offset {GLOBAL_HEADER}")],
    );
}

/// Unknown link type (147, USER0): the file is readable, just not decodable.
/// kaprobe warns (one line naming the file and the record count), reports 0
/// packets and exits 0, or 1 under `--expect` (nothing checked). That matches
/// how a readable file without TCP is treated, so it is kept as the contract.
/// A capture of nothing but a link type kaprobe cannot decode is unreadable
/// to it: exit 2, one line naming the link type (not "0 packets", exit 0).
#[test]
fn a_capture_of_only_an_unknown_link_type_is_an_error() {
    let s = Scratch::new("unknown_link_type");
    let mut f = pcap_header(65535, LINKTYPE_USER0);
    for (i, fr) in frames().iter().enumerate() {
        f.extend(record(i as u32 + 1, fr));
    }
    let p = s.write("user0.pcap", &f);
    assert_unreadable(&verify(&[&p]), &p, &["link type 147", "does not decode"]);
    assert_eq!(verify(&[&p]).stdout, "", "no results for it");
}

/// `mixed_pcapng` and a third interface, of link type 147, with one record.
fn mixed_pcapng_with_user0() -> Vec<u8> {
    let (mut f, _) = mixed_pcapng();
    f.extend(ng_idb(LINKTYPE_USER0 as u16));
    f.extend(ng_epb(2, 3, &frames()[2]));
    f
}

/// A pcapng with an interface of an unknown link type beside decodable ones
/// is read, with a warning for the records it skipped.
#[test]
fn pcapng_with_an_unknown_interface_beside_known_ones_warns() {
    let s = Scratch::new("pcapng_unknown_iface");
    let f = mixed_pcapng_with_user0();
    let p = s.write("mixed-user0.pcapng", &f);
    let r = verify(&[&p]);
    assert_no_panic(&r);
    assert_eq!(r.code, Some(0), "stderr:\n{}", r.stderr);
    let line = one_line(&r.stderr);
    assert!(
        line.starts_with("kaprobe: warning: ") && line.contains("1 record on an interface"),
        "{line}"
    );
    assert!(
        r.stdout.contains(&format!("{}: 2 packets", p.display())),
        "{}",
        r.stdout
    );
}

/// A warning and then an error: on exit 2 the error line stands alone.
#[test]
fn on_exit_2_only_the_error_is_printed() {
    let s = Scratch::new("warning_then_error");
    let f = mixed_pcapng_with_user0();
    let warns = s.write("warns.pcapng", &f);
    let garbage = s.write("garbage.pcap", b"not a capture at all, just text");
    assert_unreadable(&verify(&[&warns, &garbage]), &garbage, &[]);
}

/// `--ladder --svg OUT` with an unreadable input leaves OUT as it was.
#[test]
fn an_unreadable_input_does_not_replace_the_svg() {
    let s = Scratch::new("svg_kept");
    let garbage = s.write("garbage.pcap", b"not a capture at all, just text");
    let svg = s.write("out.svg", b"<svg>earlier</svg>");
    let r = run(&[
        OsStr::new("verify"),
        OsStr::new("--ladder"),
        OsStr::new("--svg"),
        svg.as_os_str(),
        garbage.as_os_str(),
    ]);
    assert_unreadable(&r, &garbage, &[]);
    assert_eq!(fs::read(&svg).unwrap(), b"<svg>earlier</svg>");
    let left: Vec<_> = fs::read_dir(&s.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "no partial file left: {left:?}");
}

// ---------------------------------------------------------------------------
// pcapng

#[test]
fn pcapng_cut_mid_block() {
    let s = Scratch::new("pcapng_cut_mid_block");
    let fr = frames();
    let mut f = ng_shb();
    f.extend(ng_idb(LINKTYPE_ETHERNET as u16));
    f.extend(ng_epb(0, 1, &fr[0]));
    f.extend(&ng_epb(0, 2, &fr[1])[..30]);
    let p = s.write("cut.pcapng", &f);
    assert_unreadable(&verify(&[&p]), &p, &["record 2"]);
}

#[test]
fn pcapng_cut_mid_section_header() {
    let s = Scratch::new("pcapng_cut_mid_shb");
    let p = s.write("cut-shb.pcapng", &ng_shb()[..20]);
    let r = verify(&[&p]);
    assert_unreadable(&r, &p, &["truncated file header"]);
    assert_eq!(r.stdout, "", "nothing analysed");
}

/// The fallback reader (mixed link types) knows byte offsets.
#[test]
fn pcapng_mixed_link_types_cut_mid_block() {
    let s = Scratch::new("pcapng_mixed_cut");
    let (mut f, off) = mixed_pcapng();
    f.extend(&ng_epb(0, 3, &frames()[2])[..30]);
    let p = s.write("mixed-cut.pcapng", &f);
    assert_unreadable(&verify(&[&p]), &p, &["record 3", &format!("byte offset {off}")]);
}

#[test]
fn pcapng_mixed_link_types_valid() {
    let s = Scratch::new("pcapng_mixed_valid");
    let (mut f, _) = mixed_pcapng();
    f.extend(ng_epb(0, 3, &frames()[2]));
    let p = s.write("mixed.pcapng", &f);
    let r = verify(&[&p]);
    assert_no_panic(&r);
    assert_eq!(r.code, Some(0), "stderr:\n{}", r.stderr);
    assert!(r.stdout.contains(&format!("{}: 3 packets", p.display())));
}

#[test]
fn pcapng_mixed_link_types_unknown_interface() {
    let s = Scratch::new("pcapng_mixed_bad_iface");
    let (mut f, off) = mixed_pcapng();
    f.extend(ng_epb(7, 3, &frames()[2]));
    let p = s.write("mixed-iface.pcapng", &f);
    assert_unreadable(
        &verify(&[&p]),
        &p,
        &["record 3", &format!("byte offset {off}"), "interface 7"],
    );
}

/// Regression: a malformed block (total length 0) in the fallback reader is reported
/// with `{:?}` of pcap-parser's error, which embeds the whole remaining read
/// buffer (up to 1 MiB) as a list of decimal bytes: a single ~900 KB stderr
/// line here. The error should be short and say what is wrong.
#[test]
fn pcapng_mixed_malformed_block_error_is_short() {
    let s = Scratch::new("pcapng_mixed_malformed");
    let (mut f, off) = mixed_pcapng();
    f.extend_from_slice(&6u32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes()); // block total length 0
    f.extend(vec![0u8; 300_000]);
    let p = s.write("mixed-len0.pcapng", &f);
    let line = assert_unreadable(&verify(&[&p]), &p, &["record 3", &format!("byte offset {off}")]);
    assert!(
        line.len() < 400,
        "error line is {} bytes long: {}...",
        line.len(),
        &line[..line.len().min(300)]
    );
}

#[test]
fn pcapng_mixed_block_length_absurd() {
    let s = Scratch::new("pcapng_mixed_huge_block");
    let (mut f, off) = mixed_pcapng();
    f.extend_from_slice(&6u32.to_le_bytes());
    f.extend_from_slice(&0x7fff_fff0u32.to_le_bytes());
    f.extend(vec![0u8; 64]);
    let p = s.write("mixed-huge.pcapng", &f);
    assert_unreadable(&verify(&[&p]), &p, &["record 3", &format!("byte offset {off}")]);
}

// ---------------------------------------------------------------------------
// Usage errors

/// Regression: clap's error is three lines (`error: invalid value ...`, blank,
/// `For more information, try '--help'.`), not one `kaprobe: ...` line.
#[test]
fn bad_expect_spec() {
    let s = Scratch::new("bad_expect_spec");
    let p = s.write("ok.pcap", &valid_pcap());
    let r = run(&[
        OsStr::new("verify"),
        OsStr::new("--expect"),
        OsStr::new("idle=soon"),
        p.as_os_str(),
    ]);
    assert_no_panic(&r);
    assert_eq!(r.code, Some(2), "stderr:\n{}", r.stderr);
    assert_eq!(r.stdout, "", "nothing analysed on a usage error");
    let line = one_line(&r.stderr);
    assert!(line.starts_with("kaprobe: "), "{line}");
    assert!(line.contains("idle=soon") && line.contains("--expect"), "{line}");
}

/// Regression: as `bad_expect_spec`.
#[test]
fn bad_flow_filter() {
    let s = Scratch::new("bad_flow_filter");
    let p = s.write("ok.pcap", &valid_pcap());
    let r = run(&[
        OsStr::new("verify"),
        OsStr::new("--flow"),
        OsStr::new("10.0.0.1:notaport"),
        p.as_os_str(),
    ]);
    assert_no_panic(&r);
    assert_eq!(r.code, Some(2), "stderr:\n{}", r.stderr);
    assert_eq!(r.stdout, "", "nothing analysed on a usage error");
    let line = one_line(&r.stderr);
    assert!(line.starts_with("kaprobe: "), "{line}");
    assert!(line.contains("10.0.0.1:notaport") && line.contains("--flow"), "{line}");
}

// ---------------------------------------------------------------------------
// Good files beside bad ones

fn mixed_bag(s: &Scratch) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let good1 = s.write("good1.pcap", &valid_pcap());
    let (mut cut, _) = two_good_records();
    cut.extend(&record(3, &frames()[2])[..RECORD_HEADER + 3]);
    let bad = s.write("bad.pcap", &cut);
    let missing = s.path("missing.pcap");
    let good2 = s.write("good2.pcap", &valid_pcap());
    (good1, bad, missing, good2)
}

#[test]
fn valid_files_beside_bad_ones_are_analysed() {
    let s = Scratch::new("valid_beside_bad");
    let (good1, bad, missing, good2) = mixed_bag(&s);
    let r = verify(&[&good1, &bad, &missing, &good2]);
    assert_no_panic(&r);
    assert_eq!(r.code, Some(2), "stderr:\n{}", r.stderr);
    for g in [&good1, &good2] {
        let want = format!("{}: 4 packets, 1 TCP flow,", g.display());
        assert!(r.stdout.contains(&want), "no {want:?} in stdout:\n{}", r.stdout);
    }
    // The damaged file is analysed up to the damage (its 2 whole records).
    let partial = format!("{}: 2 packets", bad.display());
    assert!(r.stdout.contains(&partial), "{}", r.stdout);
    assert!(r.stdout.contains("summary: 3 files, 10 packets"), "{}", r.stdout);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "one line per bad file:\n{}", r.stderr);
    assert!(lines[0].starts_with(&format!("kaprobe: {}: record 3", bad.display())));
    assert!(lines[1].starts_with(&format!("kaprobe: {}: ", missing.display())));
}

#[test]
fn valid_files_beside_bad_ones_are_analysed_json() {
    let s = Scratch::new("valid_beside_bad_json");
    let (good1, bad, missing, good2) = mixed_bag(&s);
    let mut args: Vec<&OsStr> = vec![OsStr::new("verify"), OsStr::new("--json"), OsStr::new("--all")];
    args.extend([&good1, &bad, &missing, &good2].map(|p| p.as_os_str()));
    let r = run(&args);
    assert_no_panic(&r);
    assert_eq!(r.code, Some(2), "stderr:\n{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 2, "{}", r.stderr);
    let objs: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout is JSON Lines"))
        .collect();
    for g in [&good1, &good2] {
        let name = g.display().to_string();
        assert!(
            objs.iter().any(|o| o["type"] == "flow" && o["file"] == name.as_str()),
            "no flow for {name}:\n{}",
            r.stdout
        );
    }
    let summary = objs.last().expect("a summary line");
    assert_eq!(summary["type"], "summary");
    // The damaged file counts as read up to the damage, and as unreadable.
    assert_eq!(summary["files"], 3);
    assert_eq!(summary["unreadable_files"], 2);
    assert_eq!(summary["packets"], 10);
}

// ---------------------------------------------------------------------------
// Reading: mapped files and pipes

/// A capture whose second record (3 KiB) arrives over a pipe in 1000-byte
/// pieces, one every 20 ms: reading waits for the rest of a record however
/// many reads it takes (`tcpdump -w - | kaprobe verify /dev/stdin`).
#[test]
fn slow_pipe_writer_is_waited_for() {
    let mut f = pcap_header(65535, LINKTYPE_ETHERNET);
    let fr = frames();
    f.extend(record(1, &fr[0]));
    f.extend(record(1, &tcp_frame(false, 5000, 1005, &[7u8; 3000])));
    f.extend(record(61, &fr[2]));
    let args = ["verify", "/dev/stdin"];
    let mut child = spawn(&args, Stdio::piped());
    let mut w = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        use std::io::Write;
        for piece in f.chunks(1000) {
            w.write_all(piece).unwrap();
            w.flush().unwrap();
            thread::sleep(Duration::from_millis(20));
        }
    });
    let r = wait(child, &args);
    writer.join().unwrap();
    assert_no_panic(&r);
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    assert!(r.stdout.contains("/dev/stdin: 3 packets"), "{}", r.stdout);
}

/// A named pipe whose writer has gone, holding a capture cut mid-record: the
/// error names the record, and kaprobe does not wait for a writer that will
/// never come back.
#[test]
fn cut_capture_from_a_fifo_does_not_hang() {
    let s = Scratch::new("fifo");
    let fifo = s.path("cap.fifo");
    let ok = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(ok.success());
    let (mut f, off) = two_good_records();
    f.extend(&record(3, &frames()[2])[..20]);
    let path = fifo.clone();
    let writer = thread::spawn(move || fs::write(path, f).unwrap());
    let r = run(&[OsStr::new("verify"), fifo.as_os_str()]);
    writer.join().unwrap();
    assert_unreadable(&r, &fifo, &["record 3", &format!("byte offset {off}"), "truncated"]);
}

/// The 4 MiB record limit holds for mapped files as for pipes: a larger record
/// is a damaged length field, reported with its value.
#[test]
fn record_over_4_mib_is_refused_in_a_mapped_file() {
    let s = Scratch::new("over4mib");
    let (mut f, off) = two_good_records();
    let big = vec![0u8; 5 << 20];
    f.extend(record(3, &big));
    f.extend(record(4, &frames()[2]));
    let p = s.write("big-record.pcap", &f);
    assert_unreadable(
        &verify(&[&p]),
        &p,
        &["record 3", &format!("byte offset {off}"), "5242880", "4 MiB"],
    );
}

/// A capture truncated by another process while kaprobe reads it (log rotation,
/// copytruncate): one error line naming the file and exit 2, not death by SIGBUS.
/// kaprobe is held a few hundred records in by not reading its output, the file
/// is cut far beyond that, then its output is drained.
#[test]
fn file_truncated_while_read_is_an_error_not_a_signal() {
    let s = Scratch::new("shrinks");
    let mut f = pcap_header(65535, LINKTYPE_ETHERNET);
    let fr = frames();
    for i in 0..40_000u32 {
        f.extend(record(1 + i / 1000, &fr[(i % 2) as usize]));
    }
    let p = s.write("shrinks.pcap", &f);
    let args = [
        OsStr::new("verify"),
        OsStr::new("--json"),
        OsStr::new("--all"),
        p.as_os_str(),
    ];
    let child = spawn(&args, Stdio::null());
    // Its output pipe and buffer hold at most a few hundred segments' JSON.
    thread::sleep(Duration::from_millis(300));
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len((f.len() / 2) as u64)
        .unwrap();
    let r = wait(child, &args);
    assert_no_panic(&r);
    assert_eq!(r.code, Some(2), "stderr: {}", r.stderr);
    let line = one_line(&r.stderr);
    assert!(
        line.starts_with("kaprobe: ") && line.contains(&p.display().to_string()),
        "{line}"
    );
    assert!(line.contains("shrank"), "{line}");
}

// ---------------------------------------------------------------------------
// Long reads

/// A capture fed through a FIFO: a few records, a pause longer than the
/// progress line's quiet first second, then many more.
fn slow_feed(fifo: &Path) -> thread::JoinHandle<()> {
    let fifo = fifo.to_path_buf();
    std::thread::spawn(move || {
        let mut w = fs::OpenOptions::new().write(true).open(&fifo).expect("open fifo");
        let fr = frames();
        w.write_all(&pcap_header(65535, LINKTYPE_ETHERNET)).unwrap();
        w.write_all(&record(1, &fr[0])).unwrap();
        w.flush().unwrap();
        thread::sleep(Duration::from_millis(1300));
        let mut more = Vec::new();
        for i in 0..20_000u32 {
            more.extend(record(2 + i / 1000, &fr[1 + (i % 3) as usize]));
        }
        w.write_all(&more).unwrap();
    })
}

/// On a terminal (a pty from script(1)) a long read draws a progress line on
/// stderr and erases it; without one, stderr stays clean.
#[test]
fn a_long_read_shows_progress_on_a_terminal_only() {
    if Command::new("script").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "script(1) missing in CI");
        eprintln!("skipped: no script(1) for a pty");
        return;
    }
    let s = Scratch::new("progress");
    let fifo = s.path("feed.pcap");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let feeder = slow_feed(&fifo);
    let cmd = format!("{} verify -q {}", env!("CARGO_BIN_EXE_kaprobe"), fifo.display());
    let out = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    feeder.join().unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(tty.contains("packets/s") && tty.contains("\r\x1b[K"), "{tty}");
    assert!(tty.contains("20001 packets"), "{tty}");

    let feeder = slow_feed(&fifo);
    let r = verify(&[&fifo]);
    feeder.join().unwrap();
    assert_no_panic(&r);
    assert_ne!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(r.stderr, "", "no progress without a terminal");
}

/// A frame of flow `port` (client 10.2.0.1:port ↔ server 10.2.0.2:80).
fn flow_frame(port: u16, from_client: bool, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let c: std::net::SocketAddr = format!("10.2.0.1:{port}").parse().unwrap();
    let s: std::net::SocketAddr = "10.2.0.2:80".parse().unwrap();
    let (src, dst) = if from_client { (c, s) } else { (s, c) };
    let mut spec = SegmentSpec::new(src, dst, Seq(seq), Seq(ack), Flags::ACK);
    spec.payload = payload;
    let mut out = Vec::new();
    ethernet_frame(&spec, &mut out).expect("build frame");
    out
}

/// 30 flows with keepalive: 27 answered, 3 whose probe went unanswered.
/// Beyond 20 the human output groups them and shows in full only those
/// that need a look; --all lists every one.
#[test]
fn many_flows_are_grouped_and_the_ones_that_need_a_look_shown() {
    let s = Scratch::new("grouped");
    let mut f = pcap_header(65535, LINKTYPE_ETHERNET);
    for i in 0..30u16 {
        let port = 40000 + i;
        let t = 1 + i as u32;
        f.extend(record(t, &flow_frame(port, true, 1000, 5000, b"hello")));
        f.extend(record(t, &flow_frame(port, false, 5000, 1005, b"")));
        f.extend(record(t + 40, &flow_frame(port, true, 1004, 5000, b"")));
        if i % 10 != 9 {
            f.extend(record(t + 40, &flow_frame(port, false, 5000, 1005, b"")));
        }
    }
    let p = s.write("thirty.pcap", &f);
    let r = verify(&[&p]);
    assert_no_panic(&r);
    let out = &r.stdout;
    assert!(out.contains("30 flows with keepalive in 2 groups"), "{out}");
    assert!(out.contains("need a look: 3 flows"), "{out}");
    assert!(
        out.contains("any flow in full: kaprobe verify --flow HOST:PORT"),
        "{out}"
    );
    // The three shown in full, each with its timeline; none of the others.
    assert_eq!(out.matches("\nflow ").count(), 3, "{out}");
    for port in [40009, 40019, 40029] {
        assert!(out.contains(&format!("10.2.0.1:{port} > 10.2.0.2:80")), "{out}");
    }
    let all = run(&[OsStr::new("verify"), OsStr::new("--all"), p.as_os_str()]);
    assert_eq!(all.stdout.matches("\nflow ").count(), 30, "{}", all.stdout);
}

/// A damaged pcapng that also holds a record of an unknown link type: the
/// damage is the error, and the readable records are analysed.
#[test]
fn a_damaged_capture_with_an_unknown_interface_reports_the_damage() {
    let s = Scratch::new("damaged_mixed_user0");
    let mut f = mixed_pcapng_with_user0();
    f.extend(ng_epb(0, 4, &frames()[3]));
    f.truncate(f.len() - 3);
    let p = s.write("damaged.pcapng", &f);
    let r = verify(&[&p]);
    let line = assert_unreadable(&r, &p, &["record 4"]);
    assert!(!line.contains("link type"), "{line}");
    assert!(
        r.stdout.contains(&format!("{}: 2 packets", p.display())),
        "{}",
        r.stdout
    );
}
