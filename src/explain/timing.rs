//! `explain timing`: when the first probe leaves, when a dead peer is
//! declared, and which middlebox idle timeouts the settings lose to
//! (`docs/tcp-keepalive.md` §2 and §5). Pure arithmetic on
//! seconds; reading the host's sysctls is the CLI's job.

use crate::units::format_duration;
use serde::Serialize;
use std::fmt::Write as _;

/// Keepalive settings, in seconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Settings {
    /// Where the values come from ("Linux defaults", "this host's sysctls", …).
    pub source: String,
    pub idle_s: u64,
    pub interval_s: u64,
    pub count: u32,
    /// Linux's TCP_USER_TIMEOUT, when set: replaces the count.
    pub user_timeout_ms: Option<u64>,
    /// The preset whose knobs the output names ("linux" for this host's sysctls).
    #[serde(skip)]
    pub preset: &'static str,
}

/// Known defaults by name.
pub struct Preset {
    pub name: &'static str,
    pub title: &'static str,
    pub idle_s: u64,
    pub interval_s: u64,
    pub count: u32,
    pub source: &'static str,
    /// What sets the idle time, the interval and the count on this platform.
    pub idle_knob: &'static str,
    pub interval_knob: &'static str,
    pub count_knob: &'static str,
    /// How to set the idle time to the given seconds, every socket and one socket.
    pub fix: fn(u64) -> String,
}

pub const PRESETS: [Preset; 5] = [
    Preset {
        name: "linux",
        title: "Linux defaults",
        idle_s: 7200,
        interval_s: 75,
        count: 9,
        source: "net.ipv4.tcp_keepalive_time / _intvl / _probes",
        idle_knob: "TCP_KEEPIDLE, net.ipv4.tcp_keepalive_time",
        interval_knob: "TCP_KEEPINTVL, net.ipv4.tcp_keepalive_intvl",
        count_knob: "TCP_KEEPCNT, net.ipv4.tcp_keepalive_probes",
        fix: fix_linux,
    },
    Preset {
        name: "go",
        title: "Go's defaults for net.Dialer and ListenConfig",
        idle_s: 15,
        interval_s: 15,
        count: 9,
        source: "keepalive on by default, KeepAliveConfig since Go 1.23",
        idle_knob: "KeepAliveConfig.Idle (Go 1.23+), Dialer.KeepAlive before",
        interval_knob: "KeepAliveConfig.Interval (Go 1.23+), Dialer.KeepAlive before",
        count_knob: "KeepAliveConfig.Count (Go 1.23+), the OS default before",
        fix: fix_go,
    },
    Preset {
        name: "windows",
        title: "Windows defaults",
        idle_s: 7200,
        interval_s: 1,
        count: 10,
        source: "KeepAliveTime 2 h, KeepAliveInterval 1 s, 10 probes since Vista",
        idle_knob: "KeepAliveTime (registry, ms), SIO_KEEPALIVE_VALS (ms) or TCP_KEEPIDLE (Windows 10 1709+)",
        interval_knob: "KeepAliveInterval (registry, ms), SIO_KEEPALIVE_VALS (ms) or TCP_KEEPINTVL (Windows 10 1709+)",
        count_knob: "TCP_KEEPCNT (Windows 10 1703+; not settable per socket before)",
        fix: fix_windows,
    },
    Preset {
        name: "macos",
        title: "macOS defaults",
        idle_s: 7200,
        interval_s: 75,
        count: 8,
        source: "net.inet.tcp.keepidle / keepintvl, TCPTV_KEEPCNT 8",
        idle_knob: "TCP_KEEPALIVE, net.inet.tcp.keepidle (ms)",
        interval_knob: "TCP_KEEPINTVL, net.inet.tcp.keepintvl (ms)",
        count_knob: "TCP_KEEPCNT, net.inet.tcp.keepcnt",
        fix: fix_macos,
    },
    Preset {
        name: "freebsd",
        title: "FreeBSD defaults",
        idle_s: 7200,
        interval_s: 75,
        count: 8,
        source: "net.inet.tcp.keepidle / keepintvl / keepcnt",
        idle_knob: "TCP_KEEPIDLE, net.inet.tcp.keepidle (ms)",
        interval_knob: "TCP_KEEPINTVL, net.inet.tcp.keepintvl (ms)",
        count_knob: "TCP_KEEPCNT, net.inet.tcp.keepcnt",
        fix: fix_freebsd,
    },
];

