//! The live table `watch` keeps on a terminal: one row per flow with
//! keepalive, as it stands, the flows about to be declared dead first, and
//! the latest events below. Pure: the caller gives the time and the screen's
//! size, and draws the lines.

use crate::analyze::{FlowReport, Kind, Outcome};
use crate::report::text::{aligned, opt_dur};
use crate::units::format_duration;
use std::collections::{HashMap, VecDeque};

/// Ended flows kept on the board (their final outcome shown) before the oldest goes.
const ENDED_KEPT: usize = 256;
/// Latest event lines kept for the pane below the table.
const EVENTS_KEPT: usize = 64;

/// What the table shows of a flow (not its whole report: there may be
/// 100,000 of them).
struct Row {
    flow_id: u64,
    flow: String,
    prober: &'static str,
    idle_s: Option<f64>,
    interval_s: Option<f64>,
    probes: u32,
    answered: u32,
    unanswered_run: u32,
    outcome: Outcome,
    outcome_text: &'static str,
    /// The flow's latest event: its kind and time.
    last: (Kind, u64),
    ended: bool,
    /// The expectations it broke, by name.
    broken: Vec<&'static str>,
}

impl Row {
    fn update(&mut self, r: &FlowReport) {
        self.prober = r.prober;
        self.idle_s = r.idle_s;
        self.interval_s = r.interval_s;
        self.probes = r.probes;
        self.answered = r.answered;
        self.unanswered_run = r.unanswered_run;
        self.outcome = r.outcome;
        self.outcome_text = r.outcome_text();
    }
}

impl Row {
    /// Where it goes: open flows with probes unanswered in a row (closest to
    /// being declared dead) first, then the other open ones, then the ended;
    /// within each, the most recent event first.
    fn place(&self) -> (u8, std::cmp::Reverse<u32>, std::cmp::Reverse<u64>) {
        let group = match (self.ended, self.unanswered_run > 0) {
            (false, true) => 0,
            (false, false) => 1,
            (true, _) => 2,
        };
        (
            group,
            std::cmp::Reverse(self.unanswered_run),
            std::cmp::Reverse(self.last.1),
        )
    }
}

#[derive(Default)]
pub struct Board {
    rows: HashMap<u64, Row>,
    ended: VecDeque<u64>,
    events: VecDeque<String>,
    changed: bool,
}

impl Board {
    /// An event line for the pane below the table.
    pub fn event(&mut self, line: String) {
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events.push_back(line);
        self.changed = true;
    }

    /// A flow as it stands after an event of `kind` at `time`; a flow
    /// without keepalive probes gets no row.
    pub fn progressed(&mut self, report: &FlowReport, kind: Kind, time: u64) {
        if report.probes == 0 {
            return;
        }
        let row = self.rows.entry(report.flow_id).or_insert_with(|| Row {
            flow_id: report.flow_id,
            flow: report.flow.clone(),
            prober: "",
            idle_s: None,
            interval_s: None,
            probes: 0,
            answered: 0,
            unanswered_run: 0,
            outcome: Outcome::Unknown,
            outcome_text: "",
            last: (kind, time),
            ended: false,
            broken: Vec::new(),
        });
        row.update(report);
        row.last = (kind, time);
        self.changed = true;
    }

    /// An expectation the flow broke.
    pub fn broke(&mut self, flow_id: u64, what: &'static str) {
        if let Some(r) = self.rows.get_mut(&flow_id) {
            if !r.broken.contains(&what) {
                r.broken.push(what);
                self.changed = true;
            }
        }
    }

    /// An expectation said broken earlier that holds at the flow's end.
    pub fn mended(&mut self, flow_id: u64, what: &'static str) {
        if let Some(r) = self.rows.get_mut(&flow_id) {
            r.broken.retain(|w| *w != what);
            self.changed = true;
        }
    }

    /// A flow that ended: its final state stays on the board a while.
    pub fn ended(&mut self, report: &FlowReport) {
        let Some(row) = self.rows.get_mut(&report.flow_id) else {
            return;
        };
        row.update(report);
        row.ended = true;
        self.ended.push_back(report.flow_id);
        if self.ended.len() > ENDED_KEPT {
            if let Some(old) = self.ended.pop_front() {
                self.rows.remove(&old);
            }
        }
        self.changed = true;
    }

