//! `kaprobe explain`: the teaching aid. Subcommands `probe`, `frame`,
//! `timing`, `timeline` and `scenario`; `explain FILE --frame N` is accepted
//! as another spelling of `explain frame FILE N`. The pure work is in
//! `crate::explain`; this file reads sysctls and captures and writes files.

use super::exit;
use crate::capture::read_file;
use crate::explain::frame::FrameExplainer;
use crate::explain::probe::{self, ProbeParams};
use crate::explain::scenario::{self, Outcome, Timing as ScenarioTiming};
use crate::explain::timing::{self, Middlebox, Settings};
use crate::explain::{ladder::Ladder, svg};
use crate::keepalive::Style;
use crate::report::json;
use crate::report::pcap::PcapOut;
use crate::units::{format_duration, parse_duration};
use clap::{Args, Subcommand};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ExplainArgs {
    #[command(subcommand)]
    pub what: Option<What>,
    /// A capture file: with `--frame N`, the same as `explain frame FILE N`.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The frame of FILE to explain (1-based, Wireshark's frame number).
    #[arg(long, value_name = "N")]
    pub frame: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum What {
    /// Build a keepalive probe of one stack's style and a Linux peer's answer, and
    /// name every field; then the wrong probes and what a Linux peer does with them.
    Probe(ProbeArgs),
    /// One frame of a capture, annotated, with the reasoning of kaprobe's classifier.
    Frame(FrameArgs),
    /// When the first probe leaves, when a dead peer is declared, and which
    /// middlebox idle timeouts the settings lose to.
    Timing(TimingArgs),
    /// A keepalive session as a ladder diagram (text, and SVG with --svg).
    Timeline(TimelineArgs),
    /// Named synthetic sessions, written as pcap: `--list`, or NAME --pcap FILE.
    Scenario(ScenarioArgs),
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    #[arg(long, default_value = "linux", value_parser = |s: &str| Style::parse(s),
          help = format!("Whose probe: {}.", Style::names()))]
    pub style: Style,
    /// The prober's SND.NXT (= the last ACK it got from the peer); the probe's seq is one less.
    #[arg(long, default_value_t = 1001)]
    pub seq: u32,
    /// The prober's RCV.NXT, which the probe acknowledges.
    #[arg(long, default_value_t = 5001)]
    pub ack: u32,
    /// IPv6 instead of IPv4.
    #[arg(long)]
    pub ipv6: bool,
    /// The connection negotiated TCP timestamps (the probe carries TSopt if the stack sends it).
    #[arg(long)]
    pub timestamps: bool,
}

#[derive(Args, Debug)]
pub struct FrameArgs {
    /// pcap or pcapng file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Frame number (1-based, as Wireshark numbers them).
    #[arg(value_name = "N")]
    pub frame: u64,
}

#[derive(Args, Debug)]
pub struct TimingArgs {
    /// Start from: host (this machine's sysctls; the default), linux, go, windows, macos, freebsd.
    #[arg(long, default_value = "host", value_name = "NAME")]
    pub preset: String,
    /// Idle time before the first probe (TCP_KEEPIDLE), e.g. 30s, 2h.
    #[arg(long, value_parser = secs, value_name = "DURATION")]
    pub idle: Option<u64>,
    /// Time between unanswered probes (TCP_KEEPINTVL).
    #[arg(long, value_parser = secs, value_name = "DURATION")]
    pub interval: Option<u64>,
    /// Unanswered probes before giving up (TCP_KEEPCNT).
    #[arg(long)]
    pub count: Option<u32>,
    /// TCP_USER_TIMEOUT: replaces the count.
    #[arg(long, value_parser = millis, value_name = "DURATION")]
    pub user_timeout: Option<u64>,
    /// Another middlebox idle timeout to check against (repeatable).
    #[arg(long = "middlebox-timeout", value_parser = secs, value_name = "DURATION")]
    pub middlebox_timeout: Vec<u64>,
    /// JSON Lines: one `timing` object, then one `middlebox` object each.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TimelineArgs {
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub idle: u64,
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: u64,
    #[arg(long, default_value_t = 3)]
    pub count: u32,
    /// How it ends: alive (every probe answered), dead (silence, then the prober's RST), reset (the peer's RST).
    #[arg(long, default_value = "dead", value_parser = |s: &str| Outcome::parse(s))]
    pub outcome: Outcome,
    #[arg(long, default_value = "linux", value_parser = |s: &str| Style::parse(s),
          help = format!("Whose probes: {}.", Style::names()))]
    pub style: Style,
    /// Answered rounds shown for --outcome alive.
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    /// Also write the diagram as SVG.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ScenarioArgs {
    /// Scenario name (see --list).
    #[arg(value_name = "NAME", required_unless_present = "list")]
    pub name: Option<String>,
    /// Name every scenario.
    #[arg(long, conflicts_with = "name")]
    pub list: bool,
    /// Write the session as a pcap file.
    #[arg(long, value_name = "FILE", required_unless_present = "list")]
    pub pcap: Option<PathBuf>,
    /// JSON Lines: each scenario with what every frame must be classified as.
    #[arg(long)]
    pub json: bool,
}

