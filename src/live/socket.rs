//! The kernel TCP sockets kaprobe probes for (`--connect`, `--listen`), with
//! socket2: kernel keepalive off, connected without blocking (the engine
//! opens many at once and learns with `poll(2)` which are up), and closed with
//! a RST when the peer is dead.

use super::{io_reason, LiveError};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// A socket connecting to `remote` from `bind_port` (0: any), kernel
/// keepalive off: the SYN is on its way; `poll_connected` says when it is
/// up. Returns it with its local address (the kernel picks it at connect).
pub fn start_connect(remote: SocketAddr, bind_port: u16) -> Result<(Socket, SocketAddr), LiveError> {
    let s = Socket::new(Domain::for_address(remote), Type::STREAM.cloexec(), Some(Protocol::TCP))
        .map_err(|e| LiveError::os("socket", &e))?;
    let _ = s.set_reuse_address(true);
    s.set_keepalive(false).map_err(|e| LiveError::os("SO_KEEPALIVE", &e))?;
    if bind_port != 0 {
        let any: SocketAddr = if remote.is_ipv4() {
            ([0, 0, 0, 0], bind_port).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, bind_port).into()
        };
        s.bind(&any.into())
            .map_err(|e| LiveError::os(format!("bind port {bind_port}"), &e))?;
    }
    s.set_nonblocking(true).map_err(|e| LiveError::os("socket", &e))?;
    let what = || format!("connect {remote}");
    match s.connect(&SockAddr::from(remote)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(LiveError::os(what(), &e)),
    }
    let local = s
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| LiveError::new(what(), "no local address"))?;
    Ok((s, local))
}

/// Which of the connecting `socks` are done, waiting at most `wait`: for
/// each, its index and the result (`Err`: refused, unreachable…).
pub fn poll_connected(socks: &[&Socket], wait: Duration) -> Vec<(usize, io::Result<()>)> {
    let mut fds: Vec<libc::pollfd> = socks
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        })
        .collect();
    let ms = wait.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `fds` is a valid array of pollfd of the length given.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n <= 0 {
        return Vec::new();
    }
    fds.iter()
        .enumerate()
        .filter(|(_, p)| p.revents != 0)
        .map(|(i, _)| {
            let r = match socks[i].take_error() {
                Ok(None) => Ok(()),
                Ok(Some(e)) | Err(e) => Err(e),
            };
            (i, r)
        })
        .collect()
}

/// A connected socket as a blocking `TcpStream`.
pub fn connected(s: Socket) -> io::Result<TcpStream> {
    s.set_nonblocking(false)?;
    Ok(s.into())
}

/// Reads what a non-blocking socket holds, and throws it away: the bytes read.
/// (Unread data would also turn a close into a RST.)
pub fn drain(s: &mut TcpStream) -> u64 {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while let Ok(k @ 1..) = s.read(&mut buf) {
        n += k as u64;
    }
    n
}

/// A listening socket on `addr` (port 0 is refused by the caller), keepalive off.
pub fn listen(addr: SocketAddr) -> Result<TcpListener, LiveError> {
    let l = TcpListener::bind(addr).map_err(|e| LiveError::new(format!("listen on {addr}"), io_reason(&e)))?;
    socket2::SockRef::from(&l)
        .set_keepalive(false)
        .map_err(|e| LiveError::os("SO_KEEPALIVE", &e))?;
    Ok(l)
}

/// Makes sure an accepted socket has kernel keepalive off.
pub fn keepalive_off(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_keepalive(false);
}

/// Closes with SO_LINGER {1, 0}: the kernel sends a RST (seq = SND.NXT, ACK
/// set), as Linux's keepalive does when it gives up.
pub fn abort(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}
