//! The libpcap receiver: one interface, immediate mode, a BPF filter on the
//! session, nanosecond timestamps; read on a thread that hands every frame to
//! the engine through a channel (so nothing is lost while the engine waits for
//! a connection to be set up).

use super::libpcap::{self, Breaker, Next};
use super::LiveError;
use crate::decode::LinkType;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// One captured frame.
pub struct Frame {
    /// Capture time, nanoseconds since the epoch (libpcap's wall-clock stamp).
    pub time: u64,
    /// When the capture thread got it (monotonic): see `super::Clock::capture_time`.
    pub received: std::time::Instant,
    pub data: Vec<u8>,
    pub wire_len: u32,
}

pub struct LiveCapture {
    pub rx: Receiver<Frame>,
    pub link: LinkType,
    /// The DLT/LINKTYPE number, for writing the frames out.
    pub link_code: i32,
    pub device: String,
    stop: Arc<AtomicBool>,
    brk: Breaker,
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
    cap: libpcap::Capture,
    pub link: LinkType,
    pub link_code: i32,
    pub device: String,
}

impl OpenCapture {
    /// Opens `device` with `filter` (BPF syntax); packets are buffered by the
    /// kernel from now on.
    pub fn open(device: &str, filter: &str) -> Result<OpenCapture, LiveError> {
        let api = libpcap::load()?;
        check_device(device)?;
        let err = |why: String| {
            let why = if why.contains("ermission") || why.contains("not permitted") {
                "permission denied (run as root or give kaprobe CAP_NET_RAW)".to_string()
            } else {
                why
            };
            LiveError::new(format!("capture on {device}"), why)
        };
        let mut cap = libpcap::Capture::open(api, device, 256, 50, 4 << 20).map_err(err)?;
        cap.set_filter(filter)
            .map_err(|e| LiveError::new(format!("capture filter '{filter}'"), e))?;
        let link_code = cap.datalink();
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
        let brk = cap.breaker();
        let (tx, rx) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match cap.next_frame() {
                    Next::Frame(time, wire_len, data) => {
                        let f = Frame {
                            time,
                            received: std::time::Instant::now(),
                            data: data.to_vec(),
                            wire_len,
                        };
                        if tx.send(f).is_err() {
                            return None;
                        }
                    }
                    Next::Timeout => {}
                    // pcap_breakloop() from stop(): not an error.
                    Next::Break => return None,
                    Next::Error(_) if flag.load(Ordering::Relaxed) => return None,
                    Next::Error(e) => return Some(e),
                }
            }
            None
        });
        LiveCapture {
            rx,
            link,
            link_code,
            device,
            stop,
            brk,
            thread: Some(thread),
        }
    }
}

impl LiveCapture {
    /// Stops the reading thread; a capture error it met, if any.
    pub fn stop(&mut self) -> Option<String> {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the reader blocked in poll() (libpcap >= 1.10 on Linux).
        self.brk.breakloop();
        self.thread.take().and_then(|t| t.join().ok().flatten())
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.stop();
    }
}
