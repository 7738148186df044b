//! `kaprobe watch -i IFACE`: keepalive on a live interface, as it happens.
//! The frames go through `verify`'s analyzer; each event is said as soon as
//! it is decided (the lookahead waits for more segments only `SETTLE` long).

use super::exit;
use super::probe::{open_pcap, unprivileged};
use super::screen::Screen;
use crate::analyze::{
    Analyzer, Config, Connection, Events, Expectations, Expected, FlowReport, SegmentEvent, Sink, Stats,
};
use crate::live::capture::{Drops, OpenCapture};
use crate::live::Clock;
use crate::report::groups::{self, Groups};
use crate::report::{json, text};
use crate::units::{count, parse_duration};
use crate::watch::{Alerts, Board};
use anyhow::Result;
use clap::Args;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a segment waits for the segments after it before it is decided
/// with what has come: a quiet link says a probe and its answer within this.
const SETTLE_NS: u64 = 200_000_000;
/// How long a segment that only its flow's next one can tell (a flow first
/// seen mid-session, opening with what may be a probe) waits for it: the
/// probe's answer, a round trip later.
const PATIENCE_NS: u64 = 2_000_000_000;
/// How often the loop looks up (settling, drop counters, the end) when no frame comes.
const TICK: Duration = Duration::from_millis(50);

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The interface to watch (`any`: all of them; the default).
    #[arg(short, long, value_name = "IFACE", conflicts_with = "read")]
    pub interface: Option<String>,
    /// Read a capture file, or a pipe (`-`: stdin, e.g. `tcpdump -w - | kaprobe
    /// watch -r -`), instead of an interface; events come as they are decided.
    #[arg(short, long, value_name = "FILE")]
    pub read: Option<PathBuf>,
    /// Only frames matching this BPF filter (tcpdump's syntax; live only).
    #[arg(long, default_value = "tcp", value_name = "BPF", conflicts_with = "read")]
    pub filter: String,
    /// JSON Lines: verify's `segment` and `flow` objects as they happen, an
    /// `expect` object when a flow breaks `--expect`, a `drops` object when
    /// libpcap reports drops, a `summary` last.
    #[arg(long)]
    pub json: bool,
    /// Stop after this long (default: at Ctrl-C or SIGTERM).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<u64>,
    /// Write every frame seen to this pcap file (complete when the watch ends; live only).
    #[arg(long, value_name = "FILE", conflicts_with = "read")]
    pub pcap: Option<PathBuf>,
    /// What each flow's keepalive should do, as `verify --expect`; a flow
    /// that breaks it is said the moment it does. The verdict is verify's at
    /// each flow's end: exit 1 when any failed.
    #[arg(long, value_name = "SPEC", value_parser = |s: &str| Expectations::parse(s))]
    pub expect: Option<Expectations>,
    /// One line per event even on a terminal (instead of the live table).
    #[arg(long, conflicts_with = "json")]
    pub lines: bool,
}

pub fn run(args: &WatchArgs) -> u8 {
    match watch(args) {
        Ok(false) => exit::OK,
        Ok(true) => exit::VERDICT,
        // The reader of our output went away (`| head`): nothing is wrong.
        Err(e) if broken_pipe(&e) => exit::OK,
        Err(e) => {
            let _ = io::stdout().flush();
            eprintln!("kaprobe: {e:#}");
            exit::USAGE
        }
    }
}

/// How events are said.
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    /// One line per event.
    Lines,
    /// The table, redrawn in place on a terminal, the latest events below it.
    Table,
    Json,
}

