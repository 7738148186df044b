//! JSON Lines per the design contract: `segment`, `flow`, then `summary`.

use crate::analyze::{secs, FlowReport, SegmentEvent};
use serde::Serialize;
use std::fmt::Display;
use std::io::{self, Write};

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

pub fn segment(out: &mut impl Write, file: &str, ev: &SegmentEvent) -> io::Result<()> {
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
