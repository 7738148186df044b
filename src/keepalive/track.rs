//! Following one live TCP session from its segments as a capture sees them
//! (both directions, with capture times), to build probes from its current
//! state and to match the peer's answers to them. Pure: decoded packets and
//! times in, facts out.
//!
//! "Local" is the end kaprobe probes for (the kernel socket it opened, or the
//! process it attached to); "peer" is the other end.

use super::probe::{ProbeInputs, ProbeShape};
use crate::decode::Packet;
use crate::wire::{Flags, Segment, Seq};
use std::collections::VecDeque;
use std::net::SocketAddr;

const MS: u64 = 1_000_000;

/// Sent probes kept for matching and lookup: the latest this many. Only the
/// unresolved ones (sent since the last resolved probe) can match an answer,
/// and the state machine resolves a probe by the next one's interval, so a
/// few would do; the rest is margin.
pub const PROBES_KEPT: usize = 16;

pub use crate::wire::tcp::PEER_ANSWER_RATE_LIMIT_NS;

/// One end's handshake options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynInfo {
    pub isn: Seq,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: bool,
    pub mss: Option<u16>,
}

/// A probe the engine put on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentProbe {
    /// 1-based over the whole session.
    pub n: u64,
    pub shape: ProbeShape,
    /// When it was handed to the raw socket.
    pub sent_at: u64,
    /// When the capture saw it leave.
    pub seen_at: Option<u64>,
    /// The seq the peer's answer carries: its SND.NXT, our RCV.NXT.
    pub expect_seq: Seq,
    /// Sent within the peer's answer rate limit (500 ms) after its previous
    /// out-of-window answer: a Linux peer will not answer it if it, too, is out of window.
    pub rate_limited: bool,
    pub answered: bool,
}

impl SentProbe {
    /// Capture time when seen, else send time.
    pub fn time(&self) -> u64 {
        self.seen_at.unwrap_or(self.sent_at)
    }
}

/// How the peer answered a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An ACK of SND.NXT with the peer's current seq, plain or with a D-SACK
    /// block for the probe's byte.
    Ack {
        probe: u64,
        rtt: u64,
        dsack: bool,
        window: u16,
        seq: Seq,
        ack: Seq,
    },
    /// A RST with seq = the probe's ack field: the peer no longer knows the connection.
    Reset { probe: u64, rtt: u64, seq: Seq },
}

/// What one captured segment was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Not this session.
    Other,
    /// One of the engine's own probes (state not updated from it).
    OwnProbe { n: u64 },
    /// Another segment the engine sent itself (e.g. to provoke the peer).
    OwnOther,
    /// A segment of the local end.
    Local,
    /// A segment of the peer.
    Peer {
        answer: Option<Answer>,
        rst: bool,
        fin: bool,
        data: u32,
    },
}

/// (TSval, capture time) of a local segment: the local TS clock's latest reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TsSample {
    pub tsval: u32,
    pub time: u64,
}

/// Extrapolates a TS clock ticking at 1 kHz (Linux: `tcp_clock_ms()`) from its
/// latest reading. Never ahead of the real clock: whole milliseconds elapsed
/// since the segment was *captured*, which is after the kernel stamped it.
pub fn extrapolate_tsval(s: TsSample, now: u64) -> u32 {
    let ms = now.saturating_sub(s.time) / MS;
    s.tsval.wrapping_add(ms as u32)
}

#[derive(Clone, Debug, Default)]
struct End {
    syn: Option<SynInfo>,
    /// Sequence number after the highest segment seen.
    nxt: Option<Seq>,
    /// Highest acknowledgment sent.
    ack: Option<Seq>,
    /// Window field of the latest non-SYN segment.
    window: Option<u16>,
    /// Window field of the SYN (unscaled).
    syn_window: u16,
    /// Latest TSval and TSecr sent.
    ts: Option<(u32, u32)>,
    ts_time: u64,
    any_tsopt: bool,
    any_sack: bool,
    fin: bool,
    last_time: Option<u64>,
}

impl End {
    fn update(&mut self, s: &Segment, t: u64) {
        let o = &s.options;
        if s.flags.syn() {
            self.syn = Some(SynInfo {
                isn: s.seq,
                wscale: o.wscale,
                sack_permitted: o.sack_permitted,
                timestamps: o.timestamp.is_some(),
                mss: o.mss,
            });
            self.syn_window = s.window;
        } else if !s.flags.rst() {
            self.window = Some(s.window);
        }
        if !s.flags.rst() {
            let end = s.end();
            self.nxt = Some(self.nxt.map_or(end, |n| n.max(end)));
        }
        if s.flags.ack() && !s.flags.rst() {
            self.ack = Some(self.ack.map_or(s.ack, |a| a.max(s.ack)));
        }
        if let Some(ts) = o.timestamp {
            self.ts = Some(ts);
            self.ts_time = t;
            self.any_tsopt = true;
        }
        self.any_sack |= o.sack_len > 0;
        self.fin |= s.flags.fin();
        self.last_time = Some(t);
    }
}

