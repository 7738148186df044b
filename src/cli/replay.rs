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
use crate::replay::{crosses_rate_limit, live_answers, ms, schedule, summary, Answer, FlowPlan, Live, Planner};
use crate::report::json::tagged;
use crate::session::rate_limit::PEER_ANSWER_RATE_LIMIT_NS;
use crate::units::{count, format_duration, parse_duration};
use anyhow::{anyhow, Result};
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

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
    /// Data a connection sends first when the capture's prober had sent
    /// data (so that a 1-byte probe's byte is data the peer holds); make it
    /// something the peer's application accepts.
    #[arg(long, default_value = "kaprobe replay", value_name = "DATA")]
    pub send: String,
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// JSON Lines: a `replayed` object per probe, a `replayed_flow` per flow,
    /// a `not_replayed` per flow whose session failed, a `replay` object last.
    #[arg(long)]
    pub json: bool,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches(['x', '×']).parse::<f64>() {
        Ok(v) if (1e-3..=1e6).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s}: a factor from 0.001 to 1000000, e.g. 10 (ten times faster) or 0.5"
        )),
    }
}

pub fn run(args: &ReplayArgs) -> u8 {
    match replay(args) {
        Ok(r) if r.different > 0 || r.unresolved > 0 => exit::VERDICT,
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
    /// `null` when unresolved: see `unresolved`.
    live: Option<Answer>,
    /// Why there is no live answer to compare: `not sent` (the session
    /// failed, or the run stopped first) or `cut short` (the run stopped
    /// before its wait ran out).
    #[serde(skip_serializing_if = "Option::is_none")]
    unresolved: Option<&'static str>,
    same: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    difference: Option<&'static str>,
}

impl Row {
    /// "same", how it differs, or why it could not be compared.
    fn verdict(&self) -> &'static str {
        match (self.same, self.difference, self.unresolved) {
            (true, _, _) => "same",
            (_, Some(d), _) => d,
            (_, None, Some(why)) => why,
            _ => "different",
        }
    }
}

/// A flow whose live session failed. JSON: `{"type": "not_replayed", …}`.
#[derive(Serialize)]
struct Failed {
    flow: u64,
    endpoints: String,
    why: String,
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
    /// Probes without a live answer to compare (not sent, or cut short).
    unresolved: usize,
    /// Flows whose session failed.
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
        return Err(anyhow!("{name}: no flow with keepalive probes{which} to replay"));
    }
    warn_rate_limit(plans, args.speed);
    let schedules: Vec<_> = plans.iter().map(|p| schedule(p, args.speed)).collect();
    let last = schedules.iter().filter_map(|s| s.last().map(|step| step.1)).max();
    let scripts = plans
        .iter()
        .zip(schedules)
        .map(|(p, steps)| {
            let send = if p.prober_data {
                args.send.clone().into_bytes()
            } else {
                Vec::new()
            };
            Script::timed("replay", steps, args.max_wait).as_probes().sending(send)
        })
        .collect();
    if io::stderr().is_terminal() {
        // A capture's idle can be hours: say how long this takes.
        let probes: usize = plans.iter().map(|p| p.probes.len()).sum();
        eprintln!(
            "kaprobe: replaying {} of {}; the last goes about {} after the peer was last heard on its connection, then answers are awaited {} (Ctrl-C stops with what was seen)",
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
    } = run_scripts(&args.to, &args.capture, Vec::new(), scripts)?;
    if collect.errors.len() == plans.len() {
        if let Some(e) = collect.errors.values().next() {
            return Err(anyhow!("{e}"));
        }
    }
    let mut rows = Vec::new();
    let mut flows = Vec::new();
    let mut failed = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        let id = i as SessionId + 1;
        if let Some(e) = collect.errors.remove(&id) {
            failed.push(Failed {
                flow: p.id,
                endpoints: p.flow.clone(),
                why: e,
            });
        }
        let seen = collect.cases.remove(&id).unwrap_or_default();
        let live = live_answers(p, seen.sent.len(), &seen.answers, seen.complete);
        let (mut flow, probe_rows) = compare(p, live);
        if let Some((how, after)) = seen.peer_closed {
            let when = match after {
                0 => "before the first probe".to_string(),
                n => format!("after {}", count(n as u64, "probe")),
            };
            flow.notes.push(format!(
                "the peer closed the connection live ({how}) {when}: the answers after that say nothing of its keepalive"
            ));
        }
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
        unresolved: all().filter(|r| r.live.is_none()).count(),
        not_replayed: failed.len(),
        without_keepalive: planner.without_keepalive,
        interrupted,
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    if args.json {
        json(&mut out, &failed, &flows, &rows, &report)?;
    } else {
        human(&mut out, &failed, &flows, &rows, &report)?;
    }
    out.flush()?;
    Ok(report)
}

