//! `kaprobe replay CAPTURE --to HOST:PORT`: each flow's keepalive in a
//! capture, as `verify` reads it, re-enacted on a live session per flow
//! (its probes rebuilt on the live seq/ack at the capture's times), and the
//! live answers set against the capture's.

use super::conform::{run_scripts, Scripted};
use super::exit;
use super::probe::CaptureArgs;
use crate::analyze::{Analyzer, Config, Events, FlowFilter};
use crate::capture::read_file;
use crate::live::session::Script;
use crate::live::SessionId;
use crate::replay::{crosses_rate_limit, live_answers, ms, schedule, summary, Answer, FlowPlan, Planner};
use crate::report::json::tagged;
use crate::units::{count, format_duration, parse_duration};
use anyhow::{anyhow, Result};
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// What a live session sends first when the capture's prober had sent data,
/// so that its probe's byte is data the peer holds.
const DATA: &[u8] = b"kaprobe replay";

/// Up to this many flows, the human output shows every one's probes; beyond,
/// those of flows that differ.
const SHOWN_IN_FULL: usize = 10;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The capture whose keepalive to replay (pcap or pcapng).
    #[arg(value_name = "CAPTURE")]
    pub file: PathBuf,
    /// The live peer: one connection is opened to it per replayed flow.
    #[arg(long, value_name = "HOST:PORT")]
    pub to: String,
    /// Only flows matching, as in `verify --flow`.
    #[arg(long, value_name = "FILTER", value_parser = |s: &str| FlowFilter::parse(s))]
    pub flow: Option<FlowFilter>,
    /// Play the capture's times this many times faster (10 makes a 75 s
    /// interval 7.5 s).
    #[arg(long, default_value = "1", value_parser = parse_speed, value_name = "X")]
    pub speed: f64,
    /// How long to wait for answers after a flow's last probe.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub max_wait: u64,
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// JSON Lines: a `replayed` object per probe, a `replayed_flow` per flow,
    /// a `not_replayed` per flow that cannot be, a `replay` object last.
    #[arg(long)]
    pub json: bool,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches(['x', '×']).parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e6 => Ok(v),
        _ => Err(format!("{s}: a factor above 0, e.g. 10 (ten times faster) or 0.5")),
    }
}

pub fn run(args: &ReplayArgs) -> u8 {
    match replay(args) {
        Ok(r) if r.different > 0 || r.not_sent > 0 => exit::VERDICT,
        Ok(_) => exit::OK,
        Err(e) => {
            let _ = io::stdout().flush();
            eprintln!("kaprobe: {e:#}");
            exit::USAGE
        }
    }
}

/// The capture's keepalive, flow by flow, from `verify`'s analysis.
pub fn plan(path: &Path, filter: Option<FlowFilter>) -> Result<Planner> {
    let cfg = Config {
        events: Events::All,
        filter,
        ..Config::default()
    };
    let mut an = Analyzer::new(cfg);
    let mut planner = Planner::default();
    read_file(path, |rec| {
        if let Some(link) = rec.link {
            an.frame(rec.frame, rec.time, link, rec.data, rec.snapped(), &mut planner);
        }
    })?;
    an.finish(&mut planner);
    Ok(planner)
}

/// One probe, capture against live. JSON: `{"type": "replayed", …}`.
#[derive(Serialize)]
struct Row {
    flow: u64,
    frame: u64,
    /// "0 bytes", "1 byte 0x00, no TSopt", …
    probe: String,
    /// Seconds after the last segment the prober received, in the capture.
    at_s: f64,
    capture: Answer,
    /// `null`: not sent (the run was interrupted or the session failed).
    live: Option<Answer>,
    same: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    difference: Option<&'static str>,
}

