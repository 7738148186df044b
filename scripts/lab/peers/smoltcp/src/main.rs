//! The lab's smoltcp peer: a TCP echo server on a TAP device, so kaprobe's
//! probes meet smoltcp's TCP instead of the kernel's. Started by
//! `scripts/lab.sh up NAME --peer smoltcp` in the server namespace, where the
//! TAP is bridged with the namespace's veth (which keeps no address, so the
//! kernel never answers first).
//!
//!   kaprobe-lab-smoltcp --tap tap0 --ip 10.77.101.2/24 --gw 10.77.101.254
//!       [--ip6 fd77:0:0:101::2/64 --gw6 fd77:0:0:101::254] [--port 7077]
//!       [--keepalive MS] [--timeout MS] [--status FILE]
//!
//! smoltcp's keepalive is one timer (`set_keep_alive`): a 1-byte probe every
//! interval while the peer is silent, no separate idle or count; `set_timeout`
//! ends the connection (RST) when the peer stays silent that long.

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{wait as phy_wait, Medium, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address, Ipv6Address};
use std::io::Write;
use std::os::fd::AsRawFd;

/// Connections at once (each a listening socket until one connects).
const SOCKETS: usize = 128;
/// Sockets kept listening.
const LISTENING: usize = 32;

struct Args {
    tap: String,
    ip: IpCidr,
    gw: Ipv4Address,
    ip6: Option<IpCidr>,
    gw6: Option<Ipv6Address>,
    port: u16,
    keepalive: Option<u64>,
    timeout: Option<u64>,
    status: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        tap: "tap0".into(),
        ip: "10.77.101.2/24".parse().map_err(|_| "ip")?,
        gw: Ipv4Address::new(10, 77, 101, 254),
        ip6: None,
        gw6: None,
        port: 7077,
        keepalive: None,
        timeout: None,
        status: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        let bad = |k: &str| format!("{k}: bad value");
        match k.as_str() {
            "--tap" => a.tap = v()?,
            "--ip" => a.ip = v()?.parse().map_err(|_| bad(&k))?,
            "--gw" => a.gw = v()?.parse().map_err(|_| bad(&k))?,
            "--ip6" => a.ip6 = Some(v()?.parse().map_err(|_| bad(&k))?),
            "--gw6" => a.gw6 = Some(v()?.parse().map_err(|_| bad(&k))?),
            "--port" => a.port = v()?.parse().map_err(|_| bad(&k))?,
            "--keepalive" => a.keepalive = Some(v()?.parse().map_err(|_| bad(&k))?),
            "--timeout" => a.timeout = Some(v()?.parse().map_err(|_| bad(&k))?),
            "--status" => a.status = Some(v()?),
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    Ok(a)
}

/// One JSON line to the status file (the lab waits for "listening").
fn status(path: &Option<String>, line: &str) {
    if let Some(p) = path {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(p) {
            let _ = writeln!(f, "{line}");
        }
    }
}

fn listener(a: &Args) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 16384]),
        tcp::SocketBuffer::new(vec![0; 16384]),
    );
    s.set_keep_alive(a.keepalive.map(Duration::from_millis));
    s.set_timeout(a.timeout.map(Duration::from_millis));
    s.listen(a.port).expect("listen");
    s
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kaprobe-lab-smoltcp: {e}");
            std::process::exit(2);
        }
    };
    let mut device = match TunTapInterface::new(&a.tap, Medium::Ethernet) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("kaprobe-lab-smoltcp: {}: {e}", a.tap);
            std::process::exit(1);
        }
    };
    let fd = device.as_raw_fd();
    let pid = std::process::id();
    let mac = EthernetAddress([0x02, 0x77, 0, 0, (pid >> 8) as u8, pid as u8]);
    let mut config = Config::new(mac.into());
    config.random_seed = u64::from(pid) ^ 0x9e37_79b9_7f4a_7c15;
    let mut iface = Interface::new(config, &mut device, Instant::now());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(a.ip);
        if let Some(ip6) = a.ip6 {
            let _ = addrs.push(ip6);
        }
    });
    let _ = iface.routes_mut().add_default_ipv4_route(a.gw);
    if let Some(gw6) = a.gw6 {
        let _ = iface.routes_mut().add_default_ipv6_route(gw6);
    }
    let mut sockets = SocketSet::new(vec![]);
    let mut handles: Vec<SocketHandle> = (0..LISTENING).map(|_| sockets.add(listener(&a))).collect();
    let ip = match a.ip.address() {
        IpAddress::Ipv4(v4) => v4.to_string(),
        IpAddress::Ipv6(v6) => v6.to_string(),
    };
    status(
        &a.status,
        &format!(
            "{{\"event\":\"listening\",\"stack\":\"smoltcp\",\"pid\":{pid},\"addr\":\"{ip}\",\"port\":{}}}",
            a.port
        ),
    );
    loop {
        let now = Instant::now();
        iface.poll(now, &mut device, &mut sockets);
        let mut listening = 0;
        handles.retain(|&h| {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if s.can_recv() {
                let data = s.recv(|b| (b.len(), b.to_vec())).unwrap_or_default();
                if s.can_send() {
                    let _ = s.send_slice(&data);
                }
            }
            // The peer closed: close our side too (echo servers do).
            if s.state() == tcp::State::CloseWait {
                s.close();
            }
            if s.state() == tcp::State::Listen {
                listening += 1;
            }
            let done = s.state() == tcp::State::Closed;
            if done {
                sockets.remove(h);
            }
            !done
        });
        // Sockets listening for the next connections: smoltcp refuses (RST) a
        // SYN that finds none, and clients open several at once.
        while listening < LISTENING && handles.len() < SOCKETS {
            handles.push(sockets.add(listener(&a)));
            listening += 1;
        }
        let _ = phy_wait(fd, iface.poll_delay(Instant::now(), &sockets));
    }
}
