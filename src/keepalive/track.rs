//! Following one live TCP session from its segments as a capture sees them
//! (both directions, with capture times), to build probes from its current
//! state and to match the peer's answers to them. Pure: decoded packets and
//! times in, facts out.
//!
//! Each direction's state is the [`Direction`] that `verify` keeps, updated
//! the same way, and every rule on it (answers, D-SACK, rate limit, RSTs,
//! negotiated options) is `crate::session`'s. What is added here is only
//! what a live prober needs: its own probes, readings of the TS clocks, and
//! the segments it sent for other reasons.
//!
//! "Local" is the end kaprobe probes for (the kernel socket it opened, or the
//! process it attached to); "peer" is the other end.

use super::probe::{ProbeInputs, ProbeShape};
use crate::analyze::{classify, Kind};
use crate::decode::Packet;
use crate::flow::Direction;
use crate::session::{self, negotiated, rate_limit, Candidate, ResetBy, RstAcceptance, RttSampler};
use crate::wire::{Flags, Segment, Seq};
use std::collections::VecDeque;
use std::net::SocketAddr;

const MS: u64 = 1_000_000;

/// Sent probes kept for lookup: the latest this many (a given-up probe is
/// looked up just after). At most `IN_FLIGHT` of them wait for an answer at once.
pub const PROBES_KEPT: usize = 8;

/// Probes that may wait for an answer at once (a path slower than the
/// interval); an older one is given up on. As many as `verify` keeps.
pub const IN_FLIGHT: usize = 4;

pub use crate::wire::tcp::PEER_ANSWER_RATE_LIMIT_NS;

const LOCAL: usize = 0;
const PEER: usize = 1;

/// Where a probe stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeState {
    /// Waiting for an answer.
    Open,
    Answered,
    Reset,
    /// Given up on: a later probe was answered, the peer had two round trips,
    /// or the session ended.
    Unanswered,
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
    /// Goes through the peer's answer rate limiter (0 bytes, or an old ACK).
    pub limited: bool,
    /// Sent within the peer's answer rate limit: a Linux peer will not answer
    /// it. Judged at sending, and again when it is found unanswered.
    pub rate_limited: bool,
    pub state: ProbeState,
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
    Reset {
        probe: u64,
        rtt: u64,
        seq: Seq,
        by: Option<ResetBy>,
    },
}

/// A RST from the peer's direction that answers no probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rst {
    pub seq: Seq,
    /// How the local end takes it: only `Resets` ends the connection.
    pub acceptance: RstAcceptance,
    /// It answers a segment kaprobe sent itself (e.g. `--provoke`'s ACK): the
    /// host or middlebox that got it does not know the connection as addressed.
    pub answers_own: bool,
    pub by: Option<ResetBy>,
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
        rst: Option<Rst>,
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

/// Session facts for the `session` event. `None`: nothing seen says.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SessionInfo {
    pub local: String,
    pub remote: String,
    pub handshake_seen: bool,
    pub isn_local: Option<u32>,
    pub isn_remote: Option<u32>,
    pub snd_nxt: u32,
    pub rcv_nxt: u32,
    /// The peer's window field and scale, and the window in bytes (unknown
    /// without the handshake, which alone says whether scaling is in force).
    pub peer_window: Option<u16>,
    pub peer_wscale: Option<u8>,
    pub peer_window_bytes: Option<u64>,
    pub timestamps: Option<bool>,
    pub sack: Option<bool>,
    pub mss_local: Option<u16>,
    pub mss_remote: Option<u16>,
}

/// One session's state, both ends.
#[derive(Clone, Debug)]
pub struct Tracker {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// [local, peer], as `verify` keeps a flow's two directions.
    dir: [Direction; 2],
    segments: u64,
    mss: [Option<u16>; 2],
    /// The local clock's latest TSval, from the kernel's segments (not ours),
    /// and the TSecr they carried (the peer's TSval the local end last took).
    local_ts: Option<TsSample>,
    local_tsecr: Option<u32>,
    /// The peer's latest TSecr (its `ts_recent`: what our TSval must not fall
    /// below) and when it was captured: also a reading of the local TS clock,
    /// taken no later than that.
    peer_tsecr: Option<TsSample>,
    /// The local end's round trip, measured as TCP does (handshake, first data).
    sampler: RttSampler,
    /// The latest answer's round trip.
    answer_rtt: Option<u64>,
    /// When the latest probe left whose answer stamped the peer's rate limiter.
    limiter_stamped: Option<u64>,
    /// The latest `PROBES_KEPT` probes, oldest first (a bounded ring).
    probes: VecDeque<SentProbe>,
    /// Probes sent over the whole session.
    sent_total: u64,
    /// Probes given up on since the caller last took them.
    given_up: Vec<u64>,
    /// Other segments the engine sent: (seq, ack, flags), until captured.
    own_other: Vec<(Seq, Seq, u8)>,
    /// Their ACK fields, the latest few: a RST carrying one answers them.
    own_acks: VecDeque<Seq>,
}