fn secs(s: &str) -> Result<u64, String> {
    let ns = parse_duration(s)?;
    if ns % 1_000_000_000 != 0 {
        return Err(format!("'{s}': keepalive settings are whole seconds"));
    }
    Ok(ns / 1_000_000_000)
}

fn millis(s: &str) -> Result<u64, String> {
    Ok(parse_duration(s)? / 1_000_000)
}

/// A usage or input error: one line, exit 2.
fn fail(what: &str, why: impl std::fmt::Display) -> u8 {
    eprintln!("kaprobe: {what}: {why}");
    exit::USAGE
}

fn emit(text: &str) -> u8 {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => exit::OK,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => fail("writing output", e),
    }
}

pub fn run(args: &ExplainArgs) -> u8 {
    match (&args.what, &args.file, args.frame) {
        (Some(What::Probe(a)), _, _) => run_probe(a),
        (Some(What::Frame(a)), _, _) => run_frame(&a.file, a.frame),
        (Some(What::Timing(a)), _, _) => run_timing(a),
        (Some(What::Timeline(a)), _, _) => run_timeline(a),
        (Some(What::Scenario(a)), _, _) => run_scenario(a),
        (None, Some(file), Some(n)) => run_frame(file, n),
        (None, Some(file), None) => fail(
            "explain",
            format!(
                "'{}' is not a subcommand (probe, frame, timing, timeline, scenario); for a capture add --frame N",
                file.display()
            ),
        ),
        (None, None, _) => fail(
            "explain",
            "say what to explain: probe, frame FILE N (or FILE --frame N), timing, timeline, scenario",
        ),
    }
}

fn run_probe(a: &ProbeArgs) -> u8 {
    let p = ProbeParams {
        style: a.style,
        snd_nxt: a.seq,
        rcv_nxt: a.ack,
        ipv6: a.ipv6,
        timestamps: a.timestamps,
    };
    match probe::render(&p) {
        Ok(text) => emit(&text),
        Err(e) => fail("explain probe", e),
    }
}

fn run_frame(file: &Path, n: u64) -> u8 {
    let name = file.display().to_string();
    if n == 0 {
        return fail(&name, "frame 0 does not exist: frames are numbered from 1");
    }
    let mut ex = FrameExplainer::new(n);
    if let Err(e) = read_file(file, |r| {
        ex.record(r.frame, r.time, r.link, r.link_code, r.data, r.wire_len)
    }) {
        return fail("explain", e);
    }
    match ex.finish() {
        Ok(x) => emit(&x.render(&name)),
        Err(e) => fail(&name, e),
    }
}

/// This host's keepalive sysctls, or why they cannot be read.
fn host_settings() -> Result<Settings, String> {
    let read = |name: &str| -> Result<u64, String> {
        let path = format!("/proc/sys/net/ipv4/{name}");
        let s = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        s.trim().parse().map_err(|_| format!("{path}: not a number"))
    };
    Ok(Settings {
        source: "this host's sysctls: net.ipv4.tcp_keepalive_time / _intvl / _probes".into(),
        idle_s: read("tcp_keepalive_time")?,
        interval_s: read("tcp_keepalive_intvl")?,
        count: read("tcp_keepalive_probes")?.min(u32::MAX as u64) as u32,
        user_timeout_ms: None,
        preset: "linux",
    })
}

