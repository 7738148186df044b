//! Ladder (sequence) diagrams: one flow's segments as arrows between its two
//! ends, with time, seq/ack/len and what each is. Built from the analyzer's
//! `SegmentEvent`s — of a synthetic timeline or of a capture's flow — and
//! rendered as text here and as SVG in `svg.rs`, from the same steps.

use crate::analyze::{Kind, SegmentEvent};
use crate::flow::Side;
use crate::units::format_duration;
use std::collections::HashMap;
use std::fmt::Write as _;

/// One arrow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Since the diagram's first step.
    pub time_ns: u64,
    pub frame: u64,
    /// Sent by the left end.
    pub rightward: bool,
    pub kind: Kind,
    pub flags: &'static str,
    pub seq: u32,
    pub ack: Option<u32>,
    pub len: u32,
    /// A probe no answer came for.
    pub unanswered: bool,
    pub note: String,
    /// Segments of this flow not shown just before this step.
    pub skipped_before: u32,
}

impl Step {
    pub fn label(&self) -> &'static str {
        self.kind.as_str()
    }

    pub fn detail(&self) -> String {
        let ack = self.ack.map_or(String::new(), |a| format!(" ack {a}"));
        format!("{:<3} seq {}{ack} len {}", self.flags, self.seq, self.len)
    }
}

/// A flow's diagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ladder {
    pub title: String,
    pub left: String,
    pub right: String,
    pub steps: Vec<Step>,
    /// Segments after the last step not shown.
    pub skipped_after: u32,
}

/// The segment event and how many of the flow's segments were left out before it.
pub type Kept = (SegmentEvent, u32);

