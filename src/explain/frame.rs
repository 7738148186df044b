//! `explain FILE --frame N`: one frame of a real capture, annotated, with
//! the classifier's reasoning. The capture is fed through the analyzer
//! (every segment's event wanted), and frame N's `SegmentEvent` says what the
//! classifier looked at: the sender's next sequence number, what the peer had
//! acknowledged and in which frame, the peer's window. Pure: the caller reads
//! the file and hands over records.

use super::annotate::{annotate, Annotated};
use crate::analyze::{Analyzer, Config, Connection, Events, Kind, SegmentEvent, Sink};
use crate::decode::{LinkType, Skip};
use crate::flow::Side;
use crate::units::format_duration;
use std::collections::HashMap;
use std::fmt::Write as _;

/// Collects frame N's event and what explains it.
#[derive(Default)]
struct Finder {
    target: u64,
    event: Option<SegmentEvent>,
    /// The sender's segment before the target (for a changed window).
    previous: Option<SegmentEvent>,
    last: HashMap<(u64, usize), SegmentEvent>,
    answered_by: Option<SegmentEvent>,
    /// (window scale of the target's sender, of its peer), when both SYNs had it.
    wscale: Option<(u8, u8)>,
    client: Option<Side>,
}

impl Sink for Finder {
    fn segment(&mut self, ev: &SegmentEvent) {
        if ev.frame == self.target {
            self.event = Some(*ev);
            self.previous = self.last.get(&(ev.flow_id, ev.side.idx())).copied();
            self.last.clear();
            return;
        }
        match self.event {
            None => {
                self.last.insert((ev.flow_id, ev.side.idx()), *ev);
            }
            Some(t) => {
                if self.answered_by.is_none() && ev.answers == Some(t.frame) && ev.flow_id == t.flow_id {
                    self.answered_by = Some(*ev);
                }
            }
        }
    }

    fn flow(&mut self, c: Connection) {
        let Some(ev) = self.event.filter(|e| e.flow_id == c.id) else {
            return;
        };
        let syn = |s: Side| c.dir[s.idx()].syn_wscale();
        if let (Some(a), Some(b)) = (syn(ev.side), syn(ev.side.other())) {
            self.wscale = Some((a, b));
        }
        self.client = c.client;
    }
}

/// Why a frame cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame {frame} is out of range: the capture has {frames} frames (numbered from 1)")]
    OutOfRange { frame: u64, frames: u64 },
    #[error("frame {frame} is on an interface of link type {code}, which kaprobe does not decode")]
    UnknownLink { frame: u64, code: u32 },
}

struct Target {
    time: u64,
    link: Option<LinkType>,
    link_code: u32,
    bytes: Vec<u8>,
    wire_len: u32,
    skip: Option<Skip>,
}

/// Feeds a capture through the analyzer and keeps frame N.
pub struct FrameExplainer {
    target: u64,
    an: Analyzer,
    finder: Finder,
    records: u64,
    first_time: Option<u64>,
    found: Option<Target>,
}

impl FrameExplainer {
    pub fn new(frame: u64) -> FrameExplainer {
        FrameExplainer {
            target: frame,
            an: Analyzer::new(Config {
                events: Events::All,
                ..Config::default()
            }),
            finder: Finder {
                target: frame,
                ..Finder::default()
            },
            records: 0,
            first_time: None,
            found: None,
        }
    }

    /// One record of the capture, in order.
    pub fn record(
        &mut self,
        frame: u64,
        time: u64,
        link: Option<LinkType>,
        link_code: u32,
        data: &[u8],
        wire_len: u32,
    ) {
        self.records = self.records.max(frame);
        self.first_time.get_or_insert(time);
        let snapped = (data.len() as u32) < wire_len;
        let skip = link.and_then(|l| self.an.frame(frame, time, l, data, snapped, &mut self.finder));
        if frame == self.target {
            self.found = Some(Target {
                time,
                link,
                link_code,
                bytes: data.to_vec(),
                wire_len,
                skip,
            });
        }
    }

