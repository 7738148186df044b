//! The kernel TCP socket kaprobe probes for (`--connect`, `--listen`): made with
//! libc so it can be bound before the SYN (the capture filter needs the port),
//! with kernel keepalive off, and closed with a RST when the peer is dead.

use super::{io_reason, LiveError};
use std::io;
use std::mem::size_of;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in.
            unsafe { std::ptr::write(&mut st as *mut _ as *mut libc::sockaddr_in, sa) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in6.
            unsafe { std::ptr::write(&mut st as *mut _ as *mut libc::sockaddr_in6, sa) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (st, len as libc::socklen_t)
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd, option value of the right size.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &v as *const _ as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
}

/// A TCP socket for `remote`'s family, bound to `bind_port` (0: any), kernel
/// keepalive off. Returns it with its local port, ready for `connect`.
pub fn prepare(remote: SocketAddr, bind_port: u16) -> Result<(OwnedFd, u16), LiveError> {
    let fam = if remote.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(fam, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(LiveError::os("socket", &io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh socket we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = fd.as_raw_fd();
    let _ = set_int(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
    set_int(raw, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 0).map_err(|e| LiveError::os("SO_KEEPALIVE", &e))?;
    let any: SocketAddr = if remote.is_ipv4() {
        ([0, 0, 0, 0], bind_port).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, bind_port).into()
    };
    let (sa, len) = sockaddr(any);
    // SAFETY: sa/len describe a valid address.
    check(unsafe { libc::bind(raw, &sa as *const _ as *const libc::sockaddr, len) })
        .map_err(|e| LiveError::os(format!("bind port {bind_port}"), &e))?;
    let port = local_addr(raw).map_err(|e| LiveError::os("getsockname", &e))?.port();
    Ok((fd, port))
}

fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: getsockname into a sockaddr_storage; the temporary TcpStream is
    // only used to decode the address and its fd is not closed (forget).
    let s = unsafe { TcpStream::from_raw_fd(fd) };
    let a = s.local_addr();
    std::mem::forget(s);
    a
}

/// Connects `fd` to `remote` within `timeout`.
pub fn connect(fd: OwnedFd, remote: SocketAddr, timeout: Duration) -> Result<TcpStream, LiveError> {
    let what = || format!("connect {remote}");
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on our fd.
    unsafe {
        let fl = libc::fcntl(raw, libc::F_GETFL);
        libc::fcntl(raw, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    let (sa, len) = sockaddr(remote);
    // SAFETY: valid address.
    let r = unsafe { libc::connect(raw, &sa as *const _ as *const libc::sockaddr, len) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(LiveError::os(what(), &e));
        }
        let mut pfd = libc::pollfd {
            fd: raw,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
        if n == 0 {
            return Err(LiveError::new(what(), "timed out"));
        }
        let mut err: libc::c_int = 0;
        let mut l = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: SO_ERROR into an int.
        unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                &mut err as *mut _ as *mut libc::c_void,
                &mut l,
            )
        };
        if n < 0 || err != 0 {
            let e = if n < 0 {
                io::Error::last_os_error()
            } else {
                io::Error::from_raw_os_error(err)
            };
            return Err(LiveError::os(what(), &e));
        }
    }
    Ok(TcpStream::from(fd))
}

/// A listening socket on `addr` (port 0 is refused by the caller), keepalive off.
pub fn listen(addr: SocketAddr) -> Result<TcpListener, LiveError> {
    let l = TcpListener::bind(addr).map_err(|e| LiveError::new(format!("listen on {addr}"), io_reason(&e)))?;
    set_int(l.as_raw_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE, 0).map_err(|e| LiveError::os("SO_KEEPALIVE", &e))?;
    Ok(l)
}

/// Makes sure an accepted socket has kernel keepalive off.
pub fn keepalive_off(s: &TcpStream) {
    let _ = set_int(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE, 0);
}

/// Closes with SO_LINGER {1, 0}: the kernel sends a RST (seq = SND.NXT, ACK
/// set), as Linux's keepalive does when it gives up.
pub fn abort(s: TcpStream) {
    let lg = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd, linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &lg as *const _ as *const libc::c_void,
            size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}
