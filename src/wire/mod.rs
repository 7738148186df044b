//! Bytes ⇄ typed values: sequence arithmetic, TCP segment facts, packet building.

pub mod build;
pub mod seq;
pub mod tcp;

pub use seq::Seq;
pub use tcp::{Flags, Segment, TcpOptions};