fn fix_linux(idle: u64) -> String {
    format!(
        "sysctl -w net.ipv4.tcp_keepalive_time={idle} (every socket), or\n     \
         setsockopt(TCP_KEEPIDLE, {idle}) with SO_KEEPALIVE on (one socket; Go: KeepAliveConfig.Idle)"
    )
}

fn fix_go(idle: u64) -> String {
    format!(
        "Dialer.KeepAliveConfig = net.KeepAliveConfig{{Enable: true, Idle: {idle} * time.Second}} (Go 1.23+), or\n     \
         Dialer.KeepAlive = {idle} * time.Second (older Go; sets the interval too)"
    )
}

fn fix_windows(idle: u64) -> String {
    let ms = idle * 1000;
    format!(
        "KeepAliveTime = {ms} (milliseconds) under\n     \
         HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters (every socket, after a reboot), or per socket\n     \
         SIO_KEEPALIVE_VALS with keepalivetime {ms}, or TCP_KEEPIDLE {idle} with SO_KEEPALIVE on (Windows 10 1709+)"
    )
}

fn fix_macos(idle: u64) -> String {
    format!(
        "sysctl net.inet.tcp.keepidle={} (milliseconds, every socket), or\n     \
         setsockopt(TCP_KEEPALIVE, {idle}) with SO_KEEPALIVE on (one socket)",
        idle * 1000
    )
}

fn fix_freebsd(idle: u64) -> String {
    format!(
        "sysctl net.inet.tcp.keepidle={} (milliseconds, every socket), or\n     \
         setsockopt(TCP_KEEPIDLE, {idle}) with SO_KEEPALIVE on (one socket)",
        idle * 1000
    )
}

impl Settings {
    pub fn preset(name: &str) -> Result<Settings, String> {
        let p = PRESETS
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                let names: Vec<_> = PRESETS.iter().map(|p| p.name).collect();
                format!("unknown preset '{name}' ({}, host)", names.join(", "))
            })?;
        Ok(Settings {
            source: format!("{}: {}", p.title, p.source),
            idle_s: p.idle_s,
            interval_s: p.interval_s,
            count: p.count,
            user_timeout_ms: None,
            preset: p.name,
        })
    }

    /// Values a socket option would refuse, as a usage error.
    pub fn check(&self) -> Result<(), String> {
        if self.idle_s == 0 {
            return Err("idle must be at least 1s".into());
        }
        if self.interval_s == 0 {
            return Err("interval must be at least 1s".into());
        }
        if self.count == 0 {
            return Err("count must be at least 1".into());
        }
        Ok(())
    }
}

/// A middlebox that forgets idle flows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Middlebox {
    pub name: String,
    pub timeout_s: u64,
    pub note: String,
}

/// Idle timeouts of common middleboxes (facts §5).
pub fn middleboxes() -> Vec<Middlebox> {
    [
        ("AWS NLB", 350, "configurable 60-6000 s since 2024"),
        ("Azure Load Balancer", 240, "configurable 4-100 min"),
        ("GCP VPC firewall", 600, "connection tracking"),
        ("GCP Cloud NAT", 1200, "tcp-established-idle-timeout"),
        ("Cisco Meraki", 300, ""),
        (
            "kube-proxy conntrack",
            86_400,
            "nf_conntrack_tcp_timeout_established set by kube-proxy",
        ),
        (
            "Linux conntrack default",
            432_000,
            "nf_conntrack_tcp_timeout_established",
        ),
        (
            "RFC 5382 NAT floor",
            7440,
            "a NAT must keep an established mapping at least 2 h 4 min",
        ),
    ]
    .into_iter()
    .map(|(n, t, note)| Middlebox {
        name: n.into(),
        timeout_s: t,
        note: note.into(),
    })
    .collect()
}

