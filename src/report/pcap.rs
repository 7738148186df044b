//! Writing captures (nanosecond pcap, Ethernet or another link type) through libpcap. The file
//! appears under its name only when complete: frames go to a temporary file
//! beside it, renamed by `finish`; dropped unfinished, the temporary is removed.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct PcapWriteError {
    pub path: String,
    pub why: String,
}

pub struct PcapOut {
    file: Option<pcap::Savefile>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl PcapOut {
    pub fn create(dest: &Path) -> Result<PcapOut, PcapWriteError> {
        Self::create_with_link(dest, pcap::Linktype::ETHERNET.0)
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
        let dead = pcap::Capture::dead_with_precision(pcap::Linktype(link), pcap::Precision::Nano)
            .map_err(|e| err(e.to_string()))?;
        let file = dead.savefile(&tmp).map_err(|e| err(e.to_string()))?;
        Ok(PcapOut {
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
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: (time_ns / 1_000_000_000) as libc::time_t,
                // Nanosecond precision: libpcap keeps nanoseconds in tv_usec.
                tv_usec: (time_ns % 1_000_000_000) as libc::suseconds_t,
            },
            caplen: frame.len() as u32,
            len: wire_len.max(frame.len() as u32),
        };
        if let Some(f) = self.file.as_mut() {
            f.write(&pcap::Packet::new(&header, frame));
        }
    }

    /// Flushes, closes and moves the file into place.
    pub fn finish(mut self) -> Result<(), PcapWriteError> {
        let err = |why: String| PcapWriteError {
            path: self.dest.display().to_string(),
            why,
        };
        if let Some(mut f) = self.file.take() {
            f.flush().map_err(|e| err(e.to_string()))?;
        }
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| err(e.to_string()))
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
