//! What a capture's keepalive was, flow by flow, as `replay` re-enacts it:
//! read from `verify`'s analysis (the classifier's segment events and flow
//! reports), never classified a second time.

use super::Answer;
use crate::analyze::{roles, Connection, FlowReport, Kind, SegmentEvent, Sink};
use crate::conform::{Kind as Got, Ts, Variant};
use crate::flow::Side;
use std::collections::HashMap;

/// One probe of the capture, ready to be rebuilt on a live session.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedProbe {
    pub frame: u64,
    /// After the last segment the prober received before its first probe.
    pub at_ns: u64,
    /// Its shape relative to the prober's state: seq = SND.NXT − 1 (the
    /// classifier calls nothing else a probe), ack = RCV.NXT + `ack_delta`,
    /// the byte it carried, TSopt or not.
    pub variant: Variant,
    /// What came back in the capture.
    pub capture: Answer,
}

impl PlannedProbe {
    /// "0 bytes", "1 byte 0x00", with ", no TSopt" when it had none.
    pub fn shape(&self) -> String {
        let Variant::Crafted {
            byte, ts, ack_delta, ..
        } = self.variant
        else {
            return String::new();
        };
        let mut s = match byte {
            Some(b) => format!("1 byte 0x{b:02x}"),
            None => "0 bytes".into(),
        };
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

/// What the analysis said of one flow, as far as replay needs it.
#[derive(Default)]
struct Seen {
    prober: Option<Side>,
    /// When the prober last heard from its peer before its first probe.
    anchor: Option<u64>,
    prober_data: bool,
    probes: Vec<PlannedProbe>,
    notes: Vec<String>,
    /// A data segment after the first probe (its frame), not yet noted.
    data_after: Option<u64>,
    data_noted: bool,
}

/// Collects the plan from `verify`'s analysis (it needs every segment: `Events::All`).
#[derive(Default)]
pub struct Planner {
    flows: HashMap<u64, Seen>,
    pub plans: Vec<FlowPlan>,
    /// Flows without keepalive probes.
    pub without_keepalive: u64,
}

impl Sink for Planner {
    fn segment(&mut self, ev: &SegmentEvent) {
        match ev.kind {
            Kind::KeepaliveProbe => self.flows.entry(ev.flow_id).or_default().probe(ev),
            Kind::KeepaliveAck | Kind::KeepaliveRst => {
                if let Some(f) = self.flows.get_mut(&ev.flow_id) {
                    f.answer(ev);
                }
            }
            Kind::Data => {
                if let Some(f) = self.flows.get_mut(&ev.flow_id) {
                    f.data_after.get_or_insert(ev.frame);
                }
            }
            _ => {}
        }
    }

    fn flow(&mut self, c: Connection) {
        // Only a probe makes a flow's entry, and sets its prober.
        let Some(mut f) = self.flows.remove(&c.id) else {
            self.without_keepalive += 1;
            return;
        };
        let r = FlowReport::of(&c);
        let role = f.prober.map_or("prober", |p| roles(&c)[p.idx()]);
        if !c.timestamps_negotiated() {
            // No TSopt because none was negotiated: live, the session's own
            // negotiation decides (a probe without it where it was is a fault).
            for p in &mut f.probes {
                if let Variant::Crafted { ts, .. } = &mut p.variant {
                    *ts = Ts::Current;
                }
            }
        }
        self.plans.push(FlowPlan {
            id: r.flow_id,
            flow: r.flow.clone(),
            prober: role.to_string(),
            prober_data: f.prober_data,
            outcome: r.outcome_text().to_string(),
            probes: f.probes,
            notes: f.notes,
        });
    }
}

impl Seen {
    fn probe(&mut self, ev: &SegmentEvent) {
        let prober = match self.prober {
            Some(p) => p,
            None => {
                self.prober = Some(ev.side);
                // The idle the prober timed: since it last heard from its peer.
                self.anchor = ev.last_received;
                if ev.last_received.is_none() {
                    self.notes.push(
                        "the capture starts with a probe: the probes' times count from the first, sent once the live exchange is done"
                            .into(),
                    );
                }
                // Its probe's seq (SND.NXT − 1) is past its ISN when it had
                // sent data; without the handshake, assume it had.
                self.prober_data = ev.rel_seq.is_none_or(|r| r > 0);
                if ev.rel_seq.is_none() {
                    self.notes.push(
                        "the capture does not show whether the prober had sent data (no handshake): the live session sends some first"
                            .into(),
                    );
                }
                ev.side
            }
        };
        if ev.side != prober {
            let other = "the other side's probes are not replayed: one prober per flow";
            if !self.notes.iter().any(|n| n == other) {
                self.notes.push(other.into());
            }
            return;
        }
        if let (Some(frame), false) = (self.data_after, self.data_noted) {
            self.data_noted = true;
            self.notes.push(format!(
                "data flowed between probes (frame {frame}): live, none does, and the later probes keep the capture's times"
            ));
        }
        if let (Some(next), Some(acked)) = (ev.next_seq, ev.peer_acked) {
            if acked.before(next) {
                self.notes.push(format!(
                    "frame {}: sent with data unacknowledged; live, nothing is in flight",
                    ev.frame
                ));
            }
        }
        let mut ack_delta = ev.peer_next.map_or(0, |n| ev.ack.0.wrapping_sub(n.0) as i32);
        if ack_delta > 0 {
            // It acknowledges data the capture does not show: live, that
            // would be an ACK of data never sent.
            self.notes.push(format!(
                "frame {}: acknowledges {} the capture does not show; replayed acknowledging RCV.NXT",
                ev.frame,
                crate::units::count(ack_delta as u64, "byte")
            ));
            ack_delta = 0;
        }
        let byte = (ev.len == 1).then(|| {
            ev.byte.unwrap_or_else(|| {
                self.notes.push(format!(
                    "frame {}: the snaplen cut its byte off; 0x00 is sent",
                    ev.frame
                ));
                0
            })
        });
        let ts = match ev.timestamp {
            None if !ev.options_cut => Ts::Omitted,
            _ => Ts::Current,
        };
        let anchor = *self.anchor.get_or_insert(ev.time);
        self.probes.push(PlannedProbe {
            frame: ev.frame,
            at_ns: ev.time.saturating_sub(anchor),
            variant: Variant::Crafted {
                back: 1,
                byte,
                ts,
                ack_delta,
            },
            capture: Answer {
                kind: Got::None,
                rtt_ns: None,
            },
        });
        self.data_after = None;
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
