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

#[cfg(test)]
mod proptests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    fn v4_mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        }
    }

    fn v6_mask(prefix: u8) -> u128 {
        if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(prefix))
        }
    }

    /// An IPv6 address that is not IPv4-mapped (those count as IPv4).
    fn plain_v6() -> impl Strategy<Value = Ipv6Addr> {
        any::<Ipv6Addr>().prop_filter("IPv4-mapped", |ip| ip.to_ipv4_mapped().is_none())
    }

    /// Another address near `base` (sharing a random number of leading
    /// bits), so both sides of the prefix boundary are exercised.
    fn near_v4(base: Ipv4Addr, keep: u8, noise: u32) -> Ipv4Addr {
        let m = v4_mask(keep.min(32));
        Ipv4Addr::from((u32::from(base) & m) | (noise & !m))
    }

    fn near_v6(base: Ipv6Addr, keep: u8, noise: u128) -> Ipv6Addr {
        let m = v6_mask(keep.min(128));
        Ipv6Addr::from((u128::from(base) & m) | (noise & !m))
    }

    fn dns_name() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,3}"
    }

    proptest! {
        #![proptest_config(crate::net::proptest_config(256))]

        #[test]
        fn v4_ranges_contain_exactly_their_prefix(
            ip in any::<Ipv4Addr>(),
            prefix in 0u8..=32,
            keep in 0u8..=32,
            noise in any::<u32>(),
        ) {
            let c = Cidr::parse(&format!("{ip}/{prefix}")).expect("valid CIDR");
            let network = Ipv4Addr::from(u32::from(ip) & v4_mask(prefix));
            prop_assert!(c.contains(IpAddr::V4(network)));
            prop_assert!(c.contains(IpAddr::V4(ip)));
            let other = near_v4(ip, keep, noise);
            let inside = u32::from(other) & v4_mask(prefix) == u32::from(network);
            prop_assert_eq!(c.contains(IpAddr::V4(other)), inside);
            // IPv4-mapped IPv6 is the IPv4 address it maps.
            prop_assert_eq!(c.contains(IpAddr::V6(other.to_ipv6_mapped())), inside);
            prop_assert_eq!(Cidr::parse(&c.to_string()), Ok(c));
        }

        #[test]
        fn v6_ranges_contain_exactly_their_prefix(
            ip in plain_v6(),
            prefix in 0u8..=128,
            keep in 0u8..=128,
            noise in any::<u128>(),
            v4 in any::<Ipv4Addr>(),
        ) {
            let c = Cidr::parse(&format!("{ip}/{prefix}")).expect("valid CIDR");
            let network = Ipv6Addr::from(u128::from(ip) & v6_mask(prefix));
            prop_assert!(c.contains(IpAddr::V6(ip)));
            let other = near_v6(ip, keep, noise);
            prop_assume!(other.to_ipv4_mapped().is_none());
            let inside = u128::from(other) & v6_mask(prefix) == u128::from(network);
            prop_assert_eq!(c.contains(IpAddr::V6(other)), inside);
            if network.to_ipv4_mapped().is_none() {
                prop_assert!(c.contains(IpAddr::V6(network)));
            }
            prop_assert!(!c.contains(IpAddr::V4(v4)));
            prop_assert_eq!(Cidr::parse(&c.to_string()), Ok(c));
            prop_assert_eq!(Cidr::parse(&format!("[{ip}]/{prefix}")), Ok(c));
        }

        #[test]
        fn a_mapped_range_is_the_ipv4_range(ip in any::<Ipv4Addr>(), prefix in 96u8..=128) {
            let mapped = Cidr::parse(&format!("{}/{prefix}", ip.to_ipv6_mapped()));
            let plain = Cidr::parse(&format!("{ip}/{}", prefix - 96));
            prop_assert_eq!(mapped, plain);
        }

        #[test]
        fn a_bare_address_is_a_single_address(
            a in prop_oneof![any::<Ipv4Addr>().prop_map(IpAddr::V4), plain_v6().prop_map(IpAddr::V6)],
            b in prop_oneof![any::<Ipv4Addr>().prop_map(IpAddr::V4), plain_v6().prop_map(IpAddr::V6)],
        ) {
            let c = Cidr::parse(&a.to_string()).expect("an address");
            prop_assert!(c.contains(a));
            prop_assert_eq!(c.contains(b), a == b);
        }

        #[test]
        fn out_of_range_prefixes_are_errors(
            ip in prop_oneof![any::<Ipv4Addr>().prop_map(IpAddr::V4), plain_v6().prop_map(IpAddr::V6)],
            over in 1u32..1000,
        ) {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let text = format!("{ip}/{}", max + over);
            prop_assert!(Cidr::parse(&text).is_err(), "{}", text);
        }

        #[test]
        fn cidr_parsing_never_panics(s in prop_oneof![
            "\\PC{0,40}",
            "[0-9a-f:.\\[\\]/ ]{0,40}",
        ]) {
            if let Ok(c) = Cidr::parse(&s) {
                prop_assert_eq!(Cidr::parse(&c.to_string()), Ok(c));
            }
        }

        #[test]
        fn authorities_bracket_exactly_ipv6(
            host in prop_oneof![
                dns_name(),
                any::<Ipv4Addr>().prop_map(|ip| ip.to_string()),
                any::<Ipv6Addr>().prop_map(|ip| ip.to_string()),
            ],
            port in any::<u16>(),
        ) {
            let is_v6 = host.parse::<Ipv6Addr>().is_ok();
            let a = authority(&host, port);
            let want = if is_v6 { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
            prop_assert_eq!(&a, &want);
            if is_v6 {
                prop_assert_eq!(authority(&format!("[{host}]"), port), want);
            }
            // And host_without_port takes it apart again.
            prop_assert_eq!(host_without_port(&a), host.clone());
            let bracketed = if is_v6 { format!("[{host}]") } else { host.clone() };
            prop_assert_eq!(host_without_port(&bracketed), host);
        }

        #[test]
        fn host_without_port_never_panics(s in "\\PC{0,24}") {
            let h = host_without_port(&s);
            prop_assert!(s.contains(&h), "{:?} -> {:?}", s, h);
        }
    }
}