/// Session facts for the `session` event.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SessionInfo {
    pub local: String,
    pub remote: String,
    pub handshake_seen: bool,
    pub isn_local: Option<u32>,
    pub isn_remote: Option<u32>,
    pub snd_nxt: u32,
    pub rcv_nxt: u32,
    /// The peer's window field and scale, and the window in bytes.
    pub peer_window: u16,
    pub peer_wscale: Option<u8>,
    pub peer_window_bytes: u64,
    pub timestamps: bool,
    pub sack: bool,
    pub mss_local: Option<u16>,
    pub mss_remote: Option<u16>,
}

/// One session's state, both ends.
#[derive(Clone, Debug)]
pub struct Tracker {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    l: End,
    p: End,
    /// The latest `PROBES_KEPT` probes, oldest first (a bounded ring).
    probes: VecDeque<SentProbe>,
    /// Probes sent over the whole session.
    sent_total: u64,
    /// Probes numbered up to this one are resolved (answered, reset, or declared
    /// unanswered): no later segment is matched to them.
    resolved_through: u64,
    /// Capture time of the peer's latest answer to a 0-byte probe (rate limit).
    last_oow_answer: Option<u64>,
    /// The peer's latest TSecr (its `ts_recent`: what our TSval must not fall
    /// below) and when it was captured: also a reading of the local TS clock,
    /// taken no later than that.
    peer_tsecr: Option<TsSample>,
    /// Other segments the engine sent: (seq, ack, flags).
    own_other: Vec<(Seq, Seq, u8)>,
}

impl Tracker {
    pub fn new(local: SocketAddr, remote: SocketAddr) -> Tracker {
        Tracker {
            local,
            remote,
            l: End::default(),
            p: End::default(),
            probes: VecDeque::with_capacity(PROBES_KEPT),
            sent_total: 0,
            resolved_through: 0,
            last_oow_answer: None,
            peer_tsecr: None,
            own_other: Vec::new(),
        }
    }

    fn direction(&self, pkt: &Packet) -> Option<bool> {
        let src = SocketAddr::new(pkt.src, pkt.tcp.src_port);
        let dst = SocketAddr::new(pkt.dst, pkt.tcp.dst_port);
        if same(src, self.local) && same(dst, self.remote) {
            Some(true)
        } else if same(src, self.remote) && same(dst, self.local) {
            Some(false)
        } else {
            None
        }
    }

    /// Takes one captured segment at capture time `t`.
    pub fn observe(&mut self, pkt: &Packet, t: u64) -> Seen {
        let Some(from_local) = self.direction(pkt) else {
            return Seen::Other;
        };
        let s = &pkt.tcp;
        if from_local {
            if let Some(p) = self
                .probes
                .iter_mut()
                .rev()
                .find(|p| p.seen_at.is_none() && is_probe(s, &p.shape))
            {
                p.seen_at = Some(t);
                return Seen::OwnProbe { n: p.n };
            }
            let key = (s.seq, s.ack, s.flags.0);
            if let Some(i) = self.own_other.iter().position(|o| *o == key) {
                self.own_other.remove(i);
                return Seen::OwnOther;
            }
            self.l.update(s, t);
            return Seen::Local;
        }
        let answer = self.match_answer(s, t);
        self.p.update(s, t);
        if self.l.nxt.is_none() && s.flags.ack() && !s.flags.rst() && !s.flags.syn() {
            // Attached without having seen the local end yet: the peer's ACK is
            // our SND.NXT when nothing is in flight.
            self.l.nxt = Some(s.ack);
        }
        if let Some((_, ecr)) = s.options.timestamp.filter(|_| s.flags.ack()) {
            self.peer_tsecr = Some(TsSample { tsval: ecr, time: t });
        }
        Seen::Peer {
            answer,
            rst: s.flags.rst(),
            fin: s.flags.fin(),
            data: s.payload_len,
        }
    }