/// What the settings do.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    #[serde(flatten)]
    pub settings: Settings,
    /// Seconds after the last segment received.
    pub first_probe_s: u64,
    /// When each probe leaves while none is answered.
    pub probes_s: Vec<u64>,
    /// When the connection is aborted (RST, ETIMEDOUT) if no probe is answered.
    pub dead_after_s: u64,
    pub dead_after: String,
    /// Probes sent before the abort.
    pub probes_before_abort: u32,
    pub verdicts: Vec<Verdict>,
}

/// One middlebox against the settings.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    #[serde(flatten)]
    pub middlebox: Middlebox,
    /// The flow is silent longer than the timeout before the first probe.
    pub loses: bool,
    /// An idle time that would keep the flow alive.
    pub fix_idle_s: Option<u64>,
}

/// A suggested idle for a timeout: 80 %, rounded down to a whole 10 s
/// (whole seconds below 100 s), at least 1 s.
pub fn suggested_idle(timeout_s: f64) -> u64 {
    let t = (timeout_s * 0.8 + 1e-9).floor() as u64;
    let t = if t >= 100 { t / 10 * 10 } else { t };
    t.max(1)
}

/// Linux semantics: the timer fires at idle, then every interval while
/// probes go unanswered; before each probe it checks whether to give up.
pub fn compute(settings: &Settings, boxes: &[Middlebox]) -> Timing {
    let (idle, intvl) = (settings.idle_s, settings.interval_s);
    // Probes sent before the abort: `count`, or with TCP_USER_TIMEOUT, as
    // many as fit until the idle time reaches it (at least one).
    let n = match settings.user_timeout_ms {
        Some(ut) if ut > 0 => {
            let ut_s = ut.div_ceil(1000);
            let k = ut_s.saturating_sub(idle).div_ceil(intvl).max(1);
            k.min(u32::MAX as u64) as u32
        }
        _ => settings.count,
    };
    let dead = idle + n as u64 * intvl;
    let probes_s = (0..n.min(1000) as u64).map(|k| idle + k * intvl).collect();
    let verdicts = boxes
        .iter()
        .map(|m| {
            let loses = idle >= m.timeout_s;
            Verdict {
                middlebox: m.clone(),
                loses,
                fix_idle_s: loses.then(|| suggested_idle(m.timeout_s as f64)),
            }
        })
        .collect();
    Timing {
        settings: settings.clone(),
        first_probe_s: idle,
        probes_s,
        dead_after_s: dead,
        dead_after: format_duration(dead * 1_000_000_000),
        probes_before_abort: n,
        verdicts,
    }
}

fn d(s: u64) -> String {
    format_duration(s * 1_000_000_000)
}

