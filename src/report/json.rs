//! JSON Lines per the design contract: `segment`, `flow`, then `summary`.

use crate::analyze::{secs, FlowReport, SegmentEvent};
use serde::Serialize;
use std::io::{self, Write};

/// Writes `segment` lines for one file, by hand: serde's field-by-field key
/// escaping and formatting made `--json` several times slower than the
/// analysis. The line is what serde makes of the contract's struct
/// (`tests::SegmentLine`), byte for byte: a property test holds them
/// together. Floats still go through serde_json.
pub struct SegmentWriter {
    /// `"file":"…",` with the name escaped once.
    file: Vec<u8>,
    line: Vec<u8>,
}

impl SegmentWriter {
    pub fn new(file: &str) -> SegmentWriter {
        let mut f = b"\"file\":".to_vec();
        serde_json::to_writer(&mut f, file).expect("a string serializes");
        f.push(b',');
        SegmentWriter {
            file: f,
            line: Vec::with_capacity(512),
        }
    }

    pub fn write(&mut self, out: &mut impl Write, ev: &SegmentEvent) -> io::Result<()> {
        let l = &mut self.line;
        l.clear();
        l.extend_from_slice(b"{\"type\":\"segment\",");
        l.extend_from_slice(&self.file);
        field_int(l, "frame", ev.frame);
        field_f64(l, "time", secs(ev.time));
        field_int(l, "time_ns", ev.time);
        l.extend_from_slice(b"\"flow\":\"");
        endpoint(l, &ev.from);
        l.extend_from_slice(b" > ");
        endpoint(l, &ev.to);
        l.extend_from_slice(b"\",");
        field_int(l, "flow_id", ev.flow_id);
        field_str(l, "kind", ev.kind.as_str());
        field_int(l, "seq", ev.seq.0);
        field_int(l, "ack", ev.ack.0);
        field_int(l, "len", ev.len);
        field_str(l, "flags", ev.flags.letters());
        field_int(l, "window", ev.window);
        if let Some(v) = ev.rel_seq {
            field_int(l, "rel_seq", v);
        }
        if let Some(v) = ev.rel_ack {
            field_int(l, "rel_ack", v);
        }
        if let Some(v) = ev.answers {
            field_int(l, "answers", v);
        }
        if let Some(r) = ev.rtt {
            field_f64(l, "rtt_ms", r as f64 / 1e6);
        }
        if ev.dsack {
            l.extend_from_slice(b"\"dsack\":true,");
        }
        if ev.options_cut {
            l.extend_from_slice(b"\"options_cut\":true,");
        }
        l.extend_from_slice(b"\"ttl\":");
        l.extend_from_slice(itoa::Buffer::new().format(ev.ttl).as_bytes());
        l.extend_from_slice(b"}\n");
        out.write_all(l)
    }
}

/// `"name":` — names and the static strings written here need no escaping.
fn key(l: &mut Vec<u8>, name: &str) {
    l.push(b'"');
    l.extend_from_slice(name.as_bytes());
    l.extend_from_slice(b"\":");
}

fn field_int(l: &mut Vec<u8>, name: &str, v: impl itoa::Integer) {
    key(l, name);
    l.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    l.push(b',');
}

fn field_f64(l: &mut Vec<u8>, name: &str, v: f64) {
    key(l, name);
    serde_json::to_writer(&mut *l, &v).expect("a float serializes");
    l.push(b',');
}

fn field_str(l: &mut Vec<u8>, name: &str, v: &str) {
    debug_assert!(v.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'));
    key(l, name);
    l.push(b'"');
    l.extend_from_slice(v.as_bytes());
    l.extend_from_slice(b"\",");
}

/// `Endpoint`'s Display: IPv4 by hand, IPv6 (rarer) through it.
fn endpoint(l: &mut Vec<u8>, e: &crate::flow::Endpoint) {
    match e.addr {
        std::net::IpAddr::V4(a) => {
            let mut b = itoa::Buffer::new();
            for (i, o) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    l.push(b'.');
                }
                l.extend_from_slice(b.format(o).as_bytes());
            }
            l.push(b':');
            l.extend_from_slice(b.format(e.port).as_bytes());
        }
        std::net::IpAddr::V6(_) => {
            use std::io::Write as _;
            let _ = write!(l, "{e}");
        }
    }
}

#[derive(Serialize)]
struct FlowLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    file: &'a str,
    #[serde(flatten)]
    report: &'a FlowReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    expectation_failures: Option<&'a [String]>,
}

pub fn flow(out: &mut impl Write, file: &str, report: &FlowReport, failures: Option<&[String]>) -> io::Result<()> {
    serde_json::to_writer(
        &mut *out,
        &FlowLine {
            ty: "flow",
            file,
            report,
            expectation_failures: failures,
        },
    )?;
    out.write_all(b"\n")
}

