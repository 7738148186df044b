//! `explain probe`: a keepalive probe of a given style and a Linux peer's
//! answer, built as real frames and annotated field by field, then the wrong
//! probes people write and what a Linux peer does with each.

use super::annotate::{annotate, Annotated, Field};
use crate::decode::LinkType;
use crate::keepalive::style::{AckRule, TsRule};
use crate::keepalive::{ProbeInputs, ProbeShape, Style};
use crate::wire::build::{ethernet_frame, BuildError, SegmentSpec};
use crate::wire::{Flags, Seq};
use std::fmt::Write as _;
use std::net::SocketAddr;

/// What to build.
#[derive(Clone, Copy, Debug)]
pub struct ProbeParams {
    pub style: Style,
    /// The prober's SND.NXT: the next byte it would send, which the peer has
    /// acknowledged (nothing is in flight). The probe goes one below.
    pub snd_nxt: u32,
    /// The prober's RCV.NXT: the next byte it expects from the peer.
    pub rcv_nxt: u32,
    pub ipv6: bool,
    /// Both SYNs negotiated timestamps.
    pub timestamps: bool,
}

impl Default for ProbeParams {
    fn default() -> Self {
        ProbeParams {
            style: Style::Linux,
            snd_nxt: 1001,
            rcv_nxt: 5001,
            ipv6: false,
            timestamps: false,
        }
    }
}

impl ProbeParams {
    /// The prober's session state, as `kaprobe probe` tracks it.
    pub fn inputs(&self) -> ProbeInputs {
        ProbeInputs {
            snd_nxt: Seq(self.snd_nxt),
            rcv_nxt: Seq(self.rcv_nxt),
            window: PROBER_WINDOW,
            timestamp: self.timestamps.then_some((PROBER_TS_NOW, PEER_TS_BEFORE)),
        }
    }

    /// The probe shown: the first of a session (its number matters to the
    /// 4.2BSD garbage byte), built as `kaprobe probe` builds it.
    pub fn shape(&self) -> ProbeShape {
        ProbeShape::build(self.style, None, &self.inputs(), 1)
    }

    /// The prober and its peer.
    pub fn endpoints(&self) -> (SocketAddr, SocketAddr) {
        ends(self.ipv6)
    }
}

/// The prober's timestamp clock when it last sent in-window data, and at the probe (30 s later at 1 kHz).
const PROBER_TS_BEFORE: u32 = 1_000_000;
const PROBER_TS_NOW: u32 = 1_030_000;
/// The peer's clock at its last segment, and at its answer.
const PEER_TS_BEFORE: u32 = 2_000_000;
const PEER_TS_NOW: u32 = 2_030_000;
const PROBER_WINDOW: u16 = 502;
const PEER_WINDOW: u16 = 509;

fn ends(ipv6: bool) -> (SocketAddr, SocketAddr) {
    let (p, q) = if ipv6 {
        ("[fd77:0:0:1::1]:40000", "[fd77:0:0:101::2]:7077")
    } else {
        ("10.77.1.1:40000", "10.77.101.2:7077")
    };
    (p.parse().expect("address"), q.parse().expect("address"))
}

/// One segment from the prober (or, with `answer`, from the peer).
#[derive(Clone, Debug)]
struct Seg {
    answer: bool,
    seq: u32,
    ack: u32,
    payload: Vec<u8>,
    ts: Option<(u32, u32)>,
    sack: Option<(u32, u32)>,
}

impl Seg {
    fn build(&self, ipv6: bool) -> Result<Vec<u8>, BuildError> {
        let (me, peer) = ends(ipv6);
        let (src, dst) = if self.answer { (peer, me) } else { (me, peer) };
        let sack = self.sack.map(|(l, r)| [(Seq(l), Seq(r))]);
        let mut spec = SegmentSpec::new(src, dst, Seq(self.seq), Seq(self.ack), Flags::ACK);
        spec.window = if self.answer { PEER_WINDOW } else { PROBER_WINDOW };
        spec.timestamp = self.ts;
        spec.payload = &self.payload;
        if let Some(s) = &sack {
            spec.sack = s;
        }
        frame(&spec)
    }
}

fn frame(spec: &SegmentSpec) -> Result<Vec<u8>, BuildError> {
    let mut out = Vec::new();
    ethernet_frame(spec, &mut out)?;
    Ok(out)
}