impl Ladder {
    /// Builds the diagram of one flow from its events in capture order.
    pub fn from_events(title: impl Into<String>, events: &[Kept], skipped_after: u32) -> Ladder {
        let first = events.first().map(|e| &e.0);
        // The client (first SYN without ACK) on the left, else the first sender.
        let left_side = events
            .iter()
            .find(|(e, _)| e.flags.syn() && !e.flags.ack())
            .or(events.first())
            .map_or(Side::Lo, |(e, _)| e.side);
        let has_client = events.iter().any(|(e, _)| e.flags.syn() && !e.flags.ack());
        let name = |side: Side, role: &str| {
            let ep = events.iter().find_map(|(e, _)| {
                if e.side == side {
                    Some(e.from)
                } else if e.side.other() == side {
                    Some(e.to)
                } else {
                    None
                }
            });
            let ep = ep.map_or("?".to_string(), |e| e.to_string());
            if has_client {
                format!("{role} {ep}")
            } else {
                ep
            }
        };
        let t0 = first.map_or(0, |e| e.time);
        let answered: Vec<u64> = events.iter().filter_map(|(e, _)| e.answers).collect();
        let mut steps: Vec<Step> = Vec::with_capacity(events.len());
        // Per side: time of the last segment it received, and its unanswered run.
        let mut last_received: [Option<u64>; 2] = [None, None];
        let mut run: [Vec<&SegmentEvent>; 2] = [Vec::new(), Vec::new()];
        let mut idle_starts: Vec<usize> = Vec::new();
        let mut last_from: [Option<usize>; 2] = [None, None];
        for (i, (e, skipped)) in events.iter().enumerate() {
            let (s, o) = (e.side.idx(), e.side.other().idx());
            let unanswered = e.kind == Kind::KeepaliveProbe && !answered.contains(&e.frame);
            let mut note = String::new();
            match e.kind {
                Kind::KeepaliveProbe => {
                    match run[s].last() {
                        Some(prev) => {
                            let _ = write!(note, "{} after the previous probe", dur(e.time - prev.time.min(e.time)));
                        }
                        None => {
                            if let Some(t) = last_received[s] {
                                let _ =
                                    write!(note, "after {} of silence from the peer", dur(e.time.saturating_sub(t)));
                                if let Some(j) = last_from[o] {
                                    idle_starts.push(j);
                                }
                            } else {
                                note.push_str("first probe");
                            }
                        }
                    }
                    if e.len == 1 {
                        note.push_str(", 1 byte");
                    }
                    if unanswered {
                        note.push_str(", no answer");
                        run[s].push(e);
                    } else {
                        run[s].clear();
                    }
                }
                Kind::KeepaliveAck | Kind::ZeroWindowAck => {
                    if let (Some(f), Some(rtt)) = (e.answers, e.rtt) {
                        let _ = write!(note, "answers frame {f} after {}: alive", dur(rtt));
                    }
                    if e.dsack {
                        note.push_str(", D-SACK");
                    }
                    if e.kind == Kind::ZeroWindowAck {
                        note.push_str(", window still 0");
                    }
                }
                Kind::KeepaliveRst => {
                    note.push_str("the peer does not know the connection: ECONNRESET");
                    if let Some(f) = e.answers {
                        let _ = write!(note, " (answers frame {f})");
                    }
                    if let Some(u) = e.usual_ttl.filter(|&u| u != e.ttl) {
                        let _ = write!(note, ", TTL {} vs the peer's {u}: a middlebox?", e.ttl);
                    }
                }
                Kind::KeepaliveAbort => {
                    let n = run[s].len();
                    let _ = write!(
                        note,
                        "gives up after {n} unanswered probe{}",
                        if n == 1 { "" } else { "s" }
                    );
                    if let Some(t) = last_received[s] {
                        let _ = write!(
                            note,
                            ", {} after the peer last spoke: ETIMEDOUT",
                            dur(e.time.saturating_sub(t))
                        );
                    }
                    run[s].clear();
                }
                Kind::ZeroWindowProbe => note.push_str("peer window 0: flow control, not keepalive"),
                Kind::Retransmission => note.push_str("this byte was never acknowledged: data resent, not a probe"),
                _ => {}
            }
            if !matches!(
                e.kind,
                Kind::KeepaliveProbe | Kind::KeepaliveAbort | Kind::ZeroWindowProbe
            ) {
                // The other side spoke: its keepalive starts over.
                run[o].clear();
            }
            last_received[o] = Some(e.time);
            last_from[s] = Some(i);
            steps.push(Step {
                time_ns: e.time.saturating_sub(t0),
                frame: e.frame,
                rightward: e.side == left_side,
                kind: e.kind,
                flags: e.flags.letters(),
                seq: e.seq.0,
                ack: e.flags.ack().then_some(e.ack.0),
                len: e.len,
                unanswered,
                note,
                skipped_before: *skipped,
            });
        }
        for j in idle_starts {
            if let Some(st) = steps.get_mut(j) {
                if st.note.is_empty() {
                    st.note = "last segment before the silence: the idle clock starts".into();
                }
            }
        }
        Ladder {
            title: title.into(),
            left: name(left_side, "client"),
            right: name(left_side.other(), "server"),
            steps,
            skipped_after,
        }
    }

