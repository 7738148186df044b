//! `kaprobe idle-timeout`: measures how long the path to HOST:PORT keeps an
//! idle connection, on the live engine: each test session connects, stays
//! silent for its idle time, then sends one keepalive probe; the schedule
//! (`crate::idle::schedule`) picks the idle times round by round; then one
//! session checks that the recommended keepalive idle keeps a connection.

use super::exit;
use super::probe::{open_connect, CaptureArgs};
use crate::explain::timing::PRESETS;
use crate::idle::schedule::{Resolution, Schedule};
use crate::idle::{recommended_idle_s, TestOutcome};
use crate::keepalive::{self, Style};
use crate::live::engine::{self, Control, Orders, Spec};
use crate::live::{Event, Mode, SessionId, Shared, Sink, Start, Summary, Verdict};
use crate::units::{format_duration, parse_duration};
use anyhow::{anyhow, Result};
use clap::Args;
use serde::Serialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

const SEC: u64 = 1_000_000_000;
/// Probes a test sends before it calls the flow dropped.
const PROBES_PER_TEST: u32 = 3;

#[derive(Args, Debug)]
pub struct IdleArgs {
    /// The server to test the path to (a connection is opened to it per test).
    #[arg(value_name = "HOST:PORT")]
    pub target: String,
    /// Longest idle time to test.
    #[arg(long, default_value = "30m", value_parser = parse_duration, value_name = "DURATION")]
    pub max: u64,
    /// How narrow the answer must be: a duration (5s) or a share of it (5%).
    #[arg(long, default_value = "5%", value_parser = parse_resolution, value_name = "DUR|PCT")]
    pub resolution: Resolution,
    /// Connections open at once (the tests of a round run in parallel).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(2..=10000))]
    pub sessions: u32,
    /// Application data each connection sends first.
    #[arg(long, value_name = "DATA")]
    pub send: Option<String>,
    /// How long to wait for the answer to a test's probe before calling it dropped.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub wait: u64,
    /// Skip checking that the recommended keepalive idle keeps a connection up.
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// JSON Lines: a `tested` object per test, an `idle_timeout` object last.
    #[arg(long)]
    pub json: bool,
}

fn parse_resolution(s: &str) -> Result<Resolution, String> {
    match s.strip_suffix('%') {
        Some(p) => match p.trim().parse::<f64>() {
            Ok(v) if v > 0.0 && v < 100.0 => Ok(Resolution::Pct(v / 100.0)),
            _ => Err(format!("'{s}': a share from 0% to 100% (exclusive)")),
        },
        None => parse_duration(s).and_then(|d| match d {
            0 => Err("must be more than 0".into()),
            d => Ok(Resolution::Abs(d)),
        }),
    }
}

pub fn run(args: &IdleArgs) -> u8 {
    match measure(args) {
        // Not completed (Ctrl-C), or the fix did not hold.
        Ok(a) if a.interrupted || a.verified == Some(false) => exit::VERDICT,
        Ok(_) => exit::OK,
        Err(e) => {
            let _ = io::stdout().flush();
            eprintln!("kaprobe: {e:#}");
            exit::USAGE
        }
    }
}

/// The final answer. JSON: `{"type": "idle_timeout", …}`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Answer {
    /// `timeout` (the path lost connections idle longer than `lower_s`),
    /// `none` (none lost up to `--max`), or `peer_close` (the server closed them first).
    pub outcome: &'static str,
    pub lower_s: Option<f64>,
    pub upper_s: Option<f64>,
    /// What the path did at the timeout: `drop`, `reset`, `peer_close`, or `none`.
    pub behaviour: &'static str,
    pub reset_by: Option<&'static str>,
    /// Tests run (cancelled ones not counted), and those that disagree with the bracket.
    pub sessions: u64,
    pub contradicting: u64,
    pub recommended_idle_s: Option<u64>,
    /// The recommended idle kept a connection up for twice the upper bound
    /// (`null`: not checked).
    pub verified: Option<bool>,
    pub elapsed_s: f64,
    /// Stopped (Ctrl-C) before the measurement completed: the bracket so far.
    pub interrupted: bool,
}

