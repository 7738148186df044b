//! The libpcap receiver (the `pcap` crate): one interface, immediate mode, a
//! BPF filter on the sessions, nanosecond timestamps, non-blocking. The engine
//! reads it on its own thread: it waits on the capture's descriptor until a
//! frame comes or a timer is due, then takes every frame waiting. Frames wait
//! in the kernel's capture ring meanwhile, so none is lost while the engine
//! works; libpcap's drop counters say when the ring overflowed.

use super::{LiveError, Outcome};
use crate::decode::LinkType;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Bytes kept of each frame: every header kaprobe reads, a probe's byte.
const SNAPLEN: i32 = 256;
/// The kernel's ring for captured frames (some 12,000 frames at this snaplen).
const BUFFER: i32 = 4 << 20;

/// One captured frame's facts; its bytes are in the caller's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    /// Capture time, nanoseconds since the epoch (libpcap's wall-clock stamp).
    pub time: u64,
    /// When the engine read it (monotonic): see `super::Clock::capture_time`.
    pub received: Instant,
    /// Bytes captured (at most the snaplen).
    pub len: usize,
    pub wire_len: u32,
}

/// Frames the capture lost (pcap_stats since the capture began).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// Dropped for lack of room in the capture buffer: frames that matched the filter.
    pub dropped: u64,
    /// Dropped by the interface or its driver (every frame, not only the session's).
    pub if_dropped: u64,
}

impl Drops {
    pub fn any(&self) -> bool {
        self.dropped + self.if_dropped > 0
    }

    /// The verdict's warning: an outcome that rests on silence (`dead`,
    /// `unknown`, or probes counted unanswered or still pending) while the
    /// capture lost frames may rest on a lost answer.
    pub fn verdict_note(&self, outcome: Outcome, unresolved: u64) -> Option<String> {
        let silent = matches!(outcome, Outcome::Dead | Outcome::Unknown) || unresolved > 0;
        (self.any() && silent).then(|| {
            format!(
                "capture dropped {}: an answer may have been lost",
                crate::units::count(self.dropped + self.if_dropped, "packet")
            )
        })
    }
}

pub struct LiveCapture {
    cap: pcap::Capture<pcap::Active>,
    pub link: LinkType,
    /// The DLT/LINKTYPE number, for writing the frames out.
    pub link_code: i32,
    pub device: String,
}

/// Checks that an interface exists ("any" always does).
pub fn check_device(dev: &str) -> Result<(), LiveError> {
    if dev == "any" || std::path::Path::new("/sys/class/net").join(dev).exists() {
        return Ok(());
    }
    Err(LiveError::new(format!("interface {dev}"), "no such interface"))
}

/// An open capture, not yet switched to non-blocking reads.
pub struct OpenCapture {
    cap: pcap::Capture<pcap::Active>,
    pub link: LinkType,
    pub link_code: i32,
    pub device: String,
}

/// A libpcap error as a reason; activation without the right privileges says
/// what is missing.
fn reason(e: pcap::Error) -> String {
    let why = match e {
        pcap::Error::PcapError(s) if s.is_empty() => "libpcap could not activate the capture".to_string(),
        e => e.to_string(),
    };
    if why.contains("ermission") || why.contains("not permitted") || why.contains("CAP_NET_RAW") {
        "permission denied (run as root or give kaprobe CAP_NET_RAW)".into()
    } else {
        why
    }
}

impl OpenCapture {
    /// Opens `device` with `filter` (BPF syntax); packets are buffered by the
    /// kernel from now on.
    pub fn open(device: &str, filter: &str) -> Result<OpenCapture, LiveError> {
        check_device(device)?;
        let err = |e| LiveError::new(format!("capture on {device}"), reason(e));
        let mut cap = pcap::Capture::from_device(device)
            .map_err(err)?
            .snaplen(SNAPLEN)
            .immediate_mode(true)
            .buffer_size(BUFFER)
            .precision(pcap::Precision::Nano)
            .open()
            .map_err(err)?;
        cap.filter(filter, true)
            .map_err(|e| LiveError::new(format!("capture filter '{filter}'"), e.to_string()))?;
        let link_code = cap.get_datalink().0;
        let link = LinkType::from_code(link_code as u32).ok_or_else(|| {
            LiveError::new(
                format!("capture on {device}"),
                format!("link type {link_code} is not one kaprobe decodes"),
            )
        })?;
        Ok(OpenCapture {
            cap,
            link,
            link_code,
            device: device.to_string(),
        })
    }

    /// Ready for the engine: reads no longer block.
    pub fn start(self) -> Result<LiveCapture, LiveError> {
        let OpenCapture {
            cap,
            link,
            link_code,
            device,
        } = self;
        let cap = cap
            .setnonblock()
            .map_err(|e| LiveError::new(format!("capture on {device}"), e.to_string()))?;
        Ok(LiveCapture {
            cap,
            link,
            link_code,
            device,
        })
    }
}

impl LiveCapture {
    fn error(&self, why: impl Into<String>) -> LiveError {
        LiveError::new(format!("capture on {}", self.device), why)
    }

    /// Waits at most `wait` for a frame to read (or a signal): ppoll, whose
    /// nanosecond timeout lets a probe due in 300 µs leave on time.
    pub fn wait(&self, wait: Duration) -> Result<(), LiveError> {
        let mut fd = libc::pollfd {
            fd: self.cap.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: one valid pollfd, a valid timespec, no signal mask.
        if unsafe { libc::ppoll(&mut fd, 1, &ts, std::ptr::null()) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(self.error(super::io_reason(&e)));
            }
        }
        Ok(())
    }

    /// The next frame waiting, its bytes copied into `buf`; `None` when none is.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<Frame>, LiveError> {
        match self.cap.next_packet() {
            Ok(p) => {
                // Nanosecond precision: tv_usec holds nanoseconds.
                let time = p.header.ts.tv_sec as u64 * 1_000_000_000 + p.header.ts.tv_usec as u64;
                buf.clear();
                buf.extend_from_slice(p.data);
                Ok(Some(Frame {
                    time,
                    received: Instant::now(),
                    len: p.data.len(),
                    wire_len: p.header.len,
                }))
            }
            Err(pcap::Error::TimeoutExpired) | Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    /// What the capture lost so far (pcap_stats).
    pub fn drops(&mut self) -> Drops {
        self.cap.stats().map_or(Drops::default(), |s| Drops {
            dropped: s.dropped.into(),
            if_dropped: s.if_dropped.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Drops, Outcome};

    #[test]
    fn a_verdict_resting_on_silence_says_when_the_capture_dropped_frames() {
        let lossy = Drops {
            dropped: 2,
            if_dropped: 1,
        };
        let note = Some("capture dropped 3 packets: an answer may have been lost".to_string());
        assert_eq!(lossy.verdict_note(Outcome::Dead, 3), note);
        assert_eq!(lossy.verdict_note(Outcome::Unknown, 0), note);
        assert_eq!(
            lossy.verdict_note(Outcome::Alive, 1),
            note,
            "a probe counted unanswered"
        );
        assert_eq!(lossy.verdict_note(Outcome::Alive, 0), None, "every probe answered");
        assert_eq!(lossy.verdict_note(Outcome::Reset, 0), None);
        assert_eq!(Drops::default().verdict_note(Outcome::Dead, 3), None);
    }
}
