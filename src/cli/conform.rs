//! `kaprobe conform HOST:PORT`: a battery of probe variants sent to a live
//! peer, each case on a connection of its own, with what came back against
//! what RFC 9293 and Linux lead one to expect (`crate::conform`).

use super::exit;
use super::probe::{open_connect, CaptureArgs, Connect};
use crate::conform::{answer, Case, Got, Kind, Sent, CASES, GAP_MS};
use crate::keepalive;
use crate::live::engine::{self, Control, Orders, Spec};
use crate::live::session::{Script, ScriptSeen};
use crate::live::{Event, Mode, SessionId, Shared, Sink, Start, Summary, Verdict};
use crate::units::parse_duration;
use anyhow::{anyhow, Result};
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

const MS: u64 = 1_000_000;

#[derive(Args, Debug)]
pub struct ConformArgs {
    /// The peer to test (a connection is opened to it per case).
    #[arg(value_name = "HOST:PORT")]
    pub target: String,
    /// Run only this case (repeat for several); the default runs them all.
    #[arg(long = "case", value_name = "NAME")]
    pub cases: Vec<String>,
    /// Data each connection sends first, so that data was exchanged (a 1-byte
    /// probe then overlaps received data; 4.2BSD's probe needs it).
    #[arg(long, default_value = "kaprobe conform", value_name = "DATA")]
    pub send: String,
    /// How long to wait for answers after a case's last segment.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub wait: u64,
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// JSON Lines: a `case` object per case, a `conformance` object last.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ConformArgs) -> u8 {
    match conform(args) {
        // Interrupted, or the style kaprobe probes with by default went unanswered.
        Ok(r) if r.interrupted || r.default_unanswered => exit::VERDICT,
        Ok(_) => exit::OK,
        Err(e) => {
            let _ = io::stdout().flush();
            eprintln!("kaprobe: {e:#}");
            exit::USAGE
        }
    }
}

/// One case's result. JSON: `{"type": "case", …}`.
#[derive(Serialize)]
struct CaseResult {
    name: &'static str,
    about: &'static str,
    /// Per segment sent: what came back, and what a Linux peer does.
    observed: Vec<&'static str>,
    expected: Vec<&'static str>,
    /// `as_expected`, `deviates`, or `skipped` (needs timestamps, not negotiated; or not run).
    verdict: &'static str,
    rtt_ms: Vec<Option<f64>>,
    sent: Vec<Sent>,
    answers: Vec<Option<Got>>,
    /// Per segment sent: further segments the peer sent after its answer and
    /// before the next segment sent (or the end): a stack that answers twice.
    more_segments: Vec<u32>,
    #[serde(skip)]
    kinds: Vec<Kind>,
}

/// The run. JSON: `{"type": "conformance", …}`.
#[derive(Serialize)]
struct Report {
    peer: String,
    timestamps: Option<bool>,
    sack: Option<bool>,
    /// Styles whose probe the peer answered (`--style` names).
    styles_answered: Vec<&'static str>,
    /// Cases whose answers were not what a Linux peer gives: "name: expected …, observed …".
    deviations: Vec<String>,
    /// Stopped (Ctrl-C) before every case finished: those are `skipped`.
    interrupted: bool,
    #[serde(skip)]
    default_unanswered: bool,
}

/// Collects each scripted session's segments and negotiated options
/// (`conform`'s cases, `replay`'s flows).
#[derive(Default)]
pub(super) struct Collect {
    /// Session → (timestamps, sack) from its `session` event.
    pub options: BTreeMap<SessionId, (Option<bool>, Option<bool>)>,
    /// Session → what its script sent and saw.
    pub cases: BTreeMap<SessionId, ScriptSeen>,
    /// Session → why it could not be set up.
    pub errors: BTreeMap<SessionId, String>,
}

impl Sink for Collect {
    fn event(&mut self, s: SessionId, ev: &Event) {
        match ev {
            Event::Session { info, .. } => {
                self.options.insert(s, (info.timestamps, info.sack));
            }
            Event::Case { seen, .. } => {
                self.cases.insert(s, seen.clone());
            }
            Event::Verdict(v) => {
                if let Some(e) = &v.error {
                    self.errors.insert(s, e.clone());
                }
            }
            _ => {}
        }
    }

