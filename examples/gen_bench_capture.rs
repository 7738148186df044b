//! Writes a large synthetic capture for benchmarking `kaprobe verify`.
//!
//! ```text
//! cargo run --release --example gen_bench_capture -- [--flows 50000] [--rounds 20] [--seed 1] OUT.pcap
//! ```
//!
//! Classic pcap, nanosecond magic, LINKTYPE_ETHERNET, snaplen 262144. Many
//! concurrent TCP connections (distinct 4-tuples in 10.0.0.0/8 and fd00::/8:
//! nothing is sent anywhere), each with a handshake, a data exchange, then
//! `--rounds` cycles of about 30 s of capture time. Keepalive flows either idle
//! 30 s and probe (answered), or exchange data in a cycle. Some probes carry one
//! byte and are answered with a D-SACK; some peers vanish (unanswered probes,
//! then the prober's abort RST) or reboot (probe answered by RST); some flows
//! have zero-window episodes or 1-byte retransmissions; about a third of the
//! flows only carry data and ACKs, half of those close with FIN.
//!
//! Flows are driven by a heap of next-event times, so records come out in
//! global time order with flows interleaved; at any moment only one pending
//! step per flow is held, never the capture. Output goes through a BufWriter.
//!
//! Last line on stdout, `key=value` pairs: packets, flows, bytes, probes (the
//! number of segments kaprobe should classify as keepalive_probe), and more.

use clap::Parser;
use kaprobe::synth::{End, Session};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Instant;

const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
/// Capture start: 2023-11-14T22:13:20Z.
const START: u64 = 1_700_000_000 * S;
/// Linux keepalive_time of every prober.
const IDLE: u64 = 30 * S;
const MSS: u16 = 1448;
const SNAPLEN: u32 = 262_144;
const LINKTYPE_ETHERNET: u32 = 1;
const PCAP_MAGIC_NANO: u32 = 0xa1b2_3c4d;

#[derive(Parser, Debug)]
#[command(about = "Write a large synthetic keepalive capture (classic pcap) for benchmarks")]
struct Args {
    /// Number of TCP connections (distinct 4-tuples).
    #[arg(long, default_value_t = 50_000)]
    flows: u32,
    /// Keepalive cycles (~30 s of capture time each) per connection.
    #[arg(long, default_value_t = 20)]
    rounds: u32,
    /// Seed of the per-flow pseudo-random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file (overwritten).
    out: PathBuf,
}

