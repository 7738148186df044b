//! What a segment is, as far as keepalive is concerned.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    KeepaliveProbe,
    KeepaliveAck,
    /// A RST answering a probe: the peer no longer knows the connection.
    KeepaliveRst,
    /// The prober's own RST after its last unanswered probe.
    KeepaliveAbort,
    ZeroWindowProbe,
    ZeroWindowAck,
    /// Probe-shaped, but carries a byte the peer never acknowledged.
    Retransmission,
    // Everything else; reported only on request (`--all`).
    Handshake,
    Data,
    Ack,
    Fin,
    Rst,
}

impl Kind {
    /// Kinds that `verify` reports by default.
    pub fn is_notable(self) -> bool {
        !matches!(self, Kind::Handshake | Kind::Data | Kind::Ack | Kind::Fin | Kind::Rst)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::KeepaliveProbe => "keepalive_probe",
            Kind::KeepaliveAck => "keepalive_ack",
            Kind::KeepaliveRst => "keepalive_rst",
            Kind::KeepaliveAbort => "keepalive_abort",
            Kind::ZeroWindowProbe => "zero_window_probe",
            Kind::ZeroWindowAck => "zero_window_ack",
            Kind::Retransmission => "retransmission",
            Kind::Handshake => "handshake",
            Kind::Data => "data",
            Kind::Ack => "ack",
            Kind::Fin => "fin",
            Kind::Rst => "rst",
        }
    }
}
