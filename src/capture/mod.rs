//! Reading capture files (the I/O edge): pcap and pcapng, streamed.

mod first_block;
mod reader;
mod sigbus;

use crate::decode::LinkType;
use std::path::Path;

/// One captured frame, borrowed from the reader's buffer.
pub struct Record<'a> {
    /// 1-based record number (Wireshark's frame.number).
    pub frame: u64,
    /// Nanoseconds since the Unix epoch.
    pub time: u64,
    /// Link type of the interface the frame was captured on.
    pub link: Option<LinkType>,
    pub link_code: u32,
    pub data: &'a [u8],
    /// Length on the wire (caplen may be less).
    pub wire_len: u32,
    /// Byte offset of the record's block in the file: how far the read has come.
    pub offset: u64,
}

impl Record<'_> {
    /// The capture kept fewer bytes than were on the wire (a short snaplen).
    pub fn snapped(&self) -> bool {
        (self.data.len() as u32) < self.wire_len
    }
}

/// Why a capture could not be read. Each names the file; read errors name
/// the record and, where known, the byte offset.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {why}")]
    Open { path: String, why: String },
    #[error("{path}: record {record}{}: {why}", offset.map(|o| format!(" (byte offset {o})")).unwrap_or_default())]
    Read {
        path: String,
        record: u64,
        offset: Option<u64>,
        why: String,
    },
}

/// Counts from reading one file.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadSummary {
    pub records: u64,
    /// Frames on interfaces of a link type kaprobe does not decode.
    pub unknown_link: u64,
}

/// Reads every record of `path` in order, handing each to `each`.
pub fn read_file(path: &Path, each: impl FnMut(&Record)) -> Result<ReadSummary, CaptureError> {
    let name = path.display().to_string();
    let open = |why: String| CaptureError::Open {
        path: name.clone(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| open(io_reason(&e)))?;
    if meta.is_dir() {
        return Err(open("is a directory, not a capture file".into()));
    }
    // A pipe (/dev/stdin, <(tcpdump -w -)) has no length: it is streamed.
    if meta.is_file() && meta.len() == 0 {
        return Err(open("empty file, not a capture".into()));
    }
    reader::read(path, &name, each)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
