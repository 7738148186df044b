//! The per-flow verdict: who probes, what was answered, the inferred
//! idle/interval/count, how the connection ended, and what was done wrong.

use super::connection::Connection;
use super::event::Violation;
use super::prober::{Last, Prober};
use super::samples::Samples;
use crate::flow::Side;
use crate::session::ResetBy;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The last probe was answered and the connection was not closed.
    Alive,
    /// The prober gave up after unanswered probes: its RST was seen, or it
    /// went silent while the capture went on (`silent`).
    TimedOut,
    /// A RST ended the connection (answering a probe, or otherwise).
    Reset,
    /// FIN close.
    Closed,
    Unknown,
}

impl FlowReport {
    /// The outcome for people: a silent time-out says so.
    pub fn outcome_text(&self) -> &'static str {
        if self.silent {
            "timed_out (silent)"
        } else {
            self.outcome.as_str()
        }
    }
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Alive => "alive",
            Outcome::TimedOut => "timed_out",
            Outcome::Reset => "reset",
            Outcome::Closed => "closed",
            Outcome::Unknown => "unknown",
        }
    }
}

/// A duration estimate from several observations, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// Median of the recent observations.
    pub s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub samples: u32,
}

impl Estimate {
    fn of(s: &Samples) -> Option<Estimate> {
        Some(Estimate {
            s: secs(s.median()?),
            min_s: secs(s.min()?),
            max_s: secs(s.max()?),
            samples: s.len(),
        })
    }
}

