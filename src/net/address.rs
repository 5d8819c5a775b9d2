//! Address selection with blackbox's `preferred_ip_protocol` /
//! `ip_protocol_fallback` semantics: exactly one address is probed, no happy
//! eyeballs, so an outage of one family stays visible.

use std::net::{IpAddr, Ipv6Addr};

use super::NetError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpProtocol {
    V4,
    V6,
}

impl IpProtocol {
    /// blackbox's spelling (`ip4`, `ip6`).
    pub fn as_str(self) -> &'static str {
        match self {
            IpProtocol::V4 => "ip4",
            IpProtocol::V6 => "ip6",
        }
    }
}

/// `preferred_ip_protocol` + `ip_protocol_fallback` (defaults ip6 / true).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPolicy {
    pub preferred: IpProtocol,
    pub fallback: bool,
}

impl Default for AddressPolicy {
    fn default() -> Self {
        Self {
            preferred: IpProtocol::V6,
            fallback: true,
        }
    }
}

/// An address range (`10.0.0.0/8`, `fe80::/10`); a bare address is a /32
/// or /128. IPv4-mapped IPv6 addresses count as the IPv4 address they map,
/// on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = unbracket(addr)
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: prefix length must be 0 to {max}"))?,
        };
        Ok(match addr {
            IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => Cidr {
                addr: addr.to_canonical(),
                prefix: prefix - 96,
            },
            _ => Cidr { addr, prefix },
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Strip the brackets of an IPv6 URL host (`[::1]`).
pub fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// `host:port`, with an IPv6 literal in brackets (a CONNECT authority).
pub fn authority(host: &str, port: u16) -> String {
    let host = unbracket(host);
    if host.parse::<Ipv6Addr>().is_ok() {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `host[:port]` (as a Host header or `hostname` parameter may carry it)
/// without the port; IPv6 literals lose their brackets.
pub fn host_without_port(host: &str) -> String {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h.to_string(),
        _ => host.to_string(),
    }
}

fn family(ip: &IpAddr) -> IpProtocol {
    match ip {
        IpAddr::V4(_) => IpProtocol::V4,
        IpAddr::V6(_) => IpProtocol::V6,
    }
}

/// Resolve `host` to the one address the probe will use.
///
/// With fallback: the first address of the preferred family in resolver
/// order, else the last one of the other family. Without: the first address
/// of the preferred family, or an error. IP literals resolve to themselves.
/// The lookup runs getaddrinfo on tokio's blocking pool (hosts file and
/// nsswitch honoured, as Go's resolver does).
pub async fn resolve(host: &str, policy: AddressPolicy) -> Result<IpAddr, NetError> {
    let host = unbracket(host);
    if let Ok(ip) = host.parse::<IpAddr>() {
        if !policy.fallback && family(&ip) != policy.preferred {
            return Err(NetError::Resolve(format!(
                "address {ip} is not of the required IP protocol and fallback is disabled"
            )));
        }
        return Ok(ip);
    }
    if host.is_empty() {
        return Err(NetError::Resolve("empty host name".into()));
    }
    let addrs: Vec<IpAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| NetError::Resolve(format!("lookup {host}: {e}")))?
        .map(|sa| sa.ip())
        .collect();
    select_address(&addrs, policy)
        .ok_or_else(|| NetError::Resolve(format!("unable to find ip for {host}; no fallback")))
}

/// The selection rule alone, separate from the lookup so it is testable.
pub fn select_address(addrs: &[IpAddr], policy: AddressPolicy) -> Option<IpAddr> {
    if let Some(ip) = addrs.iter().find(|ip| family(ip) == policy.preferred) {
        return Some(*ip);
    }
    if policy.fallback {
        return addrs
            .iter()
            .rev()
            .find(|ip| family(ip) != policy.preferred)
            .copied();
    }
    None
}

/// FNV-1a 32-bit over the address bytes (`probe_ip_addr_hash`).
pub fn ip_hash(ip: &IpAddr) -> u32 {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(preferred: IpProtocol, fallback: bool) -> AddressPolicy {
        AddressPolicy {
            preferred,
            fallback,
        }
    }

    #[test]
    fn hash_matches_blackbox_for_loopback() {
        // blackbox 0.23 reports 3.668918509e+09 for 127.0.0.1.
        assert_eq!(ip_hash(&"127.0.0.1".parse().unwrap()), 3_668_918_509);
    }

    #[test]
    fn strips_ports() {
        assert_eq!(host_without_port("a.test:8443"), "a.test");
        assert_eq!(host_without_port("a.test"), "a.test");
        assert_eq!(host_without_port("[::1]:443"), "::1");
        assert_eq!(host_without_port("::1"), "::1");
    }

    #[test]
    fn ranges() {
        let c = |s: &str| Cidr::parse(s).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(c("127.0.0.0/8").contains(ip("127.1.2.3")));
        assert!(!c("127.0.0.0/8").contains(ip("128.0.0.1")));
        assert!(c("0.0.0.0/0").contains(ip("1.2.3.4")));
        assert!(!c("0.0.0.0/0").contains(ip("::1")));
        assert!(c("::/0").contains(ip("::1")));
        assert!(c("10.0.0.1").contains(ip("10.0.0.1")));
        assert!(!c("10.0.0.1").contains(ip("10.0.0.2")));
        assert!(c("fe80::/10").contains(ip("fe80::1")));
        assert!(c("169.254.0.0/16").contains(ip("::ffff:169.254.169.254")));
        assert!(c("::ffff:169.254.0.0/112").contains(ip("169.254.1.1")));
        assert!(c("[::1]").contains(ip("::1")));
        assert_eq!(c("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("::/129").is_err());
        assert!(Cidr::parse("nope/8").is_err());
        assert!(Cidr::parse("10.0.0.0/x").is_err());
    }

    #[test]
    fn authorities() {
        assert_eq!(authority("a.test", 443), "a.test:443");
        assert_eq!(authority("::1", 8443), "[::1]:8443");
        assert_eq!(authority("[::1]", 8443), "[::1]:8443");
        assert_eq!(authority("127.0.0.1", 80), "127.0.0.1:80");
    }

    #[test]
    fn selection_rules() {
        let v4a: IpAddr = "127.0.0.1".parse().unwrap();
        let v4b: IpAddr = "127.0.0.2".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(
            select_address(&[v4a, v6], p(IpProtocol::V6, true)),
            Some(v6)
        );
        assert_eq!(
            select_address(&[v4a, v4b], p(IpProtocol::V6, true)),
            Some(v4b)
        );
        assert_eq!(select_address(&[v4a, v4b], p(IpProtocol::V6, false)), None);
        assert_eq!(
            select_address(&[v6, v4a], p(IpProtocol::V4, false)),
            Some(v4a)
        );
        assert_eq!(select_address(&[], p(IpProtocol::V4, true)), None);
    }

    #[tokio::test]
    async fn literals_and_localhost() {
        let ip = resolve("[::1]", AddressPolicy::default()).await.unwrap();
        assert_eq!(ip, "::1".parse::<IpAddr>().unwrap());
        let ip = resolve("localhost", p(IpProtocol::V4, false))
            .await
            .unwrap();
        assert!(ip.is_loopback());
        assert!(
            resolve("no-such-host.invalid", AddressPolicy::default())
                .await
                .is_err()
        );
    }
}
