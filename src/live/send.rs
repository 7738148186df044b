//! Sending hand-made TCP segments on a raw socket (pnet's transport channel):
//! IPv4 with our own IP header (`IP_HDRINCL`), IPv6 with the kernel's header
//! and the socket bound to the session's local address.

use super::LiveError;
use crate::wire::build::{ip_packet, tcp_segment, SegmentSpec};
use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::packet::ipv4::Ipv4Packet;
use pnet::packet::tcp::TcpPacket;
use pnet::transport::{transport_channel, TransportChannelType, TransportProtocol, TransportSender};
use std::net::IpAddr;

pub struct RawSender {
    tx: TransportSender,
    v6: bool,
    buf: Vec<u8>,
}

impl RawSender {
    /// Opens the raw socket for the family of `local`. Needs root or CAP_NET_RAW.
    pub fn open(local: IpAddr) -> Result<RawSender, LiveError> {
        let kind = match local {
            IpAddr::V4(_) => TransportChannelType::Layer3(IpNextHeaderProtocols::Tcp),
            IpAddr::V6(_) => TransportChannelType::Layer4(TransportProtocol::Ipv6(IpNextHeaderProtocols::Tcp)),
        };
        let (tx, rx) = transport_channel(4096, kind).map_err(|e| {
            let why = match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => {
                    "operation not permitted (run as root or give kaprobe CAP_NET_RAW)".to_string()
                }
                _ => super::io_reason(&e),
            };
            LiveError::new("raw socket", why)
        })?;
        drop(rx);
        let fd = tx.socket.fd;
        // This socket only sends: a filter that accepts nothing keeps copies of
        // every incoming TCP segment from piling up in it.
        let mut insn = [libc::sock_filter {
            code: 0x06, // BPF_RET | BPF_K
            jt: 0,
            jf: 0,
            k: 0,
        }];
        let prog = libc::sock_fprog {
            len: 1,
            filter: insn.as_mut_ptr(),
        };
        // SAFETY: valid fd and a properly sized option value.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &prog as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            );
        }
        Ok(RawSender {
            tx,
            v6: local.is_ipv6(),
            buf: Vec::with_capacity(128),
        })
    }

    /// IPv6: binds the socket to the session's local address, which the kernel
    /// then writes as the source (IPv4 packets carry their own header).
    pub fn bind(&mut self, local: IpAddr) -> Result<(), LiveError> {
        let IpAddr::V6(a) = local else {
            return Ok(());
        };
        let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sa.sin6_addr.s6_addr = a.octets();
        // SAFETY: sa is a valid sockaddr_in6.
        let r = unsafe {
            libc::bind(
                self.tx.socket.fd,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return Err(LiveError::new(format!("raw socket bind {a}"), super::io_reason(&e)));
        }
        Ok(())
    }

    /// Builds and sends one segment.
    pub fn send(&mut self, spec: &SegmentSpec) -> Result<(), LiveError> {
        self.buf.clear();
        let what = || format!("send to {}", spec.dst);
        let built = if self.v6 {
            tcp_segment(spec, &mut self.buf)
        } else {
            ip_packet(spec, &mut self.buf)
        };
        built.map_err(|e| LiveError::new(what(), e.to_string()))?;
        let sent = if self.v6 {
            let p = TcpPacket::new(&self.buf).ok_or_else(|| LiveError::new(what(), "segment too short"))?;
            self.tx.send_to(p, spec.dst.ip())
        } else {
            let p = Ipv4Packet::new(&self.buf).ok_or_else(|| LiveError::new(what(), "packet too short"))?;
            self.tx.send_to(p, spec.dst.ip())
        };
        sent.map(|_| ()).map_err(|e| LiveError::os(what(), &e))
    }
}