/// Says each event as it comes, and each flow with keepalive as it ends.
struct Out<W: Write> {
    view: View,
    color: bool,
    out: W,
    json_line: json::SegmentWriter,
    source: String,
    /// Notable flows that ended, for the closing table; grouped once there
    /// are many (as `verify`), so memory stays bounded.
    ended: Vec<(FlowReport, ())>,
    groups: Option<Groups<()>>,
    keepalive_flows: u64,
    violations: u64,
    /// `--expect`, checked as flows progress.
    alerts: Option<Alerts>,
    /// The table's first alert lines, said again once the screen is left,
    /// and how many there were.
    alert_lines: Vec<String>,
    alerts_said: u64,
    board: Option<Board>,
    error: Option<io::Error>,
    /// Dropped after `out` (flushed): the screen is left last.
    screen: Option<Screen>,
    drawn: Option<Instant>,
}

/// The analyzer `watch` runs: `verify`'s, saying notable events.
fn analyzer() -> Analyzer {
    Analyzer::new(Config {
        events: Events::Notable,
        ..Config::default()
    })
}

impl Out<io::BufWriter<io::StdoutLock<'static>>> {
    /// `live`: a capture or a pipe, which the table is for (a file is read
    /// in a moment: its events are said line by line).
    fn new(args: &WatchArgs, source: &str, live: bool) -> io::Result<Self> {
        let stdout = io::stdout();
        let view = match (args.json, live && stdout.is_terminal() && !args.lines) {
            (true, _) => View::Json,
            (false, true) => View::Table,
            (false, false) => View::Lines,
        };
        let screen = match view {
            View::Table => Some(Screen::enter()?),
            _ => None,
        };
        Ok(Out {
            view,
            color: super::color(&stdout),
            out: io::BufWriter::new(stdout.lock()),
            json_line: json::SegmentWriter::new(source),
            source: source.to_string(),
            ended: Vec::new(),
            groups: None,
            keepalive_flows: 0,
            violations: 0,
            alerts: args.expect.clone().map(Alerts::new),
            alert_lines: Vec::new(),
            alerts_said: 0,
            board: (view == View::Table).then(Board::default),
            error: None,
            screen,
            drawn: None,
        })
    }
}

/// Alert lines said again after the table: the first ones (the count says the rest).
const ALERTS_KEPT: usize = 20;

/// How often the table is redrawn at most, and at least (its ages tick).
const DRAW_EVERY: Duration = Duration::from_millis(250);
const DRAW_AT_LEAST: Duration = Duration::from_secs(1);

impl<W: Write> Out<W> {
    fn keep(&mut self, r: io::Result<()>) {
        if let (Err(e), None) = (r, &self.error) {
            self.error = Some(e);
        }
    }

    /// An expectation a flow broke (`failed`), or one said broken earlier
    /// that holds at its end after all (`failed` none), said now: `ev` is
    /// the event that broke it, or none when the flow's end showed it.
    fn expect_said(&mut self, report: &FlowReport, what: Expected, failed: Option<&str>, ev: Option<&SegmentEvent>) {
        let r = match self.view {
            View::Json => {
                let v = serde_json::json!({
                    "source": self.source,
                    "flow_id": report.flow_id,
                    "flow": report.flow,
                    "expectation": what.name(),
                    "failed": failed,
                    "holds": failed.is_none(),
                    "frame": ev.map(|e| e.frame),
                    "time": ev.map(|e| e.time as f64 / 1e9),
                    "ended": ev.is_none(),
                });
                json::tagged(&mut self.out, "expect", &v).and_then(|()| self.out.flush())
            }
            View::Lines | View::Table => {
                let who = format!("expect: flow {} ({})", report.flow_id, report.flow);
                let line = match (failed, ev) {
                    (Some(f), Some(e)) => format!("{}  {who}: FAILED {f}", text::time_of_day(e.time)),
                    (Some(f), None) => format!("{who}: FAILED {f} (at the flow's end)"),
                    (None, _) => format!("{who}: {} holds at the flow's end after all", what.name()),
                };
                match self.board.as_mut() {
                    Some(b) => {
                        match failed {
                            Some(_) => b.broke(report.flow_id, what.name()),
                            None => b.mended(report.flow_id, what.name()),
                        }
                        b.event(line.clone());
                        self.alerts_said += 1;
                        if self.alert_lines.len() < ALERTS_KEPT {
                            self.alert_lines.push(line);
                        }
                        Ok(())
                    }
                    None => writeln!(self.out, "{line}").and_then(|()| self.out.flush()),
                }
            }
        };
        self.keep(r);
    }