/// splitmix64: small, fast, good enough for picking scenarios.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + ((self.next() as u128 * (hi - lo + 1) as u128) >> 64) as u64
    }
    fn percent(&mut self, p: u64) -> bool {
        self.range(0, 99) < p
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Profile {
    /// Zero-byte probes (Linux), answered; data in some cycles.
    KaZero,
    /// One-byte probes (Windows/BSD style), answered with a D-SACK.
    KaOneByte,
    /// At some cycle the peer vanishes: `count` unanswered probes, then abort.
    Blackhole,
    /// At some cycle the peer answers the probe with a RST (rebooted).
    Reboot,
    /// Keepalive, and data cycles with zero-window episodes.
    ZeroWindow,
    /// Keepalive, and data cycles with 1-byte retransmissions.
    Retrans,
    /// Data and ACKs only, no keepalive.
    Busy,
}

/// One step of a flow; frames are built when the step is due.
#[derive(Clone, Copy, Debug)]
enum Act {
    Syn,
    SynAck,
    HsAck,
    Data(End, u16),
    Ack(End),
    /// Set the end's advertised window, then a pure ACK (window update).
    AckWindow(End, u16),
    Probe {
        from: End,
        one_byte: bool,
    },
    ZeroWindowProbe(End),
    ProbeAck {
        from: End,
        dsack: bool,
    },
    Retransmit1(End),
    Abort(End),
    ResetUnknown(End),
    Fin(End),
}

fn other(e: End) -> End {
    match e {
        End::Client => End::Server,
        End::Server => End::Client,
    }
}

struct Flow {
    s: Session,
    rng: Rng,
    profile: Profile,
    prober: End,
    /// Round-trip time seen from the capture point (next to the client).
    rtt: u64,
    cycles_left: u32,
    /// The cycle (counting down) in which a blackhole/reboot peer dies.
    dies_at: u32,
    close_with_fin: bool,
    /// Handshake frames built at the SYN, written later.
    hs: Option<[Vec<u8>; 3]>,
    steps: VecDeque<(u64, Act)>,
    /// Time of the last step planned (steps are planned strictly after it).
    last: u64,
    /// Capture time of the last segment each end received ([client, server]).
    last_rx: [u64; 2],
    probes: u32,
}

#[derive(Default, Debug)]
struct Counts {
    packets: u64,
    bytes: u64,
    probes: u64,
    one_byte_probes: u64,
    keepalive_flows: u64,
    zero_window_probes: u64,
    retransmissions: u64,
    aborts: u64,
    keepalive_rsts: u64,
    fin_closed: u64,
    ipv6_flows: u64,
    vlan_flows: u64,
}

fn idx(e: End) -> usize {
    match e {
        End::Client => 0,
        End::Server => 1,
    }
}

impl Flow {
    fn new(i: u32, seed: u64, rounds: u32, counts: &mut Counts) -> Flow {
        let mut rng = Rng::new(seed, i as u64);
        // Client hosts hold 1000 connections each: (host, port) is unique per flow.
        let host = i / 1000;
        let cport = 20_000 + (i % 1000) as u16 * 37 % 40_000;
        let server_n = rng.range(1, 16) as u8;
        let sport = [443u16, 443, 80, 5432, 6379, 8080, 22, 3306][rng.range(0, 7) as usize];
        let v6 = rng.percent(10);
        counts.ipv6_flows += v6 as u64;
        let (c, s): (IpAddr, IpAddr) = if v6 {
            (
                Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, (host >> 16) as u16, host as u16).into(),
                Ipv6Addr::new(0xfd00, 0, 0, 0xff, 0, 0, 0, server_n as u16).into(),
            )
        } else {
            (
                Ipv4Addr::new(10, 1 + (host >> 16) as u8, (host >> 8) as u8, host as u8).into(),
                Ipv4Addr::new(10, 200, 0, server_n).into(),
            )
        };
        let mut s = Session::new(
            SocketAddr::new(c, cport),
            SocketAddr::new(s, sport),
            rng.next() as u32,
            rng.next() as u32,
        );
        if rng.percent(5) {
            s.vlan = vec![100 + rng.range(0, 3) as u16];
            counts.vlan_flows += 1;
        }
        let profile = match rng.range(0, 99) {
            0..=39 => Profile::KaZero,
            40..=51 => Profile::KaOneByte,
            52..=55 => Profile::Blackhole,
            56..=57 => Profile::Reboot,
            58..=61 => Profile::ZeroWindow,
            62..=65 => Profile::Retrans,
            _ => Profile::Busy,
        };
        let prober = if profile == Profile::KaZero && rng.percent(20) {
            End::Server
        } else {
            End::Client
        };
        // LAN, metro and WAN round trips.
        let rtt = match rng.range(0, 9) {
            0..=5 => rng.range(80, 900) * US,
            6..=8 => rng.range(2, 20) * MS,
            _ => rng.range(40, 150) * MS,
        };
        let dies_at = rng.range(1, (rounds / 2).max(1) as u64) as u32;
        let close_with_fin = rng.percent(50);
        let t0 = START + rng.range(0, IDLE / US) * US;
        let mut f = Flow {
            s,
            rng,
            profile,
            prober,
            rtt,
            cycles_left: rounds,
            dies_at,
            close_with_fin,
            hs: None,
            steps: VecDeque::new(),
            last: t0,
            last_rx: [t0; 2],
            probes: 0,
        };
        f.push(0, Act::Syn);
        f.push(rtt, Act::SynAck);
        f.push(20 * US, Act::HsAck);
        f.exchange(100 * US, 1);
        f
    }

    /// Plans `act` `after` the last planned step (at least 1 µs later).
    fn push(&mut self, after: u64, act: Act) {
        self.last += after.max(US);
        self.steps.push_back((self.last, act));
    }

    /// Server "think" time before answering a request.
    fn think(&mut self) -> u64 {
        self.rng.range(50, 3000) * US
    }

    /// Delayed ACK of a client.
    fn delack(&mut self) -> u64 {
        self.rng.range(1, 40) * MS
    }

    /// A request, a response of up to `max_segs` full or partial segments, and the ACK.
    fn exchange(&mut self, after: u64, max_segs: u64) {
        let req = self.rng.range(40, 400) as u16;
        self.push(after, Act::Data(End::Client, req));
        let segs = self.rng.range(1, max_segs);
        let t = self.rtt + self.think();
        for k in 0..segs {
            let len = if k + 1 < segs {
                MSS
            } else {
                self.rng.range(60, MSS as u64) as u16
            };
            self.push(if k == 0 { t } else { 15 * US }, Act::Data(End::Server, len));
        }
        let a = if segs >= 2 { 30 * US } else { self.delack() };
        self.push(a, Act::Ack(End::Client));
    }

    /// Plans the next cycle; false when the flow has nothing more to do.
    fn plan_cycle(&mut self) -> bool {
        if self.cycles_left == 0 {
            return false;
        }
        self.cycles_left -= 1;
        let final_cycle = self.cycles_left == 0;
        let p = self.prober;
        // Steps are relative to the last planned one; probes count from the
        // prober's last received segment (Linux's idle clock).
        let since = |f: &Flow, base: u64| base.saturating_sub(f.last);
        match self.profile {
            Profile::Busy => {
                let gap = self.rng.range(5, 25) * S;
                self.exchange(gap, 3);
                if self.rng.percent(30) {
                    let g = self.rng.range(100, 2000) * MS;
                    self.exchange(g, 2);
                }
                if self.rng.percent(15) {
                    // Server push with a delayed ACK.
                    let g = self.rng.range(1, 3000) * MS;
                    let len = self.rng.range(30, 300) as u16;
                    self.push(g, Act::Data(End::Server, len));
                    let d = self.delack();
                    self.push(d, Act::Ack(End::Client));
                }
                if final_cycle && self.close_with_fin {
                    let g = self.rng.range(1, 5) * S;
                    self.push(g, Act::Fin(End::Client));
                    let r = self.rtt;
                    self.push(r, Act::Fin(End::Server));
                    self.push(20 * US, Act::Ack(End::Client));
                }
            }
            Profile::Blackhole | Profile::Reboot if self.cycles_left + 1 == self.dies_at => {
                let at = since(self, self.last_rx[idx(p)] + IDLE);
                self.push(
                    at,
                    Act::Probe {
                        from: p,
                        one_byte: false,
                    },
                );
                if self.profile == Profile::Reboot {
                    let r = self.rtt;
                    self.push(r, Act::ResetUnknown(other(p)));
                } else {
                    let count = self.rng.range(3, 9) as u32;
                    let interval = [5, 10, 15][self.rng.range(0, 2) as usize] * S;
                    for _ in 1..count {
                        self.push(
                            interval,
                            Act::Probe {
                                from: p,
                                one_byte: false,
                            },
                        );
                    }
                    self.push(interval, Act::Abort(p));
                }
                self.cycles_left = 0;
            }
            _ => {
                let data_cycle = self.rng.percent(30);
                if !data_cycle {
                    let one_byte = self.profile == Profile::KaOneByte;
                    let at = since(self, self.last_rx[idx(p)] + IDLE);
                    self.push(at, Act::Probe { from: p, one_byte });
                    // The capture point is next to the client.
                    let a = if p == End::Client { self.rtt } else { 40 * US };
                    self.push(
                        a,
                        Act::ProbeAck {
                            from: other(p),
                            dsack: one_byte,
                        },
                    );
                } else {
                    let gap = self.rng.range(2, 25) * S;
                    match self.profile {
                        Profile::ZeroWindow if self.rng.percent(60) => self.zero_window(gap),
                        Profile::Retrans if self.rng.percent(60) => self.retrans(gap),
                        _ => self.exchange(gap, 2),
                    }
                }
            }
        }
        true
    }

    /// The client stops reading: the server's data fills its window, the
    /// server sends zero-window probes (answered), then the window opens.
    fn zero_window(&mut self, gap: u64) {
        self.push(gap, Act::Data(End::Client, 60));
        let t = self.rtt + self.think();
        self.push(t, Act::Data(End::Server, MSS));
        self.push(15 * US, Act::Data(End::Server, MSS));
        self.push(30 * US, Act::AckWindow(End::Client, 0));
        let mut backoff = 200 * MS + self.rtt;
        for _ in 0..self.rng.range(1, 4) {
            self.push(backoff, Act::ZeroWindowProbe(End::Server));
            self.push(
                40 * US,
                Act::ProbeAck {
                    from: End::Client,
                    dsack: false,
                },
            );
            backoff *= 2;
        }
        let open = self.rng.range(10, 500) * MS;
        self.push(open, Act::AckWindow(End::Client, 502));
        let len = self.rng.range(100, MSS as u64) as u16;
        let r = self.rtt;
        self.push(r, Act::Data(End::Server, len));
        let d = self.delack();
        self.push(d, Act::Ack(End::Client));
    }

    /// An interactive 1-byte write whose ACK is lost: resent once or twice.
    fn retrans(&mut self, gap: u64) {
        self.push(gap, Act::Data(End::Client, 1));
        let mut rto = 200 * MS + self.rtt;
        for _ in 0..self.rng.range(1, 2) {
            self.push(rto, Act::Retransmit1(End::Client));
            rto *= 2;
        }
        let t = self.rtt + self.think();
        let len = self.rng.range(1, 80) as u16;
        self.push(t, Act::Data(End::Server, len));
        let d = self.delack();
        self.push(d, Act::Ack(End::Client));
    }

    /// Builds the frame of `act` and keeps the counts.
    fn frame(&mut self, act: Act, payload: &[u8], c: &mut Counts) -> Vec<u8> {
        let s = &mut self.s;
        let r = match act {
            Act::Syn => {
                let hs = s.handshake().expect("handshake builds");
                let f = hs[0].clone();
                self.hs = Some(hs);
                return f;
            }
            Act::SynAck => return std::mem::take(&mut self.hs.as_mut().expect("syn first")[1]),
            Act::HsAck => return self.hs.take().expect("syn first")[2].clone(),
            Act::Data(e, len) => s.data(e, &payload[..len as usize]),
            Act::Ack(e) => s.ack(e),
            Act::AckWindow(e, w) => {
                s.set_window(e, w);
                s.ack(e)
            }
            Act::Probe { from, one_byte } => {
                c.probes += 1;
                c.one_byte_probes += one_byte as u64;
                if self.probes == 0 {
                    c.keepalive_flows += 1;
                }
                self.probes += 1;
                s.probe(from, &payload[..one_byte as usize])
            }
            Act::ZeroWindowProbe(e) => {
                c.zero_window_probes += 1;
                s.probe(e, &[])
            }
            Act::ProbeAck { from, dsack } => s.probe_ack(from, dsack),
            Act::Retransmit1(e) => {
                c.retransmissions += 1;
                s.retransmit(e, &payload[..1])
            }
            Act::Abort(e) => {
                c.aborts += 1;
                s.abort(e)
            }
            Act::ResetUnknown(e) => {
                c.keepalive_rsts += 1;
                s.reset_unknown(e)
            }
            Act::Fin(e) => {
                c.fin_closed += (e == End::Server) as u64;
                s.fin(e)
            }
        };
        r.expect("segment builds").to_vec()
    }

    fn sender(act: Act) -> End {
        match act {
            Act::Syn | Act::HsAck => End::Client,
            Act::SynAck => End::Server,
            Act::Data(e, _)
            | Act::Ack(e)
            | Act::AckWindow(e, _)
            | Act::Probe { from: e, .. }
            | Act::ZeroWindowProbe(e)
            | Act::ProbeAck { from: e, .. }
            | Act::Retransmit1(e)
            | Act::Abort(e)
            | Act::ResetUnknown(e)
            | Act::Fin(e) => e,
        }
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    // Distinct 4-tuples: 1000 per client host, host number in 24 bits.
    assert!(args.flows as u64 <= 1000 * (1 << 22), "too many flows");
    let payload: Vec<u8> = (0..MSS as usize)
        .map(|i| b"GET /keepalive HTTP/1.1 abcdefghijklmnopqrstuvwxyz0123456789\r\n"[i % 62])
        .collect();
    let file = File::create(&args.out)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut hdr = Vec::with_capacity(24);
    hdr.extend_from_slice(&PCAP_MAGIC_NANO.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&0i32.to_le_bytes());
    hdr.extend_from_slice(&0u32.to_le_bytes());
    hdr.extend_from_slice(&SNAPLEN.to_le_bytes());
    hdr.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    w.write_all(&hdr)?;

    let mut c = Counts {
        bytes: hdr.len() as u64,
        ..Counts::default()
    };
    let mut flows: Vec<Flow> = (0..args.flows)
        .map(|i| Flow::new(i, args.seed, args.rounds, &mut c))
        .collect();
    let mut heap: BinaryHeap<Reverse<(u64, u32)>> = flows
        .iter()
        .enumerate()
        .map(|(i, f)| Reverse((f.steps[0].0, i as u32)))
        .collect();
    let (mut first, mut last) = (u64::MAX, 0u64);
    while let Some(Reverse((t, i))) = heap.pop() {
        let f = &mut flows[i as usize];
        let (at, act) = f.steps.pop_front().expect("scheduled flows have a step");
        debug_assert_eq!(at, t);
        let frame = f.frame(act, &payload, &mut c);
        let to = other(Flow::sender(act));
        f.last_rx[idx(to)] = t;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((t / S) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((t % S) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        w.write_all(&rec)?;
        w.write_all(&frame)?;
        c.packets += 1;
        c.bytes += 16 + frame.len() as u64;
        first = first.min(t);
        last = last.max(t);
        if f.steps.is_empty() && !f.plan_cycle() {
            // Done: free the frame buffer and state.
            f.s = Session::new("0.0.0.0:0".parse().unwrap(), "0.0.0.0:0".parse().unwrap(), 0, 0);
            f.steps = VecDeque::new();
            continue;
        }
        heap.push(Reverse((f.steps[0].0, i)));
    }
    w.flush()?;
    println!(
        "gen_bench_capture: file={} packets={} flows={} bytes={} probes={} keepalive_flows={} \
         one_byte_probes={} zero_window_probes={} retransmissions={} aborts={} keepalive_rsts={} \
         fin_closed={} ipv6_flows={} vlan_flows={} capture_s={:.1} gen_s={:.2}",
        args.out.display(),
        c.packets,
        args.flows,
        c.bytes,
        c.probes,
        c.keepalive_flows,
        c.one_byte_probes,
        c.zero_window_probes,
        c.retransmissions,
        c.aborts,
        c.keepalive_rsts,
        c.fin_closed,
        c.ipv6_flows,
        c.vlan_flows,
        (last.saturating_sub(first)) as f64 / 1e9,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
