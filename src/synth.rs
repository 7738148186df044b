//! Synthetic TCP sessions as Ethernet frames: handshake, data, keepalive
//! probes and their answers, resets. Pure: the caller supplies times and
//! receives frames. Used by tests, benchmarks and teaching scenarios.

use crate::keepalive::{ProbeInputs, ProbeShape, Style};
use crate::wire::build::{ethernet_frame, BuildError, SegmentSpec};
use crate::wire::{Flags, Seq};
use std::net::SocketAddr;

/// Which end sends a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Client,
    Server,
}

#[derive(Clone, Copy, Debug)]
struct EndState {
    addr: SocketAddr,
    nxt: Seq,
    tsval: u32,
    window: u16,
}

/// One connection's sequence state, advanced by the segments it emits.
#[derive(Clone, Debug)]
pub struct Session {
    ends: [EndState; 2],
    pub timestamps: bool,
    pub sack: bool,
    pub vlan: Vec<u16>,
    frame: Vec<u8>,
}

impl Session {
    pub fn new(client: SocketAddr, server: SocketAddr, client_isn: u32, server_isn: u32) -> Self {
        let end = |addr, isn| EndState {
            addr,
            nxt: Seq(isn),
            tsval: isn.rotate_left(7),
            window: 502,
        };
        Session {
            ends: [end(client, client_isn), end(server, server_isn)],
            timestamps: true,
            sack: true,
            vlan: Vec::new(),
            frame: Vec::with_capacity(128),
        }
    }

    fn idx(e: End) -> (usize, usize) {
        match e {
            End::Client => (0, 1),
            End::Server => (1, 0),
        }
    }

    /// SND.NXT of an end.
    pub fn next_seq(&self, e: End) -> Seq {
        self.ends[Self::idx(e).0].nxt
    }

    /// Sets the window an end advertises from now on (0 for a zero window).
    pub fn set_window(&mut self, e: End, window: u16) {
        self.ends[Self::idx(e).0].window = window;
    }

