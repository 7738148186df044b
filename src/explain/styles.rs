//! How each TCP stack builds its keepalive probe, as data
//! (`shared/reference/keepalive-facts.md` §1).

use std::fmt;

/// A stack whose probe format kaprobe can build and explain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Style {
    Linux,
    Windows,
    /// 4.4BSD built with `TCP_COMPAT_42`, for 4.2BSD peers.
    Bsd42,
    Lwip,
    Smoltcp,
}

/// When a probe carries the TCP timestamps option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsRule {
    /// Whenever both SYNs negotiated timestamps.
    WhenNegotiated,
    /// Never, even when negotiated.
    Never,
}

/// One stack's probe format and where it comes from.
#[derive(Clone, Copy, Debug)]
pub struct StyleInfo {
    pub style: Style,
    /// Command-line name.
    pub name: &'static str,
    /// Human name.
    pub title: &'static str,
    /// The probe's payload: empty, or one byte.
    pub payload: &'static [u8],
    pub ts: TsRule,
    /// Timestamps are usually negotiated by this stack (scenarios use this).
    pub ts_usual: bool,
    /// The probe's sequence number, as the source states it.
    pub seq_rule: &'static str,
    /// The probe's ACK field is RCV.NXT − 1 instead of RCV.NXT.
    pub ack_minus_one: bool,
    /// What the payload byte is.
    pub payload_note: &'static str,
    /// Where this is written down.
    pub source: &'static str,
    /// What else is worth knowing.
    pub note: &'static str,
}

const STYLES: [StyleInfo; 5] = [
    StyleInfo {
        style: Style::Linux,
        name: "linux",
        title: "Linux",
        payload: &[],
        ts: TsRule::WhenNegotiated,
        ts_usual: true,
        seq_rule: "SND.UNA − 1 (equal to SND.NXT − 1 when nothing is in flight)",
        ack_minus_one: false,
        payload_note: "no payload",
        source: "tcp_xmit_probe_skb() in net/ipv4/tcp_output.c",
        note: "FreeBSD's probe (tcp_timer_keep()) is built the same way",
    },
    StyleInfo {
        style: Style::Windows,
        name: "windows",
        title: "Windows",
        payload: &[0x00],
        ts: TsRule::WhenNegotiated,
        ts_usual: false,
        seq_rule: "\"one less than the current sequence number\"",
        ack_minus_one: false,
        payload_note: "one byte 0x00 in captures (not documented by Microsoft)",
        source: "Microsoft's documentation of KeepAliveTime; the byte is seen in captures",
        note: "timestamps are off by default on Windows, so its probes usually carry no TSopt",
    },
    StyleInfo {
        style: Style::Bsd42,
        name: "bsd42",
        title: "4.2BSD compatibility (4.4BSD TCP_COMPAT_42)",
        payload: &[0x00],
        ts: TsRule::Never,
        ts_usual: false,
        seq_rule: "SND.UNA − 1",
        ack_minus_one: true,
        payload_note: "one uninitialised byte (any value; shown as 0x00): a 4.2BSD host answers only a probe with data",
        source: "tcp_timer.c in 4.4BSD-Lite2",
        note: "4.2BSD predates the timestamps option",
    },
    StyleInfo {
        style: Style::Lwip,
        name: "lwip",
        title: "lwIP",
        payload: &[],
        ts: TsRule::Never,
        ts_usual: false,
        seq_rule: "SND.NXT − 1",
        ack_minus_one: false,
        payload_note: "no payload",
        source: "tcp_keepalive() in src/core/tcp_out.c",
        note: "never carries TSopt, even when timestamps were negotiated: Linux accepts that, RFC 7323 says the peer SHOULD drop it, and some stacks do",
    },
    StyleInfo {
        style: Style::Smoltcp,
        name: "smoltcp",
        title: "smoltcp",
        payload: &[0x00],
        ts: TsRule::WhenNegotiated,
        ts_usual: true,
        seq_rule: "seq − 1",
        ack_minus_one: false,
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

    pub fn parse(s: &str) -> Result<Style, String> {
        Style::ALL
            .into_iter()
            .find(|st| st.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown style '{s}' (linux, windows, bsd42, lwip, smoltcp)"))
    }

    /// Whether a probe of this style carries TSopt on a connection that did (or did not) negotiate timestamps.
    pub fn probe_has_ts(self, negotiated: bool) -> bool {
        negotiated && self.info().ts == TsRule::WhenNegotiated
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
        assert!(Style::parse("vms").is_err());
    }

    #[test]
    fn one_byte_styles() {
        let one: Vec<_> = Style::ALL.iter().filter(|s| s.info().payload.len() == 1).collect();
        assert_eq!(one, [&Style::Windows, &Style::Bsd42, &Style::Smoltcp]);
        assert!(!Style::Lwip.probe_has_ts(true));
        assert!(Style::Linux.probe_has_ts(true));
        assert!(!Style::Linux.probe_has_ts(false));
    }
}