    pub fn finish(mut self) -> Result<FrameExplanation, FrameError> {
        self.an.finish(&mut self.finder);
        let t = self.found.ok_or(FrameError::OutOfRange {
            frame: self.target,
            frames: self.records,
        })?;
        let link = t.link.ok_or(FrameError::UnknownLink {
            frame: self.target,
            code: t.link_code,
        })?;
        let mut annotated = annotate(link, &t.bytes);
        let f = self.finder;
        if let Some(ev) = &f.event {
            context(&mut annotated, ev);
        }
        Ok(FrameExplanation {
            frame: self.target,
            since_first: t.time.saturating_sub(self.first_time.unwrap_or(t.time)),
            wire_len: t.wire_len,
            annotated,
            skip: t.skip,
            event: f.event,
            previous: f.previous,
            answered_by: f.answered_by,
            wscale: f.wscale,
            client: f.client,
        })
    }
}

/// Frame N explained.
pub struct FrameExplanation {
    pub frame: u64,
    pub since_first: u64,
    pub wire_len: u32,
    pub annotated: Annotated,
    pub skip: Option<Skip>,
    pub event: Option<SegmentEvent>,
    pub previous: Option<SegmentEvent>,
    pub answered_by: Option<SegmentEvent>,
    pub wscale: Option<(u8, u8)>,
    pub client: Option<Side>,
}

/// Meanings that depend on what the classifier saw.
fn context(a: &mut Annotated, ev: &SegmentEvent) {
    match ev.kind {
        Kind::KeepaliveProbe | Kind::ZeroWindowProbe | Kind::Retransmission => {
            if let Some(n) = ev.next_seq {
                let who = match (ev.kind, ev.peer_acked_frame) {
                    (Kind::Retransmission, _) => "a byte the peer never acknowledged".to_string(),
                    (_, Some(f)) => format!("a byte the peer acknowledged in frame {f}"),
                    _ => "the sender's last byte".to_string(),
                };
                let below = match ev.peer_acked {
                    // A FIN (or data) still unacknowledged: Linux probes at SND.UNA − 1.
                    Some(acked) if acked.0 == ev.seq.0.wrapping_add(1) && n.0 != acked.0 => {
                        format!("= SND.UNA {acked} − 1 (SND.NXT is {n})")
                    }
                    _ => format!("= next expected {n} − 1"),
                };
                a.explain("tcp.seq", format!("{below}: {who}"));
            }
        }
        Kind::KeepaliveAck | Kind::ZeroWindowAck => {
            if let Some(p) = ev.answers {
                a.explain("tcp.ack", format!("= the probe's seq + 1: answers frame {p}"));
            }
            if let Some(n) = ev.next_seq {
                a.explain(
                    "tcp.seq",
                    format!("= the sender's next sequence number {n}: no new data"),
                );
            }
        }
        Kind::KeepaliveRst => {
            a.explain(
                "tcp.seq",
                "= the probe's ACK field: where the peer would expect the prober's next byte",
            );
        }
        _ => {}
    }
}

impl FrameExplanation {
    fn window(&self, ev: &SegmentEvent) -> Option<String> {
        let w = ev.peer_window?;
        Some(match self.wscale {
            Some((_, shift)) if shift > 0 => {
                format!("{} × {} = {w}", w >> shift, 1u64 << shift)
            }
            _ => w.to_string(),
        })
    }

