//! libpcap, loaded at run time (dlopen) on first use: only live capture needs
//! it, so `verify` and `explain` run without it, and `probe` says in one line
//! that it is missing instead of the dynamic loader refusing to start kaprobe.

use super::LiveError;
use libloading::Library;
use std::ffi::{c_char, c_int, c_uchar, c_uint, c_void, CStr, CString};
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};

/// Tried in order: upstream's soname, Debian's, the development symlink.
const SONAMES: [&str; 3] = ["libpcap.so.1", "libpcap.so.0.8", "libpcap.so"];
/// PCAP_ERRBUF_SIZE.
const ERRBUF_SIZE: usize = 256;
/// PCAP_TSTAMP_PRECISION_NANO.
const PRECISION_NANO: c_int = 1;
/// PCAP_ERROR_BREAK: pcap_next_ex after pcap_breakloop.
const ERROR_BREAK: c_int = -2;
/// PCAP_NETMASK_UNKNOWN (the filters kaprobe compiles test no broadcast address).
const NETMASK_UNKNOWN: u32 = 0xffff_ffff;

/// pcap_t.
#[repr(C)]
struct PcapT {
    _opaque: [u8; 0],
}

/// struct bpf_program.
#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *mut c_void,
}

/// struct pcap_pkthdr.
#[repr(C)]
struct PktHdr {
    ts: libc::timeval,
    caplen: u32,
    len: u32,
}

/// Declares `Api`: the library and the typed functions kaprobe calls.
macro_rules! api {
    ($($name:ident: fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        /// libpcap, loaded, and the functions kaprobe calls.
        pub struct Api {
            $($name: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
            // Keeps the functions above mapped.
            _lib: Library,
        }

        impl Api {
            /// Safety: `lib` must be libpcap, whose functions have these signatures.
            unsafe fn resolve(lib: Library) -> Result<Api, &'static str> {
                $(let $name = *lib
                    .get(concat!(stringify!($name), "\0").as_bytes())
                    .map_err(|_| stringify!($name))?;)*
                Ok(Api { $($name,)* _lib: lib })
            }
        }
    };
}

api! {
    pcap_create: fn(*const c_char, *mut c_char) -> *mut PcapT;
    pcap_set_snaplen: fn(*mut PcapT, c_int) -> c_int;
    pcap_set_immediate_mode: fn(*mut PcapT, c_int) -> c_int;
    pcap_set_timeout: fn(*mut PcapT, c_int) -> c_int;
    pcap_set_buffer_size: fn(*mut PcapT, c_int) -> c_int;
    pcap_set_tstamp_precision: fn(*mut PcapT, c_int) -> c_int;
    pcap_activate: fn(*mut PcapT) -> c_int;
    pcap_geterr: fn(*mut PcapT) -> *mut c_char;
    pcap_statustostr: fn(c_int) -> *const c_char;
    pcap_compile: fn(*mut PcapT, *mut BpfProgram, *const c_char, c_int, u32) -> c_int;
    pcap_setfilter: fn(*mut PcapT, *mut BpfProgram) -> c_int;
    pcap_freecode: fn(*mut BpfProgram);
    pcap_datalink: fn(*mut PcapT) -> c_int;
    pcap_next_ex: fn(*mut PcapT, *mut *mut PktHdr, *mut *const c_uchar) -> c_int;
    pcap_breakloop: fn(*mut PcapT);
    pcap_close: fn(*mut PcapT);
}

/// libpcap, loaded on the first call; then the same answer every time.
pub fn load() -> Result<&'static Api, LiveError> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(open_library)
        .as_ref()
        .map_err(|why| LiveError::new("libpcap", why.as_str()))
}

fn open_library() -> Result<Api, String> {
    let mut broken = None;
    for name in SONAMES {
        // SAFETY: loading runs libpcap's initialisers, plain C with no
        // preconditions on the caller.
        match unsafe { Library::new(name) } {
            // SAFETY: this is libpcap, by its soname.
            Ok(lib) => {
                return unsafe { Api::resolve(lib) }
                    .map_err(|f| format!("{name} has no {f} (libpcap 1.5 or later needed)"))
            }
            // dlerror(): "NAME: cannot open shared object file: No such file or directory" when absent.
            Err(e) if e.to_string().contains("No such file") => {}
            Err(e) => {
                broken.get_or_insert(e.to_string());
            }
        }
    }
    Err(match broken {
        Some(e) => format!("{e} (reinstall it: apt install --reinstall libpcap0.8)"),
        None => "not found (install it: apt install libpcap0.8)".into(),
    })
}

/// An open pcap_t, closed on drop.
struct Handle {
    api: &'static Api,
    p: NonNull<PcapT>,
}

// SAFETY: libpcap lets a pcap_t be used from any thread as long as calls are
// not concurrent. Handle calls only pcap_close (in drop, with no user left);
// the calls through it are made by `Capture` (methods take &mut self: one
// caller at a time) and `Breaker` (pcap_breakloop, which libpcap documents as
// callable from another thread while the capture loop runs).
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: `p` came from pcap_create and is closed exactly once, here.
        unsafe { (self.api.pcap_close)(self.p.as_ptr()) }
    }
}

/// A live capture (activated pcap_t).
pub struct Capture {
    h: Arc<Handle>,
}

/// What `Capture::next_frame` read.
pub enum Next<'a> {
    /// A frame: capture time (ns since the epoch), wire length, captured bytes.
    Frame(u64, u32, &'a [u8]),
    /// The read timeout expired with nothing to read.
    Timeout,
    /// `Breaker::breakloop` was called.
    Break,
    Error(String),
}

