//! What the analyzer tells its caller about one segment and one flow.

use super::kind::Kind;
use crate::flow::{Endpoint, Side};
use crate::wire::{Flags, Seq};

/// One classified segment. Plain `Copy` data: building it allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct SegmentEvent {
    /// 1-based record number in the capture file.
    pub frame: u64,
    pub time: u64,
    pub flow_id: u64,
    pub side: Side,
    pub from: Endpoint,
    pub to: Endpoint,
    pub kind: Kind,
    pub seq: Seq,
    pub ack: Seq,
    pub len: u32,
    pub flags: Flags,
    /// Window as advertised, scaled when the shift is known.
    pub window: u32,
    /// Relative to the ISNs, when the handshake was seen.
    pub rel_seq: Option<u32>,
    pub rel_ack: Option<u32>,
    /// For answers: the probe's frame and the time it took.
    pub answers: Option<u64>,
    pub rtt: Option<u64>,
    /// The answer carries a D-SACK block for the probe's byte.
    pub dsack: bool,
    /// What the classifier looked at: the sender's next sequence number, the
    /// receiver's highest ACK and the frame that carried it, the receiver's window.
    pub next_seq: Option<Seq>,
    pub peer_acked: Option<Seq>,
    pub peer_acked_frame: Option<u64>,
    pub peer_window: Option<u32>,
    pub timestamp: Option<(u32, u32)>,
    /// The capture's snaplen cut the TCP options off: `timestamp` is unknown.
    pub options_cut: bool,
    /// The first payload byte, when captured (a 1-byte probe's 0x00 or garbage).
    pub byte: Option<u8>,
    /// The receiver's next sequence number (the sender's RCV.NXT, as far as
    /// the capture shows), and when the sender last heard from it (keepalive
    /// and zero-window probes aside): what a probe's ACK field and idle are
    /// measured against.
    pub peer_next: Option<Seq>,
    pub last_received: Option<u64>,
    /// IP TTL (hop limit) of this segment, and of the sender's previous non-RST one.
    pub ttl: u8,
    pub usual_ttl: Option<u8>,
}

/// A fault in how keepalive was done on a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    /// A segment at SND.NXT − 1 after idle, carrying 2+ bytes: the peer takes it as data.
    PayloadTooLong,
    /// A probe while the prober had unacknowledged data (retransmission should be in charge).
    ProbeWithUnackedData,
    /// No TSopt although both SYNs negotiated timestamps (RFC 7323 says drop it).
    MissingTimestamp,
    /// TSval older than the prober's previous one: current Linux peers drop it (PAWS).
    StaleTsval,
    /// Sent within 500 ms of the previous probe: a Linux peer answers at most one.
    WithinRateLimit,
}

impl ViolationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::PayloadTooLong => "probe_payload_too_long",
            ViolationKind::ProbeWithUnackedData => "probe_with_unacked_data",
            ViolationKind::MissingTimestamp => "probe_without_timestamp",
            ViolationKind::StaleTsval => "probe_with_stale_tsval",
            ViolationKind::WithinRateLimit => "probe_within_rate_limit",
        }
    }

    pub fn meaning(self) -> &'static str {
        match self {
            ViolationKind::PayloadTooLong => {
                "segment at SND.NXT-1 after idle carries more than 1 byte: the peer takes it as data, not a probe"
            }
            ViolationKind::ProbeWithUnackedData => {
                "probe sent while data was unacknowledged: retransmission, not keepalive, should be running"
            }
            ViolationKind::MissingTimestamp => {
                "probe without TSopt although timestamps were negotiated (RFC 7323: the peer should drop it)"
            }
            ViolationKind::StaleTsval => {
                "probe TSval older than the sender's previous one: current Linux peers drop it (PAWS)"
            }
            ViolationKind::WithinRateLimit => {
                "probe within 500 ms of the previous one: a Linux peer answers at most one per 500 ms"
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Violation {
    pub kind: ViolationKind,
    pub frame: u64,
    pub time: u64,
    pub side: Side,
}
