//! The libpcap receiver: one interface, immediate mode, a BPF filter on the
//! session, nanosecond timestamps; read on a thread that hands every frame to
//! the engine through a channel (so nothing is lost while the engine waits for
//! a connection to be set up).

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
    brk: pcap::BreakLoop,
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

impl OpenCapture {
    /// Opens `device` with `filter` (BPF syntax); packets are buffered by the
    /// kernel from now on.
    pub fn open(device: &str, filter: &str) -> Result<OpenCapture, LiveError> {
        check_device(device)?;
        let err = |e: pcap::Error| {
            let why = e.to_string();
            let why = if why.contains("ermission") || why.contains("not permitted") {
                "permission denied (run as root or give kaprobe CAP_NET_RAW)".to_string()
            } else {
                why
            };
            LiveError::new(format!("capture on {device}"), why)
        };
        let mut cap = pcap::Capture::from_device(device)
            .map_err(err)?
            .immediate_mode(true)
            .snaplen(256)
            .timeout(50)
            .buffer_size(4 << 20)
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
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match cap.next_packet() {
                    Ok(p) => {
                        let received = std::time::Instant::now();
                        let ts = p.header.ts;
                        // Nanosecond precision: tv_usec holds nanoseconds.
                        let time = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_usec as u64;
                        let f = Frame {
                            time,
                            received,
                            data: p.data.to_vec(),
                            wire_len: p.header.len,
                        };
                        if tx.send(f).is_err() {
                            return None;
                        }
                    }
                    Err(pcap::Error::TimeoutExpired) => {}
                    // pcap_breakloop() from stop(): not an error.
                    Err(_) if flag.load(Ordering::Relaxed) => return None,
                    Err(e) => return Some(e.to_string()),
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