impl Tracker {
    pub fn new(local: SocketAddr, remote: SocketAddr) -> Tracker {
        Tracker {
            local,
            remote,
            dir: Default::default(),
            segments: 0,
            mss: [None; 2],
            local_ts: None,
            local_tsecr: None,
            peer_tsecr: None,
            sampler: RttSampler::default(),
            answer_rtt: None,
            limiter_stamped: None,
            probes: VecDeque::new(),
            sent_total: 0,
            given_up: Vec::new(),
            own_other: Vec::new(),
            own_acks: VecDeque::new(),
        }
    }

    fn direction(&self, pkt: &Packet) -> Option<usize> {
        let src = SocketAddr::new(pkt.src, pkt.tcp.src_port);
        let dst = SocketAddr::new(pkt.dst, pkt.tcp.dst_port);
        if same(src, self.local) && same(dst, self.remote) {
            Some(LOCAL)
        } else if same(src, self.remote) && same(dst, self.local) {
            Some(PEER)
        } else {
            None
        }
    }

    fn wshift(&self, d: usize) -> u8 {
        negotiated::window_shift(self.dir[d].syn_wscale(), self.dir[1 - d].syn_wscale())
    }

    /// Takes one captured segment at capture time `t`.
    pub fn observe(&mut self, pkt: &Packet, t: u64) -> Seen {
        let Some(d) = self.direction(pkt) else {
            return Seen::Other;
        };
        let s = &pkt.tcp;
        // Segments the engine sent for other reasons (`--provoke`), in either
        // direction: a capture on `any` also sees the one sent to the local end.
        let key = (s.seq, s.ack, s.flags.0);
        if let Some(i) = self.own_other.iter().position(|o| *o == key) {
            self.own_other.remove(i);
            return Seen::OwnOther;
        }
        if d == LOCAL {
            if let Some(p) = self
                .probes
                .iter_mut()
                .rev()
                .find(|p| p.seen_at.is_none() && is_probe(s, &p.shape))
            {
                p.seen_at = Some(t);
                return Seen::OwnProbe { n: p.n };
            }
            self.sampler.sent(s, t);
            if let Some((tsval, tsecr)) = s.options.timestamp {
                self.local_ts = Some(TsSample { tsval, time: t });
                self.local_tsecr = Some(tsecr);
            }
            self.update(LOCAL, pkt, t);
            return Seen::Local;
        }
        let answer = self.match_answer(pkt, t);
        let rst = match answer {
            None if s.flags.rst() => Some(self.rst(pkt)),
            _ => None,
        };
        // A RST the local end would not take (one answering kaprobe's own
        // segment, or out of window) says nothing of the peer's state.
        if rst.is_some_and(|r| r.answers_own || r.acceptance != RstAcceptance::Resets) {
            return Seen::Peer {
                answer,
                rst,
                fin: false,
                data: 0,
            };
        }
        self.sampler.acked(s, t);
        if let Some((_, ecr)) = s.options.timestamp.filter(|_| s.flags.ack()) {
            self.peer_tsecr = Some(TsSample { tsval: ecr, time: t });
        }
        self.update(PEER, pkt, t);
        Seen::Peer {
            answer,
            rst,
            fin: s.flags.fin(),
            data: s.payload_len,
        }
    }

    /// The direction's state moves as `verify`'s does: a keepalive probe
    /// (the peer's own, say) does not restart the other side's idle clock.
    fn update(&mut self, d: usize, pkt: &Packet, t: u64) {
        let s = &pkt.tcp;
        let kind = classify(s, t, &self.dir[d], &self.dir[1 - d], None, None);
        let live = !matches!(kind, Kind::KeepaliveProbe | Kind::ZeroWindowProbe);
        self.segments += 1;
        if s.flags.syn() {
            self.mss[d] = s.options.mss;
        }
        let shift = self.wshift(d);
        self.dir[d].update(s, self.segments, shift, pkt.ttl, live.then_some(t));
    }

