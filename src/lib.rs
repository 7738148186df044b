//! kaprobe: TCP keepalive at the packet level.
//!
//! The core (`wire`, `decode`, `flow`, `analyze`) is pure: it takes time as an
//! argument and does no I/O. `capture` and `report` are the edges.

pub mod analyze;
pub mod capture;
pub mod cli;
pub mod decode;
pub mod flow;
pub mod report;
pub mod synth;
pub mod units;
pub mod wire;