    fn match_answer(&mut self, s: &Segment, t: u64) -> Option<Answer> {
        if s.flags.syn() {
            return None;
        }
        let rst = s.flags.rst();
        // Only probes sent since the last resolved one: an ACK with the same
        // seq/ack after a probe was declared unanswered (a window update, or in
        // attach mode the answer to the kernel's own probe) answers none of ours.
        let resolved = self.resolved_through;
        let idx = self.probes.iter().rposition(|p| {
            p.n > resolved
                && !p.answered
                // Compare capture times only: the send time comes from another
                // clock reading and a 50 µs answer can be stamped before it.
                && p.seen_at.is_none_or(|seen| seen <= t)
                && if rst {
                    s.seq == p.shape.ack
                } else {
                    !s.flags.fin() && s.payload_len == 0 && s.ack == p.shape.seq.plus(1) && s.seq == p.expect_seq
                }
        })?;
        let p = &mut self.probes[idx];
        p.answered = true;
        self.resolved_through = self.resolved_through.max(p.n);
        let rtt = t.saturating_sub(p.time());
        if rst {
            return Some(Answer::Reset {
                probe: p.n,
                rtt,
                seq: s.seq,
            });
        }
        let byte = (p.shape.seq, p.shape.seq.plus(1));
        let dsack = s.options.sack_blocks().contains(&byte);
        // Answered as an out-of-window segment (a duplicate or challenge ACK),
        // which a Linux peer rate-limits: a 0-byte probe, or a 1-byte one that
        // got no D-SACK although SACK is on (bsd42's old ACK before any data).
        let (empty, n) = (p.shape.is_empty(), p.n);
        if empty || (!dsack && self.sack()) {
            self.last_oow_answer = Some(t);
        }
        Some(Answer::Ack {
            probe: n,
            rtt,
            dsack,
            window: s.window,
            seq: s.seq,
            ack: s.ack,
        })
    }

    /// Timestamps in use: both SYNs carried TSopt, or (handshake not seen) the
    /// local end's segments do.
    pub fn timestamps(&self) -> bool {
        match (self.l.syn, self.p.syn) {
            (Some(a), Some(b)) => a.timestamps && b.timestamps,
            _ => self.l.any_tsopt || self.p.any_tsopt,
        }
    }

    pub fn sack(&self) -> bool {
        match (self.l.syn, self.p.syn) {
            (Some(a), Some(b)) => a.sack_permitted && b.sack_permitted,
            _ => self.l.any_sack || self.p.any_sack,
        }
    }

    pub fn handshake_seen(&self) -> bool {
        self.l.syn.is_some() && self.p.syn.is_some()
    }

    /// SND.NXT: after the local end's highest segment.
    pub fn snd_nxt(&self) -> Option<Seq> {
        self.l.nxt
    }

    /// RCV.NXT: after the peer's highest segment.
    pub fn rcv_nxt(&self) -> Option<Seq> {
        self.p.nxt
    }

    /// Enough is known to build a probe.
    pub fn ready(&self) -> bool {
        self.l.nxt.is_some() && self.p.nxt.is_some()
    }

    /// The local end has sent data (or a FIN) the peer has not acknowledged.
    pub fn busy(&self) -> bool {
        match (self.l.nxt, self.p.ack) {
            (Some(nxt), Some(una)) => nxt.after(una),
            (Some(_), None) => true,
            _ => false,
        }
    }

    pub fn peer_fin(&self) -> bool {
        self.p.fin
    }

    pub fn local_fin(&self) -> bool {
        self.l.fin
    }

    /// Capture time of the peer's latest segment.
    pub fn last_peer_time(&self) -> Option<u64> {
        self.p.last_time
    }

    /// The local TS clock's latest reading (the kernel's segments, not our probes).
    pub fn local_ts_sample(&self) -> Option<TsSample> {
        self.l.ts.map(|(tsval, _)| TsSample {
            tsval,
            time: self.l.ts_time,
        })
    }

    /// The local window field to put in a probe: the latest the kernel sent,
    /// else the SYN's window scaled down.
    fn local_window(&self) -> u16 {
        if self.l.window.is_none() && self.l.syn.is_none() {
            // Nothing seen from the local end: the peer's own window is a fair guess.
            return self.p.window.unwrap_or(502);
        }
        self.l.window.unwrap_or_else(|| {
            let shift = match (self.l.syn, self.p.syn) {
                (Some(a), Some(b)) if b.wscale.is_some() => a.wscale.unwrap_or(0),
                _ => 0,
            };
            self.l.syn_window >> shift.min(14)
        })
    }

