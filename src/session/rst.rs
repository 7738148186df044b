//! What a RST from the peer's direction means (docs/tcp-keepalive.md §3, §7).

use crate::wire::Seq;

/// How the receiving TCP takes a RST (RFC 9293 §3.10.7.4 with RFC 5961 §3, as
/// Linux's `tcp_validate_incoming()` does): only a RST at exactly RCV.NXT
/// resets the connection; one elsewhere in the window draws a challenge ACK;
/// one outside it is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RstAcceptance {
    Resets,
    Challenged,
    Dropped,
    /// RCV.NXT is not known (nothing seen from the peer yet).
    Unknown,
}

impl RstAcceptance {
    pub fn name(self) -> &'static str {
        match self {
            RstAcceptance::Resets => "resets",
            RstAcceptance::Challenged => "challenged",
            RstAcceptance::Dropped => "dropped",
            RstAcceptance::Unknown => "unknown",
        }
    }
}

/// How the local end takes a RST with sequence number `seq`, given its
/// RCV.NXT and receive window in bytes.
pub fn acceptance(seq: Seq, rcv_nxt: Option<Seq>, rcv_wnd: u32) -> RstAcceptance {
    let Some(nxt) = rcv_nxt else {
        return RstAcceptance::Unknown;
    };
    if seq == nxt {
        RstAcceptance::Resets
    } else if seq.after(nxt) && seq.0.wrapping_sub(nxt.0) < rcv_wnd.max(1) {
        RstAcceptance::Challenged
    } else {
        RstAcceptance::Dropped
    }
}

/// Who sent a RST in the peer's name, by IP TTL (hop limit): the peer, when
/// it matches the peer's other segments; something on the path (a load
/// balancer or NAT that forgot the flow) when it differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetBy {
    Peer,
    Path,
}

impl ResetBy {
    pub fn of(rst_ttl: u8, usual_ttl: u8) -> ResetBy {
        if rst_ttl == usual_ttl {
            ResetBy::Peer
        } else {
            ResetBy::Path
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ResetBy::Peer => "peer",
            ResetBy::Path => "path",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exactly_rcv_nxt_resets() {
        assert_eq!(acceptance(Seq(100), Some(Seq(100)), 1000), RstAcceptance::Resets);
        assert_eq!(acceptance(Seq(500), Some(Seq(100)), 1000), RstAcceptance::Challenged);
        assert_eq!(acceptance(Seq(99), Some(Seq(100)), 1000), RstAcceptance::Dropped);
        assert_eq!(acceptance(Seq(1100), Some(Seq(100)), 1000), RstAcceptance::Dropped);
        assert_eq!(acceptance(Seq(5), None, 1000), RstAcceptance::Unknown);
        // Across the wrap.
        assert_eq!(
            acceptance(Seq(10), Some(Seq(u32::MAX - 10)), 1000),
            RstAcceptance::Challenged
        );
    }

    #[test]
    fn ttl_tells_peer_from_path() {
        assert_eq!(ResetBy::of(64, 64), ResetBy::Peer);
        assert_eq!(ResetBy::of(255, 62), ResetBy::Path);
    }
}
