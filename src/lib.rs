//! kaprobe: TCP keepalive at the packet level.
//!
//! The core (`wire`, `decode`, `flow`, `analyze`) is pure: it takes time as an
//! argument and does no I/O; so does `keepalive` (the live emulator's state
//! machine and session tracking). `capture`, `live` and `report` are the edges.

pub mod analyze;
pub mod capture;
pub mod cli;
pub mod conform;
pub mod decode;
pub mod explain;
pub mod flow;
pub mod idle;
pub mod keepalive;
pub mod live;
pub mod replay;
pub mod report;
pub mod session;
pub mod synth;
pub mod units;
pub mod watch;
pub mod wire;