    /// What a RST that answers no probe means.
    fn rst(&self, pkt: &Packet) -> Rst {
        let seq = pkt.tcp.seq;
        let peer = &self.dir[PEER];
        let rcv_nxt = self.rcv_nxt();
        // The local end's receive window: what it advertised.
        let window = self.dir[LOCAL].window().unwrap_or(0);
        Rst {
            seq,
            acceptance: session::rst::acceptance(seq, rcv_nxt, window),
            answers_own: self.own_acks.contains(&seq),
            by: peer.ttl().map(|usual| ResetBy::of(pkt.ttl, usual)),
        }
    }

    fn match_answer(&mut self, pkt: &Packet, t: u64) -> Option<Answer> {
        let s = &pkt.tcp;
        // The shape is the same for every probe in flight; the latest open one stands for them.
        let latest = *self.probes.iter().rev().find(|p| p.state == ProbeState::Open)?;
        let rst = session::is_rst_answer(s, latest.shape.ack);
        if !rst && !session::is_ack_answer(s, latest.shape.seq, self.rcv_nxt()) {
            return None;
        }
        let open: Vec<usize> = (0..self.probes.len())
            .filter(|&i| self.probes[i].state == ProbeState::Open)
            .collect();
        let cands: Vec<Candidate> = open
            .iter()
            .map(|&i| {
                let p = &self.probes[i];
                Candidate {
                    // The capture time; the send time only when the capture
                    // missed the probe, and never after the answer: it comes
                    // from another clock reading, and a 50 µs answer can be
                    // stamped before it.
                    time: p.seen_at.unwrap_or(p.sent_at.min(t)),
                    tsval: p.shape.timestamp.map(|ts| ts.0),
                }
            })
            .collect();
        let tsecr = s.options.timestamp.filter(|_| !rst).map(|ts| ts.1);
        let k = session::pick(&cands, t, tsecr, self.rtt())?;
        for &i in &open[..k] {
            self.give_up(i);
        }
        let i = open[k];
        let p = self.probes[i];
        let rtt = t.saturating_sub(p.time());
        if rst {
            self.probes[i].state = ProbeState::Reset;
            let by = self.dir[PEER].ttl().map(|usual| ResetBy::of(pkt.ttl, usual));
            return Some(Answer::Reset {
                probe: p.n,
                rtt,
                seq: s.seq,
                by,
            });
        }
        self.probes[i].state = ProbeState::Answered;
        self.answer_rtt = Some(rtt);
        let dsack = session::dsack(s, p.shape.seq);
        let ack_behind = p.limited && !p.shape.is_empty();
        if rate_limit::answer_stamps_limiter(p.shape.len(), ack_behind, dsack, self.sack()) {
            self.limiter_stamped = Some(self.limiter_stamped.map_or(p.time(), |x| x.max(p.time())));
        }
        Some(Answer::Ack {
            probe: p.n,
            rtt,
            dsack,
            window: s.window,
            seq: s.seq,
            ack: s.ack,
        })
    }

    /// Probe at index `i` is given up on: unanswered, its rate limit judged
    /// with every answer seen so far.
    fn give_up(&mut self, i: usize) {
        let stamped = self.limiter_stamped;
        let p = &mut self.probes[i];
        p.state = ProbeState::Unanswered;
        p.rate_limited = p.limited && rate_limit::within(stamped, p.time());
        self.given_up.push(p.n);
    }

    /// The next probe is due at `now`: the probes the peer had two round
    /// trips to answer are given up on, and the oldest beyond `IN_FLIGHT - 1`.
    pub fn give_up_overdue(&mut self, now: u64) {
        let open: Vec<usize> = (0..self.probes.len())
            .filter(|&i| self.probes[i].state == ProbeState::Open)
            .collect();
        let excess = open.len().saturating_sub(IN_FLIGHT - 1);
        for (k, &i) in open.iter().enumerate() {
            if k < excess || session::overdue(self.probes[i].time(), now, self.rtt()) {
                self.give_up(i);
            }
        }
    }