    /// Flows on the board still open.
    pub fn open(&self) -> usize {
        self.rows.values().filter(|r| !r.ended).count()
    }

    /// Whether anything changed since it was last rendered.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The screen: `status` on top, the table, then the latest events; at
    /// most `height` lines of at most `width` characters. `now` is the
    /// capture's time (ages are counted to it); `expect`: a column for
    /// what each flow broke.
    pub fn render(&mut self, status: &str, now: u64, width: usize, height: usize, expect: bool) -> Vec<String> {
        self.changed = false;
        let height = height.max(1);
        // The events pane: a quarter of the screen, up to 10 lines; none on a tiny one.
        let pane = match height {
            0..12 => 0,
            h => (h / 4).min(10).min(self.events.len().max(1)),
        };
        let around = 2 + if pane > 0 { 2 + pane } else { 0 };
        let room = height.saturating_sub(around + 1).max(1);
        let mut rows: Vec<&Row> = self.rows.values().collect();
        let open = rows.iter().filter(|r| !r.ended).count();
        // Only the rows shown need sorting in full.
        let shown = rows.len().min(room - (rows.len() > room) as usize);
        if shown < rows.len() {
            rows.select_nth_unstable_by_key(shown, |r| r.place());
            rows.truncate(shown);
        }
        rows.sort_by_key(|r| r.place());
        let mut lines = vec![status.to_string(), String::new()];
        lines.extend(table(&rows, now, expect));
        let hidden = self.rows.len() - rows.len();
        if hidden > 0 {
            lines.push(format!(
                "  ... {hidden} more flows with keepalive ({} open)",
                open - rows.iter().filter(|r| !r.ended).count()
            ));
        }
        if self.rows.is_empty() {
            lines.push("  no keepalive seen yet".to_string());
        }
        if pane > 0 {
            lines.push(String::new());
            lines.push("latest events:".to_string());
            let skip = self.events.len().saturating_sub(pane);
            lines.extend(self.events.iter().skip(skip).cloned());
        }
        lines.truncate(height);
        lines.iter().map(|l| l.chars().take(width).collect()).collect()
    }
}

/// How long ago, in tenths of a second (the screen's pace) below a minute.
fn age(ns: u64) -> String {
    match ns < 60_000_000_000 {
        true => format!("{:.1}s", (ns / 100_000_000) as f64 / 10.0),
        false => format_duration(ns),
    }
}