fn run_timing(a: &TimingArgs) -> u8 {
    let mut s = if a.preset.eq_ignore_ascii_case("host") {
        match host_settings() {
            Ok(s) => s,
            Err(why) => {
                eprintln!("kaprobe: warning: cannot read this host's keepalive sysctls ({why}); using Linux defaults");
                Settings::preset("linux").expect("linux preset")
            }
        }
    } else {
        match Settings::preset(&a.preset) {
            Ok(s) => s,
            Err(e) => return fail("explain timing", e),
        }
    };
    let mut given = Vec::new();
    if let Some(v) = a.idle {
        s.idle_s = v;
        given.push(format!("idle {}", format_duration(v * 1_000_000_000)));
    }
    if let Some(v) = a.interval {
        s.interval_s = v;
        given.push(format!("interval {}", format_duration(v * 1_000_000_000)));
    }
    if let Some(v) = a.count {
        s.count = v;
        given.push(format!("count {v}"));
    }
    s.user_timeout_ms = a.user_timeout.filter(|&v| v > 0);
    if !given.is_empty() {
        s.source = format!("{}, with {}", s.source, given.join(", "));
    }
    if let Err(e) = s.check() {
        return fail("explain timing", e);
    }
    let mut boxes = timing::middleboxes();
    boxes.extend(a.middlebox_timeout.iter().map(|&t| Middlebox {
        name: "your middlebox".into(),
        timeout_s: t,
        note: String::new(),
    }));
    let t = timing::compute(&s, &boxes);
    if !a.json {
        return emit(&timing::render(&t));
    }
    #[derive(serde::Serialize)]
    struct Line<'a> {
        #[serde(flatten)]
        settings: &'a Settings,
        first_probe_s: u64,
        probes_s: &'a [u64],
        dead_after_s: u64,
        dead_after: &'a str,
        probes_before_abort: u32,
        loses_to: Vec<&'a str>,
    }
    let mut buf = Vec::new();
    let line = Line {
        settings: &t.settings,
        first_probe_s: t.first_probe_s,
        probes_s: &t.probes_s,
        dead_after_s: t.dead_after_s,
        dead_after: &t.dead_after,
        probes_before_abort: t.probes_before_abort,
        loses_to: t
            .verdicts
            .iter()
            .filter(|v| v.loses)
            .map(|v| v.middlebox.name.as_str())
            .collect(),
    };
    let mut r = json::tagged(&mut buf, "timing", &line);
    for v in &t.verdicts {
        r = r.and_then(|_| json::tagged(&mut buf, "middlebox", v));
    }
    match r {
        Ok(()) => emit(&String::from_utf8_lossy(&buf)),
        Err(e) => fail("writing output", e),
    }
}

/// Base time of synthetic sessions: 2023-11-14 22:13:20 UTC.
const START_NS: u64 = 1_700_000_000 * 1_000_000_000;

fn run_timeline(a: &TimelineArgs) -> u8 {
    const MAX: u64 = 32_767 * 1_000_000_000; // TCP_KEEPIDLE / TCP_KEEPINTVL limit
    if !(1_000_000_000..=MAX).contains(&a.idle) || !(1_000_000..=MAX).contains(&a.interval) {
        return fail(
            "explain timeline",
            "idle must be 1s..32767s and interval 1ms..32767s (the socket options' limits)",
        );
    }
    if a.count == 0 || a.count > 127 {
        return fail("explain timeline", "count must be 1..127");
    }
    let t = ScenarioTiming {
        idle_ns: a.idle,
        interval_ns: a.interval,
        count: a.count,
        rounds: a.rounds.clamp(1, 100),
    };
    let sc = scenario::Scenario::keepalive(a.style, a.outcome);
    let frames = match sc.build(t, START_NS) {
        Ok(f) => f,
        Err(e) => return fail("explain timeline", e),
    };
    let title = match a.outcome {
        Outcome::Alive => format!(
            "{} keepalive, idle {}: the peer answers ({})",
            a.style.info().title,
            format_duration(a.idle),
            sc.name
        ),
        Outcome::Dead => format!(
            "{} keepalive, idle {}, interval {}, count {}: the peer is gone, declared dead after {} ({})",
            a.style.info().title,
            format_duration(a.idle),
            format_duration(a.interval),
            a.count,
            format_duration(a.idle + a.count as u64 * a.interval),
            sc.name
        ),
        Outcome::Reset => format!(
            "{} keepalive, idle {}: the peer rebooted and answers with a RST ({})",
            a.style.info().title,
            format_duration(a.idle),
            sc.name
        ),
    };
    let ladder = crate::explain::timeline(title, &frames);
    if let Some(path) = &a.svg {
        if let Err(e) = write_svg(path, std::slice::from_ref(&ladder)) {
            return fail(&path.display().to_string(), e);
        }
    }
    emit(&ladder.render())
}

