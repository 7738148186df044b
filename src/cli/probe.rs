//! `kaprobe probe`: the live keepalive emulator.

use super::exit;
use super::probe_out::{HumanSink, JsonSink};
use crate::keepalive::track::canonical;
use crate::keepalive::{self, Style};
use crate::live::capture::{check_device, LiveCapture, OpenCapture};
use crate::live::engine;
use crate::live::linker::Linker;
use crate::live::send::RawSender;
use crate::live::{privs, route, socket, LiveError};
use crate::live::{Mode, Senders, Setup, Shared, Start, Summary};
use crate::report::pcap::PcapOut;
use crate::units::parse_duration;
use anyhow::{anyhow, Context, Result};
use clap::{ArgGroup, Args};
use std::io::{self, IsTerminal, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["connect", "listen", "attach"])))]
pub struct ProbeArgs {
    /// Open a TCP connection to HOST:PORT (kernel keepalive off) and probe it;
    /// repeat for several targets.
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Vec<String>,
    /// Connections to open to each --connect target, probed at once.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "connect",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sessions: u32,
    /// Accept one connection on [ADDR:]PORT and probe the client (server-side keepalive).
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub listen: Option<String>,
    /// Follow a connection another process owns, LOCAL-REMOTE, e.g.
    /// `10.0.0.1:40000-10.0.0.2:443`; kaprobe probes on behalf of LOCAL.
    #[arg(long, value_name = "SRC:PORT-DST:PORT")]
    pub attach: Option<String>,
    /// Attach: while nothing is known, send an out-of-window ACK (IPv4: to the
    /// local end, in the peer's name); the duplicate ACK it draws reveals the
    /// sequence numbers.
    #[arg(long, requires = "attach")]
    pub provoke: bool,
    /// Application data to send first (connect, listen).
    #[arg(long, value_name = "DATA", conflicts_with_all = ["send_file", "attach"])]
    pub send: Option<String>,
    /// Send this file's contents first (connect, listen).
    #[arg(long, value_name = "FILE", conflicts_with = "attach")]
    pub send_file: Option<PathBuf>,
    /// Quiet time since the last segment received before the first probe (1ms to 32767s).
    #[arg(long, default_value = "1s", value_parser = parse_keepalive_time, value_name = "DURATION")]
    pub idle: u64,
    /// Time between unanswered probes (1ms to 32767s).
    #[arg(long, visible_alias = "intvl", default_value = "1s", value_parser = parse_keepalive_time, value_name = "DURATION")]
    pub interval: u64,
    /// Unanswered probes before the peer is declared dead.
    #[arg(long, visible_alias = "cnt", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub count: u32,
    /// Like TCP_USER_TIMEOUT: dead once idle this long with a probe out (replaces --count).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub user_timeout: Option<u64>,
    // The help lists the styles from the one table in keepalive/style.rs.
    #[arg(long, default_value = "linux", value_parser = |s: &str| Style::parse(s), value_name = "STYLE",
          help = format!("Probe style: {}", Style::ALL.map(Style::summary).join(", ")))]
    pub style: Style,
    /// Payload bytes in each probe, overriding the style: 0 or 1.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub payload: Option<u8>,
    /// Stop after N answered probes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: Option<u64>,
    /// Stop after this long.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<u64>,
    /// When the peer is dead, do not close the connection with a RST.
    #[arg(long)]
    pub no_abort: bool,
    /// Capture on this interface (default: the one routing to the peer; `any` for --listen).
    #[arg(short, long, value_name = "IFACE")]
    pub interface: Option<String>,
    /// Local port for --connect (default: any).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub bind_port: u16,
    /// Give up connecting after this long.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub connect_timeout: u64,
    /// Record the session (both directions) to this pcap file.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// JSON Lines on stdout: one object per event, each with its `session`
    /// (1, 2, …; 0 for the whole run), a `verdict` per session, a `summary` last.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ProbeArgs) -> u8 {
    let stop = Arc::new(AtomicBool::new(false));
    match session(args, stop) {
        Ok(s) if s.all_alive() => exit::OK,
        Ok(_) => exit::VERDICT,
        Err(e) => {
            let _ = io::stdout().flush();
            eprintln!("kaprobe: {e:#}");
            exit::USAGE
        }
    }
}

fn resolve(s: &str) -> Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let mut it = s
        .to_socket_addrs()
        .map_err(|e| anyhow!("{s}: {}", crate::live::io_reason(&e)))?;
    it.next().ok_or_else(|| anyhow!("{s}: no address"))
}

