//! `kaprobe verify`: the capture verifier.

use super::exit;
use crate::analyze::{
    Analyzer, Config, Connection, Events, Expectations, FlowFilter, FlowReport, Parallel, SegmentEvent, Sink, Stats,
};
use crate::capture::{read_file, CaptureError, ReadSummary, Record};
use crate::explain::ladder::{self, Ladder};
use crate::report::groups::{self, Groups};
use crate::report::{json, text};
use crate::units::{count, format_duration};
use clap::Args;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// JSON Lines on stdout: a `segment` object per classified segment, a `flow`
    /// object per flow with keepalive activity, and a final `summary`.
    #[arg(long)]
    pub json: bool,
    /// Report every flow, not only those with keepalive activity; with --json,
    /// also every TCP segment.
    #[arg(long)]
    pub all: bool,
    /// Expected keepalive settings, e.g. `idle=30s,interval=5s,count=3`; also
    /// `outcome=alive|timed_out|reset|closed` and `tolerance=10%|500ms`
    /// (default 15% with a 250ms floor). Exit 1 when a flow differs.
    #[arg(long, value_name = "SPEC", value_parser = |s: &str| Expectations::parse(s))]
    pub expect: Option<Expectations>,
    /// Only flows matching: `HOST`, `HOST:PORT`, `:PORT`, `[IPv6]:PORT`, or two of
    /// them joined by `,` for both ends, e.g. `10.0.0.1,:443`.
    #[arg(long, value_name = "FILTER", value_parser = |s: &str| FlowFilter::parse(s))]
    pub flow: Option<FlowFilter>,
    /// Only the summary lines (human output).
    #[arg(short, long)]
    pub quiet: bool,
    /// Also draw each shown flow as a ladder diagram (human output).
    #[arg(long, conflicts_with_all = ["json", "quiet"])]
    pub ladder: bool,
    /// With --ladder: also write the diagrams as one SVG file.
    #[arg(long, value_name = "SVG", requires = "ladder")]
    pub svg: Option<PathBuf>,
    /// Threads to analyse on (default: one per core for files of 384 MiB and
    /// more, else one). The output is the same for any number.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// pcap or pcapng files (any link type kaprobe decodes).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Collects what the analyzer reports for one file.
struct Collector<'a, W: Write> {
    args: &'a VerifyArgs,
    file: &'a str,
    out: &'a mut W,
    /// Flows to show as text, with their reports.
    shown: Vec<(FlowReport, Connection)>,
    /// Once there are many: the flows grouped instead, the few to show kept.
    groups: Option<Groups>,
    json_line: json::SegmentWriter,
    /// `--expect` verdicts, one line each, for text output.
    expect_lines: Vec<String>,
    keepalive_flows: u64,
    error: Option<io::Error>,
    totals: &'a mut Totals,
    /// Flows checked against `--expect`.
    checked: u64,
    /// `--ladder`: each flow's events, and the diagrams of the shown flows.
    ladder: Option<ladder::Collector>,
    ladders: Vec<Ladder>,
}

/// Flows the user named are checked even without probes; otherwise only keepalive flows.
fn expectation_applies(args: &VerifyArgs, r: &FlowReport) -> bool {
    args.flow.is_some() || r.probes > 0
}

#[derive(Default)]
struct Totals {
    files: u64,
    stats: Stats,
    keepalive_flows: u64,
    violations: u64,
    expectation_failures: u64,
    unreadable: u64,
    /// Printed when the run completes; on exit 2 the error stands alone.
    warnings: Vec<String>,
}

impl<W: Write> Collector<'_, W> {
    fn shows(&self, c: &Connection) -> bool {
        self.args.all || self.args.flow.is_some() || c.is_notable()
    }

    fn check(&mut self, report: &FlowReport) -> Option<Vec<String>> {
        let e = self
            .args
            .expect
            .as_ref()
            .filter(|_| expectation_applies(self.args, report))?;
        self.checked += 1;
        Some(e.check(report))
    }
}

