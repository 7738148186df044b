//! Which interface (and source address) the kernel routes a destination
//! through: `ip route get`, parsed.

use super::LiveError;
use std::net::IpAddr;
use std::process::Command;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dev: String,
    pub src: Option<IpAddr>,
}

/// Parses one line of `ip -o route get` output.
pub fn parse(out: &str) -> Option<Route> {
    let words: Vec<&str> = out.split_whitespace().collect();
    let after = |key: &str| words.iter().position(|w| *w == key).and_then(|i| words.get(i + 1));
    let dev = after("dev")?.to_string();
    let src = after("src").and_then(|s| s.parse().ok());
    Some(Route { dev, src })
}

/// The route to `dst`, from `ip route get`.
pub fn lookup(dst: IpAddr) -> Result<Route, LiveError> {
    let fam = if dst.is_ipv4() { "-4" } else { "-6" };
    let out = Command::new("ip")
        .args([fam, "-o", "route", "get", &dst.to_string()])
        .output()
        .map_err(|e| LiveError::new(format!("route to {dst}"), format!("cannot run ip (iproute2): {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err
            .lines()
            .next()
            .unwrap_or("no route")
            .trim_start_matches("RTNETLINK answers: ")
            .to_lowercase();
        return Err(LiveError::new(format!("route to {dst}"), why));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    parse(&text).ok_or_else(|| LiveError::new(format!("route to {dst}"), format!("cannot read '{}'", text.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_route_get() {
        let r = parse("10.77.101.2 via 10.77.1.254 dev veth-c src 10.77.1.1 uid 0 \\    cache ").unwrap();
        assert_eq!(r.dev, "veth-c");
        assert_eq!(r.src, Some("10.77.1.1".parse().unwrap()));
        let r = parse("local 127.0.0.1 dev lo src 127.0.0.1 uid 0 \\    cache <local> ").unwrap();
        assert_eq!(r.dev, "lo");
        let r = parse("fd77:0:0:101::2 from :: via fd77:0:0:1::254 dev veth-c proto kernel src fd77:0:0:1::1 metric 1024 pref medium").unwrap();
        assert_eq!(
            (r.dev.as_str(), r.src),
            ("veth-c", Some("fd77:0:0:1::1".parse().unwrap()))
        );
        assert_eq!(parse("garbage"), None);
    }
}
