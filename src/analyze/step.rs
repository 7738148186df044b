//! One line of a flow's kept timeline: what the human timeline shows of a
//! `SegmentEvent`, in a third of its size. Every open flow keeps up to
//! `Timeline::HEAD + Timeline::TAIL` of them until it ends, so on a capture of 50,000 flows
//! their size is most of verify's memory.

use super::event::SegmentEvent;
use super::kind::Kind;
use crate::flow::Side;
use crate::wire::{Flags, Seq};

mod bit {
    pub const REL_SEQ: u8 = 1;
    pub const REL_ACK: u8 = 1 << 1;
    pub const DSACK: u8 = 1 << 2;
    pub const OPTIONS_CUT: u8 = 1 << 3;
    pub const TIMESTAMP: u8 = 1 << 4;
    pub const USUAL_TTL: u8 = 1 << 5;
    pub const SIDE_HI: u8 = 1 << 6;
}

#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub frame: u64,
    pub time: u64,
    /// The probe's frame for an answer (frames count from 1: 0 is none).
    answers: u64,
    rtt: u64,
    pub seq: Seq,
    pub ack: Seq,
    pub len: u32,
    rel_seq: u32,
    rel_ack: u32,
    pub kind: Kind,
    pub flags: Flags,
    pub ttl: u8,
    usual_ttl: u8,
    has: u8,
}

impl Step {
    pub fn of(ev: &SegmentEvent) -> Step {
        let flag = |on: bool, b: u8| if on { b } else { 0 };
        Step {
            frame: ev.frame,
            time: ev.time,
            answers: ev.answers.filter(|_| ev.rtt.is_some()).unwrap_or(0),
            rtt: ev.rtt.unwrap_or(0),
            seq: ev.seq,
            ack: ev.ack,
            len: ev.len,
            rel_seq: ev.rel_seq.unwrap_or(0),
            rel_ack: ev.rel_ack.unwrap_or(0),
            kind: ev.kind,
            flags: ev.flags,
            ttl: ev.ttl,
            usual_ttl: ev.usual_ttl.unwrap_or(0),
            has: flag(ev.rel_seq.is_some(), bit::REL_SEQ)
                | flag(ev.rel_ack.is_some(), bit::REL_ACK)
                | flag(ev.dsack, bit::DSACK)
                | flag(ev.options_cut, bit::OPTIONS_CUT)
                | flag(ev.timestamp.is_some(), bit::TIMESTAMP)
                | flag(ev.usual_ttl.is_some(), bit::USUAL_TTL)
                | flag(ev.side == Side::Hi, bit::SIDE_HI),
        }
    }

    fn is(&self, b: u8) -> bool {
        self.has & b != 0
    }

    pub fn side(&self) -> Side {
        if self.is(bit::SIDE_HI) {
            Side::Hi
        } else {
            Side::Lo
        }
    }

    pub fn rel_seq(&self) -> Option<u32> {
        self.is(bit::REL_SEQ).then_some(self.rel_seq)
    }

    pub fn rel_ack(&self) -> Option<u32> {
        self.is(bit::REL_ACK).then_some(self.rel_ack)
    }

    /// For an answer: the probe's frame and the round trip.
    pub fn answers(&self) -> Option<(u64, u64)> {
        (self.answers != 0).then_some((self.answers, self.rtt))
    }

    pub fn dsack(&self) -> bool {
        self.is(bit::DSACK)
    }

    pub fn options_cut(&self) -> bool {
        self.is(bit::OPTIONS_CUT)
    }

    pub fn has_timestamp(&self) -> bool {
        self.is(bit::TIMESTAMP)
    }

    pub fn usual_ttl(&self) -> Option<u8> {
        self.is(bit::USUAL_TTL).then_some(self.usual_ttl)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_step_is_a_third_of_an_event() {
        assert!(std::mem::size_of::<super::Step>() * 3 <= std::mem::size_of::<super::SegmentEvent>());
    }
}
