//! The probe styles kaprobe can send and explain: one table of what each stack
//! puts in its keepalive probe and where that is written down
//! (docs/tcp-keepalive.md §1). `probe`, `explain` and the synthetic
//! scenarios all read it; the builder in [`super::probe`] follows it.

use std::fmt;

/// A stack whose keepalive probe kaprobe can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Style {
    Linux,
    Windows,
    /// 4.4BSD built with `TCP_COMPAT_42`, for 4.2BSD peers.
    Bsd42,
    Lwip,
    Smoltcp,
}

/// What the probe carries after the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Nothing.
    Empty,
    /// One byte 0x00.
    Zero,
    /// One uninitialised byte: kaprobe makes it non-zero (so it cannot pass
    /// for a zero-filled byte) and reproducible from SND.NXT and the probe number.
    Garbage,
}

/// When the probe carries the TCP timestamps option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsRule {
    /// Whenever both SYNs negotiated timestamps.
    WhenNegotiated,
    /// Never, even when negotiated.
    Never,
}

/// The probe's sequence number. Both come to SND.NXT − 1 when probing: a stack
/// only probes with nothing in flight, so SND.UNA = SND.NXT
/// (docs/tcp-keepalive.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqRule {
    SndUnaMinusOne,
    SndNxtMinusOne,
}

/// The probe's ACK field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckRule {
    RcvNxt,
    /// 4.4BSD's `TCP_COMPAT_42` acknowledges one byte less: an old ACK the peer ignores.
    RcvNxtMinusOne,
}

/// One stack's probe and the facts it rests on.
#[derive(Clone, Copy, Debug)]
pub struct StyleInfo {
    pub style: Style,
    /// Command-line name.
    pub name: &'static str,
    /// Human name.
    pub title: &'static str,
    pub payload: Payload,
    pub ts: TsRule,
    /// Whether this stack usually negotiates timestamps (scenarios use this).
    pub ts_usual: bool,
    pub seq: SeqRule,
    /// The probe's sequence number, as the source states it.
    pub seq_rule: &'static str,
    pub ack: AckRule,
    /// What the payload byte is.
    pub payload_note: &'static str,
    /// Where this is written down: the function and file that build the probe.
    pub source: &'static str,
    /// What else is worth knowing.
    pub note: &'static str,
}

/// In `Style` order.
const STYLES: [StyleInfo; 5] = [
    StyleInfo {
        style: Style::Linux,
        name: "linux",
        title: "Linux",
        payload: Payload::Empty,
        ts: TsRule::WhenNegotiated,
        ts_usual: true,
        seq: SeqRule::SndUnaMinusOne,
        seq_rule: "SND.UNA − 1 (equal to SND.NXT − 1 when nothing is in flight)",
        ack: AckRule::RcvNxt,
        payload_note: "no payload",
        source: "tcp_xmit_probe_skb() in net/ipv4/tcp_output.c",
        note: "FreeBSD's probe (tcp_timer_keep()) is built the same way",
    },
    StyleInfo {
        style: Style::Windows,
        name: "windows",
        title: "Windows",
        payload: Payload::Zero,
        ts: TsRule::WhenNegotiated,
        ts_usual: false,
        seq: SeqRule::SndNxtMinusOne,
        seq_rule: "\"one less than the current sequence number\"",
        ack: AckRule::RcvNxt,
        payload_note: "one byte 0x00 in captures (not documented by Microsoft)",
        source: "Microsoft's documentation of KeepAliveTime; the byte is seen in captures",
        note: "timestamps are off by default on Windows, so its probes usually carry no TSopt",
    },
    StyleInfo {
        style: Style::Bsd42,
        name: "bsd42",
        title: "4.2BSD compatibility (4.4BSD TCP_COMPAT_42)",
        payload: Payload::Garbage,
        // tcp_respond() builds the probe and adds no options.
        ts: TsRule::Never,
        ts_usual: false,
        seq: SeqRule::SndUnaMinusOne,
        seq_rule: "SND.UNA − 1",
        ack: AckRule::RcvNxtMinusOne,
        payload_note: "one uninitialised byte (any value; kaprobe sends a non-zero one, fixed by SND.NXT and the probe number): a 4.2BSD host answers only a probe with data",
        source: "tcp_timer.c in 4.4BSD-Lite2",
        note: "4.2BSD predates the timestamps option",
    },
    StyleInfo {
        style: Style::Lwip,
        name: "lwip",
        title: "lwIP",
        payload: Payload::Empty,
        ts: TsRule::Never,
        ts_usual: false,
        seq: SeqRule::SndNxtMinusOne,
        seq_rule: "SND.NXT − 1",
        ack: AckRule::RcvNxt,
        payload_note: "no payload",
        source: "tcp_keepalive() in src/core/tcp_out.c",
        note: "never carries TSopt, even when timestamps were negotiated: Linux accepts that, RFC 7323 says the peer SHOULD drop it, and some stacks do",
    },
    StyleInfo {
        style: Style::Smoltcp,
        name: "smoltcp",
        title: "smoltcp",
        payload: Payload::Zero,
        // smoltcp 0.14 adds TSopt only when the socket has a TSval generator,
        // which it sets when the peer's SYN carried timestamps: "when negotiated".
        ts: TsRule::WhenNegotiated,
        ts_usual: true,
        // `remote_last_seq - 1`: the last sequence number sent, i.e. SND.NXT − 1.
        seq: SeqRule::SndNxtMinusOne,
        seq_rule: "seq − 1",
        ack: AckRule::RcvNxt,
        payload_note: "one byte 0x00",
        source: "dispatch() in src/socket/tcp.rs",
        note: "it gives up after its socket timeout, not after a probe count, and then sends a RST",
    },
];

