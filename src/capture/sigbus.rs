//! A mapped capture that shrinks while it is read (log rotation that
//! truncates, copytruncate) or whose storage fails raises SIGBUS on the next
//! read of a lost page. Instead of dying by signal, kaprobe says so in one
//! line naming the file and exits 2, as for any unreadable capture.

use std::ffi::CString;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

/// The line to print, set while a file is mapped (null otherwise).
static LINE: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_sigbus(_: libc::c_int) {
    let line = LINE.load(Ordering::Acquire);
    // SAFETY: only async-signal-safe calls; `line` is a live C string owned
    // by the `Guard` that published it (cleared before it is freed).
    unsafe {
        if line.is_null() {
            // Not ours: die of it as without this handler.
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
            return;
        }
        libc::write(2, line as *const libc::c_void, libc::strlen(line));
        libc::_exit(2);
    }
}

/// Turns SIGBUS into a one-line error about `name` while it lives.
pub struct Guard {
    /// What the handler prints; kept alive while published.
    _line: CString,
}

impl Guard {
    pub fn new(name: &str) -> Guard {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            // SAFETY: installs a handler that only makes async-signal-safe calls.
            unsafe { libc::signal(libc::SIGBUS, on_sigbus as *const () as libc::sighandler_t) };
        });
        let line = format!("kaprobe: {name}: the file shrank or could not be read while kaprobe read it\n");
        let line = CString::new(line.replace('\0', "?")).unwrap_or_default();
        LINE.store(line.as_ptr() as *mut _, Ordering::Release);
        Guard { _line: line }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        LINE.store(std::ptr::null_mut(), Ordering::Release);
    }
}
