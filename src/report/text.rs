//! Human output: a table of flows with keepalive activity, then each flow's
//! keepalive timeline with absolute and relative sequence numbers.

use crate::analyze::{Connection, FlowReport, Kind, Step};
use crate::flow::Side;
use crate::units::{count, format_duration};
use std::io::{self, Write};

pub fn opt_dur(s: Option<f64>) -> String {
    s.map_or("-".into(), |v| format_duration((v * 1e9).round() as u64))
}

/// The per-file table, one row per reported flow.
pub fn flow_table<'a>(out: &mut impl Write, flows: impl IntoIterator<Item = &'a FlowReport>) -> io::Result<()> {
    let rows: Vec<[String; 11]> = flows
        .into_iter()
        .map(|r| {
            let rtt = r
                .directions
                .iter()
                .find_map(|d| d.rtt_ms)
                .map_or("-".into(), |x| format!("{:.2}ms", x.avg));
            let count = match (r.count, r.directions.iter().map(|d| d.count_at_least).max()) {
                (Some(c), _) => c.to_string(),
                (None, Some(l)) if l > 0 => format!(">={l}"),
                _ => "-".into(),
            };
            [
                r.flow_id.to_string(),
                r.flow.clone(),
                r.prober.to_string(),
                r.probes.to_string(),
                r.answered.to_string(),
                r.unanswered.to_string(),
                opt_dur(r.idle_s),
                opt_dur(r.interval_s),
                count,
                rtt,
                r.outcome_text().to_string(),
            ]
        })
        .collect();
    let head = [
        "flow",
        "endpoints",
        "prober",
        "probes",
        "answered",
        "unanswered",
        "idle",
        "interval",
        "count",
        "rtt",
        "outcome",
    ];
    aligned(out, &head, &rows)
}

