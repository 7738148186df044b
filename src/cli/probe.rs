//! `kaprobe probe`: the live keepalive emulator.

use super::exit;
use crate::keepalive::{self, Style};
use crate::live::capture::{check_device, LiveCapture, OpenCapture};
use crate::live::engine::{self, Event, Mode, Outcome, Setup, Sink};
use crate::live::linker::Linker;
use crate::live::send::RawSender;
use crate::live::{privs, route, socket, LiveError};
use crate::report::pcap::PcapOut;
use crate::units::{format_duration, parse_duration};
use anyhow::{anyhow, Context, Result};
use clap::{ArgGroup, Args};
use std::io::{self, IsTerminal, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["connect", "listen", "attach"])))]
pub struct ProbeArgs {
    /// Open a TCP connection to HOST:PORT (kernel keepalive off) and probe it.
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Option<String>,
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
    /// JSON Lines on stdout: one object per event, a `verdict` last.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ProbeArgs) -> u8 {
    let stop = Arc::new(AtomicBool::new(false));
    match session(args, stop) {
        Ok(Outcome::Alive) => exit::OK,
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

fn canonical(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(a, |v4| SocketAddr::new(IpAddr::V4(v4), a.port())),
        _ => a,
    }
}

fn bpf_host(ip: IpAddr) -> String {
    format!("host {ip}")
}

fn interface_for(args: &ProbeArgs, dst: IpAddr) -> Result<String> {
    if let Some(i) = &args.interface {
        check_device(i)?;
        return Ok(i.clone());
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

fn open_pcap(args: &ProbeArgs, cap: &OpenCapture) -> Result<Option<PcapOut>> {
    args.pcap
        .as_ref()
        .map(|p| PcapOut::create_with_link(p, cap.link_code).map_err(|e| anyhow!("{}: {}", e.path, e.why)))
        .transpose()
}

/// The raw socket(s), the capture and the output file are open: gives up
/// privileges, then starts the threads (the signal handler's and the capture
/// reader's), which so never hold any. As root, the `--pcap` file is first
/// handed to a linker that keeps root's right to name it in its directory.
fn unprivileged(cap: OpenCapture, pcap: &mut Option<PcapOut>, stop: &Arc<AtomicBool>) -> Result<LiveCapture> {
    if let (true, Some(p)) = (privs::is_root(), pcap.as_mut()) {
        let linker = Linker::spawn(p, privs::sudo_user())?;
        p.publish_through(Box::new(linker));
    }
    privs::drop_privileges()?;
    let flag = stop.clone();
    // SIGINT, SIGTERM and SIGHUP end the session with its verdict and its pcap.
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)).map_err(|e| anyhow!("signal handler: {e}"))?;
    Ok(cap.spawn())
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

fn session(args: &ProbeArgs, stop: Arc<AtomicBool>) -> Result<Outcome> {
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
    let (mode, socket, local, remote, sender, cap, pcap) = if let Some(target) = &args.connect {
        let remote = canonical(resolve(connect_target(target)?)?);
        let dev = interface_for(args, remote.ip())?;
        let mut sender = RawSender::open(remote.ip())?;
        let (fd, port) = socket::prepare(remote, args.bind_port)?;
        let filter = format!(
            "tcp and {} and port {} and port {port}",
            bpf_host(remote.ip()),
            remote.port()
        );
        let cap = OpenCapture::open(&dev, &filter)?;
        let mut pcap = open_pcap(args, &cap)?;
        let cap = unprivileged(cap, &mut pcap, &stop)?;
        let sock = socket::connect(fd, remote, Duration::from_nanos(args.connect_timeout))?;
        let local = canonical(sock.local_addr().context("getsockname")?);
        sender.bind(local.ip())?;
        (Mode::Connect, Some(sock), local, remote, sender, cap, pcap)
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
        let v4 = RawSender::open(IpAddr::V4([0, 0, 0, 0].into()))?;
        let v6 = RawSender::open(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)).ok();
        let listener = socket::listen(addr)?;
        let cap = OpenCapture::open(&dev, &format!("tcp and port {}", addr.port()))?;
        let mut pcap = open_pcap(args, &cap)?;
        let cap = unprivileged(cap, &mut pcap, &stop)?;
        let until = args.duration.map(|d| begun + Duration::from_nanos(d));
        let Some(sock) = accept(&listener, &stop, until)? else {
            return Err(anyhow!("listen on {addr}: no connection came"));
        };
        drop(listener);
        socket::keepalive_off(&sock);
        let local = canonical(sock.local_addr().context("getsockname")?);
        let remote = canonical(sock.peer_addr().context("getpeername")?);
        let mut sender = match (local.is_ipv4(), v6) {
            (true, _) => v4,
            (false, Some(v6)) => v6,
            (false, None) => return Err(anyhow!("raw socket: IPv6 is not available")),
        };
        sender.bind(local.ip())?;
        (Mode::Listen, Some(sock), local, remote, sender, cap, pcap)
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
        let dev = interface_for(args, remote.ip())?;
        let mut sender = RawSender::open(local.ip())?;
        sender.bind(local.ip())?;
        let filter = format!(
            "tcp and {} and {} and port {} and port {}",
            bpf_host(local.ip()),
            bpf_host(remote.ip()),
            local.port(),
            remote.port()
        );
        let cap = OpenCapture::open(&dev, &filter)?;
        let mut pcap = open_pcap(args, &cap)?;
        let cap = unprivileged(cap, &mut pcap, &stop)?;
        (Mode::Attach, None, local, remote, sender, cap, pcap)
    };
    let capture = cap;
    let elapsed = begun.elapsed().as_nanos() as u64;
    let setup = Setup {
        mode,
        local,
        remote,
        socket,
        capture,
        sender,
        pcap,
        ka,
        style: args.style,
        payload: args.payload,
        send: data,
        rounds: args.rounds,
        duration: args.duration.map(|d| d.saturating_sub(elapsed).max(1)),
        no_abort: args.no_abort,
        provoke: args.provoke,
        interrupted: stop,
        ready_timeout: 3_000_000_000,
    };
    let stdout = io::stdout();
    let verdict = if args.json {
        engine::run(setup, &mut JsonSink { out: stdout.lock() })?
    } else {
        let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
        engine::run(
            setup,
            &mut HumanSink {
                out: stdout.lock(),
                t0: None,
                isn: (None, None),
                color,
            },
        )?
    };
    Ok(verdict.outcome)
}

fn human(ns: u64) -> String {
    if ns == 0 {
        "0s".into()
    } else {
        format_duration(ns)
    }
}

struct JsonSink<W: Write> {
    out: W,
}

impl<W: Write> Sink for JsonSink<W> {
    fn event(&mut self, ev: &Event) {
        if let Ok(s) = serde_json::to_string(ev) {
            let _ = writeln!(self.out, "{s}");
            let _ = self.out.flush();
        }
    }
}

struct HumanSink<W: Write> {
    out: W,
    t0: Option<u64>,
    /// ISNs (local, remote), for relative numbers.
    isn: (Option<u32>, Option<u32>),
    color: bool,
}

impl<W: Write> HumanSink<W> {
    fn rel(&self, t: u64) -> String {
        let t0 = self.t0.unwrap_or(t);
        format!("+{:.3}s", t.saturating_sub(t0) as f64 / 1e9)
    }