/// The rows as an aligned table, header first (none when there are no rows).
fn table(rows: &[&Row], now: u64, expect: bool) -> Vec<String> {
    if rows.is_empty() {
        return Vec::new();
    }
    let cells: Vec<[String; 11]> = rows
        .iter()
        .map(|r| {
            let (kind, at) = r.last;
            let age = age(now.saturating_sub(at));
            let outcome = match (r.ended, r.outcome, r.unanswered_run) {
                (true, ..) => format!("{} (ended)", r.outcome_text),
                // Not yet an outcome in `verify`'s words: say what is known.
                (false, Outcome::Unknown, 1..) => "no answer".to_string(),
                (false, Outcome::Unknown, 0) => "-".to_string(),
                (false, ..) => r.outcome_text.to_string(),
            };
            let broken = match (expect, r.broken.is_empty()) {
                (false, _) => String::new(),
                (true, true) => "-".into(),
                (true, false) => format!("FAILED {}", r.broken.join(",")),
            };
            [
                r.flow_id.to_string(),
                r.flow.clone(),
                r.prober.to_string(),
                opt_dur(r.idle_s),
                opt_dur(r.interval_s),
                r.probes.to_string(),
                r.answered.to_string(),
                r.unanswered_run.to_string(),
                format!("{} {age} ago", kind.as_str()),
                outcome,
                broken,
            ]
        })
        .collect();
    let head = [
        "flow",
        "endpoints",
        "prober",
        "idle",
        "interval",
        "probes",
        "answered",
        "in a row",
        "last event",
        "outcome so far",
        if expect { "expect" } else { "" },
    ];
    let mut out = Vec::new();
    // Writing to memory cannot fail.
    let _ = aligned(&mut out, &head, &cells);
    String::from_utf8_lossy(&out).lines().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::progress;

    fn reports(file: &str) -> Vec<(FlowReport, Kind, u64)> {
        progress(file).0
    }

    #[test]
    fn a_flow_probing_into_silence_goes_to_the_top_and_its_end_stays() {
        let mut b = Board::default();
        let answered = reports("linux_ka_answered_v4.pcap");
        let dying = reports("linux_ka_blackhole_abort.pcap");
        // Two flows (ids told apart), the answered one more recent.
        for (r, k, t) in &dying[..dying.len() - 2] {
            let mut r = r.clone();
            r.flow_id = 2;
            b.progressed(&r, *k, *t);
        }
        let now = dying[dying.len() - 2].2;
        for (r, k, _) in &answered {
            b.progressed(r, *k, now);
        }
        assert!(b.changed());
        let screen = b.render("status", now, 200, 40, false);
        assert!(!b.changed());
        assert_eq!(screen[0], "status");
        let rows: Vec<&String> = screen
            .iter()
            .filter(|l| l.starts_with("  1 ") || l.starts_with("  2 "))
            .collect();
        assert_eq!(rows.len(), 2, "{screen:#?}");
        // The flow with unanswered probes in a row is first, though older.
        assert!(rows[0].starts_with("  2 "), "{screen:#?}");
        assert!(rows[0].contains("keepalive_probe"), "{}", rows[0]);
        assert!(rows[0].ends_with("no answer"), "{}", rows[0]);
        // Its abort: outcome timed_out; once ended, said so, and at the bottom.
        let (r, k, t) = dying.last().unwrap().clone();
        let mut r = r;
        r.flow_id = 2;
        b.progressed(&r, k, t);
        b.ended(&r);
        let screen = b.render("status", t, 200, 40, false);
        let rows: Vec<&String> = screen
            .iter()
            .filter(|l| l.starts_with("  1 ") || l.starts_with("  2 "))
            .collect();
        assert!(
            rows[1].starts_with("  2 ") && rows[1].contains("timed_out (ended)"),
            "{screen:#?}"
        );
        assert!(rows[1].contains("keepalive_abort 0.0s ago"), "{}", rows[1]);
    }

    #[test]
    fn the_screen_fits_however_many_flows_and_events() {
        let mut b = Board::default();
        let base = reports("linux_ka_answered_v4.pcap");
        let (r, k, t) = base.last().unwrap().clone();
        for id in 1..=1000 {
            let mut r = r.clone();
            r.flow_id = id;
            b.progressed(&r, k, t + id);
        }
        for i in 0..100 {
            b.event(format!("event {i}"));
        }
        for (w, h) in [(80, 24), (40, 5), (200, 60), (80, 1), (80, 2), (80, 3), (80, 4)] {
            let screen = b.render("status", t + 2000, w, h, true);
            assert!(screen.len() <= h, "{h}: {}", screen.len());
            assert!(screen.iter().all(|l| l.chars().count() <= w));
        }
        let screen = b.render("status", t + 2000, 200, 24, true);
        // The most recent flows first, the rest counted, the latest events last.
        assert!(screen[3].starts_with("  1000 "), "{screen:#?}");
        assert!(
            screen.iter().any(|l| l.contains("more flows with keepalive")),
            "{screen:#?}"
        );
        assert_eq!(screen.last().unwrap(), "event 99");
        assert!(screen[2].contains("expect"), "{}", screen[2]);
    }
}

#[cfg(test)]
mod marks {
    use super::*;
    use crate::watch::progress;

    #[test]
    fn a_flow_that_broke_an_expectation_on_its_first_event_is_marked() {
        let (each, _) = progress("linux_ka_answered_v4.pcap");
        let (r, k, t) = each[0].clone();
        let mut b = Board::default();
        // As `watch` does: the row, then what the event broke.
        b.progressed(&r, k, t);
        b.broke(r.flow_id, "idle");
        let row = |b: &mut Board| -> String {
            let screen = b.render("s", t, 200, 20, true);
            screen.iter().find(|l| l.starts_with("  1 ")).unwrap().clone()
        };
        assert!(row(&mut b).ends_with("FAILED idle"), "{}", row(&mut b));
        // Holding at the end after all: the mark goes.
        b.mended(r.flow_id, "idle");
        assert!(row(&mut b).ends_with(" -"), "{}", row(&mut b));
    }
}