    /// The classifier's reasoning, one line each, ending with the verdict.
    pub fn reasoning(&self) -> Vec<String> {
        let Some(ev) = self.event else {
            return vec![match self.skip {
                Some(Skip::NotTcp) => "not a TCP segment: nothing to classify".into(),
                Some(Skip::Fragment) => "an IP fragment: TCP is not decoded without reassembly".into(),
                Some(Skip::Truncated) => "cut short before the end of the TCP header: nothing to classify".into(),
                None => "not classified".into(),
            }];
        };
        let mut r = Vec::new();
        let seq = ev.seq.0;
        let next = ev.next_seq.map(|n| n.0);
        let acked = ev.peer_acked.map(|a| a.0);
        let acked_in = ev.peer_acked_frame.map_or(String::new(), |f| format!(" in frame {f}"));
        let win = self.window(&ev);
        match ev.kind {
            Kind::KeepaliveProbe | Kind::ZeroWindowProbe | Kind::Retransmission => {
                match next {
                    Some(n) if acked == Some(seq.wrapping_add(1)) && n != seq.wrapping_add(1) => r.push(format!(
                        "seq {seq} = SND.UNA {} − 1, what the peer acknowledged (SND.NXT is {n}: a FIN or data is still unacknowledged)",
                        seq.wrapping_add(1)
                    )),
                    Some(n) => r.push(format!(
                        "seq {seq} = next expected {n} − 1 (the highest seq + len this side has sent)"
                    )),
                    None => r.push(format!(
                        "seq {seq}: the sender's earlier segments are not in the capture"
                    )),
                }
                r.push(format!(
                    "{} byte{} of payload, no SYN, FIN or RST",
                    ev.len,
                    if ev.len == 1 { "" } else { "s" }
                ));
                match (ev.kind, acked) {
                    (Kind::Retransmission, Some(a)) => r.push(format!(
                        "but the peer has acknowledged only up to {a}{acked_in}: byte {seq} was never acknowledged"
                    )),
                    (_, Some(a)) => r.push(format!("that byte was acknowledged by the peer{acked_in} (ack {a})")),
                    (_, None) => {
                        r.push("the peer has acknowledged nothing in the capture: judged by shape alone".into())
                    }
                }
                if ev.kind != Kind::Retransmission {
                    if let Some(w) = &win {
                        r.push(format!(
                            "peer window {w}{}",
                            if ev.kind == Kind::ZeroWindowProbe { "" } else { " > 0" }
                        ));
                    }
                }
                r.push(
                    match ev.kind {
                        Kind::KeepaliveProbe => {
                            "⇒ keepalive probe: a duplicate of a byte the peer already has, which it must answer"
                        }
                        Kind::ZeroWindowProbe => {
                            "⇒ zero-window probe: the peer's window is closed, this is flow control, not keepalive (Wireshark says Keep-Alive)"
                        }
                        _ => "⇒ retransmission of unacknowledged data, not a probe (Wireshark says Keep-Alive)",
                    }
                    .into(),
                );
                if ev.kind != Kind::Retransmission {
                    r.push(match &self.answered_by {
                        Some(a) => format!(
                            "answered by frame {} after {}",
                            a.frame,
                            a.rtt.map_or("?".into(), format_duration)
                        ),
                        None => "no answer in the capture".into(),
                    });
                }
            }
            Kind::KeepaliveAck | Kind::ZeroWindowAck => {
                let probe = ev
                    .answers
                    .map_or("the pending probe".to_string(), |f| format!("the probe in frame {f}"));
                r.push(format!(
                    "no payload; ack {} = the probe's seq + 1: it acknowledges {probe}",
                    ev.ack.0
                ));
                if let Some(n) = next {
                    r.push(format!("seq {seq} = this side's next sequence number {n}: nothing new"));
                }
                if ev.dsack {
                    r.push("its SACK option holds a D-SACK block for the probe's byte: \"that arrived twice\"".into());
                }
                if let Some(p) = self.previous.filter(|p| p.window != ev.window) {
                    r.push(format!(
                        "its window changed from {} to {}: Wireshark calls this a Window Update instead",
                        p.window, ev.window
                    ));
                }
                let rtt = ev.rtt.map_or("?".into(), format_duration);
                r.push(if ev.kind == Kind::KeepaliveAck {
                    format!("⇒ keepalive ACK, {rtt} after the probe: the peer is alive")
                } else {
                    format!("⇒ zero-window ACK, {rtt} after the probe: the window is still closed")
                });
            }
            Kind::KeepaliveRst => {
                let probe = ev
                    .answers
                    .map_or("a probe".to_string(), |f| format!("the probe in frame {f}"));
                r.push(format!("RST, seq {seq}: the ACK field of {probe}"));
                r.push(format!(
                    "ACK flag {}",
                    if ev.flags.ack() {
                        "set"
                    } else {
                        "clear: the answer of a host without this connection (RFC 9293 §3.10.7.1)"
                    }
                ));
                if let Some(u) = ev.usual_ttl {
                    r.push(if u == ev.ttl {
                        format!("TTL {} as in the peer's other segments: sent by the peer", ev.ttl)
                    } else {
                        format!(
                            "TTL {} but the peer's segments {u}: sent by something on the path",
                            ev.ttl
                        )
                    });
                }
                r.push("⇒ keepalive RST: the peer no longer knows the connection (ECONNRESET)".into());
            }
            Kind::KeepaliveAbort => {
                r.push(format!(
                    "RST with seq {seq}{} from the side whose probes went unanswered",
                    if ev.flags.ack() { ", ACK set," } else { "" }
                ));
                r.push("⇒ keepalive abort: the prober gave up (Linux: after TCP_KEEPCNT probes; ETIMEDOUT)".into());
            }
            Kind::Handshake => r.push(format!(
                "{} ⇒ handshake",
                if ev.flags.ack() { "SYN-ACK" } else { "SYN" }
            )),
            Kind::Fin => r.push("FIN ⇒ the sender closes its direction".into()),
            Kind::Rst => r.push("RST, no keepalive probe pending ⇒ a plain reset".into()),
            Kind::Data | Kind::Ack => {
                match next {
                    Some(n) if n == seq => r.push(format!("seq {seq} = next expected {n}: new sequence space")),
                    Some(n) => r.push(format!(
                        "seq {seq}, next expected {n}: not one byte below it with ≤ 1 byte, so not probe-shaped"
                    )),
                    None => r.push(format!("seq {seq}: first segment seen from this side")),
                }
                r.push(if ev.kind == Kind::Data {
                    format!("⇒ data: {} bytes", ev.len)
                } else {
                    "⇒ a plain ACK: no data (a zero-length segment at RCV.NXT needs no answer)".into()
                });
            }
        }
        r
    }