/// Writes an SVG document (complete or not at all).
pub fn write_svg(path: &Path, ladders: &[Ladder]) -> io::Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.partial-{}",
        path.file_name().map_or("svg".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    std::fs::write(&tmp, svg::render(ladders))?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn run_scenario(a: &ScenarioArgs) -> u8 {
    let t = ScenarioTiming::default();
    if a.list {
        let all = scenario::all();
        let mut out = String::new();
        for sc in &all {
            if a.json {
                let frames = match sc.build(t, START_NS) {
                    Ok(f) => f,
                    Err(e) => return fail("explain scenario", e),
                };
                let v = serde_json::json!({
                    "type": "scenario",
                    "name": sc.name,
                    "description": sc.description,
                    "style": sc.style().map(Style::name),
                    "outcome": sc.outcome().map(Outcome::name),
                    "frames": frames.len(),
                    "kinds": frames.iter().map(|f| f.kind.as_str()).collect::<Vec<_>>(),
                    "wireshark": frames.iter().map(|f| f.wireshark.map(|w| w.field())).collect::<Vec<_>>(),
                });
                out += &v.to_string();
                out.push('\n');
            } else {
                out += &format!("{:<22}  {}\n", sc.name, sc.description);
            }
        }
        if !a.json {
            out += "\nsettings: idle 30s, interval 5s, count 3 (alive: 2 answered rounds); write one with\n  kaprobe explain scenario NAME --pcap FILE\n";
        }
        return emit(&out);
    }
    let (Some(name), Some(path)) = (&a.name, &a.pcap) else {
        return fail("explain scenario", "name a scenario and --pcap FILE, or --list");
    };
    let Some(sc) = scenario::find(name) else {
        return fail(
            "explain scenario",
            format!("no scenario '{name}' (kaprobe explain scenario --list names them)"),
        );
    };
    let frames = match sc.build(t, START_NS) {
        Ok(f) => f,
        Err(e) => return fail("explain scenario", e),
    };
    let shown = path.display().to_string();
    let mut out = match PcapOut::create(path) {
        Ok(o) => o,
        Err(e) => return fail("explain scenario", e),
    };
    for f in &frames {
        out.write(f.time, &f.bytes);
    }
    if let Err(e) = out.finish() {
        return fail("explain scenario", e);
    }
    let kinds: Vec<&str> = frames.iter().map(|f| f.kind.as_str()).collect();
    let ws: Vec<String> = frames
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.wireshark.map(|w| format!("{} {}", i + 1, w.field())))
        .collect();
    let text = format!(
        "{shown}: scenario {}: {}\n  {} frames; kaprobe verify --all classifies them: {}\n  Wireshark labels: {}\n  try: kaprobe verify {shown}\n       tshark -r {shown} -Y 'tcp.analysis.keep_alive || tcp.analysis.keep_alive_ack'\n",
        sc.name,
        sc.description,
        frames.len(),
        kinds.join(" "),
        if ws.is_empty() { "none".into() } else { ws.join(", ") },
    );
    if a.json {
        let v = serde_json::json!({"type": "scenario_written", "name": sc.name, "file": shown, "frames": frames.len(), "kinds": kinds});
        return emit(&format!("{v}\n"));
    }
    emit(&text)
}