/// What the events of a test session said that its verdict does not.
#[derive(Default)]
struct Facts {
    /// Session → when its idle began (last segment before the test).
    idle_from: BTreeMap<SessionId, u64>,
    reset_by: BTreeMap<SessionId, &'static str>,
    closed_at: BTreeMap<SessionId, u64>,
}

/// Collects the facts; prints nothing (the control reports tests).
struct FactSink(Rc<RefCell<Facts>>);

impl Sink for FactSink {
    fn event(&mut self, s: SessionId, ev: &Event) {
        let mut f = self.0.borrow_mut();
        match ev {
            // Idle counts from the last segment before probing began.
            Event::Session {
                at, last_received_ns, ..
            } => {
                f.idle_from.insert(s, last_received_ns.unwrap_or(at.time_ns));
            }
            Event::ProbeReset { reset_by: Some(b), .. } | Event::PeerReset { reset_by: Some(b), .. } => {
                f.reset_by.insert(s, b);
            }
            Event::PeerClosed { at } => {
                f.closed_at.insert(s, at.time_ns);
            }
            _ => {}
        }
    }

    fn summary(&mut self, _: &Summary) {}
}

/// A test's line (JSON: `tested`).
#[derive(Serialize)]
struct Tested {
    #[serde(rename = "type")]
    kind: &'static str,
    session: SessionId,
    round: u32,
    idle_s: f64,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reset_by: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    closed_after_s: Option<f64>,
}

struct Measure<W: Write> {
    out: W,
    json: bool,
    status_line: bool,
    schedule: Schedule,
    facts: Rc<RefCell<Facts>>,
    remote: std::net::SocketAddr,
    wait: u64,
    verify: bool,
    /// Session id → index in the schedule's tests.
    tests: BTreeMap<SessionId, usize>,
    next_id: SessionId,
    verify_session: Option<(SessionId, u64, u64)>,
    verified: Option<bool>,
    refused: u64,
    first_error: Option<String>,
    started: Option<u64>,
    status_at: u64,
    /// When the current round's tests were added.
    round_at: u64,
}

impl<W: Write> Measure<W> {
    fn test_spec(&self, idle: u64) -> Spec {
        Spec {
            start: Start::Connect {
                remote: self.remote,
                bind_port: 0,
            },
            // A probe at the idle time, and two more `wait` apart while none is
            // answered: one lost probe or answer must not pass for a dropped
            // flow. (A later probe tests a longer idle, so an answer to it
            // still says the flow survived its idle.)
            ka: keepalive::Config {
                idle,
                interval: self.wait,
                count: PROBES_PER_TEST,
                user_timeout: None,
            },
            rounds: Some(1),
            script: None,
        }
    }

    fn record(&mut self, id: SessionId, v: &Verdict) {
        if self.verify_session.is_some_and(|(vid, ..)| vid == id) {
            self.verified = Some(v.outcome == crate::live::Outcome::Alive);
            return;
        }
        let Some(&i) = self.tests.get(&id) else {
            return;
        };
        if let Some(e) = &v.error {
            self.refused += 1;
            self.first_error.get_or_insert_with(|| e.clone());
            return;
        }
        let facts = self.facts.borrow();
        let reset_by = facts.reset_by.get(&id).copied();
        let closed_after = facts
            .closed_at
            .get(&id)
            .zip(facts.idle_from.get(&id))
            .map(|(c, from)| c.saturating_sub(*from));
        drop(facts);
        let t = &mut self.schedule.tests[i];
        if v.reason == crate::live::StopReason::Cancelled {
            t.cancelled = true;
            return;
        }
        let o = TestOutcome::of(v, reset_by, closed_after);
        t.outcome = Some(o);
        let (round, idle) = (t.round, t.idle);
        let line = Tested {
            kind: "tested",
            session: id,
            round,
            idle_s: idle as f64 / 1e9,
            outcome: o.name(),
            reset_by,
            closed_after_s: closed_after.map(|c| c as f64 / 1e9),
        };
        self.clear_status();
        if self.json {
            if let Ok(s) = serde_json::to_string(&line) {
                let _ = writeln!(self.out, "{s}");
            }
        } else {
            let by = reset_by.map_or(String::new(), |b| format!(" by the {b}"));
            let after = closed_after.map_or(String::new(), |c| format!(" after {}", format_duration(c)));
            let _ = writeln!(
                self.out,
                "  round {}  idle {:>9}  {}{by}{after}",
                line.round,
                format_duration(idle),
                o.name()
            );
        }
        let _ = self.out.flush();
    }