/// Human output.
pub fn render(t: &Timing) -> String {
    let s = &t.settings;
    let p = PRESETS.iter().find(|p| p.name == s.preset).unwrap_or(&PRESETS[0]);
    let mut out = String::new();
    let _ = writeln!(out, "keepalive timing: {}", s.source);
    let _ = writeln!(
        out,
        "  idle      {:<9} {}: silence after the last segment received before the first probe",
        d(s.idle_s),
        p.idle_knob
    );
    let _ = writeln!(
        out,
        "  interval  {:<9} {}: wait between unanswered probes",
        d(s.interval_s),
        p.interval_knob
    );
    let _ = writeln!(
        out,
        "  count     {:<9} {}: unanswered probes before giving up",
        s.count, p.count_knob
    );
    if let Some(ut) = s.user_timeout_ms {
        let _ = writeln!(
            out,
            "  user timeout {} TCP_USER_TIMEOUT: replaces the count — give up once silent this long with a probe out",
            format_duration(ut * 1_000_000)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  first probe         {} after the last segment received ({}s)",
        d(t.first_probe_s),
        t.first_probe_s
    );
    if t.probes_before_abort > 1 {
        let list: Vec<String> = t.probes_s.iter().skip(1).take(3).map(|&x| d(x)).collect();
        let more = if t.probes_before_abort > 4 { ", …" } else { "" };
        let _ = writeln!(
            out,
            "  probes 2..{}         every {} while unanswered: {}{more}",
            t.probes_before_abort,
            d(s.interval_s),
            list.join(", ")
        );
    }
    let formula = match s.user_timeout_ms {
        Some(_) => format!(
            "idle + {} × interval (the first probe time at or past the user timeout)",
            t.probes_before_abort
        ),
        None => format!(
            "idle + count × interval = {}s + {} × {}s",
            s.idle_s, t.probes_before_abort, s.interval_s
        ),
    };
    let _ = writeln!(
        out,
        "  dead peer declared  {} ({}s) = {formula}: the prober sends a RST, the application gets ETIMEDOUT",
        t.dead_after, t.dead_after_s
    );
    let _ = writeln!(
        out,
        "  live peer           each answered probe restarts the clock: one probe every {} while it answers",
        d(s.idle_s)
    );
    let _ = writeln!(
        out,
        "  caveats             keepalive is off unless the program sets SO_KEEPALIVE; while data is unacknowledged,\n                      \
         retransmission (tcp_retries2, TCP_USER_TIMEOUT) decides instead"
    );
    let _ = writeln!(
        out,
        "\nmiddlebox idle timeouts (a flow silent this long is forgotten, without a FIN or RST):"
    );
    let w = t.verdicts.iter().map(|v| v.middlebox.name.len()).max().unwrap_or(0);
    for v in &t.verdicts {
        let m = &v.middlebox;
        let verdict = if v.loses {
            format!("LOSES: silent {} before the first probe", d(s.idle_s))
        } else {
            "ok: a probe comes first".into()
        };
        let _ = writeln!(
            out,
            "  {:<w$}  {:>9}  {verdict}{}",
            m.name,
            d(m.timeout_s),
            if m.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", m.note)
            }
        );
    }
    let losers: Vec<&Verdict> = t.verdicts.iter().filter(|v| v.loses).collect();
    for v in &losers {
        let _ = writeln!(
            out,
            "warning: {} forgets a silent flow after {}, but the first probe comes after {}: the connection dies there unnoticed",
            v.middlebox.name,
            d(v.middlebox.timeout_s),
            d(s.idle_s),
        );
    }
    if let Some(tightest) = losers.iter().map(|v| v.middlebox.timeout_s).min() {
        let fix = suggested_idle(tightest as f64);
        let _ = writeln!(
            out,
            "fix: an idle below {} beats {}: {}",
            d(tightest),
            if losers.len() == 1 { "it" } else { "all of them" },
            (p.fix)(fix),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_defaults_detect_in_2h11m15s_and_lose_to_every_cloud_balancer() {
        let t = compute(&Settings::preset("linux").unwrap(), &middleboxes());
        assert_eq!(t.dead_after_s, 7875);
        assert_eq!(t.dead_after, "2h11m15s");
        assert_eq!(t.probes_s.len(), 9);
        assert_eq!(t.probes_s[8], 7200 + 8 * 75);
        let losers: Vec<_> = t
            .verdicts
            .iter()
            .filter(|v| v.loses)
            .map(|v| v.middlebox.name.as_str())
            .collect();
        assert_eq!(
            losers,
            [
                "AWS NLB",
                "Azure Load Balancer",
                "GCP VPC firewall",
                "GCP Cloud NAT",
                "Cisco Meraki"
            ]
        );
        assert_eq!(t.verdicts[0].fix_idle_s, Some(280));
    }

    #[test]
    fn go_defaults_keep_every_middlebox_happy() {
        let t = compute(&Settings::preset("go").unwrap(), &middleboxes());
        assert_eq!(t.dead_after_s, 15 + 9 * 15);
        assert!(t.verdicts.iter().all(|v| !v.loses));
    }

    #[test]
    fn user_timeout_replaces_the_count() {
        let mut s = Settings::preset("linux").unwrap();
        s.idle_s = 30;
        s.interval_s = 5;
        s.user_timeout_ms = Some(42_000);
        let t = compute(&s, &[]);
        // Timer at 30 (probe 1), 35, 40, 45: 45 >= 42 with probes out.
        assert_eq!(t.probes_before_abort, 3);
        assert_eq!(t.dead_after_s, 45);
        s.user_timeout_ms = Some(1000);
        assert_eq!(compute(&s, &[]).dead_after_s, 35, "at least one probe");
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggested_idle(350.0), 280);
        assert_eq!(suggested_idle(240.0), 190);
        assert_eq!(suggested_idle(60.0), 48);
        assert_eq!(suggested_idle(1.0), 1);
        assert_eq!(suggested_idle(2.98), 2, "a measured bound, not whole seconds");
    }
}