/// The frame of `shape` from the prober to its peer, built as `kaprobe probe` sends it.
fn probe_frame(p: &ProbeParams, shape: &ProbeShape) -> Result<Vec<u8>, BuildError> {
    let (me, peer) = p.endpoints();
    frame(&shape.segment(me, peer))
}

/// What a Linux peer answers to `probe`.
fn answer_seg(p: &ProbeParams, probe: &ProbeShape) -> Seg {
    // ts_recent: a 0-byte probe lies outside the window and does not update
    // it; a 1-byte probe overlaps RCV.NXT and does.
    let echo = match probe.timestamp {
        Some((val, _)) if !probe.is_empty() => val,
        _ => PROBER_TS_BEFORE,
    };
    Seg {
        answer: true,
        seq: p.rcv_nxt,
        ack: p.snd_nxt,
        payload: Vec::new(),
        ts: p.timestamps.then_some((PEER_TS_NOW, echo)),
        sack: (!probe.is_empty()).then_some((p.snd_nxt.wrapping_sub(1), p.snd_nxt)),
    }
}

/// A built and annotated frame.
pub struct Shown {
    pub title: String,
    pub annotated: Annotated,
}

fn show(title: String, frame: &[u8]) -> Shown {
    Shown {
        title,
        annotated: annotate(LinkType::Ethernet, frame),
    }
}

fn wraps(v: u32, minus: bool) -> &'static str {
    match (minus, v) {
        (true, u32::MAX) => " (wraps around below 0)",
        _ => "",
    }
}

/// The probe, annotated with why each value is what it is.
pub fn probe(p: &ProbeParams) -> Result<Shown, BuildError> {
    let info = p.style.info();
    let shape = p.shape();
    let (seq, ack) = (shape.seq.0, shape.ack.0);
    let mut s = show(format!("{} keepalive probe", info.title), &probe_frame(p, &shape)?);
    let a = &mut s.annotated;
    a.explain(
        "tcp.seq",
        format!(
            "seq = SND.NXT − 1 = {seq}{}: one byte the peer already has, so it must answer",
            wraps(seq, true)
        ),
    );
    a.explain(
        "tcp.ack",
        match info.ack {
            AckRule::RcvNxtMinusOne => {
                format!("ack = RCV.NXT − 1 = {ack}: how TCP_COMPAT_42 builds it; an old ACK, which the peer ignores")
            }
            AckRule::RcvNxt => format!("ack = RCV.NXT = {ack}: all the prober has received; nothing new"),
        },
    );
    a.explain(
        "tcp.flags",
        "ACK only: no SYN, FIN or RST, and no PSH: nothing for the application",
    );
    a.explain(
        "tcp.window_size_value",
        "the prober's receive window, as in its last segment",
    );
    a.explain(
        "tcp.payload",
        format!("byte {seq} again: the peer has it, answers, and throws it away"),
    );
    a.explain(
        "tcp.options.timestamp.tsval",
        "the prober's clock now: newer than any TSval the peer has seen, so PAWS lets it in",
    );
    a.explain("tcp.options.timestamp.tsecr", "echo of the peer's last TSval");
    let n = shape.len();
    let tcp_len = 20 + if shape.timestamp.is_some() { 12 } else { 0 };
    let (key, ip) = if p.ipv6 {
        ("ipv6.plen", String::new())
    } else {
        ("ip.len", "20 (IP) + ".to_string())
    };
    a.explain(
        key,
        format!(
            "{ip}{tcp_len} (TCP) + {n}{}",
            if n == 0 {
                ": no payload, the probe carries nothing"
            } else {
                ": one payload byte"
            }
        ),
    );
    Ok(s)
}

