//! The libpcap receiver (the `pcap` crate): one interface, immediate mode, a
//! BPF filter on the session, nanosecond timestamps; read on a thread that
//! hands every frame to the engine through a channel (so nothing is lost while
//! the engine waits for a connection to be set up), and that keeps libpcap's
//! drop counters where the engine can read them.

use super::{LiveError, Outcome};
use crate::decode::LinkType;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Bytes kept of each frame: every header kaprobe reads, a probe's byte.
const SNAPLEN: i32 = 256;
/// The read timeout: how often the reader looks at its stop flag and the drop
/// counters when no frame comes (breakloop normally wakes it at once).
const TIMEOUT_MS: i32 = 50;
/// The kernel's buffer for captured frames.
const BUFFER: i32 = 4 << 20;
/// Frames read between two looks at the drop counters while frames keep coming.
const STATS_EVERY: u32 = 64;

/// One captured frame.
pub struct Frame {
    /// Capture time, nanoseconds since the epoch (libpcap's wall-clock stamp).
    pub time: u64,
    /// When the capture thread got it (monotonic): see `super::Clock::capture_time`.
    pub received: std::time::Instant,
    pub data: Vec<u8>,
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
                "capture dropped {} packets: an answer may have been lost",
                self.dropped + self.if_dropped
            )
        })
    }
}

/// The reader thread's latest pcap_stats reading.
#[derive(Default)]
struct DropCounters {
    dropped: AtomicU64,
    if_dropped: AtomicU64,
}

pub struct LiveCapture {
    pub rx: Receiver<Frame>,
    pub link: LinkType,
    /// The DLT/LINKTYPE number, for writing the frames out.
    pub link_code: i32,
    pub device: String,
    stop: Arc<AtomicBool>,
    brk: pcap::BreakLoop,
    drops: Arc<DropCounters>,
    thread: Option<JoinHandle<Option<String>>>,
}

/// Checks that an interface exists ("any" always does).
pub fn check_device(dev: &str) -> Result<(), LiveError> {
    if dev == "any" || std::path::Path::new("/sys/class/net").join(dev).exists() {
        return Ok(());
    }
    Err(LiveError::new(format!("interface {dev}"), "no such interface"))
}

/// An open capture whose reading thread has not started yet (privileges can
/// still be dropped before any thread exists).
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
            .timeout(TIMEOUT_MS)
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

    /// Starts the reading thread.
    pub fn spawn(self) -> LiveCapture {
        let OpenCapture {
            mut cap,
            link,
            link_code,
            device,
        } = self;
        let brk = cap.breakloop_handle();
        let (tx, rx) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let drops = Arc::new(DropCounters::default());
        let (flag, counters) = (stop.clone(), drops.clone());
        let thread = std::thread::spawn(move || {
            let mut unread_stats = 0;
            let result = loop {
                if flag.load(Ordering::Relaxed) {
                    break None;
                }
                match cap.next_packet() {
                    Ok(p) => {
                        // Nanosecond precision: tv_usec holds nanoseconds.
                        let time = p.header.ts.tv_sec as u64 * 1_000_000_000 + p.header.ts.tv_usec as u64;
                        let f = Frame {
                            time,
                            received: std::time::Instant::now(),
                            data: p.data.to_vec(),
                            wire_len: p.header.len,
                        };
                        if tx.send(f).is_err() {
                            break None;
                        }
                        unread_stats += 1;
                        if unread_stats < STATS_EVERY {
                            continue;
                        }
                    }
                    Err(pcap::Error::TimeoutExpired) => {}
                    // PCAP_ERROR_BREAK: pcap_breakloop() from stop(), not an error.
                    Err(pcap::Error::NoMorePackets) => break None,
                    Err(_) if flag.load(Ordering::Relaxed) => break None,
                    Err(e) => break Some(e.to_string()),
                }
                unread_stats = 0;
                read_stats(&mut cap, &counters);
            };
            // The final count, for the verdict.
            read_stats(&mut cap, &counters);
            result
        });
        LiveCapture {
            rx,
            link,
            link_code,
            device,
            stop,
            brk,
            drops,
            thread: Some(thread),
        }
    }
}

fn read_stats(cap: &mut pcap::Capture<pcap::Active>, to: &DropCounters) {
    if let Ok(s) = cap.stats() {
        to.dropped.store(s.dropped.into(), Ordering::Relaxed);
        to.if_dropped.store(s.if_dropped.into(), Ordering::Relaxed);
    }
}

impl LiveCapture {
    /// Stops the reading thread; a capture error it met, if any.
    pub fn stop(&mut self) -> Option<String> {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the reader blocked in poll() (libpcap >= 1.10 on Linux; the
        // read timeout otherwise).
        self.brk.breakloop();
        self.thread.take().and_then(|t| t.join().ok().flatten())
    }

    /// What the capture lost so far (final once `stop` returned).
    pub fn drops(&self) -> Drops {
        Drops {
            dropped: self.drops.dropped.load(Ordering::Relaxed),
            if_dropped: self.drops.if_dropped.load(Ordering::Relaxed),
        }
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.stop();
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