impl<W: Write> Sink for Collector<'_, W> {
    fn segment(&mut self, ev: &SegmentEvent) {
        if let Some(l) = self.ladder.as_mut() {
            l.push(ev);
        }
        if self.args.json && self.error.is_none() {
            if let Err(e) = self.json_line.write(self.out, ev) {
                self.error = Some(e);
            }
        }
    }

    fn flow(&mut self, c: Connection) {
        let keepalive = c.has_keepalive();
        self.keepalive_flows += keepalive as u64;
        self.totals.violations += c.keepalive().violations.total as u64;
        let events = self.ladder.as_mut().map(|l| l.take(c.id));
        // -q without --expect or --json: the counts above are all that is shown.
        let reported = self.args.json || self.args.expect.is_some() || !self.args.quiet;
        if !self.shows(&c) || !reported {
            return;
        }
        if let Some((events, after)) = events {
            let title = format!("flow {}: {} ({})", c.id, FlowReport::of(&c).flow, self.file);
            self.ladders.push(Ladder::from_events(title, &events, after));
        }
        let report = FlowReport::of(&c);
        let failures = self.check(&report);
        self.totals.expectation_failures += failures.as_ref().map_or(0, |f| f.len() as u64);
        if self.args.json {
            if self.error.is_none() {
                if let Err(e) = json::flow(self.out, self.file, &report, failures.as_deref()) {
                    self.error = Some(e);
                }
            }
            return;
        }
        if let Some(fails) = failures {
            let who = format!("expect: flow {} ({})", report.flow_id, report.flow);
            match fails.is_empty() {
                true => self.expect_lines.push(format!("{who}: ok")),
                false => self
                    .expect_lines
                    .extend(fails.iter().map(|f| format!("{who}: FAILED {f}"))),
            }
        }
        // -q shows no tables: keep nothing per flow, so memory stays with open flows.
        if self.args.quiet {
            return;
        }
        // Many flows: grouped, and only the few that need a look kept whole.
        let one_by_one = self.args.all || self.args.flow.is_some() || self.args.ladder;
        groups::keep(&mut self.shown, &mut self.groups, one_by_one, report, c);
    }
}

