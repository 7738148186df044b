//! Bytes ⇄ typed values: sequence arithmetic, TCP segment facts, packet building.

pub mod build;
pub mod seq;
pub mod tcp;

pub use seq::Seq;
pub use tcp::{Flags, Segment, TcpOptions};

/// The big-endian 16-bit number at `at` (the caller has checked the length).
#[inline(always)]
pub fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The big-endian 32-bit number at `at` (the caller has checked the length).
#[inline(always)]
pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
