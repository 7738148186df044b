//! The one probe builder: a style's probe from the session state
//! ([`ProbeShape::build`]) and the segment that carries it ([`ProbeShape::segment`]).
//! `probe` sends it, `explain` shows it, the synthetic scenarios record it.

use super::style::{AckRule, Payload, Style, TsRule};
use crate::wire::build::SegmentSpec;
use crate::wire::{Flags, Seq};
use std::net::SocketAddr;

/// The tracked session state a probe is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeInputs {
    pub snd_nxt: Seq,
    pub rcv_nxt: Seq,
    /// The window field the local kernel last advertised (already scaled down).
    pub window: u16,
    /// (TSval now, TSecr) when timestamps were negotiated.
    pub timestamp: Option<(u32, u32)>,
}

/// One probe, ready to be put on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeShape {
    pub seq: Seq,
    pub ack: Seq,
    /// The single payload byte, if any.
    pub payload: Option<u8>,
    pub timestamp: Option<(u32, u32)>,
    pub window: u16,
}

impl ProbeShape {
    pub fn len(&self) -> u32 {
        self.payload.is_some() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.payload.is_none()
    }

    /// `style`'s probe for `inp`. `payload`: 0 or 1 to override the style's
    /// length. `n` numbers the probe (the 4.2BSD garbage byte is derived from it).
    pub fn build(style: Style, payload: Option<u8>, inp: &ProbeInputs, n: u64) -> ProbeShape {
        let info = style.info();
        let len = payload.unwrap_or(style.payload_len()).min(1);
        let byte = match info.payload {
            Payload::Garbage => garbage(inp.snd_nxt.0 as u64 ^ n),
            Payload::Empty | Payload::Zero => 0x00,
        };
        ProbeShape {
            // SND.UNA − 1 and SND.NXT − 1 agree: probes go out with nothing in flight.
            seq: inp.snd_nxt.minus(1),
            ack: match info.ack {
                AckRule::RcvNxt => inp.rcv_nxt,
                AckRule::RcvNxtMinusOne => inp.rcv_nxt.minus(1),
            },
            payload: (len == 1).then_some(byte),
            // `inp` has a timestamp only when timestamps were negotiated.
            timestamp: inp.timestamp.filter(|_| info.ts == TsRule::WhenNegotiated),
            window: inp.window,
        }
    }

    /// The segment from `src` to `dst` that carries this probe: ACK only, no
    /// other options (probes carry none but TSopt).
    pub fn segment(&self, src: SocketAddr, dst: SocketAddr) -> SegmentSpec<'_> {
        let mut spec = SegmentSpec::new(src, dst, self.seq, self.ack, Flags::ACK);
        spec.window = self.window;
        spec.timestamp = self.timestamp;
        spec.payload = self.payload.as_slice();
        spec
    }
}

/// An arbitrary but reproducible byte ("uninitialised memory").
fn garbage(x: u64) -> u8 {
    let mut v = x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995;
    v ^= v >> 29;
    (v as u8) | 0x01
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(ts: bool) -> ProbeInputs {
        ProbeInputs {
            snd_nxt: Seq(1001),
            rcv_nxt: Seq(5001),
            window: 502,
            timestamp: ts.then_some((777, 888)),
        }
    }

    #[test]
    fn linux_probe_is_empty_one_back_with_tsopt() {
        let p = ProbeShape::build(Style::Linux, None, &inputs(true), 1);
        assert_eq!(
            (p.seq, p.ack, p.payload, p.timestamp),
            (Seq(1000), Seq(5001), None, Some((777, 888)))
        );
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn windows_probe_carries_one_zero_byte() {
        let p = ProbeShape::build(Style::Windows, None, &inputs(false), 1);
        assert_eq!(
            (p.seq, p.ack, p.payload, p.timestamp),
            (Seq(1000), Seq(5001), Some(0), None)
        );
    }

    #[test]
    fn bsd42_acks_one_back_with_garbage() {
        let p = ProbeShape::build(Style::Bsd42, None, &inputs(true), 1);
        assert_eq!((p.seq, p.ack), (Seq(1000), Seq(5000)));
        assert!(p.payload.is_some_and(|b| b != 0));
        assert_eq!(p.timestamp, None, "4.4BSD's tcp_respond() sends no options");
    }

    #[test]
    fn lwip_never_sends_tsopt() {
        let p = ProbeShape::build(Style::Lwip, None, &inputs(true), 1);
        assert_eq!((p.payload, p.timestamp), (None, None));
    }

    #[test]
    fn payload_override() {
        assert_eq!(ProbeShape::build(Style::Linux, Some(1), &inputs(true), 1).len(), 1);
        assert_eq!(ProbeShape::build(Style::Windows, Some(0), &inputs(true), 1).len(), 0);
    }

    #[test]
    fn wraps_below_zero() {
        let inp = ProbeInputs {
            snd_nxt: Seq(0),
            ..inputs(false)
        };
        assert_eq!(ProbeShape::build(Style::Linux, None, &inp, 1).seq, Seq(u32::MAX));
    }

    #[test]
    fn smoltcp_probe_is_one_zero_byte_with_tsopt() {
        let p = ProbeShape::build(Style::Smoltcp, None, &inputs(true), 1);
        assert_eq!(
            (p.seq, p.ack, p.payload, p.timestamp),
            (Seq(1000), Seq(5001), Some(0), Some((777, 888)))
        );
    }

    #[test]
    fn bsd42_byte_is_reproducible_and_varies_with_the_probe_number() {
        let b = |n| ProbeShape::build(Style::Bsd42, None, &inputs(false), n).payload;
        assert_eq!(b(1), b(1));
        assert!((1..=8).any(|n| b(n) != b(1)));
    }

    #[test]
    fn segment_carries_the_shape_and_nothing_else() {
        let src = "10.0.0.1:40000".parse().unwrap();
        let dst = "10.0.0.2:7077".parse().unwrap();
        let p = ProbeShape::build(Style::Windows, None, &inputs(true), 1);
        let s = p.segment(src, dst);
        assert_eq!(
            (s.src, s.dst, s.seq, s.ack, s.flags),
            (src, dst, p.seq, p.ack, Flags(Flags::ACK))
        );
        assert_eq!((s.window, s.timestamp, s.payload), (502, Some((777, 888)), &[0u8][..]));
        assert!(s.sack.is_empty() && s.mss.is_none() && s.wscale.is_none() && !s.sack_permitted);
        let p = ProbeShape::build(Style::Linux, None, &inputs(false), 1);
        assert!(p.segment(src, dst).payload.is_empty());
    }
}
