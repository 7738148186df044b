//! The stateful rule that names a segment. Unlike Wireshark's rule it asks
//! what the other side has acknowledged and advertised, so a 1-byte
//! retransmission, a zero-window probe and an ACK with a changed window are
//! each told apart from a keepalive probe and its answer.

use super::kind::Kind;
use super::prober::Pending;
use crate::flow::Direction;
use crate::session;
use crate::wire::Segment;

/// A keepalive abort comes an interval after the last probe (at least 1 s on
/// Linux; `kaprobe probe` allows shorter). A RST sooner than this after a probe
/// is the application's, not the keepalive timer's.
const MIN_ABORT_DELAY_NS: u64 = 250_000_000;

/// A capture that starts mid-session may open with a probe: nothing before it
/// says where the sender's next seq is, and the receiver has acknowledged
/// nothing yet. `next` is the flow's next segment in the capture; when the
/// receiver sends it and it acknowledges one byte past `seg`, a segment with
/// no payload, `seg` sat one below SND.NXT: a probe, and `next` its answer.
pub fn answered_ahead(seg: &Segment, to: &Direction, next: &Segment, next_from_receiver: bool) -> bool {
    may_open_with_probe(seg, to) && next_from_receiver && plain_ack(next) && next.ack == seg.seq.plus(1)
}

/// The half of `answered_ahead` that `seg` alone decides: whether the flow's
/// next segment need be looked at at all (nearly every segment: no).
#[inline]
pub fn may_open_with_probe(seg: &Segment, to: &Direction) -> bool {
    seg.payload_len == 0 && plain_ack(seg) && to.acked().is_none()
}

/// ACK set; no SYN, FIN or RST.
#[inline]
fn plain_ack(s: &Segment) -> bool {
    s.flags.ack() && !s.flags.syn() && !s.flags.fin() && !s.flags.rst()
}

/// Names `seg`, sent by `from` to `to`. `to_pending` is the probe `to` is
/// waiting on an answer for; `from_pending` the one `from` is.
pub fn classify(
    seg: &Segment,
    time: u64,
    from: &Direction,
    to: &Direction,
    from_pending: Option<&Pending>,
    to_pending: Option<&Pending>,
) -> Kind {
    let f = seg.flags;
    if f.syn() {
        return Kind::Handshake;
    }
    if f.rst() {
        // Linux gives up on its keepalive timer, an interval after its last
        // probe, with RST+ACK at SND.NXT; an earlier RST is the application's.
        let abort = |p: &Pending| {
            !p.zero_window && f.ack() && seg.seq == from.next_seq && time.saturating_sub(p.time) >= MIN_ABORT_DELAY_NS
        };
        // A RST after a zero-window probe is just a RST: flow control, not keepalive.
        return match (to_pending.filter(|p| !p.zero_window), from_pending) {
            // A peer that lost the socket answers with seq = the probe's ACK field.
            (Some(p), _) if session::is_rst_answer(seg, p.ack) => Kind::KeepaliveRst,
            (_, Some(p)) if abort(p) => Kind::KeepaliveAbort,
            (Some(_), _) => Kind::KeepaliveRst,
            _ => Kind::Rst,
        };
    }
    if f.fin() {
        return Kind::Fin;
    }
    let len = seg.payload_len;
    if let Some(p) = to_pending {
        if session::is_ack_answer(seg, p.seq, from.seen().then_some(from.next_seq)) {
            return if p.zero_window {
                Kind::ZeroWindowAck
            } else {
                Kind::KeepaliveAck
            };
        }
    }
    if len <= 1 {
        match to.acked() {
            // One byte behind the last byte the receiver acknowledged: a duplicate
            // that must be answered. Window 0 makes it a zero-window probe.
            Some(acked) if seg.seq.plus(1) == acked => {
                return if to.window() == Some(0) {
                    Kind::ZeroWindowProbe
                } else {
                    Kind::KeepaliveProbe
                };
            }
            // The byte at SND.NXT − 1 was never acknowledged: data, resent.
            Some(acked)
                if len == 1 && from.seen() && seg.seq.plus(1) == from.next_seq && acked.before(from.next_seq) =>
            {
                return Kind::Retransmission;
            }
            // Nothing acknowledged by the receiver yet. If the sender's data is in
            // the capture, that byte is unacknowledged data: a 1-byte segment there
            // is a retransmission. Otherwise (capture began mid-flow) the shape is
            // all there is to go on.
            None if from.seen() && seg.seq.plus(1) == from.next_seq => {
                return match (from.data_seen(), len) {
                    (false, _) => Kind::KeepaliveProbe,
                    (true, 1) => Kind::Retransmission,
                    (true, _) => Kind::Ack,
                };
            }
            _ => {}
        }
    }
    if len > 0 {
        Kind::Data
    } else {
        Kind::Ack
    }
}
