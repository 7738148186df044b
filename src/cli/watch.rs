//! `kaprobe watch -i IFACE`: keepalive on a live interface, as it happens.
//! The frames go through `verify`'s analyzer; each event is said as soon as
//! it is decided (the lookahead waits for more segments only `SETTLE` long).

use super::exit;
use super::probe::{open_pcap, unprivileged};
use crate::analyze::{Analyzer, Config, Connection, Events, FlowReport, SegmentEvent, Sink, Stats};
use crate::live::capture::{Drops, OpenCapture};
use crate::live::Clock;
use crate::report::{json, text};
use crate::units::{count, parse_duration};
use anyhow::Result;
use clap::Args;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a segment waits for the segments after it before it is decided
/// with what has come: a quiet link says a probe and its answer within this.
const SETTLE_NS: u64 = 200_000_000;
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
    /// JSON Lines: verify's `segment` and `flow` objects as they happen, a
    /// `drops` object when libpcap reports drops, a `summary` last.
    #[arg(long)]
    pub json: bool,
    /// Stop after this long (default: at Ctrl-C or SIGTERM).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<u64>,
    /// Write every frame seen to this pcap file (complete when the watch ends; live only).
    #[arg(long, value_name = "FILE", conflicts_with = "read")]
    pub pcap: Option<PathBuf>,
}

pub fn run(args: &WatchArgs) -> u8 {
    match watch(args) {
        Ok(false) => exit::OK,
        Ok(true) => exit::VERDICT,
        // The reader of our output went away (`| head`): nothing is wrong.
        Err(e)
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
        {
            exit::OK
        }
        Err(e) => {
            let _ = io::stdout().flush();
            eprintln!("kaprobe: {e:#}");
            exit::USAGE
        }
    }
}

/// Says each event as it comes, and each flow with keepalive as it ends.
struct Out<W: Write> {
    json: bool,
    color: bool,
    out: W,
    json_line: json::SegmentWriter,
    source: String,
    /// Notable flows that ended, for the closing table.
    ended: Vec<FlowReport>,
    keepalive_flows: u64,
    violations: u64,
    error: Option<io::Error>,
}

/// The analyzer `watch` runs: `verify`'s, saying notable events.
fn analyzer() -> Analyzer {
    Analyzer::new(Config {
        events: Events::Notable,
        ..Config::default()
    })
}

impl Out<io::BufWriter<io::StdoutLock<'static>>> {
    fn new(json: bool, source: &str) -> Self {
        Out {
            json,
            color: super::color(&io::stdout()),
            out: io::BufWriter::new(io::stdout().lock()),
            json_line: json::SegmentWriter::new(source),
            source: source.to_string(),
            ended: Vec::new(),
            keepalive_flows: 0,
            violations: 0,
            error: None,
        }
    }
}

impl<W: Write> Out<W> {
    fn keep(&mut self, r: io::Result<()>) {
        if let (Err(e), None) = (r, &self.error) {
            self.error = Some(e);
        }
    }
}

impl<W: Write> Sink for Out<W> {
    fn segment(&mut self, ev: &SegmentEvent) {
        let r = if self.json {
            self.json_line.write(&mut self.out, ev)
        } else {
            text::event_line(&mut self.out, ev, self.color)
        };
        // Said now, not when the buffer fills: this is a live view.
        let r = r.and_then(|()| self.out.flush());
        self.keep(r);
    }

    fn flow(&mut self, c: Connection) {
        self.violations += c.keepalive().violations.total as u64;
        self.keepalive_flows += c.keepalive().ka.iter().any(|k| k.probes > 0) as u64;
        // As `verify`: flows with keepalive, look-alikes or violations.
        if !c.is_notable() {
            return;
        }
        let report = FlowReport::of(&c);
        if self.json {
            let r = json::flow(&mut self.out, &self.source, &report, None).and_then(|()| self.out.flush());
            self.keep(r);
        } else {
            self.ended.push(report);
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
    let mut out = Out::new(args.json, &cap.device);
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
        an.settle(clock.now().saturating_sub(SETTLE_NS), &mut out);
        let now = cap.drops();
        if now != drops {
            drops = now;
            report_drops(&mut out, &cap.device, drops);
        }
        failed = failed.or(out.error.take().map(Into::into));
    }
    an.finish(&mut out);
    if let Some(p) = pcap {
        if let Err(e) = p.finish() {
            failed = failed.or(Some(anyhow::anyhow!("{}: {}", e.path, e.why)));
        }
    }
    let said = summary(&mut out, &an.stats, drops);
    match failed {
        Some(e) => Err(e),
        None => said.map(|()| out.violations > 0).map_err(Into::into),
    }
}

/// Frames read at most between two looks at the clock and the stop flag.
const BATCH: usize = 4096;

fn report_drops<W: Write>(out: &mut Out<W>, device: &str, d: Drops) {
    let r = if out.json {
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
    if out.json {
        #[derive(serde::Serialize)]
        struct Summary<'a> {
            source: &'a str,
            #[serde(flatten)]
            stats: &'a Stats,
            keepalive_flows: u64,
            violations: u64,
            /// libpcap's counts: for lack of buffer room, and by the interface.
            kernel_dropped: u64,
            interface_dropped: u64,
        }
        let v = Summary {
            source: &out.source,
            stats: st,
            keepalive_flows: out.keepalive_flows,
            violations: out.violations,
            kernel_dropped: drops.dropped,
            interface_dropped: drops.if_dropped,
        };
        json::tagged(&mut out.out, "summary", &v)?;
        return out.out.flush();
    }
    if !out.ended.is_empty() {
        writeln!(out.out)?;
        text::flow_table(&mut out.out, &out.ended)?;
    }
    writeln!(
        out.out,
        "\nsummary: {} on {}, {}, {} with keepalive, {}, {}",
        count(st.packets, "packet"),
        out.source,
        count(st.flows, "flow"),
        out.keepalive_flows,
        count(st.probes, "probe"),
        count(out.violations, "violation")
    )?;
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
    let mut out = Out::new(args.json, &name);
    let clock = Clock::start();
    let until = args.duration.map(|d| clock.now() + d);
    let (mut latest, mut ended) = (0u64, false);
    use std::sync::mpsc::RecvTimeoutError;
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| clock.now() < u) {
        match rx.recv_timeout(Duration::from_nanos(SETTLE_NS)) {
            Ok(r) => {
                latest = latest.max(r.time);
                an.frame(r.frame, r.time, r.link, &r.data, r.snapped, &mut out);
                an.settle(latest.saturating_sub(SETTLE_NS), &mut out);
            }
            Err(RecvTimeoutError::Timeout) if pipe => an.settle(u64::MAX, &mut out),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                ended = true;
                break;
            }
        }
        if let Some(e) = out.error.take() {
            return Err(e.into());
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
    summary(&mut out, &an.stats, Drops::default())?;
    // A capture cut short: what it held was said; the error follows.
    read?;
    Ok(out.violations > 0)
}