/// A table under `head`, each column as wide as its widest cell, indented.
pub fn aligned<const N: usize>(out: &mut impl Write, head: &[&str; N], rows: &[[String; N]]) -> io::Result<()> {
    let mut width = head.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let mut s = String::new();
        for (i, c) in cells.enumerate() {
            s += &format!("{:<w$}  ", c, w = width[i]);
        }
        writeln!(out, "  {}", s.trim_end())
    };
    line(&mut head.iter().copied())?;
    for row in rows {
        line(&mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// One flow's keepalive events, probes to answers.
pub fn timeline(out: &mut impl Write, r: &FlowReport, c: &Connection, color: bool) -> io::Result<()> {
    writeln!(
        out,
        "\nflow {}: {}{}",
        r.flow_id,
        r.flow,
        if r.vlan.is_empty() {
            String::new()
        } else {
            format!(" vlan {:?}", r.vlan)
        }
    )?;
    for d in &r.directions {
        let rtt = d.rtt_ms.map_or(String::new(), |x| {
            format!(", rtt {:.3}/{:.3}/{:.3} ms min/avg/max", x.min, x.avg, x.max)
        });
        let est = |name: &str, e: Option<crate::analyze::Estimate>| {
            e.map_or(String::new(), |e| {
                format!(
                    ", {name} {} ({})",
                    format_duration((e.s * 1e9).round() as u64),
                    count(e.samples as u64, "sample")
                )
            })
        };
        let setting = d.count.map_or(String::new(), |c| format!(", count {c}"));
        writeln!(
            out,
            "  {} {}: {} answered, {} unanswered, {} reset{}{}{}{}",
            d.role,
            count(d.probes as u64, "probe"),
            d.answered,
            d.unanswered,
            d.resets,
            est("idle", d.idle),
            est("interval", d.interval),
            setting,
            rtt
        )?;
        if d.zero_window_probes > 0 {
            writeln!(
                out,
                "  {} {} zero-window probes (window 0: flow control, not keepalive)",
                d.role, d.zero_window_probes
            )?;
        }
    }
    if r.retransmissions > 0 {
        writeln!(
            out,
            "  {} probe-shaped retransmissions (1 byte never acknowledged: not keepalive)",
            r.retransmissions
        )?;
    }
    let roles = match c.client {
        Some(Side::Lo) => ["client", "server"],
        Some(Side::Hi) => ["server", "client"],
        None => ["a", "b"],
    };
    if !c.keepalive().timeline.is_empty() {
        writeln!(
            out,
            "  {:>7}  {:>10}  {:<6}  {:<17}  {:>21}  {:>21}  {:>3}  note",
            "frame", "time", "from", "kind", "seq (rel)", "ack (rel)", "len"
        )?;
    }
    let t = &c.keepalive().timeline;
    for ev in t.head() {
        step_line(out, c, ev, roles, color)?;
    }
    if t.skipped() > 0 {
        writeln!(
            out,
            "  … {} not shown (the first {} and the last {} are; --json has every one)",
            count(t.skipped() as u64, "event"),
            t.head().len(),
            t.tail().count()
        )?;
    }
    for ev in t.tail() {
        step_line(out, c, ev, roles, color)?;
    }
    for v in &r.violations {
        writeln!(
            out,
            "  violation: frame {} from {}: {} — {}",
            v.frame, v.from, v.kind, v.detail
        )?;
    }
    if r.violations_total as usize > r.violations.len() {
        writeln!(
            out,
            "  … {} more violations",
            r.violations_total as usize - r.violations.len()
        )?;
    }
    writeln!(out, "  outcome: {}", r.outcome_text())
}

/// ANSI colour by kind, on a terminal only: answers green, probes cyan,
/// resets red, look-alikes yellow.
fn paint(color: bool, kind: Kind, text: &str) -> String {
    let code = match kind {
        Kind::KeepaliveProbe => "36",
        Kind::KeepaliveAck => "32",
        Kind::KeepaliveRst | Kind::KeepaliveAbort | Kind::Rst => "31",
        Kind::ZeroWindowProbe | Kind::ZeroWindowAck | Kind::Retransmission => "33",
        _ => return text.to_string(),
    };
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn with_rel(abs: u32, rel: Option<u32>) -> String {
    rel.map_or(abs.to_string(), |r| format!("{abs} ({r})"))
}

fn note(ev: &Step) -> String {
    let mut s = String::new();
    if let Some((f, rtt)) = ev.answers() {
        s += &format!("answers {f}, rtt {}", format_duration(rtt));
    }
    if let (Kind::KeepaliveRst, Some(usual)) = (ev.kind, ev.usual_ttl()) {
        if usual != ev.ttl {
            s += &format!(", TTL {} but the peer's segments {usual}: sent by a middlebox?", ev.ttl);
        }
    }
    if ev.dsack() {
        s += ", D-SACK";
    }
    if ev.len == 1 && ev.kind == crate::analyze::Kind::KeepaliveProbe {
        s += "1-byte probe";
    }
    if ev.kind == crate::analyze::Kind::KeepaliveProbe {
        let options = match (ev.options_cut(), ev.has_timestamp()) {
            (true, _) => "options cut by the snaplen",
            (false, false) => "no TSopt",
            (false, true) => "",
        };
        if !options.is_empty() {
            s += if s.is_empty() { "" } else { ", " };
            s += options;
        }
    }
    s
}

/// One kept event of a flow's timeline.
fn step_line(out: &mut impl Write, c: &Connection, ev: &Step, roles: [&str; 2], color: bool) -> io::Result<()> {
    writeln!(
        out,
        "  {:>7}  {:>10}  {:<6}  {}  {:>21}  {:>21}  {:>3}  {}",
        ev.frame,
        format!("+{:.3}s", (ev.time.saturating_sub(c.first_time)) as f64 / 1e9),
        roles[ev.side().idx()],
        paint(color, ev.kind, &format!("{:<17}", ev.kind.as_str())),
        with_rel(ev.seq.0, ev.rel_seq()),
        if ev.flags.ack() {
            with_rel(ev.ack.0, ev.rel_ack())
        } else {
            "-".into()
        },
        ev.len,
        note(ev)
    )
}

/// A time (ns since the epoch) as the time of day, UTC, to the millisecond.
pub fn time_of_day(ns: u64) -> String {
    // From whole milliseconds: 59.9996 s is not "60.000".
    let day_ms = ns / 1_000_000 % 86_400_000;
    let (h, m, sec, ms) = (
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000,
    );
    format!("{h:02}:{m:02}:{sec:02}.{ms:03}")
}

/// One event as it happens (`watch`): its time of day (UTC), flow, ends,
/// kind, numbers and the same note as a timeline's.
pub fn event_line(out: &mut impl Write, ev: &crate::analyze::SegmentEvent, color: bool) -> io::Result<()> {
    writeln!(out, "{}", event_text(ev, color))
}

/// `event_line`'s text, without the line's end.
pub fn event_text(ev: &crate::analyze::SegmentEvent, color: bool) -> String {
    let step = Step::of(ev);
    let mut line = format!(
        "{}  frame {:<6} flow {:<4} {} > {}  {}  seq {} ack {} len {}  {}",
        time_of_day(ev.time),
        ev.frame,
        ev.flow_id,
        ev.from,
        ev.to,
        paint(color, ev.kind, &format!("{:<17}", ev.kind.as_str())),
        ev.seq.0,
        ev.ack.0,
        ev.len,
        note(&step)
    );
    line.truncate(line.trim_end().len());
    line
}