    /// Redraws the table when something changed (at most every `DRAW_EVERY`),
    /// or when it was last drawn `DRAW_AT_LEAST` ago. `now`: the capture's time.
    fn refresh(&mut self, now: u64, st: &Stats, drops: Drops) {
        if self.screen.is_none() {
            return;
        }
        let since = self.drawn.map_or(Duration::MAX, |d| d.elapsed());
        let changed = self.board.as_ref().is_some_and(Board::changed);
        if since < DRAW_EVERY || (since < DRAW_AT_LEAST && !changed) {
            return;
        }
        self.drawn = Some(Instant::now());
        let mut status = format!(
            "kaprobe watch {}  {}  {}, {} with keepalive, {}",
            self.source,
            text::time_of_day(now),
            count(st.packets, "packet"),
            self.keepalive_flows_so_far(),
            count(st.probes, "probe"),
        );
        if drops.dropped + drops.if_dropped > 0 {
            status += &format!("  DROPPED {}", drops.dropped + drops.if_dropped);
        }
        status += "  (Ctrl-C ends)";
        let (w, h) = Screen::size();
        let (Some(board), Some(screen)) = (self.board.as_mut(), &self.screen) else {
            return;
        };
        let lines = board.render(&status, now, w, h, self.alerts.is_some());
        let r = screen.draw(&mut self.out, &lines);
        self.keep(r);
    }

    /// Flows seen with keepalive: those ended, and those open on the board.
    fn keepalive_flows_so_far(&self) -> String {
        let open = self.board.as_ref().map_or(0, Board::open);
        count(self.keepalive_flows + open as u64, "flow")
    }

    /// Whether the run ends against the user: violations (as `verify`), or
    /// an expectation broken.
    fn against(&self) -> bool {
        self.violations > 0 || self.expectation_failures().is_some_and(|f| f > 0)
    }

    /// Under `--expect`: the failures of the flows checked, plus one when
    /// no flow had keepalive to check (as `verify` counts them).
    fn expectation_failures(&self) -> Option<u64> {
        self.alerts.as_ref().map(|a| a.failures + (a.checked == 0) as u64)
    }

    /// Leaves the table's screen: what follows stays on the terminal.
    fn leave(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.screen = None;
        for l in &self.alert_lines {
            writeln!(self.out, "{l}")?;
        }
        let more = self.alerts_said - self.alert_lines.len() as u64;
        if more > 0 {
            writeln!(self.out, "expect: … {more} more (--lines or --json says each)")?;
        }
        Ok(())
    }
}

impl<W: Write> Sink for Out<W> {
    fn segment(&mut self, ev: &SegmentEvent) {
        let r = match (self.view, self.board.as_mut()) {
            (View::Json, _) => self.json_line.write(&mut self.out, ev),
            (View::Table, Some(b)) => {
                // Plain: the screen cuts lines to its width by characters.
                b.event(text::event_text(ev, false));
                return;
            }
            _ => text::event_line(&mut self.out, ev, self.color),
        };
        // Said now, not when the buffer fills: this is a live view.
        let r = r.and_then(|()| self.out.flush());
        self.keep(r);
    }

    fn progressed(&mut self, ev: &SegmentEvent, c: &Connection) {
        // Neither the table nor `--expect` looks at a flow without keepalive.
        if (self.board.is_none() && self.alerts.is_none()) || !c.has_keepalive() {
            return;
        }
        let report = FlowReport::of(c);
        // The row first: what the flow broke is marked on it.
        if let Some(b) = self.board.as_mut() {
            b.progressed(&report, ev.kind, ev.time);
        }
        let broken = self.alerts.as_mut().map(|a| a.progressed(&report)).unwrap_or_default();
        for a in broken {
            self.expect_said(&report, a.failure.what, Some(&a.failure.text), Some(ev));
        }
    }

