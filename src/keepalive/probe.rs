//! What a keepalive probe looks like, per stack (reference/keepalive-facts.md §1).

use crate::wire::Seq;

/// Whose probe to emulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// 0 bytes, seq SND.UNA − 1 (= SND.NXT − 1: probes only go out with
    /// nothing in flight), ack RCV.NXT, TSopt when negotiated.
    Linux,
    /// 1 byte 0x00, seq SND.NXT − 1, ack RCV.NXT, TSopt when negotiated.
    Windows,
    /// 4.2BSD compatibility (4.4BSD `TCP_COMPAT_42`): 1 garbage byte, seq
    /// SND.UNA − 1, ack RCV.NXT − 1, no options (`tcp_respond()` adds none).
    Bsd42,
    /// 0 bytes, seq SND.NXT − 1, ack RCV.NXT, never TSopt.
    Lwip,
}

impl Style {
    pub const NAMES: [&'static str; 4] = ["linux", "windows", "bsd42", "lwip"];

    pub fn parse(s: &str) -> Result<Style, String> {
        Ok(match s {
            "linux" => Style::Linux,
            "windows" => Style::Windows,
            "bsd42" => Style::Bsd42,
            "lwip" => Style::Lwip,
            _ => return Err(format!("unknown style '{s}' (linux, windows, bsd42, lwip)")),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Style::Linux => "linux",
            Style::Windows => "windows",
            Style::Bsd42 => "bsd42",
            Style::Lwip => "lwip",
        }
    }

    /// Payload bytes the stack puts in a probe.
    pub fn payload_len(self) -> u8 {
        match self {
            Style::Linux | Style::Lwip => 0,
            Style::Windows | Style::Bsd42 => 1,
        }
    }

    /// Whether the probe carries TSopt when timestamps were negotiated.
    pub fn sends_tsopt(self) -> bool {
        !matches!(self, Style::Lwip | Style::Bsd42)
    }
}

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
        let len = payload.unwrap_or(style.payload_len()).min(1);
        let byte = match style {
            Style::Bsd42 => garbage(inp.snd_nxt.0 as u64 ^ n),
            _ => 0x00,
        };
        ProbeShape {
            seq: inp.snd_nxt.minus(1),
            ack: match style {
                Style::Bsd42 => inp.rcv_nxt.minus(1),
                _ => inp.rcv_nxt,
            },
            payload: (len == 1).then_some(byte),
            timestamp: inp.timestamp.filter(|_| style.sends_tsopt()),
            window: inp.window,
        }
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
    fn styles_parse_by_name() {
        for n in Style::NAMES {
            assert_eq!(Style::parse(n).unwrap().name(), n);
        }
        assert!(Style::parse("solaris").is_err());
    }
}