/// A flow's rows, capture against live, and the flow's line.
fn compare(p: &FlowPlan, live: Vec<Live>) -> (FlowRow, Vec<Row>) {
    let rows: Vec<Row> = p
        .probes
        .iter()
        .zip(live)
        .map(|(probe, live)| {
            let (live, unresolved) = match live {
                Live::Answered(a) => (Some(a), None),
                Live::NotSent => (None, Some("not sent")),
                Live::CutShort => (None, Some("cut short")),
            };
            let difference = live.as_ref().and_then(|l| probe.capture.difference(l));
            Row {
                flow: p.id,
                frame: probe.frame,
                probe: probe.shape(),
                at_s: ms(probe.at_ns) / 1e3,
                capture: probe.capture,
                same: live.is_some() && difference.is_none(),
                live,
                unresolved,
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

fn json(out: &mut impl Write, failed: &[Failed], flows: &[FlowRow], rows: &[Vec<Row>], r: &Report) -> Result<()> {
    for f in failed {
        tagged(out, "not_replayed", f)?;
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

fn human(out: &mut impl Write, failed: &[Failed], flows: &[FlowRow], rows: &[Vec<Row>], r: &Report) -> Result<()> {
    let speed = if r.speed == 1.0 {
        String::new()
    } else {
        format!(" at {}× speed (times below are the capture's)", r.speed)
    };
    writeln!(out, "replay {} to {}{speed}", r.capture, r.to)?;
    for f in failed.iter().take(SHOWN_IN_FULL) {
        writeln!(out, "  not replayed: flow {} {}: {}", f.flow, f.endpoints, f.why)?;
    }
    if let Some(more) = failed.len().checked_sub(SHOWN_IN_FULL).filter(|&n| n > 0) {
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
            let verdict = match (row.same, row.live) {
                (false, Some(_)) => format!("DIFFERENT: {}", row.verdict()),
                _ => row.verdict().to_string(),
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
        "summary: {}, {}: {} same, {} different, {} unresolved{interrupted}",
        count(r.flows as u64, "flow"),
        count(r.probes as u64, "probe"),
        r.same,
        r.different,
        r.unresolved
    )?;
    Ok(())
}

/// Flows grouped by what happened: the capture's and live keepalive in a
/// word and each probe's verdict, with how many and the first of each.
fn groups(out: &mut impl Write, flows: &[FlowRow], rows: &[Vec<Row>]) -> io::Result<()> {
    let mut groups: BTreeMap<(&str, &str, String), (usize, u64)> = BTreeMap::new();
    for (f, rows) in flows.iter().zip(rows) {
        let verdicts: Vec<&str> = rows.iter().map(Row::verdict).collect();
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

/// One warning line, however many flows it concerns (at a given speed they
/// usually all do): the speed brings a probe within a Linux peer's answer
/// limit of an answered one, where the capture's timing did not.
fn warn_rate_limit(plans: &[FlowPlan], speed: f64) {
    let crossing: Vec<(u64, u64)> = plans
        .iter()
        .filter_map(|p| Some((p.id, crosses_rate_limit(p, speed)?)))
        .collect();
    let limit = format_duration(PEER_ANSWER_RATE_LIMIT_NS);
    match crossing[..] {
        [] => {}
        [(flow, frame)] => eprintln!(
            "kaprobe: warning: at --speed {speed}, the probe of frame {frame} (flow {flow}) comes within {limit} of an answered one: a Linux peer leaves it unanswered"
        ),
        [(flow, frame), ..] => eprintln!(
            "kaprobe: warning: at --speed {speed}, {} flows have a probe within {limit} of an answered one (the first: frame {frame}, flow {flow}): a Linux peer leaves such probes unanswered",
            crossing.len()
        ),
    }
}