/// A Linux peer's answer to the probe.
pub fn answer(p: &ProbeParams) -> Result<Shown, BuildError> {
    let pr = p.shape();
    let seg = answer_seg(p, &pr);
    let mut s = show("a Linux peer's answer (keepalive ACK)".into(), &seg.build(p.ipv6)?);
    let a = &mut s.annotated;
    a.explain(
        "tcp.seq",
        format!("seq = the peer's SND.NXT = {}: it sends no data", seg.seq),
    );
    a.explain(
        "tcp.ack",
        format!(
            "ack = RCV.NXT = {} = probe seq + 1: \"I have everything before {}\" — the answer",
            seg.ack, seg.ack
        ),
    );
    a.explain("tcp.flags", "ACK only: a duplicate ACK, which is all a probe asks for");
    a.explain(
        "tcp.window_size_value",
        "non-zero; Wireshark calls the answer Keep-Alive ACK only when the window is also unchanged",
    );
    a.explain(
        "tcp.options.sack",
        "SACK option, because SACK was negotiated (assumed here) and a byte arrived twice",
    );
    if let Some((l, r)) = seg.sack {
        a.explain(
            "tcp.options.sack.block1",
            format!("D-SACK [{l}, {r}): \"your byte {l} arrived twice\" (RFC 2883); it is never delivered"),
        );
    }
    a.explain("tcp.options.timestamp.tsval", "the peer's clock now");
    a.explain(
        "tcp.options.timestamp.tsecr",
        if pr.is_empty() {
            "ts_recent: the TSval of the prober's last in-window segment (a 0-byte probe is out of window and does not update it)"
        } else {
            "ts_recent: the probe's own TSval (a 1-byte probe overlaps RCV.NXT, so it updates ts_recent)"
        },
    );
    Ok(s)
}

/// A probe built wrong, and what a Linux peer does with it.
pub struct Variant {
    pub title: String,
    pub shown: Shown,
    pub peer: String,
}

/// The wrong probes: seq = SND.NXT, a stale TSval, two bytes, no TSopt. Each
/// is the right probe with one thing changed.
pub fn variants(p: &ProbeParams) -> Result<Vec<Variant>, BuildError> {
    let right = p.shape();
    let mut out = Vec::new();
    let mut add = |title: String, frame: Vec<u8>, peer: String| {
        let shown = show(title.clone(), &frame);
        out.push(Variant { title, shown, peer });
    };
    let at_nxt = ProbeShape {
        seq: Seq(p.snd_nxt),
        ..right
    };
    let peer = if let Some(b) = right.payload {
        format!("data, not a probe: the byte at RCV.NXT is new, so the peer delivers a stray 0x{b:02x} byte to its application and acknowledges it")
    } else {
        format!(
            "no answer. A zero-length segment at exactly RCV.NXT ({}) is acceptable and has nothing to acknowledge: tcp_data_queue() drops it silently, so the prober hears nothing and, after enough of them, declares a live peer dead",
            p.snd_nxt
        )
    };
    add(
        format!("seq = SND.NXT ({}) instead of SND.NXT − 1", p.snd_nxt),
        probe_frame(p, &at_nxt)?,
        peer,
    );
    if let Some((_, ecr)) = right.timestamp {
        let stale = ProbeShape {
            timestamp: Some((PROBER_TS_BEFORE - 1000, ecr)),
            ..right
        };
        add(
            format!(
                "stale TSval ({}, older than the {} the peer last accepted)",
                PROBER_TS_BEFORE - 1000,
                PROBER_TS_BEFORE
            ),
            probe_frame(p, &stale)?,
            "no answer on kernels with the January 2025 TCP_RFC7323_PAWS_ACK change: PAWS drops it silently (older kernels sent a duplicate ACK). A user-space prober must send a current TSval".into(),
        );
        let none = ProbeShape {
            timestamp: None,
            ..right
        };
        add(
            "no TSopt although timestamps were negotiated".into(),
            probe_frame(p, &none)?,
            "Linux accepts it and answers; RFC 7323 says the peer SHOULD drop it, and some stacks do. kaprobe verify reports probe_without_timestamp".into(),
        );
    }
    // The style's byte (if any), then a new 0x00: the byte the peer's application gets.
    let two_bytes = [right.payload.unwrap_or(0), 0];
    let (me, peer) = p.endpoints();
    let mut two = right.segment(me, peer);
    two.payload = &two_bytes;
    add(
        "2 bytes of payload".into(),
        frame(&two)?,
        format!(
            "data: the first byte ({}) is a duplicate, the second ({}) is new. The peer keeps the new byte — its application reads a 0x00 nobody sent — and acknowledges {}. kaprobe verify reports probe_payload_too_long",
            p.snd_nxt.wrapping_sub(1),
            p.snd_nxt,
            p.snd_nxt.wrapping_add(1)
        ),
    );
    Ok(out)
}

