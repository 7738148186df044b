//! What a capture's keepalive was, flow by flow, as `replay` re-enacts it:
//! read from `verify`'s analysis (the classifier's segment events and flow
//! reports), never classified a second time.

use super::Answer;
use crate::analyze::{Connection, FlowReport, Kind, SegmentEvent, Sink};
use crate::conform::{Kind as Got, Ts, Variant};
use crate::flow::Side;
use crate::wire::Seq;
use std::collections::HashMap;

/// One probe of the capture, ready to be rebuilt on a live session.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedProbe {
    pub frame: u64,
    /// After the last segment the prober received before its first probe.
    pub at_ns: u64,
    /// Its shape relative to the prober's state: seq = SND.NXT − `back`,
    /// ack = RCV.NXT + `ack_delta`, the byte it carried, TSopt or not.
    pub variant: Variant,
    /// What came back in the capture.
    pub capture: Answer,
}

impl PlannedProbe {
    /// "0 bytes", "1 byte 0x00", with ", no TSopt" when it had none.
    pub fn shape(&self) -> String {
        let Variant::Crafted {
            byte,
            ts,
            back,
            ack_delta,
        } = self.variant
        else {
            return String::new();
        };
        let mut s = match byte {
            Some(b) => format!("1 byte 0x{b:02x}"),
            None => "0 bytes".into(),
        };
        if back != 1 {
            s += &format!(", seq SND.NXT-{back}");
        }
        if ack_delta != 0 {
            s += &format!(", ack RCV.NXT{ack_delta:+}");
        }
        if ts == Ts::Omitted {
            s += ", no TSopt";
        }
        s
    }
}

/// A flow whose keepalive can be replayed.
#[derive(Clone, Debug)]
pub struct FlowPlan {
    pub id: u64,
    /// "SRC:PORT > DST:PORT", as `verify` names it.
    pub flow: String,
    /// The prober's role ("client", "server", "a", "b").
    pub prober: String,
    /// The prober had sent data before it probed (its probe's byte was data).
    pub prober_data: bool,
    /// The flow's outcome in the capture (`verify`'s words).
    pub outcome: String,
    pub probes: Vec<PlannedProbe>,
    /// What the replay leaves out or assumes, one line each.
    pub notes: Vec<String>,
}

/// A flow that cannot be replayed, and why (one line).
#[derive(Clone, Debug, PartialEq)]
pub struct NotReplayed {
    pub id: u64,
    pub flow: String,
    pub why: String,
}

/// What the analysis said of one flow, as far as replay needs it.
#[derive(Default)]
struct Seen {
    /// Per side (`Side as usize`): its latest segment's time, the sequence
    /// number after its segments, whether it sent data.
    last: [Option<u64>; 2],
    next: [Option<Seq>; 2],
    data: [bool; 2],
    prober: Option<Side>,
    anchor: Option<u64>,
    anchored: bool,
    prober_data: bool,
    probes: Vec<PlannedProbe>,
    other_side_probes: u32,
    /// Probes that cannot be rebuilt: (frame, why).
    unbuildable: Vec<(u64, String)>,
}

/// Collects the plan from `verify`'s analysis (it needs every segment: `Events::All`).
#[derive(Default)]
pub struct Planner {
    flows: HashMap<u64, Seen>,
    pub plans: Vec<FlowPlan>,
    pub not_replayed: Vec<NotReplayed>,
    /// Flows without keepalive probes.
    pub without_keepalive: u64,
}

impl Sink for Planner {
    fn segment(&mut self, ev: &SegmentEvent) {
        let f = self.flows.entry(ev.flow_id).or_default();
        let side = ev.side as usize;
        match ev.kind {
            Kind::KeepaliveProbe => f.probe(ev),
            Kind::KeepaliveAck | Kind::KeepaliveRst => f.answer(ev),
            _ => {}
        }
        f.last[side] = Some(ev.time);
        f.data[side] |= ev.len > 0 && ev.kind != Kind::KeepaliveProbe;
        let end = ev.seq.plus(ev.len + ev.flags.syn() as u32 + ev.flags.fin() as u32);
        if !ev.flags.rst() && f.next[side].is_none_or(|n| end.after(n)) {
            f.next[side] = Some(end);
        }
    }