    fn num(v: u32, isn: Option<u32>) -> String {
        match isn {
            Some(i) => format!("{v} ({})", v.wrapping_sub(i)),
            None => v.to_string(),
        }
    }

    fn paint(&self, s: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// One timeline row; `cols` are seq, ack, len and rtt.
    fn line(&mut self, t: u64, what: &str, cols: [String; 4], note: &str) {
        let [seq, ack, len, rtt] = cols;
        let what = match what.split(' ').next() {
            Some("ack") | Some("dsack") => self.paint(&format!("{what:<11}"), "32"),
            Some("reset") | Some("unanswered") | Some("abort") | Some("drops") => {
                self.paint(&format!("{what:<11}"), "31")
            }
            _ => format!("{what:<11}"),
        };
        let _ = writeln!(
            self.out,
            "  {:>9}  {what}  {seq:>24}  {ack:>24}  {len:>3}  {rtt:>9}  {note}",
            self.rel(t)
        );
    }
}

impl<W: Write> Sink for HumanSink<W> {
    fn event(&mut self, ev: &Event) {
        let (l, r) = self.isn;
        match ev {
            Event::Exchanged { at, sent, received } => {
                self.t0.get_or_insert(at.time_ns);
                let _ = writeln!(self.out, "exchanged: sent {sent} bytes, received {received}");
            }
            Event::Session {
                at,
                interface,
                link,
                info,
                style,
                payload,
                idle_s,
                interval_s,
                count,
                user_timeout_s,
                last_received_ns,
                ..
            } => {
                // Times count from the peer's last segment, where idle starts.
                self.t0 = Some(last_received_ns.unwrap_or(at.time_ns));
                self.isn = (info.isn_local, info.isn_remote);
                let onoff = |b: Option<bool>| match b {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "unknown",
                };
                let window = match (info.peer_window, info.peer_wscale, info.peer_window_bytes) {
                    (Some(w), Some(s), Some(b)) if s > 0 => format!("{w} << {s} = {b} bytes"),
                    (Some(w), _, Some(b)) => format!("{w} = {b} bytes"),
                    (Some(w), _, None) => format!("{w} (scale unknown)"),
                    (None, ..) => "unknown".into(),
                };
                let _ = writeln!(
                    self.out,
                    "session {} > {} on {interface} ({link}){}",
                    info.local,
                    info.remote,
                    if info.handshake_seen {
                        ", handshake seen"
                    } else {
                        ", attached (no handshake seen)"
                    }
                );
                let _ = writeln!(
                    self.out,
                    "  timestamps {}, SACK {}, peer window {window}, SND.NXT {}, RCV.NXT {}",
                    onoff(info.timestamps),
                    onoff(info.sack),
                    Self::num(info.snd_nxt, info.isn_local),
                    Self::num(info.rcv_nxt, info.isn_remote),
                );
                let ut = user_timeout_s.map_or(String::new(), |u| {
                    format!(", user timeout {}", format_duration((u * 1e9) as u64))
                });
                let _ = writeln!(
                    self.out,
                    "probing: style {style} ({payload} byte{}), idle {}, interval {}, count {count}{ut}",
                    if *payload == 1 { "" } else { "s" },
                    human((idle_s * 1e9) as u64),
                    human((interval_s * 1e9) as u64),
                );
                let _ = writeln!(
                    self.out,
                    "  {:>9}  {:<11}  {:>24}  {:>24}  {:>3}  {:>9}  note",
                    "time", "event", "seq (rel)", "ack (rel)", "len", "rtt"
                );
            }
            Event::ProbeSent {
                at,
                n,
                seq,
                ack,
                len,
                tsval,
                rate_limited,
                ..
            } => {
                let mut note = tsval.map_or(String::new(), |v| format!("tsval {v}"));
                if *rate_limited {
                    note += " (within the peer's 500 ms answer limit)";
                }
                self.line(
                    at.time_ns,
                    &format!("probe {n}"),
                    [Self::num(*seq, l), Self::num(*ack, r), len.to_string(), String::new()],
                    note.trim(),
                );
            }
            Event::ProbeAcked {
                at,
                n,
                seq,
                ack,
                dsack,
                rtt_ms,
                ..
            } => self.line(
                at.time_ns,
                if *dsack { "dsack" } else { "ack" },
                [
                    Self::num(*seq, r),
                    Self::num(*ack, l),
                    "0".into(),
                    format!("{rtt_ms:.3}ms"),
                ],
                &format!("answers probe {n}"),
            ),
            Event::ProbeReset {
                at,
                n,
                seq,
                rtt_ms,
                reset_by,
                ..
            } => {
                let who = match *reset_by {
                    Some("path") => "something on the path (its TTL is not the peer's) no longer knows the connection",
                    _ => "the peer no longer knows the connection",
                };
                self.line(
                    at.time_ns,
                    "reset",
                    [Self::num(*seq, r), "-".into(), "0".into(), format!("{rtt_ms:.3}ms")],
                    &format!("answers probe {n}: {who}"),
                )
            }
            Event::ProbeUnanswered { at, n, note, .. } => {
                let text = format!(
                    "probe {n} got no answer{}",
                    note.map_or(String::new(), |s| format!(" ({s})"))
                );
                self.line(
                    at.time_ns,
                    "unanswered",
                    [String::new(), String::new(), String::new(), String::new()],
                    &text,
                );
            }
            Event::ProbeDeferred { at } => self.line(
                at.time_ns,
                "deferred",
                [String::new(), String::new(), String::new(), String::new()],
                "data unacknowledged: no probe",
            ),
            Event::PeerReset {
                at,
                seq,
                accepted,
                answers_own,
                reset_by,
            } => {
                let from = if *reset_by == Some("path") {
                    " (its TTL is not the peer's: sent on the path)"
                } else {
                    ""
                };
                let note = match (*answers_own, *accepted) {
                    (true, _) => format!(
                        "answers kaprobe's own segment{from}: whoever sent it does not know the connection as addressed (a NAT?); ignored"
                    ),
                    (false, "resets") => format!("the peer reset the connection{from}"),
                    (false, how) => format!("seq is not RCV.NXT: the local end does not take it ({how}); ignored{from}"),
                };
                let what = if *accepted == "resets" && !answers_own {
                    "reset"
                } else {
                    "rst"
                };
                self.line(
                    at.time_ns,
                    what,
                    [Self::num(*seq, r), "-".into(), "0".into(), String::new()],
                    &note,
                )
            }
            Event::PeerClosed { at } => self.line(
                at.time_ns,
                "fin",
                [String::new(), String::new(), String::new(), String::new()],
                "the peer closed the connection",
            ),
            Event::CaptureDrops {
                at,
                dropped,
                if_dropped,
            } => self.line(
                at.time_ns,
                "drops",
                [String::new(), String::new(), String::new(), String::new()],
                &format!("the capture dropped {dropped} packets, the interface {if_dropped} (so far)"),
            ),
            Event::Abort { at, seq, ack } => self.line(
                at.time_ns,
                "abort",
                [Self::num(*seq, l), Self::num(*ack, r), "0".into(), String::new()],
                "RST: the connection is closed, as Linux does",
            ),
            Event::Verdict(v) => {
                let rtt = v.rtt_ms.map_or(String::new(), |s| {
                    format!(", rtt {:.3}/{:.3}/{:.3} ms min/avg/max", s.min, s.avg, s.max)
                });
                let rl = if v.unanswered_rate_limited > 0 {
                    format!(" ({} within the peer's 500 ms answer limit)", v.unanswered_rate_limited)
                } else {
                    String::new()
                };
                let pending = if v.pending > 0 {
                    format!(", {} pending", v.pending)
                } else {
                    String::new()
                };
                let outcome = match v.outcome {
                    Outcome::Alive => self.paint("alive", "32"),
                    o => self.paint(o.name(), "31"),
                };
                let _ = writeln!(
                    self.out,
                    "verdict: {outcome} ({}): {} probes, {} answered, {} unanswered{rl}{pending}, {} reset{rtt}; {:.3} s",
                    serde_json::to_value(v.reason)
                        .ok()
                        .and_then(|x| x.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    v.probes,
                    v.answered,
                    v.unanswered,
                    v.resets,
                    v.elapsed_s
                );
                if let Some(note) = &v.note {
                    let _ = writeln!(self.out, "  {}", self.paint(note, "33"));
                }
            }
        }
        let _ = self.out.flush();
    }
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