/// Anything serializable, tagged with a type.
pub fn tagged(out: &mut impl Write, ty: &str, value: &impl Serialize) -> io::Result<()> {
    let mut v = serde_json::to_value(value).map_err(io::Error::other)?;
    if let serde_json::Value::Object(m) = &mut v {
        m.insert("type".into(), ty.into());
    }
    serde_json::to_writer(&mut *out, &v)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Display;

    fn display<S: serde::Serializer>(v: &impl Display, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    /// `SRC:PORT > DST:PORT` without allocating.
    struct Arrow<'a>(&'a SegmentEvent);

    impl Display for Arrow<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{} > {}", self.0.from, self.0.to)
        }
    }

    #[derive(Serialize)]
    struct SegmentLine<'a> {
        #[serde(rename = "type")]
        ty: &'static str,
        file: &'a str,
        frame: u64,
        time: f64,
        time_ns: u64,
        #[serde(serialize_with = "display")]
        flow: Arrow<'a>,
        flow_id: u64,
        kind: &'static str,
        seq: u32,
        ack: u32,
        len: u32,
        flags: &'static str,
        window: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        rel_seq: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rel_ack: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        answers: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rtt_ms: Option<f64>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        dsack: bool,
        /// The capture's snaplen cut the TCP options off.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        options_cut: bool,
        ttl: u8,
    }

    /// The contract's segment line, through serde: the reference.
    fn segment(out: &mut impl Write, file: &str, ev: &SegmentEvent) -> io::Result<()> {
        let line = SegmentLine {
            ty: "segment",
            file,
            frame: ev.frame,
            time: secs(ev.time),
            time_ns: ev.time,
            flow: Arrow(ev),
            flow_id: ev.flow_id,
            kind: ev.kind.as_str(),
            seq: ev.seq.0,
            ack: ev.ack.0,
            len: ev.len,
            flags: ev.flags.letters(),
            window: ev.window,
            rel_seq: ev.rel_seq,
            rel_ack: ev.rel_ack,
            answers: ev.answers,
            rtt_ms: ev.rtt.map(|r| r as f64 / 1e6),
            dsack: ev.dsack,
            options_cut: ev.options_cut,
            ttl: ev.ttl,
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")
    }
    use crate::analyze::Kind;
    use crate::flow::{Endpoint, Side};
    use crate::wire::{Flags, Seq};
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const KINDS: [Kind; 12] = [
        Kind::KeepaliveProbe,
        Kind::KeepaliveAck,
        Kind::KeepaliveRst,
        Kind::KeepaliveAbort,
        Kind::ZeroWindowProbe,
        Kind::ZeroWindowAck,
        Kind::Retransmission,
        Kind::Handshake,
        Kind::Data,
        Kind::Ack,
        Kind::Fin,
        Kind::Rst,
    ];

    fn endpoint() -> impl Strategy<Value = Endpoint> {
        (any::<bool>(), any::<u32>(), any::<u128>(), any::<u16>()).prop_map(|(v6, a4, a6, port)| Endpoint {
            addr: if v6 {
                IpAddr::V6(Ipv6Addr::from(a6))
            } else {
                IpAddr::V4(Ipv4Addr::from(a4))
            },
            port,
        })
    }

    fn event() -> impl Strategy<Value = SegmentEvent> {
        (
            (
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                endpoint(),
                endpoint(),
                0..KINDS.len(),
            ),
            (any::<u32>(), any::<u32>(), any::<u32>(), any::<u8>(), any::<u32>()),
            (
                any::<Option<u32>>(),
                any::<Option<u32>>(),
                any::<Option<u64>>(),
                any::<Option<u64>>(),
                any::<bool>(),
                any::<bool>(),
                any::<u8>(),
            ),
        )
            .prop_map(
                |(
                    (frame, time, flow_id, from, to, kind),
                    (seq, ack, len, flags, window),
                    (rel_seq, rel_ack, answers, rtt, dsack, options_cut, ttl),
                )| SegmentEvent {
                    frame,
                    time,
                    flow_id,
                    side: Side::Lo,
                    from,
                    to,
                    kind: KINDS[kind],
                    seq: Seq(seq),
                    ack: Seq(ack),
                    len,
                    flags: Flags(flags),
                    window,
                    rel_seq,
                    rel_ack,
                    answers,
                    rtt,
                    dsack,
                    next_seq: None,
                    peer_acked: None,
                    peer_acked_frame: None,
                    peer_window: None,
                    timestamp: None,
                    options_cut,
                    byte: None,
                    peer_next: None,
                    last_received: None,
                    ttl,
                    usual_ttl: None,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        /// The hand-written line is serde's, byte for byte, for any event and
        /// any file name (quotes, backslashes, control characters, non-ASCII).
        #[test]
        fn segment_writer_writes_what_serde_does(ev in event(), file in "\\PC*|[\"\\\\\u{0}-\u{1f}a-zé]{0,12}") {
            let mut by_hand = Vec::new();
            SegmentWriter::new(&file).write(&mut by_hand, &ev).unwrap();
            let mut by_serde = Vec::new();
            segment(&mut by_serde, &file, &ev).unwrap();
            prop_assert_eq!(String::from_utf8(by_hand).unwrap(), String::from_utf8(by_serde).unwrap());
        }
    }
}