    fn clear_status(&mut self) {
        if self.status_line {
            let mut e = io::stderr().lock();
            let _ = write!(e, "\r\x1b[K");
        }
    }

    fn status(&mut self, now: u64) {
        if !self.status_line || now < self.status_at + SEC {
            return;
        }
        self.status_at = now;
        let tests = &self.schedule.tests;
        let waiting = tests.iter().filter(|t| t.outcome.is_none() && !t.cancelled);
        let (lo, up) = self.schedule.bracket();
        // The round ends when its longest test still needed has had its idle time and its wait.
        let last = waiting
            .clone()
            .map(|t| t.idle)
            .filter(|i| up.is_none_or(|u| *i <= u))
            .max();
        let end = last.map_or(String::new(), |i| {
            let left = (self.round_at + i + self.wait).saturating_sub(now);
            format!("; this round ends in about {}", format_duration(left.max(SEC / 10)))
        });
        let lost = tests.iter().filter(|t| t.outcome.is_some_and(|o| o.failed())).count();
        let survived = tests
            .iter()
            .filter(|t| t.outcome == Some(TestOutcome::Survived))
            .count();
        let b = |v: Option<u64>| v.map_or("?".to_string(), format_duration);
        let elapsed = now.saturating_sub(self.started.unwrap_or(now));
        let mut e = io::stderr().lock();
        let _ = write!(
            e,
            "\r\x1b[K{} elapsed; {} waiting, {survived} survived, {lost} lost; bracket {} … {}{end}",
            format_duration(elapsed),
            waiting.count(),
            b(lo),
            b(up)
        );
        let _ = e.flush();
    }
}

impl<W: Write> Control for Measure<W> {
    fn turn(&mut self, now: u64, ended: &[(SessionId, Verdict)]) -> Orders {
        self.started.get_or_insert(now);
        for (id, v) in ended {
            self.record(*id, v);
        }
        let mut orders = Orders::default();
        // The server refusing connections ends the measurement: its answer would be wrong.
        if self.refused > 0 {
            orders.stop = self.tests.keys().copied().collect();
            orders.finished = true;
            return orders;
        }
        for i in self.schedule.needless() {
            self.schedule.tests[i].cancelled = true;
            if let Some((&id, _)) = self.tests.iter().find(|(_, &k)| k == i) {
                orders.stop.push(id);
            }
        }
        if let Some((id, _, until)) = self.verify_session {
            if self.verified.is_none() && now >= until {
                orders.stop.push(id);
            }
            // The run ends with the check's verdict.
            orders.finished = self.verified.is_some();
            self.status(now);
            return orders;
        }
        let first = self.schedule.tests.len();
        for (k, idle) in self.schedule.next_round().into_iter().enumerate() {
            self.round_at = now;
            self.next_id += 1;
            self.tests.insert(self.next_id, first + k);
            orders.add.push(self.test_spec(idle));
        }
        if orders.add.is_empty() && self.schedule.done() {
            let (lower, upper) = self.schedule.bracket();
            // Keepalive cannot keep a connection the server closes itself.
            let path_timeout = self.answer(0, false).outcome == "timeout";
            let rec = recommended_idle_s(lower.unwrap_or(0) as f64 / 1e9);
            match (self.verify && path_timeout, upper, rec) {
                (true, Some(up), Some(rec)) => {
                    let idle = rec * SEC;
                    let mut spec = self.test_spec(idle);
                    spec.ka.count = 3;
                    spec.rounds = None;
                    self.next_id += 1;
                    self.verify_session = Some((self.next_id, idle, now + 2 * up + idle));
                    orders.add.push(spec);
                }
                _ => orders.finished = true,
            }
        }
        self.status(now);
        orders
    }
}