    /// The diagram as text: time, the two ends' columns with arrows, the details.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.title);
        let pad = " ".repeat(TIME_W + 2);
        if self.left.chars().count() + self.right.chars().count() < ARROW_W + 2 {
            let _ = writeln!(
                out,
                "{pad}{:<w$}{}",
                self.left,
                self.right,
                w = ARROW_W + 2 - self.right.chars().count()
            );
        } else {
            let _ = writeln!(out, "{pad}{}", self.left);
            let _ = writeln!(out, "{pad}{:>w$}", self.right, w = ARROW_W + 2);
        }
        let mut prev = None;
        for st in &self.steps {
            if st.skipped_before > 0 {
                let _ = writeln!(
                    out,
                    "{}",
                    gap_line(&format!("{} segments not shown", st.skipped_before))
                );
            } else if let Some(p) = prev {
                let quiet = st.time_ns.saturating_sub(p);
                if quiet >= 1_000_000_000 {
                    let _ = writeln!(out, "{}", gap_line(&format!("{} quiet", dur(quiet))));
                }
            }
            prev = Some(st.time_ns);
            let line = format!(
                "{:>TIME_W$}  {}  {}{}",
                format!("+{:.3}s", st.time_ns as f64 / 1e9),
                arrow(st),
                st.detail(),
                if st.note.is_empty() {
                    String::new()
                } else {
                    format!("  {}", st.note)
                }
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
        if self.skipped_after > 0 {
            let _ = writeln!(
                out,
                "{}",
                gap_line(&format!("{} segments not shown", self.skipped_after))
            );
        }
        out
    }
}

const TIME_W: usize = 11;
/// Characters between the two columns' bars.
pub const ARROW_W: usize = 44;

fn dur(ns: u64) -> String {
    format_duration(ns)
}

fn gap_line(text: &str) -> String {
    let inner = format!("{:^w$}", format!("⋮ {text} ⋮"), w = ARROW_W);
    format!("{:>TIME_W$}  |{inner}|", "")
}

/// `|-- label ------>|`, `|<------ label --|`, or for a probe nobody answered `|-- label ---x   |`.
fn arrow(st: &Step) -> String {
    let label = st.label();
    let n = label.chars().count() + 2;
    if st.rightward {
        if st.unanswered {
            let body = format!("-- {label} ");
            let dashes = (ARROW_W * 3 / 4).saturating_sub(body.chars().count() + 1).max(1);
            let s = format!("{body}{}x", "-".repeat(dashes));
            format!("|{s:<ARROW_W$}|")
        } else {
            format!("|-- {label} {}>|", "-".repeat(ARROW_W.saturating_sub(n + 3).max(1)))
        }
    } else {
        format!("|<{} {label} --|", "-".repeat(ARROW_W.saturating_sub(n + 3).max(1)))
    }
}

/// Keeps, per flow, what a ladder needs from a capture of any size: the
/// handshake, every keepalive-related segment and look-alike, and the last
/// ordinary segment each way before them; the rest is only counted.
#[derive(Default)]
pub struct Collector {
    flows: HashMap<u64, Buf>,
}

#[derive(Default)]
struct Buf {
    kept: Vec<Kept>,
    /// The latest ordinary segment from each side, not yet kept.
    last_plain: [Option<SegmentEvent>; 2],
    skipped: u32,
}

/// Steps kept per flow at most.
pub const MAX_STEPS: usize = 512;

impl Collector {
    pub fn push(&mut self, ev: &SegmentEvent) {
        let b = self.flows.entry(ev.flow_id).or_default();
        let keep = ev.kind.is_notable() || ev.kind == Kind::Handshake;
        if !keep {
            if b.last_plain[ev.side.idx()].replace(*ev).is_some() {
                b.skipped += 1;
            }
            return;
        }
        if b.kept.len() >= MAX_STEPS {
            b.skipped += 1;
            return;
        }
        b.flush_plain();
        let skipped = std::mem::take(&mut b.skipped);
        b.kept.push((*ev, skipped));
    }

    /// The flow's events, and how many segments after them were not kept.
    pub fn take(&mut self, flow_id: u64) -> (Vec<Kept>, u32) {
        let Some(mut b) = self.flows.remove(&flow_id) else {
            return (Vec::new(), 0);
        };
        if b.kept.len() < MAX_STEPS {
            b.flush_plain();
        }
        (b.kept, b.skipped + b.last_plain.iter().flatten().count() as u32)
    }
}

impl Buf {
    fn flush_plain(&mut self) {
        let mut plain: Vec<SegmentEvent> = self.last_plain.iter_mut().filter_map(Option::take).collect();
        plain.sort_by_key(|e| e.frame);
        for e in plain {
            let skipped = std::mem::take(&mut self.skipped);
            self.kept.push((e, skipped));
        }
    }
}