/// Fields of `v` that differ from `base` (checksums aside), and fields `base` has that `v` lacks.
pub fn differences<'a>(base: &'a Annotated, v: &'a Annotated) -> (Vec<&'a Field>, Vec<&'a Field>) {
    let nth = |a: &'a Annotated, f: &Field| {
        let i = a
            .fields
            .iter()
            .filter(|g| g.key == f.key)
            .position(|g| std::ptr::eq(g, f));
        (f.key, i)
    };
    let find = |a: &'a Annotated, key: (&str, Option<usize>)| {
        a.fields.iter().filter(|g| g.key == key.0).nth(key.1.unwrap_or(0))
    };
    let skip = |f: &Field| f.key.ends_with("checksum");
    let changed = v
        .fields
        .iter()
        .filter(|f| !skip(f))
        .filter(|f| find(base, nth(v, f)).is_none_or(|b| b.value != f.value || v.bytes_of(f) != base.bytes_of(b)))
        .collect();
    let removed = base
        .fields
        .iter()
        .filter(|f| !skip(f))
        .filter(|f| find(v, nth(base, f)).is_none())
        .collect();
    (changed, removed)
}

/// `text` in lines of at most `width` characters, each starting with `indent`.
pub fn wrap(text: &str, indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::from(indent);
    for word in text.split(' ') {
        if line.chars().count() > indent.len() && line.chars().count() + 1 + word.chars().count() > width {
            out += line.trim_end();
            out.push('\n');
            line = format!("{indent}  ");
        }
        if line.chars().count() > indent.len() && !line.ends_with(' ') {
            line.push(' ');
        }
        line.push_str(word);
    }
    out += line.trim_end();
    out.push('\n');
    out
}