pub fn run(args: &VerifyArgs) -> u8 {
    let started = Instant::now();
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut totals = Totals::default();
    let mut ladders = Vec::new();
    for path in &args.files {
        let name = path.display().to_string();
        match verify_file(args, path, &name, &mut out, &mut totals, &mut ladders) {
            Ok(()) => {}
            Err(FileError::Output(e)) => return output_failed(e),
            Err(FileError::Input(msg)) => {
                let _ = out.flush();
                eprintln!("kaprobe: {msg}");
                totals.unreadable += 1;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Err(e) = summary(args, &mut out, &totals, elapsed).and_then(|_| out.flush()) {
        return output_failed(e);
    }
    if totals.unreadable > 0 {
        // An input could not be read: no SVG of a partial run replaces OUT.
        return exit::USAGE;
    }
    for w in &totals.warnings {
        eprintln!("kaprobe: {w}");
    }
    if let Some(svg) = &args.svg {
        if let Err(e) = super::explain::write_svg(svg, &ladders) {
            eprintln!("kaprobe: {}: {e}", svg.display());
            return exit::USAGE;
        }
    }
    if totals.expectation_failures > 0 || totals.violations > 0 {
        exit::VERDICT
    } else {
        exit::OK
    }
}

/// Below this size a file is analysed on one thread unless `--threads` says
/// otherwise: starting the workers and the memory each takes in cost about
/// what they gain (on the bench's captures, 2 threads on 2 cores were 0.7x
/// one thread at 56 MB, even at 355 MB, 1.3x at 560 MB).
const MANY_THREADS_FROM: u64 = 384 << 20;

/// One thread per core for a big file; one for a small one or a pipe, whose
/// writer sets the pace.
fn default_threads(size: Option<u64>) -> usize {
    match size {
        Some(n) if n >= MANY_THREADS_FROM => std::thread::available_parallelism().map_or(1, |n| n.get()),
        _ => 1,
    }
}

/// The analysis, on this thread or on several (one per file: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Engine {
    One(Analyzer),
    Many(Parallel),
}

/// Records read from a file, counted as they come.
#[derive(Default)]
struct Records {
    all: u64,
    /// On interfaces of a link type kaprobe does not decode, and the first such type.
    unknown: u64,
    unknown_code: Option<u32>,
}

impl Records {
    /// Counts `r`; its link type, if kaprobe decodes it.
    fn count(&mut self, r: &Record) -> Option<crate::decode::LinkType> {
        self.all += 1;
        if r.link.is_none() {
            self.unknown += 1;
            self.unknown_code.get_or_insert(r.link_code);
        }
        r.link
    }
}

enum FileError {
    Input(String),
    Output(io::Error),
}

fn verify_file(
    args: &VerifyArgs,
    path: &std::path::Path,
    name: &str,
    out: &mut impl Write,
    totals: &mut Totals,
    all_ladders: &mut Vec<Ladder>,
) -> Result<(), FileError> {
    let cfg = Config {
        keep_timeline: !args.json && !args.quiet,
        events: match (args.json, args.all) {
            (false, _) if args.ladder => Events::All,
            (false, _) => Events::None,
            (true, false) => Events::Notable,
            (true, true) => Events::All,
        },
        filter: args.flow.clone(),
        ..Config::default()
    };
    let mut sink = Collector {
        args,
        file: name,
        out,
        shown: Vec::new(),
        groups: None,
        json_line: json::SegmentWriter::new(name),
        expect_lines: Vec::new(),
        keepalive_flows: 0,
        error: None,
        totals,
        checked: 0,
        ladder: args.ladder.then(ladder::Collector::default),
        ladders: Vec::new(),
    };
    // Counted here, not from the reader's summary, which a damaged file lacks.
    let mut records = Records::default();
    // Not while JSON streams to the same terminal.
    let streaming = args.json && io::stdout().is_terminal();
    let size = std::fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| m.len());
    let mut progress = super::progress::Progress::new(name, size, !streaming);
    let threads = args.threads.map_or_else(|| default_threads(size), usize::from);
    let mut engine = match threads {
        1 => Engine::One(Analyzer::new(cfg)),
        n => Engine::Many(Parallel::new(cfg, n)),
    };
    let read = read_file(path, |rec| {
        progress.tick(rec.frame, rec.offset);
        if let Some(link) = records.count(rec) {
            let (frame, time, data, snapped) = (rec.frame, rec.time, rec.data, rec.snapped());
            match &mut engine {
                Engine::One(an) => {
                    an.frame(frame, time, link, data, snapped, &mut sink);
                }
                Engine::Many(par) => par.frame(frame, time, link, data, snapped, &mut sink),
            }
        }
    });
    progress.done();
    // A capture cut short (tcpdump killed mid-write) is analysed up to the
    // damage; the error line follows the results and the exit code is still 2.
    let (read, damaged) = match read {
        Ok(r) => (r, None),
        Err(e @ CaptureError::Read { .. }) => (ReadSummary::default(), Some(e.to_string())),
        Err(e) => return Err(FileError::Input(e.to_string())),
    };
    if let Some(code) = records.unknown_code.filter(|_| records.unknown == records.all) {
        return Err(FileError::Input(format!(
            "{name}: link type {code}, which kaprobe does not decode (it reads Ethernet, Linux cooked SLL and SLL2, raw IP and BSD loopback captures); capture on an interface of one of these, e.g. tcpdump -i any"
        )));
    }
    let st = match engine {
        Engine::One(mut an) => {
            an.finish(&mut sink);
            an.stats
        }
        Engine::Many(par) => par.finish(&mut sink),
    };
    if let Some(e) = sink.error.take() {
        return Err(FileError::Output(e));
    }
    let Collector {
        shown,
        groups,
        expect_lines,
        keepalive_flows,
        out,
        totals,
        checked,
        ladders,
        ..
    } = sink;
    totals.keepalive_flows += keepalive_flows;
    if read.unknown_link > 0 {
        totals.warnings.push(format!(
            "warning: {name}: {} on an interface of a link type kaprobe does not decode",
            count(read.unknown_link, "record")
        ));
    }
    if st.options_cut > 0 {
        totals.warnings.push(format!(
            "note: {name}: the snaplen cut the TCP options off {}: analysed by seq, ack and length; their timestamps and SACK blocks are unknown",
            count(st.options_cut, "segment")
        ));
    }
    if st.time_backwards > 0 {
        totals.warnings.push(format!(
            "warning: {name}: {} timestamped earlier than the record before (merged capture?); largest step back {}",
            count(st.time_backwards, "record"),
            format_duration(st.max_backwards_ns)
        ));
    }
    totals.files += 1;
    add_stats(&mut totals.stats, &st);
    let nothing_checked = args.expect.is_some() && checked == 0;
    totals.expectation_failures += nothing_checked as u64;
    if args.json {
        if nothing_checked {
            let msg = format!("no flow with keepalive probes in {name}");
            json::tagged(
                out,
                "expectation",
                &serde_json::json!({"file": name, "ok": false, "message": msg}),
            )
            .map_err(FileError::Output)?;
        }
    } else {
        let file = FileResult {
            name,
            stats: &st,
            keepalive_flows,
            shown,
            groups,
            expect_lines,
            nothing_checked,
            ladders: &ladders,
        };
        human_file(out, file).map_err(FileError::Output)?;
        if args.svg.is_some() {
            all_ladders.extend(ladders);
        }
    }
    match damaged {
        Some(msg) => Err(FileError::Input(msg)),
        None => Ok(()),
    }
}

fn add_stats(t: &mut Stats, s: &Stats) {
    t.packets += s.packets;
    t.tcp_packets += s.tcp_packets;
    t.not_tcp += s.not_tcp;
    t.fragments += s.fragments;
    t.truncated_headers += s.truncated_headers;
    t.truncated_payloads += s.truncated_payloads;
    t.options_cut += s.options_cut;
    t.time_backwards += s.time_backwards;
    t.max_backwards_ns = t.max_backwards_ns.max(s.max_backwards_ns);
    t.flows += s.flows;
    t.probes += s.probes;
    t.zero_window_probes += s.zero_window_probes;
    t.retransmissions += s.retransmissions;
}

/// What one file yielded, for the text report.
struct FileResult<'a> {
    name: &'a str,
    stats: &'a Stats,
    keepalive_flows: u64,
    shown: Vec<(FlowReport, Connection)>,
    groups: Option<Groups>,
    expect_lines: Vec<String>,
    nothing_checked: bool,
    ladders: &'a [Ladder],
}