/// `--connect`'s HOST:PORT, refused when the port is missing or the split is
/// ambiguous (an IPv6 address without brackets: is its last group the port?).
fn connect_target(s: &str) -> Result<&str> {
    let colons = s.matches(':').count();
    if s.starts_with('[') && !s.contains("]:") || !s.starts_with('[') && colons == 0 {
        let hint = if s.starts_with('[') { "[ADDR]:PORT" } else { "HOST:PORT" };
        return Err(anyhow!("--connect {s}: the port is missing (write {hint})"));
    }
    if !s.starts_with('[') && colons > 1 {
        let (host, port) = s.rsplit_once(':').unwrap_or((s, "PORT"));
        return Err(anyhow!(
            "--connect {s}: ambiguous IPv6 address and port: write [ADDR]:PORT, e.g. [{host}]:{port}"
        ));
    }
    Ok(s)
}

fn bpf_host(ip: IpAddr) -> String {
    format!("host {ip}")
}

fn interface_for(interface: Option<&str>, dst: IpAddr) -> Result<String> {
    if let Some(i) = interface {
        check_device(i)?;
        return Ok(i.to_string());
    }
    Ok(route::lookup(dst)?.dev)
}

fn read_payload(args: &ProbeArgs) -> Result<Vec<u8>> {
    if let Some(s) = &args.send {
        return Ok(s.as_bytes().to_vec());
    }
    if let Some(p) = &args.send_file {
        return std::fs::read(p).map_err(|e| anyhow!("{}: {}", p.display(), crate::live::io_reason(&e)));
    }
    Ok(Vec::new())
}

pub(super) fn open_pcap(path: Option<&Path>, cap: &OpenCapture) -> Result<Option<PcapOut>> {
    path.map(|p| PcapOut::create_with_link(p, cap.link_code).map_err(|e| anyhow!("{}: {}", e.path, e.why)))
        .transpose()
}

/// The raw socket(s), the capture and the output file are open: gives up
/// privileges, then starts the signal handler's thread, which so never holds
/// any. As root, the `--pcap` file is first
/// handed to a linker that keeps root's right to name it in its directory.
pub(super) fn unprivileged(
    cap: OpenCapture,
    pcap: &mut Option<PcapOut>,
    stop: &Arc<AtomicBool>,
) -> Result<LiveCapture> {
    if let (true, Some(p)) = (privs::is_root(), pcap.as_mut()) {
        let linker = Linker::spawn(p, privs::sudo_user())?;
        p.publish_through(Box::new(linker));
    }
    privs::drop_privileges()?;
    let flag = stop.clone();
    // SIGINT, SIGTERM and SIGHUP end the session with its verdict and its pcap.
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)).map_err(|e| anyhow!("signal handler: {e}"))?;
    Ok(cap.start()?)
}

/// Blocking with an eye on Ctrl-C: accept one connection.
fn accept(l: &std::net::TcpListener, stop: &AtomicBool, until: Option<Instant>) -> Result<Option<TcpStream>> {
    l.set_nonblocking(true).context("listen")?;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).context("accept")?;
                return Ok(Some(s));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(LiveError::os("accept", &e).into()),
        }
        if stop.load(Ordering::Relaxed) || until.is_some_and(|u| Instant::now() >= u) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Longest `--idle`/`--interval`: Linux's limit for TCP_KEEPIDLE/TCP_KEEPINTVL (`MAX_TCP_KEEPIDLE`, seconds).
const MAX_KEEPALIVE_TIME_NS: u64 = 32_767 * 1_000_000_000;
/// Shortest: Linux takes whole seconds (1 at least); kaprobe allows less, for tests.
const MIN_KEEPALIVE_TIME_NS: u64 = 1_000_000;

/// `--idle`/`--interval`: a duration from 1 ms to 32767 s.
fn parse_keepalive_time(s: &str) -> std::result::Result<u64, String> {
    let v = parse_duration(s)?;
    if (MIN_KEEPALIVE_TIME_NS..=MAX_KEEPALIVE_TIME_NS).contains(&v) {
        Ok(v)
    } else {
        Err(format!("'{s}' is out of range: 1ms to 32767s"))
    }
}

/// Room for the sessions' sockets: the soft limit on open files raised as
/// far as the hard one (as root, the hard one too), before privileges go.
fn files_for(sessions: usize) -> Result<()> {
    let need = sessions as u64 + 64;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= need {
            return Ok(());
        }
        let want = libc::rlimit {
            rlim_cur: need,
            rlim_max: lim.rlim_max.max(need),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
            return Ok(());
        }
    }
    Err(anyhow!(
        "--sessions: {sessions} sessions need {need} open files, and the limit is {} (raise it with ulimit -n, or run as root)",
        lim.rlim_max
    ))
}

