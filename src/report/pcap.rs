//! Writing captures: nanosecond pcap, Ethernet or another link type. The file
//! appears under its name only when complete: frames go to a temporary file
//! beside it, renamed by `finish`; dropped unfinished, the temporary is removed.

use pcap_parser::{Linktype, PcapHeader, ToVec};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct PcapWriteError {
    pub path: String,
    pub why: String,
}

/// The pcap magic number for nanosecond timestamps.
const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// The snaplen the header announces (what libpcap's writer put there).
const SNAPLEN: u32 = 65535;

pub struct PcapOut {
    file: Option<BufWriter<File>>,
    /// The first write error: `write` has no result, `finish` reports it.
    failed: Option<std::io::Error>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl PcapOut {
    pub fn create(dest: &Path) -> Result<PcapOut, PcapWriteError> {
        Self::create_with_link(dest, Linktype::ETHERNET.0)
    }

    /// A capture of frames of link type `link` (a DLT/LINKTYPE number, e.g. what
    /// a live capture reports).
    pub fn create_with_link(dest: &Path, link: i32) -> Result<PcapOut, PcapWriteError> {
        let err = |why: String| PcapWriteError {
            path: dest.display().to_string(),
            why,
        };
        let name = dest.file_name().ok_or_else(|| err("not a file name".into()))?;
        let tmp = dest.with_file_name(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
        let header = PcapHeader {
            magic_number: MAGIC_NS,
            snaplen: SNAPLEN,
            network: Linktype(link),
            ..PcapHeader::new()
        };
        let header = header.to_vec_raw().map_err(|e| err(format!("pcap header: {e:?}")))?;
        let mut file = BufWriter::new(File::create(&tmp).map_err(|e| err(crate::live::io_reason(&e)))?);
        Ok(PcapOut {
            failed: file.write_all(&header).err(),
            file: Some(file),
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// Gives the file (still under its temporary name) to `uid`/`gid`, so a
    /// process that drops privileges afterwards can still move it into place.
    pub fn chown(&self, uid: u32, gid: u32) -> Result<(), PcapWriteError> {
        std::os::unix::fs::chown(&self.tmp, Some(uid), Some(gid)).map_err(|e| PcapWriteError {
            path: self.dest.display().to_string(),
            why: e.to_string(),
        })
    }

    /// Appends one frame captured at `time_ns` since the epoch.
    pub fn write(&mut self, time_ns: u64, frame: &[u8]) {
        self.write_snapped(time_ns, frame, frame.len() as u32);
    }

    /// Appends a frame that was `wire_len` bytes on the wire (more than `frame`
    /// holds when the capture's snaplen cut it).
    pub fn write_snapped(&mut self, time_ns: u64, frame: &[u8], wire_len: u32) {
        let (Some(f), None) = (self.file.as_mut(), &self.failed) else {
            return;
        };
        // A pcap record (pcap_parser's LegacyPcapBlock, whose `to_vec` would
        // allocate for every frame): seconds, nanoseconds, captured and wire
        // lengths, little-endian like the header, then the frame.
        let caplen = frame.len() as u32;
        let record = [
            (time_ns / 1_000_000_000) as u32,
            (time_ns % 1_000_000_000) as u32,
            caplen,
            wire_len.max(caplen),
        ];
        let written = record
            .iter()
            .try_for_each(|v| f.write_all(&v.to_le_bytes()))
            .and_then(|_| f.write_all(frame));
        self.failed = written.err();
    }

    /// Flushes, closes and moves the file into place; the first write error, if
    /// any (the temporary file is then removed).
    pub fn finish(mut self) -> Result<(), PcapWriteError> {
        let err = |e: std::io::Error| PcapWriteError {
            path: self.dest.display().to_string(),
            why: crate::live::io_reason(&e),
        };
        if let Some(e) = self.failed.take() {
            return Err(err(e));
        }
        if let Some(f) = self.file.take() {
            f.into_inner().map_err(|e| err(e.into_error()))?;
        }
        std::fs::rename(&self.tmp, &self.dest).map_err(err)
    }
}

impl Drop for PcapOut {
    fn drop(&mut self) {
        if self.file.take().is_some() || self.tmp.exists() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::read_file;

    #[test]
    fn written_frames_read_back_with_nanoseconds() {
        let dir = std::env::temp_dir().join(format!("kaprobe-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("out.pcap");
        let mut out = PcapOut::create(&dest).unwrap();
        out.write(1_700_000_000_123_456_789, &[1u8; 60]);
        out.write(1_700_000_001_000_000_001, &[2u8; 54]);
        assert!(!dest.exists(), "not visible before finish");
        out.finish().unwrap();
        let mut got = Vec::new();
        read_file(&dest, |r| got.push((r.frame, r.time, r.data.len()))).unwrap();
        assert_eq!(
            got,
            [(1, 1_700_000_000_123_456_789, 60), (2, 1_700_000_001_000_000_001, 54)]
        );
        let dropped = dir.join("dropped.pcap");
        drop(PcapOut::create(&dropped).unwrap());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no partial file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