fn human_file(out: &mut impl Write, f: FileResult) -> io::Result<()> {
    let st = f.stats;
    let mut line = format!(
        "{}: {}, {}, {} with keepalive probes",
        f.name,
        count(st.packets, "packet"),
        count(st.flows, "TCP flow"),
        f.keepalive_flows
    );
    if st.zero_window_probes > 0 {
        line += &format!(", {}", count(st.zero_window_probes, "zero-window probe"));
    }
    if st.retransmissions > 0 {
        line += &format!(", {} probe-shaped 1-byte retransmissions", st.retransmissions);
    }
    writeln!(out, "{line}")?;
    let color = super::color(&std::io::stdout());
    let mut groups = f.groups;
    let shown = match groups.as_mut() {
        Some(g) => g.render(out)?,
        None => f.shown,
    };
    if !shown.is_empty() {
        text::flow_table(out, shown.iter().map(|(r, _)| r))?;
        for (r, c) in &shown {
            text::timeline(out, r, c, color)?;
        }
    }
    if let Some(g) = &groups {
        g.hint(out, f.name)?;
    }
    for l in f.ladders {
        write!(out, "\n{}", l.render())?;
    }
    for l in &f.expect_lines {
        writeln!(out, "{l}")?;
    }
    if f.nothing_checked {
        writeln!(out, "expect: FAILED no flow with keepalive probes in {}", f.name)?;
    }
    Ok(())
}

fn summary(args: &VerifyArgs, out: &mut impl Write, t: &Totals, elapsed: f64) -> io::Result<()> {
    let st = &t.stats;
    if !args.json && t.files == 0 {
        return Ok(()); // nothing was read: the error lines say why
    }
    if args.json {
        #[derive(serde::Serialize)]
        struct Summary<'a> {
            files: u64,
            unreadable_files: u64,
            #[serde(flatten)]
            stats: &'a Stats,
            keepalive_flows: u64,
            violations: u64,
            expectation_failures: u64,
            elapsed_s: f64,
            packets_per_s: f64,
        }
        return json::tagged(
            out,
            "summary",
            &Summary {
                files: t.files,
                unreadable_files: t.unreadable,
                stats: st,
                keepalive_flows: t.keepalive_flows,
                violations: t.violations,
                expectation_failures: t.expectation_failures,
                elapsed_s: elapsed,
                packets_per_s: st.packets as f64 / elapsed.max(1e-9),
            },
        );
    }
    writeln!(
        out,
        "\nsummary: {}, {}, {}, {} with keepalive, {}, {}{} in {:.3}s",
        count(t.files, "file"),
        count(st.packets, "packet"),
        count(st.flows, "flow"),
        t.keepalive_flows,
        count(st.probes, "probe"),
        count(t.violations, "violation"),
        if args.expect.is_some() {
            format!(", {}", count(t.expectation_failures, "expectation failure"))
        } else {
            String::new()
        },
        elapsed
    )
}

fn output_failed(e: io::Error) -> u8 {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return exit::OK;
    }
    eprintln!("kaprobe: writing output: {e}");
    exit::USAGE
}