    fn flow(&mut self, c: Connection) {
        self.violations += c.keepalive().violations.total as u64;
        self.keepalive_flows += c.has_keepalive() as u64;
        // As `verify`: flows with keepalive, look-alikes or violations.
        if !c.is_notable() {
            return;
        }
        let report = FlowReport::of(&c);
        if let Some(b) = self.board.as_mut() {
            b.ended(&report);
        }
        let verdict = self.alerts.as_mut().and_then(|a| a.ended(&report));
        let failures = verdict.map(|v| {
            for a in v.new {
                self.expect_said(&report, a.failure.what, Some(&a.failure.text), None);
            }
            for what in v.mended {
                self.expect_said(&report, what, None, None);
            }
            v.failures
        });
        if self.view == View::Json {
            let r =
                json::flow(&mut self.out, &self.source, &report, failures.as_deref()).and_then(|()| self.out.flush());
            self.keep(r);
        } else {
            groups::keep(&mut self.ended, &mut self.groups, false, report, ());
        }
    }
}

/// Whether a flow did keepalive wrong (violations: exit 1, as `verify`).
fn watch(args: &WatchArgs) -> Result<bool> {
    if let Some(path) = &args.read {
        return watch_file(args, path);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let open = OpenCapture::open(args.interface.as_deref().unwrap_or("any"), &args.filter)?;
    let mut pcap = open_pcap(args.pcap.as_deref(), &open)?;
    let mut cap = unprivileged(open, &mut pcap, &stop)?;
    let clock = Clock::start();
    let until = args.duration.map(|d| clock.now() + d);
    let mut an = analyzer();
    let mut out = Out::new(args, &cap.device, true)?;
    let (mut buf, mut frame, mut drops) = (Vec::new(), 0u64, Drops::default());
    let running = || !stop.load(Ordering::Relaxed) && until.is_none_or(|u| clock.now() < u);
    // Kept, not returned at once: whatever ends the watch, the analysis
    // ends, `--pcap` is completed and the summary said.
    let mut failed: Option<anyhow::Error> = None;
    while failed.is_none() && running() {
        let read = cap.wait(TICK).and_then(|()| {
            // A bounded batch: a ring that never empties must not keep the
            // loop from the stop flag, the clock and the drop counters.
            for _ in 0..BATCH {
                let Some(f) = cap.next_into(&mut buf)? else { break };
                frame += 1;
                // libpcap's stamp as is: a backlog (output paused) is not a clock step.
                if let Some(p) = pcap.as_mut() {
                    p.write_snapped(f.time, &buf, f.wire_len);
                }
                an.frame(frame, f.time, cap.link, &buf, (f.len as u32) < f.wire_len, &mut out);
            }
            Ok(())
        });
        failed = read.err().map(Into::into);
        let now = clock.now();
        an.settle(now.saturating_sub(SETTLE_NS), now.saturating_sub(PATIENCE_NS), &mut out);
        let dropped = cap.drops();
        if dropped != drops {
            drops = dropped;
            report_drops(&mut out, &cap.device, drops);
        }
        out.refresh(clock.now(), &an.stats, drops);
        failed = failed.or(out.error.take().map(Into::into));
    }
    an.finish(&mut out);
    if let Err(e) = out.leave() {
        failed = worse(failed, e.into());
    }
    if let Some(p) = pcap {
        if let Err(e) = p.finish() {
            failed = worse(failed, anyhow::anyhow!("{}: {}", e.path, e.why));
        }
    }
    let said = summary(&mut out, &an.stats, drops).map_err(Into::into);
    match failed {
        Some(e) => verdict_despite(&out, e),
        None => said.map(|()| out.against()).or_else(|e| verdict_despite(&out, e)),
    }
}

/// The reader of our output went away (`| grep -m1 FAILED`): the verdict
/// so far stands; any other error is the run's.
fn verdict_despite<W: Write>(out: &Out<W>, e: anyhow::Error) -> Result<bool> {
    match broken_pipe(&e) {
        true => Ok(out.against()),
        false => Err(e),
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

/// The error to end with: the first, unless it is only the output's reader
/// gone and a later one (an incomplete `--pcap`) is not.
fn worse(first: Option<anyhow::Error>, later: anyhow::Error) -> Option<anyhow::Error> {
    match first {
        Some(f) if !broken_pipe(&f) || broken_pipe(&later) => Some(f),
        _ => Some(later),
    }
}

/// Frames read at most between two looks at the clock and the stop flag.
const BATCH: usize = 4096;

fn report_drops<W: Write>(out: &mut Out<W>, device: &str, d: Drops) {
    // The table says them in its status line.
    if out.view == View::Table {
        return;
    }
    let r = if out.view == View::Json {
        let v = serde_json::json!({"kernel": d.dropped, "interface": d.if_dropped, "device": device});
        json::tagged(&mut out.out, "drops", &v)
    } else {
        writeln!(
            out.out,
            "kaprobe: capture dropped {} (buffer), {} (interface): events may be missing",
            d.dropped, d.if_dropped
        )
    };
    let r = r.and_then(|()| out.out.flush());
    out.keep(r);
}

/// The end: the flows with keepalive (as `verify` tables them) and the counts.
fn summary<W: Write>(out: &mut Out<W>, st: &Stats, drops: Drops) -> io::Result<()> {
    // As `verify`: expecting, and no flow had keepalive to check, is a failure.
    let nothing_checked = out.alerts.as_ref().is_some_and(|a| a.checked == 0);
    let failures = out.expectation_failures();
    if out.view == View::Json && nothing_checked {
        let msg = "no flow with keepalive probes seen";
        let v = serde_json::json!({"source": out.source, "ok": false, "message": msg});
        json::tagged(&mut out.out, "expectation", &v)?;
    }
    if out.view == View::Json {
        #[derive(serde::Serialize)]
        struct Summary<'a> {
            source: &'a str,
            #[serde(flatten)]
            stats: &'a Stats,
            keepalive_flows: u64,
            violations: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            expectation_failures: Option<u64>,
            /// libpcap's counts: for lack of buffer room, and by the interface.
            kernel_dropped: u64,
            interface_dropped: u64,
        }
        let v = Summary {
            source: &out.source,
            stats: st,
            keepalive_flows: out.keepalive_flows,
            violations: out.violations,
            expectation_failures: failures,
            kernel_dropped: drops.dropped,
            interface_dropped: drops.if_dropped,
        };
        json::tagged(&mut out.out, "summary", &v)?;
        return out.out.flush();
    }
    if let Some(g) = out.groups.as_mut() {
        writeln!(out.out)?;
        let shown = g.render(&mut out.out)?;
        text::flow_table(&mut out.out, shown.iter().map(|(r, ())| r))?;
        writeln!(
            out.out,
            "\nevery flow: --json, or kaprobe verify --all on what --pcap recorded"
        )?;
    } else if !out.ended.is_empty() {
        writeln!(out.out)?;
        text::flow_table(&mut out.out, out.ended.iter().map(|(r, ())| r))?;
    }
    if nothing_checked {
        writeln!(out.out, "expect: FAILED no flow with keepalive probes seen")?;
    }
    let mut line = format!(
        "\nsummary: {} on {}, {}, {} with keepalive, {}, {}",
        count(st.packets, "packet"),
        out.source,
        count(st.flows, "flow"),
        out.keepalive_flows,
        count(st.probes, "probe"),
        count(out.violations, "violation")
    );
    if let Some(f) = failures {
        line += &format!(", {}", count(f, "expectation failure"));
    }
    if drops.dropped + drops.if_dropped > 0 {
        line += &format!(", {} dropped by the capture", drops.dropped + drops.if_dropped);
    }
    writeln!(out.out, "{line}")?;
    out.out.flush()
}

/// One record read from a file or pipe, owned: it crosses from the reading thread.
struct Owned {
    frame: u64,
    time: u64,
    link: crate::decode::LinkType,
    data: Vec<u8>,
    snapped: bool,
}

/// `watch -r`: the records come from a thread that reads the file or pipe;
/// when none has come for `SETTLE_NS` (a quiet pipe), everything waiting is
/// decided, and a segment `SETTLE_NS` older (in capture time) than the latest
/// one never waits longer.
fn watch_file(args: &WatchArgs, path: &std::path::Path) -> Result<bool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .map_err(|e| anyhow::anyhow!("signal handler: {e}"))?;
    let (path, name) = match path.as_os_str() == "-" {
        true => (PathBuf::from("/dev/stdin"), "stdin".to_string()),
        false => (path.to_path_buf(), path.display().to_string()),
    };
    // A pipe may go quiet; a file never does, and its output must not
    // depend on how fast it is read.
    let pipe = !std::fs::metadata(&path).is_ok_and(|m| m.is_file());
    let (tx, rx) = std::sync::mpsc::sync_channel::<Owned>(4096);
    let reader = std::thread::spawn({
        let path = path.clone();
        move || {
            crate::capture::read_file(&path, |rec| {
                if let Some(link) = rec.link {
                    let owned = Owned {
                        frame: rec.frame,
                        time: rec.time,
                        link,
                        data: rec.data.to_vec(),
                        snapped: rec.snapped(),
                    };
                    // The watcher gone (stopped): the rest is not wanted.
                    let _ = tx.send(owned);
                }
            })
        }
    });
    let mut an = analyzer();
    let mut out = Out::new(args, &name, pipe)?;
    let clock = Clock::start();
    let until = args.duration.map(|d| clock.now() + d);
    let (mut latest, mut ended) = (0u64, false);
    // How long the pipe has been quiet: after `PATIENCE_NS` of it, nothing waits.
    let mut quiet = 0u64;
    use std::sync::mpsc::RecvTimeoutError;
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| clock.now() < u) {
        match rx.recv_timeout(Duration::from_nanos(SETTLE_NS)) {
            Ok(r) => {
                quiet = 0;
                latest = latest.max(r.time);
                an.frame(r.frame, r.time, r.link, &r.data, r.snapped, &mut out);
                let patient = latest.saturating_sub(PATIENCE_NS);
                an.settle(latest.saturating_sub(SETTLE_NS), patient, &mut out);
            }
            Err(RecvTimeoutError::Timeout) if pipe => {
                quiet += SETTLE_NS;
                let patient = match quiet >= PATIENCE_NS {
                    true => u64::MAX,
                    false => latest.saturating_sub(PATIENCE_NS),
                };
                an.settle(u64::MAX, patient, &mut out);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                ended = true;
                break;
            }
        }
        out.refresh(latest, &an.stats, Drops::default());
        if let Some(e) = out.error.take() {
            // The output failed (its reader gone?): the flows still open get
            // their verdict, said or not, which the exit code gives.
            an.finish(&mut out);
            let _ = out
                .leave()
                .and_then(|()| summary(&mut out, &an.stats, Drops::default()));
            return verdict_despite(&out, e.into());
        }
    }
    drop(rx);
    // Stopped early, the reader may still wait on the pipe: it is not waited for.
    let read = match ended {
        true => reader
            .join()
            .unwrap_or_else(|_| panic!("{name}: the reading thread panicked")),
        false => Ok(Default::default()),
    };
    // Nothing read (no such file, not a capture): the error alone.
    if let (Err(e), 0) = (&read, an.stats.packets) {
        return Err(anyhow::anyhow!("{e}"));
    }
    an.finish(&mut out);
    let said = out
        .leave()
        .and_then(|()| summary(&mut out, &an.stats, Drops::default()));
    if let Err(e) = said {
        return verdict_despite(&out, e.into());
    }
    // A capture cut short: what it held was said; the error follows.
    read?;
    Ok(out.against())
}