    /// The whole `explain FILE --frame N` text.
    pub fn render(&self, file: &str) -> String {
        let mut out = String::new();
        let a = &self.annotated;
        let _ = writeln!(
            out,
            "frame {} of {file}: {} bytes captured ({} on the wire), {}, +{:.6}s after the first frame",
            self.frame,
            a.bytes.len(),
            self.wire_len,
            a.link.name(),
            self.since_first as f64 / 1e9
        );
        if let Some(ev) = &self.event {
            let role = match self.client {
                Some(c) if c == ev.side => " (client)",
                Some(_) => " (server)",
                None => "",
            };
            let _ = writeln!(
                out,
                "flow {}: {} > {}, sent by {}{role}",
                ev.flow_id, ev.from, ev.to, ev.from
            );
        }
        out += &a.render("  ");
        let head = match &self.event {
            Some(ev) => format!("kaprobe's classifier: {}", ev.kind.as_str()),
            None => "kaprobe's classifier:".into(),
        };
        let _ = writeln!(out, "\n{head}");
        for l in self.reasoning() {
            let _ = writeln!(out, "  {l}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{End, Session};

    /// A probe sent while the prober's FIN is unacknowledged sits at SND.UNA − 1,
    /// two below SND.NXT: the reasoning says so with the right numbers.
    #[test]
    fn a_probe_behind_an_unacknowledged_fin_is_explained_from_snd_una() {
        let mut s = Session::new(
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
            1000,
            5000,
        );
        let mut frames: Vec<Vec<u8>> = s.handshake().unwrap().into();
        frames.push(s.data(End::Client, b"hi").unwrap().to_vec());
        frames.push(s.ack(End::Server).unwrap().to_vec());
        let una = s.next_seq(End::Client);
        frames.push(s.fin(End::Client).unwrap().to_vec());
        // The FIN is lost: the client probes one below what the server acknowledged.
        let mut probe = Session::new(
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
            1000,
            5000,
        );
        let _ = probe.handshake();
        let _ = probe.data(End::Client, b"hi");
        let _ = probe.ack(End::Server);
        frames.push(probe.probe(End::Client, &[]).unwrap().to_vec());
        let target = frames.len() as u64;
        let mut x = FrameExplainer::new(target);
        for (i, f) in frames.iter().enumerate() {
            let n = i as u64 + 1;
            x.record(n, n * 1_000_000_000, Some(LinkType::Ethernet), 1, f, f.len() as u32);
        }
        let why = x.finish().unwrap().reasoning().join("\n");
        let (seq, nxt) = (una.0 - 1, una.0 + 1);
        assert!(
            why.contains(&format!("seq {seq} = SND.UNA {} − 1", una.0)) && why.contains(&format!("SND.NXT is {nxt}")),
            "{why}"
        );
    }
}
