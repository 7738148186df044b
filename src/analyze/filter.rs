//! `--flow` filters: one or two endpoint patterns, each `HOST`, `HOST:PORT`,
//! `:PORT` or `[IPv6]:PORT`; two patterns (joined by `,`, `-` or `>`) must match
//! the two ends of the flow.

use crate::flow::{Endpoint, FlowKey};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointPattern {
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
}

impl EndpointPattern {
    fn matches(&self, e: &Endpoint) -> bool {
        self.addr.is_none_or(|a| a == e.addr) && self.port.is_none_or(|p| p == e.port)
    }

    fn parse(s: &str) -> Result<EndpointPattern, String> {
        let s = s.trim();
        let bad = || format!("'{s}' is not HOST, HOST:PORT, :PORT or [IPv6]:PORT");
        let port = |p: &str| p.parse::<u16>().map_err(|_| format!("'{p}' is not a port number"));
        if let Some(rest) = s.strip_prefix('[') {
            let (host, tail) = rest.split_once(']').ok_or_else(bad)?;
            let addr = Some(host.parse().map_err(|_| bad())?);
            return match tail {
                "" => Ok(EndpointPattern { addr, port: None }),
                t => Ok(EndpointPattern {
                    addr,
                    port: Some(port(t.strip_prefix(':').ok_or_else(bad)?)?),
                }),
            };
        }
        if let Ok(addr) = s.parse::<IpAddr>() {
            return Ok(EndpointPattern {
                addr: Some(addr),
                port: None,
            });
        }
        let (host, p) = s.rsplit_once(':').ok_or_else(bad)?;
        let addr = match host {
            "" => None,
            h => Some(h.parse().map_err(|_| bad())?),
        };
        Ok(EndpointPattern {
            addr,
            port: Some(port(p)?),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowFilter {
    patterns: Vec<EndpointPattern>,
}

impl FlowFilter {
    pub fn parse(s: &str) -> Result<FlowFilter, String> {
        let patterns = s
            .split([',', '-', '>'])
            .filter(|p| !p.trim().is_empty())
            .map(EndpointPattern::parse)
            .collect::<Result<Vec<_>, _>>()?;
        match patterns.len() {
            1 | 2 => Ok(FlowFilter { patterns }),
            0 => Err("empty flow filter".into()),
            _ => Err(format!("'{s}': at most two endpoints")),
        }
    }

    pub fn matches(&self, k: &FlowKey) -> bool {
        match self.patterns.as_slice() {
            [p] => p.matches(&k.lo()) || p.matches(&k.hi()),
            [p, q] => (p.matches(&k.lo()) && q.matches(&k.hi())) || (p.matches(&k.hi()) && q.matches(&k.lo())),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(a: &str, b: &str) -> FlowKey {
        let ep = |s: &str| {
            let sa: std::net::SocketAddr = s.parse().unwrap();
            Endpoint {
                addr: sa.ip(),
                port: sa.port(),
            }
        };
        FlowKey::new(ep(a), ep(b), [0, 0]).0
    }

    #[test]
    fn matches_hosts_ports_and_pairs() {
        let k = key("10.0.0.1:40000", "10.0.0.2:80");
        for yes in [
            "10.0.0.2",
            ":80",
            "10.0.0.1:40000",
            "10.0.0.2:80-10.0.0.1:40000",
            "10.0.0.1:40000 > 10.0.0.2:80",
            ":80,:40000",
        ] {
            assert!(FlowFilter::parse(yes).unwrap().matches(&k), "{yes}");
        }
        for no in ["10.0.0.3", ":81", "10.0.0.1:80", ":80,:80"] {
            assert!(!FlowFilter::parse(no).unwrap().matches(&k), "{no}");
        }
    }

    #[test]
    fn ipv6_patterns() {
        let k = key("[fd00::1]:5000", "[fd00::2]:80");
        assert!(FlowFilter::parse("[fd00::2]:80").unwrap().matches(&k));
        assert!(FlowFilter::parse("fd00::1").unwrap().matches(&k));
        assert!(!FlowFilter::parse("[fd00::1]:80").unwrap().matches(&k));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in ["", "nothost", "10.0.0.1:99999", "[fd00::1", "a,b,c"] {
            assert!(FlowFilter::parse(bad).is_err(), "{bad}");
        }
    }
}
