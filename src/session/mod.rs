//! One model of a TCP session, shared by capture analysis (`analyze`) and live
//! tracking (`keepalive::track`): each direction's state is a
//! [`crate::flow::Direction`], and the rules on it are written once, here, as
//! pure functions of that state — what was negotiated, whether a segment
//! answers a probe (and which), whether the peer's answer rate limit applies,
//! and what a RST means. Facts and sources: `docs/tcp-keepalive.md`.

pub mod answer;
pub mod negotiated;
pub mod rate_limit;
pub mod rst;
pub mod rtt;

pub use answer::{dsack, is_ack_answer, is_rst_answer, overdue, pick, Candidate};
pub use rst::{ResetBy, RstAcceptance};
pub use rtt::RttSampler;