pub fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// One side's keepalive as seen on the wire.
#[derive(Clone, Debug, Serialize)]
pub struct ProberReport {
    pub from: String,
    pub role: &'static str,
    pub probes: u32,
    pub one_byte_probes: u32,
    pub answered: u32,
    pub unanswered: u32,
    /// Unanswered probes sent within the peer's 500 ms answer rate limit: not a sign of death.
    pub unanswered_rate_limited: u32,
    pub resets: u32,
    pub zero_window_probes: u32,
    pub idle: Option<Estimate>,
    pub interval: Option<Estimate>,
    /// Unanswered probes before it gave up (its RST, or silence), when that was captured.
    pub count: Option<u32>,
    /// Longest run of unanswered probes seen: a lower bound on count when no abort was captured.
    pub count_at_least: u32,
    pub rtt_ms: Option<RttMs>,
    pub first_probe_frame: Option<u64>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct RttMs {
    pub min: f64,
    pub avg: f64,
    pub max: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ViolationReport {
    pub kind: &'static str,
    pub frame: u64,
    pub from: String,
    pub detail: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct FlowReport {
    pub flow_id: u64,
    /// "SRC:PORT > DST:PORT" with the client first when the handshake was seen.
    pub flow: String,
    pub client: Option<String>,
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vlan: Vec<u16>,
    pub first_frame: u64,
    pub first_time: f64,
    pub last_time: f64,
    pub packets: u64,
    /// "client", "server", "both", "none" (or "a"/"b"/"both" when the handshake was not captured).
    pub prober: &'static str,
    pub probes: u32,
    pub answered: u32,
    pub unanswered: u32,
    /// The main prober's unanswered probes in a row, as the flow stands (a
    /// probe still in flight not counted; 0 after an answer or an abort).
    pub unanswered_run: u32,
    pub resets: u32,
    pub zero_window_probes: u32,
    pub retransmissions: u32,
    /// The inferred keepalive settings of the (main) prober.
    pub idle_s: Option<f64>,
    pub interval_s: Option<f64>,
    pub count: Option<u32>,
    pub outcome: Outcome,
    /// `timed_out` without a RST: the prober stopped after unanswered probes
    /// and the capture went on past two intervals.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub silent: bool,
    pub violations: Vec<ViolationReport>,
    pub violations_total: u32,
    pub directions: Vec<ProberReport>,
    pub timestamps_out_of_order: u32,
    /// Who sent the RST that answered a probe: "peer" when its TTL matches the
    /// peer's other segments, "path" when it differs (a middlebox, such as a
    /// load balancer or NAT that forgot the flow, answered in the peer's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_by: Option<&'static str>,
    /// (RST's TTL, the peer's usual TTL) when a RST answered a probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_ttl: Option<(u8, u8)>,
}

impl FlowReport {
    pub fn of(c: &Connection) -> FlowReport {
        let k = c.keepalive();
        let roles = roles(c);
        let order = match c.client {
            Some(Side::Hi) => [Side::Hi, Side::Lo],
            _ => [Side::Lo, Side::Hi],
        };
        let directions: Vec<ProberReport> = order
            .iter()
            .filter(|s| k.ka[s.idx()].probes > 0 || k.ka[s.idx()].zw_probes > 0)
            .map(|&s| prober_report(c, s, roles[s.idx()]))
            .collect();
        let probing: Vec<&Prober> = k.ka.iter().filter(|k| k.probes > 0).collect();
        let main = order
            .iter()
            .map(|s| &k.ka[s.idx()])
            // Most probes; on a tie, the side that probed first.
            .max_by_key(|k| (k.probes, std::cmp::Reverse(k.first_probe_frame.unwrap_or(u64::MAX))))
            .filter(|k| k.probes > 0);
        let sum = |f: fn(&Prober) -> u32| k.ka.iter().map(f).sum::<u32>();
        let outcome = outcome(c);
        let ep = |s: Side| c.key.endpoint(s).to_string();
        FlowReport {
            flow_id: c.id,
            flow: format!("{} > {}", ep(order[0]), ep(order[1])),
            client: c.client.map(ep),
            server: c.client.map(|s| ep(s.other())),
            vlan: c.key.vlan().iter().copied().filter(|v| *v != 0).collect(),
            first_frame: c.first_frame,
            first_time: secs(c.first_time),
            last_time: secs(c.last_time),
            packets: c.dir[0].packets + c.dir[1].packets,
            prober: match probing.len() {
                0 => "none",
                1 => roles[k.ka.iter().position(|k| k.probes > 0).unwrap_or(0)],
                _ => "both",
            },
            probes: sum(|k| k.probes),
            answered: sum(|k| k.answered),
            unanswered: sum(|k| k.unanswered),
            unanswered_run: main.map_or(0, |k| k.run),
            resets: sum(|k| k.resets),
            zero_window_probes: sum(|k| k.zw_probes),
            retransmissions: k.retransmissions,
            idle_s: main.and_then(|k| k.idle.median()).map(secs),
            interval_s: main.and_then(|k| k.interval.median()).map(secs),
            count: main.and_then(|k| k.count),
            outcome,
            // Timed out, and by silence: no side's last probe ended in its RST.
            silent: outcome == Outcome::TimedOut && k.ka.iter().all(|k| k.last != Last::Aborted),
            violations: violation_reports(c),
            violations_total: k.violations.total,
            directions,
            timestamps_out_of_order: c.time_backwards,
            reset_by: k.reset_ttl.map(|(rst, usual)| ResetBy::of(rst, usual).name()),
            reset_ttl: k.reset_ttl,
        }
    }
}

/// Each side's role, by `Side::idx`: "client"/"server" when the handshake was seen, else "a"/"b".
pub fn roles(c: &Connection) -> [&'static str; 2] {
    match c.client {
        Some(Side::Lo) => ["client", "server"],
        Some(Side::Hi) => ["server", "client"],
        None => ["a", "b"],
    }
}

fn prober_report(c: &Connection, s: Side, role: &'static str) -> ProberReport {
    let k = &c.keepalive().ka[s.idx()];
    ProberReport {
        from: c.key.endpoint(s).to_string(),
        role,
        probes: k.probes,
        one_byte_probes: k.one_byte,
        answered: k.answered,
        unanswered: k.unanswered,
        unanswered_rate_limited: k.unanswered_rate_limited,
        resets: k.resets,
        zero_window_probes: k.zw_probes,
        idle: Estimate::of(&k.idle),
        interval: Estimate::of(&k.interval),
        count: k.count,
        count_at_least: k.longest_run,
        rtt_ms: match (k.rtt.min(), k.rtt.mean(), k.rtt.max()) {
            (Some(min), Some(avg), Some(max)) => Some(RttMs {
                min: min as f64 / 1e6,
                avg: avg as f64 / 1e6,
                max: max as f64 / 1e6,
            }),
            _ => None,
        },
        first_probe_frame: k.first_probe_frame,
    }
}

fn violation_report(c: &Connection, v: &Violation) -> ViolationReport {
    ViolationReport {
        kind: v.kind.as_str(),
        frame: v.frame,
        from: c.key.endpoint(v.side).to_string(),
        detail: v.kind.meaning(),
    }
}

fn outcome(c: &Connection) -> Outcome {
    let k = c.keepalive();
    if k.ka.iter().any(|k| matches!(k.last, Last::Aborted | Last::Silent)) {
        Outcome::TimedOut
    } else if c.dir.iter().any(|d| d.rst()) {
        Outcome::Reset
    } else if c.dir.iter().any(|d| d.fin()) {
        Outcome::Closed
    } else if k.ka.iter().any(|k| k.last == Last::Answered) {
        Outcome::Alive
    } else {
        Outcome::Unknown
    }
}

/// A flow's violations in frame order (a probe's rate limit is judged when it
/// is found unanswered, after later probes were checked).
fn violation_reports(c: &Connection) -> Vec<ViolationReport> {
    let mut list = c.keepalive().violations.list.clone();
    list.sort_by_key(|v| v.frame);
    list.iter().map(|v| violation_report(c, v)).collect()
}
