//! The linker: a tiny process forked while kaprobe still has its privileges,
//! holding only the unnamed `--pcap` file and a socket to kaprobe. Once the
//! session gave up root, its directory may not be writable any more (sudo
//! with the file in a root-owned directory); the linker names the finished
//! file when asked (and gives it to sudo's user), and answers with the error
//! number. If kaprobe dies, even by SIGKILL, the socket closes and the linker
//! exits without linking: nothing is left.

use super::LiveError;
use crate::report::pcap::{PcapOut, Publish};
use crate::report::tmpfile::LinkNames;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// kaprobe's request: link the file now.
const LINK: u8 = b'L';

pub struct Linker {
    sock: UnixStream,
    pid: libc::pid_t,
}

impl Linker {
    /// Forks the linker for `pcap`; the file will belong to `owner` once
    /// linked. Must run while kaprobe has one thread (fork copies only the
    /// caller's).
    pub fn spawn(pcap: &PcapOut, owner: Option<(u32, u32)>) -> Result<Linker, LiveError> {
        let err = |e: &io::Error| LiveError::os("pcap linker", e);
        let Some((fd, names)) = pcap.to_publish() else {
            return Err(LiveError::new("pcap linker", "the file is closed"));
        };
        let (sock, theirs) = UnixStream::pair().map_err(|e| err(&e))?;
        // SAFETY: fork in a single-threaded process; the child runs only
        // syscalls on memory prepared before (no allocation, no locks) and
        // ends with _exit.
        match unsafe { libc::fork() } {
            -1 => Err(err(&io::Error::last_os_error())),
            0 => child(theirs.as_raw_fd(), fd, names, owner),
            pid => Ok(Linker { sock, pid }),
        }
    }
}

impl Publish for Linker {
    fn publish(mut self: Box<Self>) -> io::Result<()> {
        self.sock.write_all(&[LINK])?;
        let mut answer = [0u8; 4];
        self.sock.read_exact(&mut answer)?;
        match i32::from_le_bytes(answer) {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }
}

impl Drop for Linker {
    fn drop(&mut self) {
        // Closing our end makes an unasked linker exit; then reap it.
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), 0) };
    }
}

/// The linker's whole life.
fn child(sock: RawFd, file: RawFd, names: &LinkNames, owner: Option<(u32, u32)>) -> ! {
    // SAFETY: syscalls only, on descriptors and memory this process owns.
    unsafe {
        // Ctrl-C at a terminal signals the whole process group: kaprobe ends
        // its session on it and still needs the linker afterwards.
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::signal(s, libc::SIG_IGN);
        }
        // Hold nothing else of kaprobe's: its TCP socket must close (or reset)
        // when kaprobe closes it, its stdout reach EOF when kaprobe exits.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for std in 0..3 {
                libc::dup2(null, std);
            }
        }
        let (lo, hi) = (sock.min(file) as libc::c_uint, sock.max(file) as libc::c_uint);
        libc::syscall(libc::SYS_close_range, 3, lo - 1, 0);
        libc::syscall(libc::SYS_close_range, lo + 1, hi - 1, 0);
        libc::syscall(libc::SYS_close_range, hi + 1, libc::c_uint::MAX, 0);
        let mut req = 0u8;
        let n = loop {
            let n = libc::read(sock, (&mut req as *mut u8).cast(), 1);
            if n >= 0 || *libc::__errno_location() != libc::EINTR {
                break n;
            }
        };
        if n != 1 || req != LINK {
            libc::_exit(0);
        }
        let mut e = 0;
        if let Some((uid, gid)) = owner {
            if libc::fchown(file, uid, gid) != 0 {
                e = *libc::__errno_location();
            }
        }
        if e == 0 {
            e = names.link().err().unwrap_or(0);
        }
        let answer = e.to_le_bytes();
        libc::write(sock, answer.as_ptr().cast(), answer.len());
        libc::_exit(0)
    }
}