impl Style {
    pub const ALL: [Style; 5] = [Style::Linux, Style::Windows, Style::Bsd42, Style::Lwip, Style::Smoltcp];

    pub fn info(self) -> &'static StyleInfo {
        &STYLES[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Every style's name, comma-separated, in table order.
    pub fn names() -> String {
        Style::ALL.map(Style::name).join(", ")
    }

    pub fn parse(s: &str) -> Result<Style, String> {
        Style::ALL
            .into_iter()
            .find(|st| st.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown style '{s}' ({})", Style::names()))
    }

    /// Payload bytes in a probe: 0 or 1.
    pub fn payload_len(self) -> u8 {
        (self.info().payload != Payload::Empty) as u8
    }

    /// Whether a probe carries TSopt on a connection that did (or did not) negotiate timestamps.
    pub fn probe_has_ts(self, negotiated: bool) -> bool {
        negotiated && self.info().ts == TsRule::WhenNegotiated
    }

    /// One line for `--help`: the name and what the probe looks like.
    pub fn summary(self) -> String {
        let i = self.info();
        let payload = match i.payload {
            Payload::Empty => "0 bytes",
            Payload::Zero => "1 byte 0x00",
            Payload::Garbage => "1 garbage byte",
        };
        let ack = match i.ack {
            AckRule::RcvNxt => "",
            AckRule::RcvNxtMinusOne => ", ack RCV.NXT-1",
        };
        let ts = match i.ts {
            TsRule::WhenNegotiated => "TSopt when negotiated",
            TsRule::Never => "never TSopt",
        };
        format!("{} ({payload}{ack}, {ts})", i.name)
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_enum_order_and_names_parse() {
        for st in Style::ALL {
            assert_eq!(st.info().style, st);
            assert_eq!(Style::parse(st.name()), Ok(st));
        }
        assert_eq!(Style::parse(" SMOLTCP"), Ok(Style::Smoltcp));
        let e = Style::parse("vms").unwrap_err();
        assert_eq!(e, "unknown style 'vms' (linux, windows, bsd42, lwip, smoltcp)");
    }

    #[test]
    fn lengths_and_timestamps() {
        let one: Vec<_> = Style::ALL.into_iter().filter(|s| s.payload_len() == 1).collect();
        assert_eq!(one, [Style::Windows, Style::Bsd42, Style::Smoltcp]);
        assert!(!Style::Lwip.probe_has_ts(true));
        assert!(!Style::Bsd42.probe_has_ts(true));
        assert!(Style::Smoltcp.probe_has_ts(true));
        assert!(Style::Linux.probe_has_ts(true));
        assert!(!Style::Linux.probe_has_ts(false));
    }

    #[test]
    fn summary_names_the_shape() {
        assert_eq!(
            Style::Bsd42.summary(),
            "bsd42 (1 garbage byte, ack RCV.NXT-1, never TSopt)"
        );
        assert_eq!(Style::Lwip.summary(), "lwip (0 bytes, never TSopt)");
    }
}