impl Capture {
    /// Opens `device` in immediate mode with nanosecond timestamps. Activation
    /// warnings are not errors.
    pub fn open(
        api: &'static Api,
        device: &str,
        snaplen: i32,
        timeout_ms: i32,
        buffer: i32,
    ) -> Result<Capture, String> {
        let dev = CString::new(device).map_err(|_| "NUL in the interface name".to_string())?;
        let mut errbuf = [0 as c_char; ERRBUF_SIZE];
        // SAFETY: `dev` is a C string, `errbuf` has PCAP_ERRBUF_SIZE bytes.
        let p = unsafe { (api.pcap_create)(dev.as_ptr(), errbuf.as_mut_ptr()) };
        let Some(p) = NonNull::new(p) else {
            // SAFETY: on failure pcap_create wrote a C string into `errbuf`.
            return Err(unsafe { CStr::from_ptr(errbuf.as_ptr()) }
                .to_string_lossy()
                .into_owned());
        };
        let mut cap = Capture {
            h: Arc::new(Handle { api, p }),
        };
        let p = p.as_ptr();
        // SAFETY: `p` is a pcap_t from pcap_create, not yet activated: what the setters need.
        let set = unsafe {
            [
                (api.pcap_set_snaplen)(p, snaplen),
                (api.pcap_set_immediate_mode)(p, 1),
                (api.pcap_set_timeout)(p, timeout_ms),
                (api.pcap_set_buffer_size)(p, buffer),
                (api.pcap_set_tstamp_precision)(p, PRECISION_NANO),
            ]
        };
        if let Some(&status) = set.iter().find(|&&s| s != 0) {
            return Err(cap.error(status));
        }
        // SAFETY: as above.
        let status = unsafe { (api.pcap_activate)(p) };
        if status < 0 {
            return Err(cap.error(status));
        }
        Ok(cap)
    }

    /// pcap_geterr()'s message, or pcap_statustostr(status) when it has none.
    fn error(&mut self, status: c_int) -> String {
        let api = self.h.api;
        // SAFETY: pcap_geterr returns the handle's C string buffer (valid until
        // the next call on the handle: copied at once); pcap_statustostr a static
        // or thread-local C string.
        unsafe {
            let msg = CStr::from_ptr((api.pcap_geterr)(self.h.p.as_ptr())).to_string_lossy();
            if msg.is_empty() {
                CStr::from_ptr((api.pcap_statustostr)(status))
                    .to_string_lossy()
                    .into_owned()
            } else {
                msg.into_owned()
            }
        }
    }

    /// Compiles (optimised) and installs a BPF filter.
    pub fn set_filter(&mut self, filter: &str) -> Result<(), String> {
        let (api, p) = (self.h.api, self.h.p.as_ptr());
        let text = CString::new(filter).map_err(|_| "NUL in the filter".to_string())?;
        let mut prog = BpfProgram {
            bf_len: 0,
            bf_insns: std::ptr::null_mut(),
        };
        // SAFETY: `p` is activated, `text` a C string, `prog` a bpf_program that
        // pcap_compile fills; pcap_setfilter copies it, so it is freed once, after.
        let status = unsafe {
            let compiled = (api.pcap_compile)(p, &mut prog, text.as_ptr(), 1, NETMASK_UNKNOWN);
            if compiled < 0 {
                compiled
            } else {
                let set = (api.pcap_setfilter)(p, &mut prog);
                (api.pcap_freecode)(&mut prog);
                set
            }
        };
        if status < 0 {
            return Err(self.error(status));
        }
        Ok(())
    }

    /// The link type (DLT) number.
    pub fn datalink(&mut self) -> i32 {
        // SAFETY: an activated pcap_t.
        unsafe { (self.h.api.pcap_datalink)(self.h.p.as_ptr()) }
    }

    /// Waits (up to the timeout) for the next frame.
    pub fn next_frame(&mut self) -> Next<'_> {
        let mut hdr: *mut PktHdr = std::ptr::null_mut();
        let mut data: *const c_uchar = std::ptr::null();
        // SAFETY: an activated pcap_t and two out-pointers.
        let status = unsafe { (self.h.api.pcap_next_ex)(self.h.p.as_ptr(), &mut hdr, &mut data) };
        match status {
            1 => {
                // SAFETY: on 1, `hdr` and `data` (caplen bytes) are valid until the
                // next call on the handle, which &mut self holds off while the
                // returned slice lives.
                let (h, bytes) = unsafe { (&*hdr, std::slice::from_raw_parts(data, (*hdr).caplen as usize)) };
                // Nanosecond precision: tv_usec holds nanoseconds.
                let time = h.ts.tv_sec as u64 * 1_000_000_000 + h.ts.tv_usec as u64;
                Next::Frame(time, h.len, bytes)
            }
            0 => Next::Timeout,
            ERROR_BREAK => Next::Break,
            s => Next::Error(self.error(s)),
        }
    }

    /// A handle that stops `next_frame` from another thread.
    pub fn breaker(&self) -> Breaker {
        Breaker(self.h.clone())
    }
}

/// Calls pcap_breakloop on a capture that another thread reads; keeps the
/// pcap_t open as long as it lives.
pub struct Breaker(Arc<Handle>);

impl Breaker {
    pub fn breakloop(&self) {
        // SAFETY: the pcap_t is open (this Arc holds it); pcap_breakloop may be
        // called from another thread while pcap_next_ex runs (libpcap >= 1.10 on
        // Linux also wakes a reader blocked in poll()).
        unsafe { (self.0.api.pcap_breakloop)(self.0.p.as_ptr()) }
    }
}