    fn flow(&mut self, c: Connection) {
        let f = self.flows.remove(&c.id).unwrap_or_default();
        let r = FlowReport::of(&c);
        let Some(prober) = f.prober else {
            self.without_keepalive += 1;
            return;
        };
        if let Some((frame, why)) = f.unbuildable.first() {
            self.not_replayed.push(NotReplayed {
                id: r.flow_id,
                flow: r.flow,
                why: format!("frame {frame}: {why}"),
            });
            return;
        }
        let role = r
            .directions
            .iter()
            .find(|d| d.from == c.key.endpoint(prober).to_string())
            .map_or("prober", |d| d.role);
        let mut notes = Vec::new();
        if !f.anchored {
            notes.push(
                "the capture starts with a probe: the probes' times count from the first, sent once the live connection is up"
                    .to_string(),
            );
        }
        if f.other_side_probes > 0 {
            let n = crate::units::count(u64::from(f.other_side_probes), "probe");
            notes.push(format!("the other side's {n} are not replayed: one prober per flow"));
        }
        self.plans.push(FlowPlan {
            id: r.flow_id,
            flow: r.flow.clone(),
            prober: role.to_string(),
            prober_data: f.prober_data,
            outcome: r.outcome_text().to_string(),
            probes: f.probes,
            notes,
        });
    }
}

impl Seen {
    fn probe(&mut self, ev: &SegmentEvent) {
        let prober = match self.prober {
            Some(p) => p,
            None => {
                // The idle the prober timed: since it last heard from its peer.
                self.anchor = self.last[ev.side.other() as usize];
                self.anchored = self.anchor.is_some();
                // Without the handshake, whether it had sent data is unknown: it
                // most likely had, and a live probe's byte is then data as well.
                self.prober_data = self.data[ev.side as usize] || ev.rel_seq.is_none();
                self.prober = Some(ev.side);
                ev.side
            }
        };
        if ev.side != prober {
            self.other_side_probes += 1;
            return;
        }
        if ev.len > 1 {
            self.unbuildable.push((
                ev.frame,
                format!("a probe of {} bytes: a live session sends 0 or 1", ev.len),
            ));
            return;
        }
        let back = ev.next_seq.map_or(1, |n| n.0.wrapping_sub(ev.seq.0));
        if back > u32::MAX / 2 {
            self.unbuildable.push((
                ev.frame,
                "the probe's seq is ahead of the prober's next: no live session sends that".into(),
            ));
            return;
        }
        let rcv_nxt = self.next[ev.side.other() as usize];
        let ack_delta = rcv_nxt.map_or(0, |n| ev.ack.0.wrapping_sub(n.0) as i32);
        let ts = match ev.timestamp {
            None if !ev.options_cut => Ts::Omitted,
            _ => Ts::Current,
        };
        let byte = (ev.len == 1).then(|| ev.byte.unwrap_or(0));
        let anchor = *self.anchor.get_or_insert(ev.time);
        self.probes.push(PlannedProbe {
            frame: ev.frame,
            at_ns: ev.time.saturating_sub(anchor),
            variant: Variant::Crafted {
                back,
                byte,
                ts,
                ack_delta,
            },
            capture: Answer {
                kind: Got::None,
                rtt_ns: None,
            },
        });
    }

    fn answer(&mut self, ev: &SegmentEvent) {
        let Some(p) = ev
            .answers
            .and_then(|frame| self.probes.iter_mut().rev().find(|p| p.frame == frame))
        else {
            return;
        };
        p.capture = Answer {
            kind: match (ev.kind, ev.dsack) {
                (Kind::KeepaliveRst, _) => Got::Rst,
                (_, true) => Got::AckDsack,
                _ => Got::Ack,
            },
            rtt_ns: ev.rtt,
        };
    }
}