/// The whole `explain probe` text.
pub fn render(p: &ProbeParams) -> Result<String, BuildError> {
    let info = p.style.info();
    let (me, peer) = ends(p.ipv6);
    let mut out = String::new();
    let pr = probe(p)?;
    let an = answer(p)?;
    let ts = match (p.timestamps, p.style.probe_has_ts(p.timestamps)) {
        (false, _) => "timestamps not negotiated (--timestamps to negotiate them)",
        (true, true) => "timestamps negotiated: the probe carries TSopt",
        (true, false) => "timestamps negotiated, but this stack's probe never carries TSopt",
    };
    let _ = writeln!(out, "{} keepalive probe", info.title);
    let _ = writeln!(out, "  seq:      {}", info.seq_rule);
    let _ = writeln!(out, "  payload:  {}", info.payload_note);
    let _ = writeln!(out, "  options:  {ts}");
    let _ = writeln!(out, "  source:   {}", info.source);
    let _ = writeln!(out, "  note:     {}", info.note);
    let _ = writeln!(
        out,
        "  prober {me}: SND.NXT = {} (all acknowledged: SND.UNA = SND.NXT), RCV.NXT = {}",
        p.snd_nxt, p.rcv_nxt
    );
    let _ = writeln!(out, "  peer   {peer}: SND.NXT = {}, RCV.NXT = {}", p.rcv_nxt, p.snd_nxt);
    for (s, dir) in [(&pr, format!("{me} > {peer}")), (&an, format!("{peer} > {me}"))] {
        let _ = writeln!(out, "\n{}: {dir}, {} bytes", s.title, s.annotated.bytes.len());
        out += &s.annotated.render("  ");
    }
    let _ = writeln!(
        out,
        "\nWhy one byte back: the byte at SND.NXT − 1 was already acknowledged, so the probe is a duplicate,\n\
         and a receiver must answer a duplicate with an ACK of its RCV.NXT — whether or not it enabled\n\
         keepalive itself. A zero-length segment at exactly RCV.NXT is acceptable and needs no answer.\n\
         Wireshark marks the pair tcp.analysis.keep_alive and tcp.analysis.keep_alive_ack."
    );
    let _ = writeln!(out, "\nWrong probes, and what a Linux peer does with them:");
    for (i, v) in variants(p)?.iter().enumerate() {
        let _ = writeln!(out, "\n  {}. {}", i + 1, v.title);
        let (changed, removed) = differences(&pr.annotated, &v.shown.annotated);
        for f in changed {
            let _ = writeln!(
                out,
                "     {:04x}    {:<23}  {:<18}  {}",
                f.offset,
                super::annotate::hex(&v.shown.annotated.bytes_of(f)[..f.len.min(8)]),
                f.name,
                f.value
            );
        }
        if !removed.is_empty() {
            let names: Vec<&str> = removed.iter().map(|f| f.name.as_str()).collect();
            let bytes: usize = removed.iter().map(|f| f.len).sum();
            let _ = writeln!(out, "     removed: {} ({bytes} bytes)", names.join(", "));
        }
        out += &wrap(&format!("a Linux peer: {}", v.peer), "     ", 100);
    }
    if !p.timestamps && info.ts == TsRule::WhenNegotiated {
        let _ = writeln!(
            out,
            "\n  (with --timestamps: also a stale TSval, which current Linux drops without an answer)"
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::{Analyzer, Collect, Config, Events, Kind};
    use crate::decode::decode;

    /// The built probe and answer, after a data segment each way, classify
    /// as keepalive_probe and keepalive_ack for every style.
    #[test]
    fn every_style_builds_a_probe_and_answer_the_classifier_accepts() {
        for style in Style::ALL {
            for (ipv6, timestamps) in [(false, false), (true, true)] {
                let p = ProbeParams {
                    style,
                    ipv6,
                    timestamps,
                    ..ProbeParams::default()
                };
                let pr = probe(&p).unwrap();
                let an = answer(&p).unwrap();
                assert!(pr.annotated.tcp_checksum.unwrap().is_correct());
                assert!(an.annotated.tcp_checksum.unwrap().is_correct());
                // Context: the prober's last byte was acknowledged by the peer.
                let data = Seg {
                    answer: false,
                    seq: p.snd_nxt - 10,
                    ack: p.rcv_nxt,
                    payload: vec![b'x'; 10],
                    ts: timestamps.then_some((PROBER_TS_BEFORE, PEER_TS_BEFORE)),
                    sack: None,
                };
                let ack = Seg {
                    answer: true,
                    seq: p.rcv_nxt,
                    ack: p.snd_nxt,
                    payload: vec![],
                    ts: timestamps.then_some((PEER_TS_BEFORE, PROBER_TS_BEFORE)),
                    sack: None,
                };
                let frames = [
                    data.build(ipv6).unwrap(),
                    ack.build(ipv6).unwrap(),
                    pr.annotated.bytes.clone(),
                    an.annotated.bytes.clone(),
                ];
                let mut an = Analyzer::new(Config {
                    events: Events::All,
                    ..Config::default()
                });
                let mut k = Collect::default();
                for (i, f) in frames.iter().enumerate() {
                    let pkt = decode(LinkType::Ethernet, f, false).unwrap();
                    an.packet(i as u64 + 1, (i as u64 * 30 + 1) * 1_000_000_000, &pkt, &mut k);
                }
                an.finish(&mut k);
                let kinds: Vec<Kind> = k.segments.iter().map(|e| e.kind).collect();
                assert_eq!(
                    kinds,
                    [Kind::Data, Kind::Ack, Kind::KeepaliveProbe, Kind::KeepaliveAck],
                    "{style} ipv6 {ipv6}"
                );
            }
        }
    }

    #[test]
    fn variants_show_only_what_changed() {
        let p = ProbeParams {
            timestamps: true,
            ..ProbeParams::default()
        };
        let base = probe(&p).unwrap();
        let v = variants(&p).unwrap();
        assert_eq!(v.len(), 4);
        let (changed, removed) = differences(&base.annotated, &v[0].shown.annotated);
        assert_eq!(changed.iter().map(|f| f.key).collect::<Vec<_>>(), ["tcp.seq"]);
        assert!(removed.is_empty());
        let (_, removed) = differences(&base.annotated, &v[2].shown.annotated);
        assert!(removed.iter().any(|f| f.key == "tcp.options.timestamp.tsval"));
    }

    #[test]
    fn seq_wraps_below_zero() {
        let p = ProbeParams {
            snd_nxt: 0,
            ..ProbeParams::default()
        };
        let s = probe(&p).unwrap();
        assert_eq!(s.annotated.field("tcp.seq").unwrap().value, "4294967295");
        assert!(s.annotated.field("tcp.seq").unwrap().meaning.contains("wraps"));
    }
}