impl<W: Write> Measure<W> {
    fn answer(&self, elapsed: u64, interrupted: bool) -> Answer {
        let (lower, upper) = self.schedule.bracket();
        let s = |v: Option<u64>| v.map(|d| d as f64 / 1e9);
        // What happened at the upper bound: the test that set it.
        let at_upper = upper.and_then(|u| {
            self.schedule
                .tests
                .iter()
                .filter_map(|t| t.outcome.filter(TestOutcome::failed).map(|o| (o.failed_at(t.idle), o)))
                .find(|(at, _)| *at == u)
                .map(|(_, o)| o)
        });
        let (outcome, behaviour, reset_by) = match at_upper {
            None => ("none", "none", None),
            Some(TestOutcome::PeerClose { .. }) => ("peer_close", "peer_close", None),
            Some(TestOutcome::Reset { by_path }) => {
                ("timeout", "reset", by_path.map(|p| if p { "path" } else { "peer" }))
            }
            Some(_) => ("timeout", "drop", None),
        };
        Answer {
            outcome,
            lower_s: s(lower),
            upper_s: s(upper),
            behaviour,
            reset_by,
            sessions: self.schedule.tests.iter().filter(|t| t.outcome.is_some()).count() as u64,
            contradicting: self.schedule.contradicting().len() as u64,
            // A keepalive idle helps against the path's timeout, not the server's.
            recommended_idle_s: (outcome == "timeout")
                .then(|| recommended_idle_s(lower.unwrap_or(0) as f64 / 1e9))
                .flatten(),
            verified: self.verified,
            elapsed_s: elapsed as f64 / 1e9,
            interrupted,
        }
    }
}