    /// Builds one segment from `e` and returns its frame; `seq` defaults to SND.NXT.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        e: End,
        flags: u8,
        seq: Option<Seq>,
        ack: Option<Seq>,
        payload: &[u8],
        sack: &[(Seq, Seq)],
        syn_opts: bool,
    ) -> Result<&[u8], BuildError> {
        let (me, peer) = Self::idx(e);
        self.ends[me].tsval = self.ends[me].tsval.wrapping_add(1);
        let (m, p) = (self.ends[me], self.ends[peer]);
        let mut spec = SegmentSpec::new(m.addr, p.addr, seq.unwrap_or(m.nxt), ack.unwrap_or(p.nxt), flags);
        spec.window = m.window;
        spec.payload = payload;
        spec.vlan = &self.vlan;
        spec.sack = sack;
        if self.timestamps {
            spec.timestamp = Some((m.tsval, p.tsval));
        }
        if syn_opts {
            spec.mss = Some(1460);
            spec.wscale = Some(7);
            spec.sack_permitted = self.sack;
        }
        self.frame.clear();
        ethernet_frame(&spec, &mut self.frame)?;
        Ok(&self.frame)
    }

    /// The three segments of the handshake, in order.
    pub fn handshake(&mut self) -> Result<[Vec<u8>; 3], BuildError> {
        let syn = self
            .emit(End::Client, Flags::SYN, None, Some(Seq(0)), &[], &[], true)?
            .to_vec();
        self.ends[0].nxt = self.ends[0].nxt.plus(1);
        let synack = self
            .emit(End::Server, Flags::SYN | Flags::ACK, None, None, &[], &[], true)?
            .to_vec();
        self.ends[1].nxt = self.ends[1].nxt.plus(1);
        let ack = self
            .emit(End::Client, Flags::ACK, None, None, &[], &[], false)?
            .to_vec();
        Ok([syn, synack, ack])
    }

    /// `payload` from `e`; SND.NXT advances.
    pub fn data(&mut self, e: End, payload: &[u8]) -> Result<&[u8], BuildError> {
        let (me, _) = Self::idx(e);
        let seq = self.ends[me].nxt;
        self.ends[me].nxt = seq.plus(payload.len() as u32);
        self.emit(e, Flags::PSH | Flags::ACK, Some(seq), None, payload, &[], false)
    }

    /// A pure ACK of everything the peer sent.
    pub fn ack(&mut self, e: End) -> Result<&[u8], BuildError> {
        self.emit(e, Flags::ACK, None, None, &[], &[], false)
    }

    /// A probe-shaped segment: seq = SND.NXT − 1 with any `payload`, ACK =
    /// RCV.NXT. For zero-window probes and hand-made look-alikes; a stack's
    /// keepalive probe is [`Session::keepalive`].
    pub fn probe(&mut self, e: End, payload: &[u8]) -> Result<&[u8], BuildError> {
        let seq = self.next_seq(e).minus(1);
        self.emit(e, Flags::ACK, Some(seq), None, payload, &[], false)
    }

    /// Keepalive probe number `n` from `e` in `style`, built by the same
    /// builder `kaprobe probe` sends with.
    pub fn keepalive(&mut self, e: End, style: Style, n: u64) -> Result<&[u8], BuildError> {
        let (me, peer) = Self::idx(e);
        self.ends[me].tsval = self.ends[me].tsval.wrapping_add(1);
        let (m, p) = (self.ends[me], self.ends[peer]);
        let inputs = ProbeInputs {
            snd_nxt: m.nxt,
            rcv_nxt: p.nxt,
            window: m.window,
            timestamp: self.timestamps.then_some((m.tsval, p.tsval)),
        };
        let shape = ProbeShape::build(style, None, &inputs, n);
        let mut spec = shape.segment(m.addr, p.addr);
        spec.vlan = &self.vlan;
        self.frame.clear();
        ethernet_frame(&spec, &mut self.frame)?;
        Ok(&self.frame)
    }

    /// Resends the last `n` bytes `e` sent (a retransmission of unacknowledged data).
    pub fn retransmit(&mut self, e: End, payload: &[u8]) -> Result<&[u8], BuildError> {
        let seq = self.next_seq(e).minus(payload.len() as u32);
        self.emit(e, Flags::PSH | Flags::ACK, Some(seq), None, payload, &[], false)
    }

    /// The answer to a probe from the other end; with `dsack`, the D-SACK block a
    /// Linux peer adds for a 1-byte probe.
    pub fn probe_ack(&mut self, e: End, dsack: bool) -> Result<&[u8], BuildError> {
        let (_, peer) = Self::idx(e);
        let n = self.ends[peer].nxt;
        let blocks = [(n.minus(1), n)];
        let sack: &[(Seq, Seq)] = if dsack { &blocks } else { &[] };
        self.emit(e, Flags::ACK, None, None, &[], sack, false)
    }

    /// The RST of a host that no longer knows the connection, answering a
    /// probe: seq = the probe's ACK field, ACK flag clear.
    pub fn reset_unknown(&mut self, e: End) -> Result<&[u8], BuildError> {
        let seq = self.next_seq(e);
        self.emit(e, Flags::RST, Some(seq), Some(Seq(0)), &[], &[], false)
    }

    /// Linux's abort after the last unanswered probe: seq = SND.NXT, ACK set.
    pub fn abort(&mut self, e: End) -> Result<&[u8], BuildError> {
        self.emit(e, Flags::RST | Flags::ACK, None, None, &[], &[], false)
    }

    /// FIN from `e`; SND.NXT advances by one.
    pub fn fin(&mut self, e: End) -> Result<&[u8], BuildError> {
        let (me, _) = Self::idx(e);
        let seq = self.ends[me].nxt;
        self.ends[me].nxt = seq.plus(1);
        self.emit(e, Flags::FIN | Flags::ACK, Some(seq), None, &[], &[], false)
    }
}