/// One flow. JSON: `{"type": "replayed_flow", …}`.
#[derive(Serialize)]
struct FlowRow {
    flow: u64,
    endpoints: String,
    prober: String,
    /// `verify`'s outcome for the flow in the capture.
    capture_outcome: String,
    /// Its keepalive in a word (`alive`, `unanswered`, `reset`), capture and live.
    capture: &'static str,
    live: &'static str,
    probes: usize,
    same: bool,
    /// What the replay left out or assumed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

/// The run. JSON: `{"type": "replay", …}`.
#[derive(Serialize)]
struct Report {
    capture: String,
    to: String,
    speed: f64,
    flows: usize,
    probes: usize,
    same: usize,
    different: usize,
    not_sent: usize,
    not_replayed: usize,
    without_keepalive: u64,
    interrupted: bool,
}

fn replay(args: &ReplayArgs) -> Result<Report> {
    let name = args.file.display().to_string();
    let planner = plan(&args.file, args.flow.clone())?;
    let plans = &planner.plans;
    if plans.is_empty() {
        let which = if args.flow.is_some() { " matching --flow" } else { "" };
        let why = match planner.not_replayed.first() {
            Some(n) => format!(" (flow {}: {})", n.id, n.why),
            None => String::new(),
        };
        return Err(anyhow!("{name}: no flow with keepalive probes{which} to replay{why}"));
    }
    let crossing: Vec<(u64, u64)> = plans
        .iter()
        .filter_map(|p| Some((p.id, crosses_rate_limit(p, args.speed)?)))
        .collect();
    // One line however many flows: at a given speed they usually all do.
    match crossing[..] {
        [] => {}
        [(flow, frame)] => eprintln!(
            "kaprobe: warning: at --speed {}, the probe of frame {frame} (flow {flow}) comes within 500 ms of an answered one: a Linux peer leaves it unanswered",
            args.speed
        ),
        [(flow, frame), ..] => eprintln!(
            "kaprobe: warning: at --speed {}, {} flows have a probe within 500 ms of an answered one (the first: frame {frame}, flow {flow}): a Linux peer leaves such probes unanswered",
            args.speed,
            crossing.len()
        ),
    }
    let send = if plans.iter().any(|p| p.prober_data) {
        DATA.to_vec()
    } else {
        Vec::new()
    };
    let scripts = plans
        .iter()
        .map(|p| Script::timed("replay", schedule(p, args.speed), args.max_wait).as_probes())
        .collect();
    if io::stderr().is_terminal() {
        // A capture's idle can be hours: say how long this takes.
        let last = plans
            .iter()
            .filter_map(|p| schedule(p, args.speed).last().map(|s| s.1))
            .max();
        let probes: usize = plans.iter().map(|p| p.probes.len()).sum();
        eprintln!(
            "kaprobe: replaying {} of {}; the last goes about {} after its connection is up, then answers are awaited {} (Ctrl-C stops with what was seen)",
            count(probes as u64, "probe"),
            count(plans.len() as u64, "flow"),
            format_duration(last.unwrap_or(0)),
            format_duration(args.max_wait)
        );
    }
    let Scripted {
        remote,
        mut collect,
        interrupted,
    } = run_scripts(&args.to, &args.capture, send, scripts)?;
    let mut rows = Vec::new();
    let mut flows = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        let id = i as SessionId + 1;
        let sent = collect.cases.remove(&id).map_or(0, |(sent, _)| sent.len());
        let answers = collect.answers.remove(&id).unwrap_or_default();
        let (flow, probe_rows) = compare(p, live_answers(p, sent, &answers));
        flows.push(flow);
        rows.push(probe_rows);
    }
    let all = || rows.iter().flatten();
    let report = Report {
        capture: name,
        to: crate::keepalive::track::fmt_addr(remote),
        speed: args.speed,
        flows: plans.len(),
        probes: all().count(),
        same: all().filter(|r| r.same).count(),
        different: all().filter(|r| !r.same && r.live.is_some()).count(),
        not_sent: all().filter(|r| r.live.is_none()).count(),
        not_replayed: planner.not_replayed.len(),
        without_keepalive: planner.without_keepalive,
        interrupted,
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    if args.json {
        json(&mut out, &planner, &flows, &rows, &report)?;
    } else {
        human(&mut out, &planner, &flows, &rows, &report)?;
    }
    out.flush()?;
    Ok(report)
}

/// A flow's rows, capture against live, and the flow's line.
fn compare(p: &FlowPlan, live: Vec<Option<Answer>>) -> (FlowRow, Vec<Row>) {
    let rows: Vec<Row> = p
        .probes
        .iter()
        .zip(live)
        .map(|(probe, live)| {
            let difference = live.as_ref().and_then(|l| probe.capture.difference(l));
            Row {
                flow: p.id,
                frame: probe.frame,
                probe: probe.shape(),
                at_s: ms(probe.at_ns) / 1e3,
                capture: probe.capture,
                same: live.is_some() && difference.is_none(),
                live,
                difference,
            }
        })
        .collect();
    let flow = FlowRow {
        flow: p.id,
        endpoints: p.flow.clone(),
        prober: p.prober.clone(),
        capture_outcome: p.outcome.clone(),
        capture: summary(p.probes.iter().map(|x| x.capture.kind)),
        live: summary(rows.iter().filter_map(|r| r.live.map(|l| l.kind))),
        probes: rows.len(),
        same: rows.iter().all(|r| r.same),
        notes: p.notes.clone(),
    };
    (flow, rows)
}

fn json(out: &mut impl Write, planner: &Planner, flows: &[FlowRow], rows: &[Vec<Row>], r: &Report) -> Result<()> {
    for n in &planner.not_replayed {
        let v = serde_json::json!({"flow": n.id, "endpoints": n.flow, "why": n.why});
        tagged(out, "not_replayed", &v)?;
    }
    for (f, rows) in flows.iter().zip(rows) {
        for row in rows {
            tagged(out, "replayed", row)?;
        }
        tagged(out, "replayed_flow", f)?;
    }
    tagged(out, "replay", r)?;
    Ok(())
}

fn human(out: &mut impl Write, planner: &Planner, flows: &[FlowRow], rows: &[Vec<Row>], r: &Report) -> Result<()> {
    let speed = if r.speed == 1.0 {
        String::new()
    } else {
        format!(" at {}× speed (times below are the capture's)", r.speed)
    };
    writeln!(out, "replay {} to {}{speed}", r.capture, r.to)?;
    for n in planner.not_replayed.iter().take(SHOWN_IN_FULL) {
        writeln!(out, "  not replayed: flow {} {}: {}", n.id, n.flow, n.why)?;
    }
    if let Some(more) = planner.not_replayed.len().checked_sub(SHOWN_IN_FULL).filter(|&n| n > 0) {
        writeln!(
            out,
            "  … {} more not replayed (--json lists each)",
            count(more as u64, "flow")
        )?;
    }
    if r.without_keepalive > 0 {
        let n = count(r.without_keepalive, "flow");
        writeln!(out, "  {n} without keepalive probes: nothing to replay")?;
    }
    let all = flows.len() <= SHOWN_IN_FULL;
    if !all {
        groups(out, flows, rows)?;
    }
    let answer = |a: &Answer| match a.rtt_ns {
        Some(rtt) => format!("{} {:.3}ms", a.kind.name(), ms(rtt)),
        None => a.kind.name().to_string(),
    };
    // Many flows: the first that differ in full, after the groups.
    let shown = flows.iter().zip(rows).filter(|(f, _)| all || !f.same);
    for (f, rows) in shown.take(SHOWN_IN_FULL) {
        writeln!(out)?;
        writeln!(
            out,
            "flow {}: {} ({} probes; capture: {}, flow {}; live: {})",
            f.flow, f.endpoints, f.prober, f.capture, f.capture_outcome, f.live
        )?;
        for n in &f.notes {
            writeln!(out, "  note: {n}")?;
        }
        writeln!(
            out,
            "  {:>7}  {:>9}  {:<18}  {:<20}  {:<20}  verdict",
            "frame", "at", "probe", "capture", "live"
        )?;
        for row in rows {
            let live = row.live.as_ref().map_or("not sent".into(), answer);
            let verdict = match (row.same, row.difference, &row.live) {
                (true, _, _) => "same".to_string(),
                (_, Some(d), _) => format!("DIFFERENT: {d}"),
                (_, None, None) => "not sent".into(),
                _ => "DIFFERENT".into(),
            };
            writeln!(
                out,
                "  {:>7}  {:>8.3}s  {:<18}  {:<20}  {:<20}  {verdict}",
                row.frame,
                row.at_s,
                row.probe,
                answer(&row.capture),
                live
            )?;
        }
    }
    let differ = flows.iter().filter(|f| !f.same).count();
    if let Some(more) = differ.checked_sub(SHOWN_IN_FULL).filter(|&n| n > 0 && !all) {
        writeln!(out)?;
        let n = count(more as u64, "flow");
        writeln!(
            out,
            "… {n} more that differ: --flow picks one, --json lists every probe"
        )?;
    }
    writeln!(out)?;
    let interrupted = if r.interrupted { " (interrupted)" } else { "" };
    writeln!(
        out,
        "summary: {}, {}: {} same, {} different, {} not sent{interrupted}",
        count(r.flows as u64, "flow"),
        count(r.probes as u64, "probe"),
        r.same,
        r.different,
        r.not_sent
    )?;
    Ok(())
}

/// Flows grouped by what happened: the capture's and live keepalive in a
/// word and each probe's verdict, with how many and the first of each.
fn groups(out: &mut impl Write, flows: &[FlowRow], rows: &[Vec<Row>]) -> io::Result<()> {
    let mut groups: BTreeMap<(&str, &str, String), (usize, u64)> = BTreeMap::new();
    for (f, rows) in flows.iter().zip(rows) {
        let verdicts: Vec<&str> = rows
            .iter()
            .map(|r| match (r.same, r.difference, r.live) {
                (true, _, _) => "same",
                (_, Some(d), _) => d,
                (_, None, None) => "not sent",
                _ => "different",
            })
            .collect();
        // Runs of one verdict as "same ×3".
        let mut runs: Vec<(&str, usize)> = Vec::new();
        for v in verdicts {
            match runs.last_mut() {
                Some((last, n)) if *last == v => *n += 1,
                _ => runs.push((v, 1)),
            }
        }
        let runs: Vec<String> = runs
            .iter()
            .map(|&(v, n)| if n == 1 { v.to_string() } else { format!("{v} ×{n}") })
            .collect();
        let g = groups
            .entry((f.capture, f.live, runs.join(", ")))
            .or_insert((0, f.flow));
        g.0 += 1;
    }
    writeln!(out)?;
    writeln!(
        out,
        "  {:>7}  {:<11} {:<11} {:<44} first",
        "flows", "capture", "live", "per probe"
    )?;
    for ((capture, live, verdicts), (n, first)) in &groups {
        writeln!(out, "  {n:>7}  {capture:<11} {live:<11} {verdicts:<44} flow {first}")?;
    }
    Ok(())
}
