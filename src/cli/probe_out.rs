//! `kaprobe probe`'s output: JSON Lines, or lines for people (a timeline per
//! session; with many sessions a status line and grouped verdicts).

use crate::live::{Event, Outcome, SessionId, Sink, Status, Summary};
use crate::units::format_duration;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};

fn human(ns: u64) -> String {
    if ns == 0 {
        "0s".into()
    } else {
        format_duration(ns)
    }
}

/// JSON Lines: `{"session": N, "type": …}` per event, `{"type": "summary", …}` last.
pub struct JsonSink<W: Write> {
    pub out: W,
}

#[derive(Serialize)]
struct Tagged<'a> {
    session: SessionId,
    #[serde(flatten)]
    event: &'a Event,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "summary")]
struct TaggedSummary<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
}

impl<W: Write> JsonSink<W> {
    fn put(&mut self, v: &impl Serialize) {
        if let Ok(s) = serde_json::to_string(v) {
            let _ = writeln!(self.out, "{s}");
        }
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn event(&mut self, session: SessionId, event: &Event) {
        self.put(&Tagged { session, event });
    }

    fn summary(&mut self, summary: &Summary) {
        self.put(&TaggedSummary { summary });
        let _ = self.out.flush();
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

/// Sessions up to which every event gets its line; above, a status line and
/// the verdicts grouped at the end.
pub const FEW: usize = 8;
/// Sessions listed per outcome in the grouped verdicts.
const LISTED: usize = 10;

/// Where one session's timeline counts from.
#[derive(Clone, Copy, Default)]
struct View {
    t0: Option<u64>,
    isn: (Option<u32>, Option<u32>),
}

/// Lines for people. One session: its timeline, as ever. A few: each line
/// tagged `[sN]`. Many: a status line on a terminal's stderr, then the
/// verdicts grouped by outcome.
pub struct HumanSink<W: Write> {
    out: W,
    sessions: usize,
    views: BTreeMap<SessionId, View>,
    /// The session being written: its view and line prefix.
    t0: Option<u64>,
    isn: (Option<u32>, Option<u32>),
    prefix: String,
    color: bool,
    /// stderr is a terminal: the status line goes there.
    status_line: bool,
    /// Many sessions: outcome → (count, verdict lines of the first few).
    groups: BTreeMap<&'static str, (u64, Vec<String>)>,
    drops: Option<String>,
}

impl<W: Write> HumanSink<W> {
    pub fn new(out: W, sessions: usize, color: bool, status_line: bool) -> Self {
        HumanSink {
            out,
            sessions,
            views: BTreeMap::new(),
            t0: None,
            isn: (None, None),
            prefix: String::new(),
            color,
            status_line,
            groups: BTreeMap::new(),
            drops: None,
        }
    }

    fn many(&self) -> bool {
        self.sessions > FEW
    }
}

impl<W: Write> HumanSink<W> {
    fn rel(&self, t: u64) -> String {
        let t0 = self.t0.unwrap_or(t);
        format!("+{:.3}s", t.saturating_sub(t0) as f64 / 1e9)
    }

    fn num(v: u32, isn: Option<u32>) -> String {
        match isn {
            Some(i) => format!("{v} ({})", v.wrapping_sub(i)),
            None => v.to_string(),
        }
    }

    fn paint(&self, s: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// One timeline row; `cols` are seq, ack, len and rtt.
    fn line(&mut self, t: u64, what: &str, cols: [String; 4], note: &str) {
        let [seq, ack, len, rtt] = cols;
        let what = match what.split(' ').next() {
            Some("ack") | Some("dsack") => self.paint(&format!("{what:<11}"), "32"),
            Some("reset") | Some("unanswered") | Some("abort") | Some("drops") => {
                self.paint(&format!("{what:<11}"), "31")
            }
            _ => format!("{what:<11}"),
        };
        let _ = writeln!(
            self.out,
            "{}  {:>9}  {what}  {seq:>24}  {ack:>24}  {len:>3}  {rtt:>9}  {note}",
            self.prefix,
            self.rel(t)
        );
    }
}

impl<W: Write> Sink for HumanSink<W> {
    fn event(&mut self, session: SessionId, ev: &Event) {
        if self.many() {
            return self.grouped(session, ev);
        }
        // Session 0 (the run: capture drops) counts from the first session's start.
        let view = match session {
            0 => self.views.values().next(),
            s => self.views.get(&s),
        };
        let view = view.copied().unwrap_or_default();
        (self.t0, self.isn) = (view.t0, view.isn);
        self.prefix = if self.sessions > 1 && session > 0 {
            format!("[s{session}] ")
        } else {
            String::new()
        };
        self.timeline(ev);
        if session > 0 {
            self.views.insert(
                session,
                View {
                    t0: self.t0,
                    isn: self.isn,
                },
            );
        }
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
    }

    fn summary(&mut self, s: &Summary) {
        self.clear_status();
        if self.sessions <= 1 {
            return;
        }
        for (outcome, (n, lines)) in &self.groups {
            let _ = writeln!(self.out, "{outcome}: {n} session{}", if *n == 1 { "" } else { "s" });
            for l in lines {
                let _ = writeln!(self.out, "  {l}");
            }
            if !lines.is_empty() && *n > lines.len() as u64 {
                let _ = writeln!(
                    self.out,
                    "  … and {} more (--json lists every session)",
                    *n - lines.len() as u64
                );
            }
        }
        let counts: Vec<String> = [
            ("alive", s.alive),
            ("dead", s.dead),
            ("reset", s.reset),
            ("closed", s.closed),
            ("unknown", s.unknown),
            ("failed", s.failed),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
        let rtt = s.rtt_ms.map_or(String::new(), |r| {
            format!(", rtt {:.3}/{:.3}/{:.3} ms min/avg/max", r.min, r.avg, r.max)
        });
        let late = s.lateness_ms.map_or(String::new(), |l| {
            format!(
                "; probes late by p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                l.p50, l.p99, l.max
            )
        });
        let _ = writeln!(
            self.out,
            "summary: {}: {}; {}, {} answered, {} unanswered, {} pending{rtt}{late}; {:.3} s",
            crate::units::count(s.sessions, "session"),
            counts.join(", "),
            crate::units::count(s.probes, "probe"),
            s.answered,
            s.unanswered,
            s.pending,
            s.elapsed_s
        );
        if let Some(d) = self.drops.take() {
            let _ = writeln!(self.out, "  {}", self.paint(&d, "33"));
        }
        let _ = self.out.flush();
    }

    fn status(&mut self, st: &Status) {
        if !self.many() || !self.status_line {
            return;
        }
        let mut err = io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K{} sessions: {} setting up, {} probing, {} done; {} probes, {} answered",
            st.sessions, st.connecting, st.probing, st.done, st.probes, st.answered
        );
        let _ = err.flush();
    }
}

impl<W: Write> HumanSink<W> {
    fn clear_status(&mut self) {
        if self.many() && self.status_line {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }

    /// Many sessions: verdicts kept for the end, grouped; drops noted.
    fn grouped(&mut self, session: SessionId, ev: &Event) {
        match ev {
            Event::Verdict(v) => {
                let reason = v.reason.name();
                let detail = match &v.error {
                    Some(e) => e.clone(),
                    None => format!(
                        "{reason}: {}, {} answered, {} unanswered",
                        crate::units::count(v.probes, "probe"),
                        v.answered,
                        v.unanswered
                    ),
                };
                let line = format!("s{session} {} > {} ({detail})", v.local, v.remote);
                let g = self.groups.entry(v.outcome.name()).or_default();
                g.0 += 1;
                // The alive are counted; the others listed, the first few.
                if v.outcome != Outcome::Alive && g.1.len() < LISTED {
                    g.1.push(line);
                }
            }
            Event::CaptureDrops {
                dropped, if_dropped, ..
            } => {
                self.drops = Some(format!(
                    "the capture dropped {dropped} packets, the interface {if_dropped}: answers may have been lost"
                ));
            }
            _ => {}
        }
    }

    /// One session's event as timeline lines.
    fn timeline(&mut self, ev: &Event) {
        let (l, r) = self.isn;
        match ev {
            Event::Exchanged { at, sent, received } => {
                self.t0.get_or_insert(at.time_ns);
                let _ = writeln!(
                    self.out,
                    "{}exchanged: sent {sent} bytes, received {received}",
                    self.prefix
                );
            }
            Event::Session {
                at,
                interface,
                link,
                info,
                style,
                payload,
                idle_s,
                interval_s,
                count,
                user_timeout_s,
                last_received_ns,
                ..
            } => {
                // Times count from the peer's last segment, where idle starts.
                self.t0 = Some(last_received_ns.unwrap_or(at.time_ns));
                self.isn = (info.isn_local, info.isn_remote);
                let onoff = |b: Option<bool>| match b {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "unknown",
                };
                let window = match (info.peer_window, info.peer_wscale, info.peer_window_bytes) {
                    (Some(w), Some(s), Some(b)) if s > 0 => format!("{w} << {s} = {b} bytes"),
                    (Some(w), _, Some(b)) => format!("{w} = {b} bytes"),
                    (Some(w), _, None) => format!("{w} (scale unknown)"),
                    (None, ..) => "unknown".into(),
                };
                let _ = writeln!(
                    self.out,
                    "{}session {} > {} on {interface} ({link}){}",
                    self.prefix,
                    info.local,
                    info.remote,
                    if info.handshake_seen {
                        ", handshake seen"
                    } else {
                        ", attached (no handshake seen)"
                    }
                );
                let _ = writeln!(
                    self.out,
                    "{}  timestamps {}, SACK {}, peer window {window}, SND.NXT {}, RCV.NXT {}",
                    self.prefix,
                    onoff(info.timestamps),
                    onoff(info.sack),
                    Self::num(info.snd_nxt, info.isn_local),
                    Self::num(info.rcv_nxt, info.isn_remote),
                );
                let ut = user_timeout_s.map_or(String::new(), |u| {
                    format!(", user timeout {}", format_duration((u * 1e9) as u64))
                });
                let _ = writeln!(
                    self.out,
                    "{}probing: style {style} ({payload} byte{}), idle {}, interval {}, count {count}{ut}",
                    self.prefix,
                    if *payload == 1 { "" } else { "s" },
                    human((idle_s * 1e9) as u64),
                    human((interval_s * 1e9) as u64),
                );
                let _ = writeln!(
                    self.out,
                    "{}  {:>9}  {:<11}  {:>24}  {:>24}  {:>3}  {:>9}  note",
                    self.prefix, "time", "event", "seq (rel)", "ack (rel)", "len", "rtt"
                );
            }
            Event::ProbeSent {
                at,
                n,
                seq,
                ack,
                len,
                tsval,
                rate_limited,
                ..
            } => {
                let mut note = tsval.map_or(String::new(), |v| format!("tsval {v}"));
                if *rate_limited {
                    note += " (within the peer's 500 ms answer limit)";
                }
                self.line(
                    at.time_ns,
                    &format!("probe {n}"),
                    [Self::num(*seq, l), Self::num(*ack, r), len.to_string(), String::new()],
                    note.trim(),
                );
            }
            Event::ProbeAcked {
                at,
                n,
                seq,
                ack,
                dsack,
                rtt_ms,
                ..
            } => self.line(
                at.time_ns,
                if *dsack { "dsack" } else { "ack" },
                [
                    Self::num(*seq, r),
                    Self::num(*ack, l),
                    "0".into(),
                    format!("{rtt_ms:.3}ms"),
                ],
                &format!("answers probe {n}"),
            ),
            Event::ProbeReset {
                at,
                n,
                seq,
                rtt_ms,
                reset_by,
                ..
            } => {
                let who = match *reset_by {
                    Some("path") => "something on the path (its TTL is not the peer's) no longer knows the connection",
                    _ => "the peer no longer knows the connection",
                };
                self.line(
                    at.time_ns,
                    "reset",
                    [Self::num(*seq, r), "-".into(), "0".into(), format!("{rtt_ms:.3}ms")],
                    &format!("answers probe {n}: {who}"),
                )
            }
            Event::ProbeUnanswered { at, n, note, .. } => {
                let text = format!(
                    "probe {n} got no answer{}",
                    note.map_or(String::new(), |s| format!(" ({s})"))
                );
                self.line(
                    at.time_ns,
                    "unanswered",
                    [String::new(), String::new(), String::new(), String::new()],
                    &text,
                );
            }
            Event::ProbeDeferred { at } => self.line(
                at.time_ns,
                "deferred",
                [String::new(), String::new(), String::new(), String::new()],
                "data unacknowledged: no probe",
            ),
            Event::PeerReset {
                at,
                seq,
                accepted,
                answers_own,
                reset_by,
            } => {
                let from = if *reset_by == Some("path") {
                    " (its TTL is not the peer's: sent on the path)"
                } else {
                    ""
                };
                let note = match (*answers_own, *accepted) {
                    (true, _) => format!(
                        "answers kaprobe's own segment{from}: whoever sent it does not know the connection as addressed (a NAT?); ignored"
                    ),
                    (false, "resets") => format!("the peer reset the connection{from}"),
                    (false, how) => format!("seq is not RCV.NXT: the local end does not take it ({how}); ignored{from}"),
                };
                let what = if *accepted == "resets" && !answers_own {
                    "reset"
                } else {
                    "rst"
                };
                self.line(
                    at.time_ns,
                    what,
                    [Self::num(*seq, r), "-".into(), "0".into(), String::new()],
                    &note,
                )
            }
            Event::PeerClosed { at } => self.line(
                at.time_ns,
                "fin",
                [String::new(), String::new(), String::new(), String::new()],
                "the peer closed the connection",
            ),
            Event::CaptureDrops {
                at,
                dropped,
                if_dropped,
            } => self.line(
                at.time_ns,
                "drops",
                [String::new(), String::new(), String::new(), String::new()],
                &format!("the capture dropped {dropped} packets, the interface {if_dropped} (so far)"),
            ),
            Event::Abort { at, seq, ack } => self.line(
                at.time_ns,
                "abort",
                [Self::num(*seq, l), Self::num(*ack, r), "0".into(), String::new()],
                "RST: the connection is closed, as Linux does",
            ),
            // `probe` runs no conform case.
            Event::Case { .. } => {}
            Event::Verdict(v) => {
                let rtt = v.rtt_ms.map_or(String::new(), |s| {
                    format!(", rtt {:.3}/{:.3}/{:.3} ms min/avg/max", s.min, s.avg, s.max)
                });
                let rl = if v.unanswered_rate_limited > 0 {
                    format!(" ({} within the peer's 500 ms answer limit)", v.unanswered_rate_limited)
                } else {
                    String::new()
                };
                let pending = if v.pending > 0 {
                    format!(", {} pending", v.pending)
                } else {
                    String::new()
                };
                let outcome = match v.outcome {
                    Outcome::Alive => self.paint("alive", "32"),
                    o => self.paint(o.name(), "31"),
                };
                let _ = writeln!(
                    self.out,
                    "{}verdict: {outcome} ({}): {}, {} answered, {} unanswered{rl}{pending}, {} reset{rtt}; {:.3} s",
                    self.prefix,
                    v.reason.name(),
                    crate::units::count(v.probes, "probe"),
                    v.answered,
                    v.unanswered,
                    v.resets,
                    v.elapsed_s
                );
                if let Some(note) = &v.note {
                    let _ = writeln!(self.out, "{}  {}", self.prefix, self.paint(note, "33"));
                }
                if let Some(e) = &v.error {
                    let _ = writeln!(self.out, "{}  {e}", self.prefix);
                }
            }
        }
    }
}