/// `--connect` targets: resolved, one interface for all (one capture serves them).
fn connect_targets(connect: &[String], interface: Option<&str>) -> Result<(Vec<SocketAddr>, String)> {
    let mut targets: Vec<SocketAddr> = Vec::new();
    for t in connect {
        let a = canonical(resolve(connect_target(t)?)?);
        if !targets.contains(&a) {
            targets.push(a);
        }
    }
    let mut dev: Option<String> = None;
    for a in &targets {
        let d = interface_for(interface, a.ip())?;
        match &dev {
            Some(d0) if *d0 != d => {
                return Err(anyhow!(
                    "--connect: {} routes via {d} and {} via {d0}: one capture serves every session, so pass --interface any",
                    a,
                    targets[0]
                ))
            }
            _ => dev = Some(d),
        }
    }
    Ok((targets, dev.unwrap_or_else(|| "any".into())))
}

/// Where `idle-timeout` and `conform` capture, and where they record.
#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// Capture on this interface (default: the one routing to the target).
    #[arg(short, long, value_name = "IFACE")]
    pub interface: Option<String>,
    /// Record every connection of the run to this pcap file.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
}

/// What a run of sessions to `--connect` targets needs, opened while
/// privileged (raw sockets, capture, `--pcap`), privileges then dropped.
pub(crate) struct Connect {
    pub targets: Vec<SocketAddr>,
    pub capture: LiveCapture,
    pub senders: Senders,
    pub pcap: Option<PcapOut>,
}

impl Connect {
    /// The engine's set-up for sessions added by its control as it goes
    /// (none at the start), with no time limit but Ctrl-C.
    pub fn setup(self, shared: Shared, interrupted: Arc<AtomicBool>) -> Setup {
        Setup {
            shared,
            sessions: Vec::new(),
            capture: self.capture,
            senders: self.senders,
            pcap: self.pcap,
            duration: None,
            interrupted,
        }
    }
}

/// Opens what `total` sessions to the `connect` targets need.
pub(super) fn open_connect(
    connect: &[String],
    interface: Option<&str>,
    total: usize,
    pcap: Option<&Path>,
    stop: &Arc<AtomicBool>,
) -> Result<Connect> {
    let (targets, dev) = connect_targets(connect, interface)?;
    files_for(total)?;
    let mut senders = Senders::default();
    if targets.iter().any(|a| a.is_ipv4()) {
        senders.v4 = Some(RawSender::open(IpAddr::V4([0, 0, 0, 0].into()))?);
    }
    if targets.iter().any(|a| a.is_ipv6()) {
        senders.v6 = Some(RawSender::open(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))?);
    }
    let hosts: Vec<String> = targets
        .iter()
        .map(|a| format!("({} and port {})", bpf_host(a.ip()), a.port()))
        .collect();
    let cap = OpenCapture::open(&dev, &format!("tcp and ({})", hosts.join(" or ")))?;
    let mut pcap = open_pcap(pcap, &cap)?;
    let capture = unprivileged(cap, &mut pcap, stop)?;
    Ok(Connect {
        targets,
        capture,
        senders,
        pcap,
    })
}