    /// What a probe sent at `now` is built from; `None` until `ready()`.
    pub fn probe_inputs(&self, now: u64) -> Option<ProbeInputs> {
        if !self.ready() {
            return None;
        }
        let timestamp = if self.timestamps() {
            // Both readings are lower bounds of the local clock now; the later one wins.
            let ext = self.local_ts_sample().map(|s| extrapolate_tsval(s, now));
            let ecr = self.peer_tsecr.map(|s| extrapolate_tsval(s, now));
            let tsval = match (ext, ecr) {
                (Some(a), Some(b)) => Seq(a).max(Seq(b)).0,
                (a, b) => a.or(b).unwrap_or(0),
            };
            let tsecr = self.p.ts.map_or(0, |(v, _)| v);
            Some((tsval, tsecr))
        } else {
            None
        };
        Some(ProbeInputs {
            snd_nxt: self.l.nxt?,
            rcv_nxt: self.p.nxt?,
            window: self.local_window(),
            timestamp,
        })
    }

    /// Records a probe handed to the raw socket at `now`; returns it.
    pub fn sent(&mut self, shape: ProbeShape, now: u64) -> SentProbe {
        let expect_seq = self.p.nxt.unwrap_or_default();
        // Out of window at the peer: 0 bytes, or an ACK field behind its SND.UNA (bsd42).
        let oow = shape.is_empty() || shape.ack != expect_seq;
        let rate_limited = oow
            && self
                .last_oow_answer
                .is_some_and(|t| now < t.saturating_add(PEER_ANSWER_RATE_LIMIT_NS));
        self.sent_total += 1;
        let p = SentProbe {
            n: self.sent_total,
            shape,
            sent_at: now,
            seen_at: None,
            expect_seq,
            rate_limited,
            answered: false,
        };
        if self.probes.len() == PROBES_KEPT {
            self.probes.pop_front();
        }
        self.probes.push_back(p);
        p
    }

    /// The state machine declared probes up to `n` unanswered: no later
    /// segment is taken for their answer.
    pub fn resolve_unanswered(&mut self, n: u64) {
        self.resolved_through = self.resolved_through.max(n);
    }

    /// Records another segment the engine sends, so the capture's copy is not
    /// taken for the local end's.
    pub fn sent_other(&mut self, seq: Seq, ack: Seq, flags: u8) {
        self.own_other.push((seq, ack, flags));
    }

    /// Probe `n`, if among the latest `PROBES_KEPT`.
    pub fn probe(&self, n: u64) -> Option<&SentProbe> {
        let first = self.probes.front()?.n;
        n.checked_sub(first).and_then(|i| self.probes.get(i as usize))
    }

    /// The latest `PROBES_KEPT` probes, oldest first.
    pub fn probes(&self) -> impl Iterator<Item = &SentProbe> {
        self.probes.iter()
    }

    /// Probes sent over the whole session.
    pub fn probes_sent(&self) -> u64 {
        self.sent_total
    }

    pub fn info(&self) -> SessionInfo {
        let peer_wscale = match (self.l.syn, self.p.syn) {
            (Some(a), Some(b)) if a.wscale.is_some() => b.wscale,
            _ => None,
        };
        // A SYN's window is never scaled.
        let (peer_window, shift) = match self.p.window {
            Some(w) => (w, peer_wscale.unwrap_or(0).min(14)),
            None => (self.p.syn_window, 0),
        };
        SessionInfo {
            local: fmt_addr(self.local),
            remote: fmt_addr(self.remote),
            handshake_seen: self.handshake_seen(),
            isn_local: self.l.syn.map(|s| s.isn.0),
            isn_remote: self.p.syn.map(|s| s.isn.0),
            snd_nxt: self.l.nxt.unwrap_or_default().0,
            rcv_nxt: self.p.nxt.unwrap_or_default().0,
            peer_window,
            peer_wscale,
            peer_window_bytes: (peer_window as u64) << shift,
            timestamps: self.timestamps(),
            sack: self.sack(),
            mss_local: self.l.syn.and_then(|s| s.mss),
            mss_remote: self.p.syn.and_then(|s| s.mss),
        }
    }
}

/// The engine's own probe, as sent: same seq, ack, length, ACK only, same TSval.
fn is_probe(s: &Segment, p: &ProbeShape) -> bool {
    s.flags == Flags(Flags::ACK)
        && s.seq == p.seq
        && s.ack == p.ack
        && s.payload_len == p.len()
        && s.options.timestamp.map(|t| t.0) == p.timestamp.map(|t| t.0)
}

/// Addresses equal, IPv4-mapped IPv6 seen as IPv4.
fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && canonical(a.ip()) == canonical(b.ip())
}

fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// `1.2.3.4:80` or `[fd77::1]:80`.
pub fn fmt_addr(a: SocketAddr) -> String {
    SocketAddr::new(canonical(a.ip()), a.port()).to_string()
}

#[cfg(test)]
mod tests;