    fn summary(&mut self, _: &Summary) {}
}

/// What sessions that run scripts share: they connect, send `send` first
/// (if any), and never probe or abort on their own.
fn scripted(send: Vec<u8>, c: &Connect) -> Shared {
    Shared {
        mode: Mode::Connect,
        ka: keepalive::Config::default(),
        style: keepalive::Style::Linux,
        payload: None,
        send,
        rounds: None,
        no_abort: true,
        provoke: false,
        ready_timeout: 3_000 * MS,
        connect_timeout: 5_000 * MS,
        idle_from_any: false,
        device: c.capture.device.clone(),
        link: c.capture.link.name(),
        single: false,
    }
}

/// What a run of scripted sessions saw: the peer, each session's
/// segments, and whether the run was stopped (Ctrl-C) before all finished.
pub(super) struct Scripted {
    pub remote: SocketAddr,
    pub collect: Collect,
    pub interrupted: bool,
}

/// One session per script (session ids in their order, from 1) to `target`,
/// all at once on the engine, each sending `send` first (unless its script
/// says otherwise). Sessions that could not be set up are in `errors`.
pub(super) fn run_scripts(
    target: &str,
    capture: &CaptureArgs,
    send: Vec<u8>,
    scripts: Vec<Script>,
) -> Result<Scripted> {
    let stop = Arc::new(AtomicBool::new(false));
    let c = open_connect(
        std::slice::from_ref(&target.to_string()),
        capture.interface.as_deref(),
        scripts.len(),
        capture.pcap.as_deref(),
        &stop,
    )?;
    let remote = c.targets[0];
    let specs = scripts
        .into_iter()
        .map(|script| Spec {
            start: Start::Connect { remote, bind_port: 0 },
            ka: keepalive::Config::default(),
            rounds: None,
            script: Some(Box::new(script)),
        })
        .collect();
    let shared = scripted(send, &c);
    let setup = c.setup(shared, stop.clone());
    let mut collect = Collect::default();
    engine::run(setup, &mut collect, &mut Battery { specs })?;
    Ok(Scripted {
        remote,
        collect,
        interrupted: stop.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// Every session, added at the first turn.
struct Battery {
    specs: Vec<Spec>,
}

impl Control for Battery {
    fn turn(&mut self, _: u64, _: &[(SessionId, Verdict)]) -> Orders {
        Orders {
            add: std::mem::take(&mut self.specs),
            stop: Vec::new(),
            finished: true,
        }
    }
}

fn conform(args: &ConformArgs) -> Result<Report> {
    let cases: Vec<&'static Case> = if args.cases.is_empty() {
        CASES.iter().collect()
    } else {
        args.cases
            .iter()
            .map(|n| {
                CASES.iter().find(|c| c.name == n).ok_or_else(|| {
                    let names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
                    anyhow!("--case {n}: no such case (cases: {})", names.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    let scripts = cases
        .iter()
        .map(|case| {
            let steps = case.steps.iter().map(|(v, _)| *v).collect();
            Script::new(case.name, steps, GAP_MS * MS, args.wait)
        })
        .collect();
    let send = args.send.clone().into_bytes();
    let Scripted {
        remote,
        mut collect,
        interrupted,
    } = run_scripts(&args.target, &args.capture, send, scripts)?;
    if let Some(e) = collect.errors.values().next() {
        return Err(anyhow!("{e}"));
    }
    let (mut ts, mut sack) = (None, None);
    let mut results = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let id = i as SessionId + 1;
        let (t, s) = collect.options.get(&id).copied().unwrap_or((None, None));
        ts = ts.or(t);
        sack = sack.or(s);
        let seen = collect.cases.remove(&id).unwrap_or_default();
        results.push(judge(case, seen, t, s));
    }
    let styles_answered: Vec<&'static str> = results
        .iter()
        .filter(|r| r.name.starts_with("style_") && r.verdict != "skipped")
        .filter(|r| !r.kinds.is_empty() && r.kinds.iter().all(|k| k.answered()))
        .map(|r| r.name.trim_start_matches("style_"))
        .collect();
    let deviations = results
        .iter()
        .filter(|r| r.verdict == "deviates")
        .map(|r| {
            format!(
                "{}: expected {}, observed {}",
                r.name,
                r.expected.join(" then "),
                r.observed.join(" then ")
            )
        })
        .collect();
    let default = format!("style_{}", keepalive::Style::Linux.name());
    let default_unanswered = results.iter().any(|r| {
        r.name == default && r.verdict != "skipped" && !styles_answered.contains(&keepalive::Style::Linux.name())
    });
    let report = Report {
        peer: crate::keepalive::track::fmt_addr(remote),
        timestamps: ts,
        sack,
        styles_answered,
        deviations,
        interrupted,
        default_unanswered,
    };
    print(args.json, &results, &report)?;
    Ok(report)
}

fn judge(case: &Case, seen: ScriptSeen, ts: Option<bool>, sack: Option<bool>) -> CaseResult {
    let ScriptSeen {
        sent, got, complete, ..
    } = seen;
    // Stopped early (Ctrl-C): an answer may still have been on its way.
    let skipped = (case.needs_ts && ts != Some(true)) || !complete;
    let mut observed = Vec::new();
    let mut kinds = Vec::new();
    let mut answers = Vec::new();
    let mut rtt = Vec::new();
    let mut more_segments = Vec::new();
    for (k, s) in sent.iter().enumerate() {
        let (kind, g, more) = answer(case.steps[k].0, s, sent.get(k + 1), &got);
        more_segments.push(more);
        observed.push(kind.name());
        kinds.push(kind);
        rtt.push(g.map(|g| (g.time_ns.saturating_sub(s.time_ns) as f64 / 1e3).round() / 1e3));
        answers.push(g);
    }
    let expected: Vec<&'static str> = case
        .steps
        .iter()
        .map(|(_, e)| e.kind(sack == Some(true)).name())
        .collect();
    let verdict = if skipped {
        "skipped"
    } else if observed == expected {
        "as_expected"
    } else {
        "deviates"
    };
    CaseResult {
        name: case.name,
        about: case.about,
        observed,
        expected,
        verdict,
        rtt_ms: rtt,
        sent,
        answers,
        more_segments,
        kinds,
    }
}

fn print(json: bool, results: &[CaseResult], r: &Report) -> Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    if json {
        #[derive(Serialize)]
        #[serde(tag = "type", rename = "case")]
        struct C<'a> {
            #[serde(flatten)]
            c: &'a CaseResult,
        }
        #[derive(Serialize)]
        #[serde(tag = "type", rename = "conformance")]
        struct R<'a> {
            #[serde(flatten)]
            r: &'a Report,
        }
        for c in results {
            writeln!(out, "{}", serde_json::to_string(&C { c })?)?;
        }
        writeln!(out, "{}", serde_json::to_string(&R { r })?)?;
        out.flush()?;
        return Ok(());
    }
    let onoff = |b: Option<bool>| match b {
        Some(true) => "on",
        Some(false) => "off",
        None => "unknown",
    };
    writeln!(
        out,
        "conform {}: timestamps {}, SACK {}",
        r.peer,
        onoff(r.timestamps),
        onoff(r.sack)
    )?;
    writeln!(
        out,
        "{:<28} {:<26} {:<26} {:>9}  verdict",
        "case", "expected (Linux)", "observed", "rtt"
    )?;
    for c in results {
        let rtt = c
            .rtt_ms
            .first()
            .copied()
            .flatten()
            .map_or("-".into(), |v| format!("{v:.3}ms"));
        // "ack ×2": the peer sent another segment after its answer.
        let observed: Vec<String> = c
            .observed
            .iter()
            .zip(&c.more_segments)
            .map(|(o, &more)| {
                if more > 0 {
                    format!("{o} ×{}", more + 1)
                } else {
                    o.to_string()
                }
            })
            .collect();
        writeln!(
            out,
            "{:<28} {:<26} {:<26} {:>9}  {}",
            c.name,
            c.expected.join(", "),
            observed.join(", "),
            rtt,
            c.verdict
        )?;
    }
    writeln!(out, "styles answered: {}", r.styles_answered.join(", "))?;
    if r.deviations.is_empty() {
        writeln!(out, "deviations from Linux: none")?;
    } else {
        writeln!(out, "deviations from Linux:")?;
        for d in &r.deviations {
            writeln!(out, "  {d}")?;
        }
    }
    out.flush()?;
    Ok(())
}