fn session(args: &ProbeArgs, stop: Arc<AtomicBool>) -> Result<Summary> {
    if args.interval == 0 {
        return Err(anyhow!("--interval: must be more than 0"));
    }
    let data = read_payload(args)?;
    let ka = keepalive::Config {
        idle: args.idle,
        interval: args.interval,
        count: args.count,
        user_timeout: args.user_timeout.filter(|u| *u > 0),
    };
    let begun = Instant::now();
    let mut senders = Senders::default();
    let (mode, starts, cap, pcap) = if !args.connect.is_empty() {
        let total = args.connect.len() * args.sessions as usize;
        if total > 1 && args.bind_port != 0 {
            return Err(anyhow!("--bind-port: one local port cannot serve {total} sessions"));
        }
        let c = open_connect(
            &args.connect,
            args.interface.as_deref(),
            total,
            args.pcap.as_deref(),
            &stop,
        )?;
        senders = c.senders;
        // Round-robin over the targets: each gets its share from the start.
        let starts = (0..args.sessions as usize)
            .flat_map(|_| c.targets.iter())
            .map(|&remote| Start::Connect {
                remote,
                bind_port: args.bind_port,
            })
            .collect();
        (Mode::Connect, starts, c.capture, c.pcap)
    } else if let Some(spec) = &args.listen {
        let addr: SocketAddr = match spec.parse::<u16>() {
            Ok(port) => (std::net::Ipv6Addr::UNSPECIFIED, port).into(),
            Err(_) => spec
                .parse()
                .map_err(|_| anyhow!("--listen {spec}: expected PORT or ADDR:PORT"))?,
        };
        if addr.port() == 0 {
            return Err(anyhow!("--listen {spec}: port 0"));
        }
        let dev = args.interface.clone().unwrap_or_else(|| "any".into());
        check_device(&dev)?;
        // Both families: which one is known only after accept, and by then the
        // privileges to open raw sockets are gone.
        senders.v4 = Some(RawSender::open(IpAddr::V4([0, 0, 0, 0].into()))?);
        senders.v6 = RawSender::open(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)).ok();
        let listener = socket::listen(addr)?;
        let cap = OpenCapture::open(&dev, &format!("tcp and port {}", addr.port()))?;
        let mut pcap = open_pcap(args.pcap.as_deref(), &cap)?;
        let cap = unprivileged(cap, &mut pcap, &stop)?;
        let until = args.duration.map(|d| begun + Duration::from_nanos(d));
        let Some(sock) = accept(&listener, &stop, until)? else {
            return Err(anyhow!("listen on {addr}: no connection came"));
        };
        drop(listener);
        socket::keepalive_off(&sock);
        (Mode::Listen, vec![Start::Socket(sock)], cap, pcap)
    } else {
        let spec = args.attach.as_deref().unwrap_or_default();
        let (l, r) = spec
            .split_once('-')
            .ok_or_else(|| anyhow!("--attach {spec}: expected SRC:PORT-DST:PORT"))?;
        let parse = |s: &str| {
            s.parse::<SocketAddr>()
                .map(canonical)
                .map_err(|_| anyhow!("--attach {spec}: '{s}' is not ADDR:PORT"))
        };
        let (local, remote) = (parse(l)?, parse(r)?);
        if local.is_ipv4() != remote.is_ipv4() {
            return Err(anyhow!("--attach {spec}: mixed IPv4 and IPv6"));
        }
        let dev = interface_for(args.interface.as_deref(), remote.ip())?;
        let sender = RawSender::open(local.ip())?;
        if local.is_ipv4() {
            senders.v4 = Some(sender);
        } else {
            senders.v6 = Some(sender);
        }
        let filter = format!(
            "tcp and {} and {} and port {} and port {}",
            bpf_host(local.ip()),
            bpf_host(remote.ip()),
            local.port(),
            remote.port()
        );
        let cap = OpenCapture::open(&dev, &filter)?;
        let mut pcap = open_pcap(args.pcap.as_deref(), &cap)?;
        let cap = unprivileged(cap, &mut pcap, &stop)?;
        (Mode::Attach, vec![Start::Attach { local, remote }], cap, pcap)
    };
    let elapsed = begun.elapsed().as_nanos() as u64;
    let sessions = starts.len();
    let shared = Shared {
        mode,
        ka,
        style: args.style,
        payload: args.payload,
        send: data,
        rounds: args.rounds,
        no_abort: args.no_abort,
        provoke: args.provoke,
        ready_timeout: 3_000_000_000,
        connect_timeout: args.connect_timeout,
        idle_from_any: false,
        device: cap.device.clone(),
        link: cap.link.name(),
        single: sessions == 1,
    };
    let setup = Setup {
        shared,
        sessions: starts,
        capture: cap,
        senders,
        pcap,
        duration: args.duration.map(|d| d.saturating_sub(elapsed).max(1)),
        interrupted: stop,
    };
    let stdout = io::stdout();
    let summary = if args.json {
        // Buffered: the engine flushes whenever it waits.
        engine::run(
            setup,
            &mut JsonSink {
                out: io::BufWriter::new(stdout.lock()),
            },
            &mut engine::Fixed,
        )?
    } else {
        let color = super::color(&stdout);
        let status_line = io::stderr().is_terminal();
        let out = io::BufWriter::new(stdout.lock());
        engine::run(
            setup,
            &mut HumanSink::new(out, sessions, color, status_line),
            &mut engine::Fixed,
        )?
    };
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::{connect_target, parse_keepalive_time};

    #[test]
    fn connect_needs_a_port_and_brackets_around_ipv6() {
        for ok in ["10.0.0.1:7077", "[fd77:0:0:101::2]:7077", "localhost:80"] {
            assert_eq!(connect_target(ok).unwrap(), ok);
        }
        let err = |s| connect_target(s).unwrap_err().to_string();
        assert!(err("fd77:0:0:101::2:7077")
            .contains("ambiguous IPv6 address and port: write [ADDR]:PORT, e.g. [fd77:0:0:101::2]:7077"));
        assert!(err("fd77::2").contains("[ADDR]:PORT"));
        for missing in ["10.0.0.1", "localhost", "[fd77::2]"] {
            assert!(err(missing).contains("the port is missing"), "{missing}");
        }
    }

    #[test]
    fn idle_and_interval_are_limited_to_1ms_through_32767s() {
        assert_eq!(parse_keepalive_time("1ms"), Ok(1_000_000));
        assert_eq!(parse_keepalive_time("32767s"), Ok(32_767_000_000_000));
        for bad in ["0", "999us", "32768s", "10000h"] {
            assert!(parse_keepalive_time(bad).is_err(), "{bad}");
        }
    }
}
