//! Writing captures: nanosecond pcap, Ethernet or another link type. The file
//! appears under its name only when complete: frames go to an unnamed file in
//! its directory (`tmpfile`), linked under the name by `finish`; dropped
//! unfinished, or the process killed, nothing is left.

use super::tmpfile::{self, LinkNames};
use pcap_parser::{Linktype, PcapHeader, ToVec};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

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

/// Links a finished file under its name on this process's behalf: for a
/// process that gave up the privileges its directory needs (`crate::live::linker`).
pub trait Publish {
    fn publish(self: Box<Self>) -> std::io::Result<()>;
}

pub struct PcapOut {
    file: Option<BufWriter<File>>,
    /// The first write error: `write` has no result, `finish` reports it.
    failed: Option<std::io::Error>,
    names: LinkNames,
    publisher: Option<Box<dyn Publish>>,
    dest: String,
}

/// An I/O error as the reason a pcap could not be written.
fn why(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EISDIR) => "is a directory".into(),
        Some(libc::EOPNOTSUPP) => {
            "the filesystem has no unnamed temporary files (O_TMPFILE): write it elsewhere".into()
        }
        _ => crate::live::io_reason(e),
    }
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
        if dest.file_name().is_none() {
            return Err(err("not a file name".into()));
        }
        let header = PcapHeader {
            magic_number: MAGIC_NS,
            snaplen: SNAPLEN,
            network: Linktype(link),
            ..PcapHeader::new()
        };
        let header = header.to_vec_raw().map_err(|e| err(format!("pcap header: {e:?}")))?;
        let file = tmpfile::create(dest).map_err(|e| err(why(&e)))?;
        let names = LinkNames::new(&file, dest).map_err(|e| err(why(&e)))?;
        let mut file = BufWriter::new(file);
        Ok(PcapOut {
            failed: file.write_all(&header).err(),
            file: Some(file),
            names,
            publisher: None,
            dest: dest.display().to_string(),
        })
    }

    /// The unnamed file's descriptor and how to name it, for a `Publish`er.
    pub fn to_publish(&self) -> Option<(RawFd, &LinkNames)> {
        Some((self.file.as_ref()?.get_ref().as_raw_fd(), &self.names))
    }

    /// `finish` asks `p` to link the file instead of linking it itself.
    pub fn publish_through(&mut self, p: Box<dyn Publish>) {
        self.publisher = Some(p);
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

    /// Flushes and gives the file its name; the first write error, if any
    /// (the file is then left unnamed, i.e. gone).
    pub fn finish(mut self) -> Result<(), PcapWriteError> {
        let err = |e: std::io::Error| PcapWriteError {
            path: self.dest.clone(),
            why: why(&e),
        };
        if let Some(e) = self.failed.take() {
            return Err(err(e));
        }
        let Some(f) = self.file.take() else {
            return Ok(());
        };
        // Kept open until linked: the link names the inode through its fd.
        let _file = f.into_inner().map_err(|e| err(e.into_error()))?;
        match self.publisher.take() {
            Some(p) => p.publish(),
            None => self.names.link().map_err(std::io::Error::from_raw_os_error),
        }
        .map_err(err)
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