    /// The session is over (dead, stopped): every probe still open is given up on.
    pub fn give_up_all(&mut self) {
        for i in 0..self.probes.len() {
            if self.probes[i].state == ProbeState::Open {
                self.give_up(i);
            }
        }
    }

    /// The round trip to expect: the latest answer's, else the sampler's.
    fn rtt(&self) -> Option<u64> {
        self.answer_rtt.or(self.sampler.sample)
    }

    /// Probes given up on since the last call, oldest first.
    pub fn take_given_up(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.given_up)
    }

    /// Probes waiting for an answer.
    pub fn open_probes(&self) -> usize {
        self.probes.iter().filter(|p| p.state == ProbeState::Open).count()
    }

    /// Timestamps in use (`session::negotiated`).
    pub fn timestamps(&self) -> bool {
        let d = &self.dir;
        negotiated::timestamps(
            [d[0].syn_timestamps(), d[1].syn_timestamps()],
            [d[0].tsval().is_some(), d[1].tsval().is_some()],
        )
    }

    pub fn sack(&self) -> bool {
        let d = &self.dir;
        negotiated::sack([d[0].syn_sack(), d[1].syn_sack()], [d[0].sack_seen(), d[1].sack_seen()])
    }

    pub fn handshake_seen(&self) -> bool {
        self.dir.iter().all(|d| d.isn().is_some())
    }

    /// SND.NXT: after the local end's highest segment; before any, the
    /// peer's ACK (nothing in flight).
    pub fn snd_nxt(&self) -> Option<Seq> {
        next(&self.dir[LOCAL], &self.dir[PEER])
    }

    /// RCV.NXT: after the peer's highest segment; before any, the local end's ACK.
    pub fn rcv_nxt(&self) -> Option<Seq> {
        next(&self.dir[PEER], &self.dir[LOCAL])
    }

    /// Enough is known to build a probe.
    pub fn ready(&self) -> bool {
        self.snd_nxt().is_some() && self.rcv_nxt().is_some()
    }

    /// The local end has sent data (or a FIN) the peer has not acknowledged.
    pub fn busy(&self) -> bool {
        let local = &self.dir[LOCAL];
        // Unknown until the peer has acknowledged something (attached, and only
        // the local end seen): taken as idle, and the first answer will say.
        match (local.seen().then_some(local.next_seq), self.dir[PEER].acked()) {
            (Some(nxt), Some(una)) => nxt.after(una),
            _ => false,
        }
    }

    pub fn peer_fin(&self) -> bool {
        self.dir[PEER].fin()
    }

    pub fn local_fin(&self) -> bool {
        self.dir[LOCAL].fin()
    }

    /// Capture time of the peer's latest segment that restarts the local
    /// end's idle clock (any but a keepalive probe).
    pub fn last_peer_time(&self) -> Option<u64> {
        self.dir[PEER].last_live_time()
    }

    /// Capture time of the latest segment either way (kaprobe's own left
    /// out): when the path last saw the connection used.
    pub fn last_time(&self) -> Option<u64> {
        self.dir[LOCAL].last_live_time().max(self.dir[PEER].last_live_time())
    }

    /// The local TS clock's latest reading (the kernel's segments, not our probes).
    pub fn local_ts_sample(&self) -> Option<TsSample> {
        self.local_ts
    }

    /// The local window field to put in a probe: the latest the kernel sent
    /// (a SYN's scaled down as the kernel's next segment would be).
    fn local_window(&self) -> u16 {
        match self.dir[LOCAL].window() {
            Some(w) => (w >> self.wshift(LOCAL)).min(u16::MAX as u32) as u16,
            // Nothing seen from the local end: the peer's own window is a fair guess.
            None => self.dir[PEER]
                .window()
                .map_or(502, |w| (w >> self.wshift(PEER)).min(u16::MAX as u32) as u16),
        }
    }

    /// What a probe sent at `now` is built from; `None` until `ready()`.
    pub fn probe_inputs(&self, now: u64) -> Option<ProbeInputs> {
        let timestamp = if self.timestamps() {
            // Both readings are lower bounds of the local clock now; the later one wins.
            let ext = self.local_ts.map(|s| extrapolate_tsval(s, now));
            let ecr = self.peer_tsecr.map(|s| extrapolate_tsval(s, now));
            let tsval = match (ext, ecr) {
                (Some(a), Some(b)) => Seq(a).max(Seq(b)).0,
                (a, b) => a.or(b).unwrap_or(0),
            };
            let tsecr = self.dir[PEER].tsval().or(self.local_tsecr).unwrap_or(0);
            Some((tsval, tsecr))
        } else {
            None
        };
        Some(ProbeInputs {
            snd_nxt: self.snd_nxt()?,
            rcv_nxt: self.rcv_nxt()?,
            window: self.local_window(),
            timestamp,
        })
    }

    /// Records a probe handed to the raw socket at `now`; returns it.
    pub fn sent(&mut self, shape: ProbeShape, now: u64) -> SentProbe {
        let ack_behind = self.rcv_nxt().is_some_and(|n| shape.ack.before(n));
        let limited = rate_limit::probe_is_limited(shape.len(), ack_behind);
        self.sent_total += 1;
        let p = SentProbe {
            n: self.sent_total,
            shape,
            sent_at: now,
            seen_at: None,
            limited,
            rate_limited: limited && rate_limit::within(self.limiter_stamped, now),
            state: ProbeState::Open,
        };
        if self.probes.len() == PROBES_KEPT {
            if self.probes[0].state == ProbeState::Open {
                self.give_up(0);
            }
            self.probes.pop_front();
        }
        self.probes.push_back(p);
        p
    }

    /// Records another segment the engine sends, so the capture's copy is not
    /// taken for the local end's, and a RST answering it is known for what it is.
    pub fn sent_other(&mut self, seq: Seq, ack: Seq, flags: u8) {
        self.own_other.push((seq, ack, flags));
        if self.own_acks.len() == PROBES_KEPT {
            self.own_acks.pop_front();
        }
        self.own_acks.push_back(ack);
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
        let (l, p) = (&self.dir[LOCAL], &self.dir[PEER]);
        let handshake = self.handshake_seen();
        // Scaling is known to be in force or not only from both SYNs.
        let peer_wscale = handshake.then(|| self.wshift(PEER));
        let peer_window_bytes = p
            .window()
            .filter(|_| handshake || p.syn_wscale().is_none())
            .map(u64::from);
        let peer_window = p.window().map(|w| (w >> self.wshift(PEER)).min(u16::MAX as u32) as u16);
        let seen = l.seen() || p.seen();
        SessionInfo {
            local: fmt_addr(self.local),
            remote: fmt_addr(self.remote),
            handshake_seen: handshake,
            isn_local: l.isn().map(|s| s.0),
            isn_remote: p.isn().map(|s| s.0),
            snd_nxt: self.snd_nxt().unwrap_or_default().0,
            rcv_nxt: self.rcv_nxt().unwrap_or_default().0,
            peer_window,
            peer_wscale: peer_wscale.filter(|_| l.syn_wscale().is_some() && p.syn_wscale().is_some()),
            peer_window_bytes: peer_window_bytes.filter(|_| handshake),
            // A stack that negotiated timestamps puts TSopt on every segment:
            // any segment seen says whether they are on.
            timestamps: seen.then(|| self.timestamps()),
            // SACK shows only in the handshake or in SACK blocks.
            sack: (handshake || self.sack()).then(|| self.sack()),
            mss_local: self.mss[LOCAL],
            mss_remote: self.mss[PEER],
        }
    }
}

/// A direction's next sequence number: after its highest segment, or before
/// any, what the other direction acknowledged.
fn next(d: &Direction, other: &Direction) -> Option<Seq> {
    if d.seen() {
        Some(d.next_seq)
    } else {
        other.acked()
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
    endpoint(a) == endpoint(b)
}

/// An address as the capture shows it, for comparing: IPv4-mapped IPv6 as
/// IPv4, and no IPv6 scope id or flow label (frames carry neither).
pub fn endpoint(a: SocketAddr) -> (std::net::IpAddr, u16) {
    let ip = match a.ip() {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a.ip(), std::net::IpAddr::V4),
        v4 => v4,
    };
    (ip, a.port())
}

/// `endpoint` as a `SocketAddr`.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    let (ip, port) = endpoint(a);
    SocketAddr::new(ip, port)
}

/// `1.2.3.4:80` or `[fd77::1]:80`.
pub fn fmt_addr(a: SocketAddr) -> String {
    canonical(a).to_string()
}

#[cfg(test)]
mod tests;