fn measure(args: &IdleArgs) -> Result<Answer> {
    if args.max < 2 * SEC / 10 {
        return Err(anyhow!("--max: at least 200ms"));
    }
    if args.wait < SEC / 1000 {
        return Err(anyhow!("--wait: at least 1ms (how long a probe's answer may take)"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let per_round = args.sessions as usize;
    let c = open_connect(
        std::slice::from_ref(&args.target),
        args.capture.interface.as_deref(),
        per_round + 1,
        args.capture.pcap.as_deref(),
        &stop,
    )?;
    let remote = c.targets[0];
    let shared = Shared {
        mode: Mode::Connect,
        ka: keepalive::Config::default(),
        style: Style::Linux,
        payload: None,
        send: args.send.clone().unwrap_or_default().into_bytes(),
        rounds: Some(1),
        no_abort: false,
        provoke: false,
        ready_timeout: 3 * SEC,
        connect_timeout: 5 * SEC,
        idle_from_any: true,
        device: c.capture.device.clone(),
        link: c.capture.link.name(),
        single: false,
    };
    let setup = c.setup(shared, stop.clone());
    let facts = Rc::new(RefCell::new(Facts::default()));
    let stdout = io::stdout();
    let mut m = Measure {
        out: io::BufWriter::new(stdout.lock()),
        json: args.json,
        status_line: !args.json && io::stderr().is_terminal(),
        schedule: Schedule::new(args.max, args.resolution, per_round),
        facts: facts.clone(),
        remote,
        wait: args.wait,
        verify: !args.no_verify,
        tests: BTreeMap::new(),
        next_id: 0,
        verify_session: None,
        verified: None,
        refused: 0,
        first_error: None,
        started: None,
        status_at: 0,
        round_at: 0,
    };
    if !args.json {
        let _ = writeln!(
            m.out,
            "idle-timeout {}: idle times up to {}, {} connections at a time",
            crate::keepalive::track::fmt_addr(remote),
            format_duration(args.max),
            per_round
        );
    }
    let summary = engine::run(setup, &mut FactSink(facts), &mut m)?;
    m.clear_status();
    if m.refused > 0 {
        let open = m.schedule.tests.iter().filter(|t| t.outcome.is_some()).count();
        let err = m.first_error.clone().unwrap_or_default();
        return Err(match open {
            0 => anyhow!("{err}"),
            n => anyhow!("{err} (after {n} tests had run)"),
        });
    }
    let interrupted = stop.load(std::sync::atomic::Ordering::Relaxed);
    let a = m.answer((summary.elapsed_s * 1e9) as u64, interrupted);
    report(&mut m.out, &a, args.json)?;
    Ok(a)
}

fn report(out: &mut impl Write, a: &Answer, json: bool) -> Result<()> {
    if json {
        #[derive(Serialize)]
        #[serde(tag = "type", rename = "idle_timeout")]
        struct Tagged<'a> {
            #[serde(flatten)]
            a: &'a Answer,
        }
        writeln!(out, "{}", serde_json::to_string(&Tagged { a })?)?;
        out.flush()?;
        return Ok(());
    }
    let d = |s: Option<f64>| s.map_or("?".into(), |v| format_duration((v * 1e9) as u64));
    if a.interrupted {
        writeln!(out, "interrupted: the bracket so far")?;
    }
    match a.outcome {
        "none" => writeln!(
            out,
            "no timeout: every connection idle up to {} survived",
            d(a.lower_s)
        )?,
        "peer_close" => writeln!(
            out,
            "the server closes idle connections itself (FIN) after {} … {}: its own idle timeout, not the path's;\n  \
             keepalive probes carry no data and do not reset it: send application-level pings, or raise the server's timeout",
            d(a.lower_s),
            d(a.upper_s)
        )?,
        _ => writeln!(
            out,
            "timeout: connections idle {} survived, {} did not: the path {}{}",
            d(a.lower_s),
            d(a.upper_s),
            if a.behaviour == "reset" { "resets them (RST" } else { "drops them silently" },
            match (a.behaviour, a.reset_by) {
                ("reset", Some(b)) => format!(" from the {b})"),
                ("reset", None) => ")".into(),
                _ => String::new(),
            }
        )?,
    }
    writeln!(
        out,
        "  {} tests, {} contradicting the bracket{}; {:.1} s",
        a.sessions,
        a.contradicting,
        if a.contradicting > 0 { " (a lossy path?)" } else { "" },
        a.elapsed_s
    )?;
    if a.outcome == "timeout" && a.recommended_idle_s.is_none() {
        writeln!(
            out,
            "no keepalive fix: its idle counts whole seconds, 1 at least, and the path forgets sooner"
        )?;
    }
    if let Some(idle) = a.recommended_idle_s {
        writeln!(out, "fix: a keepalive idle of {idle} s or less, e.g.")?;
        for (name, title) in [("linux", "Linux"), ("go", "Go")] {
            if let Some(p) = PRESETS.iter().find(|p| p.name == name) {
                writeln!(out, "  {title}: {}", (p.fix)(idle))?;
            }
        }
        match a.verified {
            Some(true) => writeln!(out, "verified: a connection probed every {idle} s stayed up")?,
            Some(false) => writeln!(out, "NOT verified: a connection probed every {idle} s was lost")?,
            None => {}
        }
    }
    out.flush()?;
    Ok(())
}
