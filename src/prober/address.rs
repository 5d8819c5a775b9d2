//! The address-resolution metrics every network prober shares.

use std::net::IpAddr;
use std::time::Instant;

use super::ProbeContext;
use super::metrics::GaugeSpec;
use super::reason::ProbeFailure;
use crate::net::NetError;
use crate::net::address::{self as resolve, AddressPolicy};
use crate::net::policy::Forbidden;

pub static DNS_LOOKUP_TIME: GaugeSpec = GaugeSpec::when_set(
    "probe_dns_lookup_time_seconds",
    "Returns the time taken for probe dns lookup in seconds",
);
pub static IP_PROTOCOL: GaugeSpec = GaugeSpec::when_set(
    "probe_ip_protocol",
    "Specifies whether probe ip protocol is IP4 or IP6",
);
pub static IP_ADDR_HASH: GaugeSpec = GaugeSpec::when_set(
    "probe_ip_addr_hash",
    "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
);

pub static METRICS: &[&GaugeSpec] = &[&DNS_LOOKUP_TIME, &IP_PROTOCOL, &IP_ADDR_HASH];

/// Resolve the target host and record the three address metrics (present,
/// as 0, even when resolution fails — blackbox registers them up front).
/// `phase` also receives the lookup time when the prober has a resolve phase.
pub async fn resolve_target(
    cx: &ProbeContext<'_>,
    host: &str,
    policy: AddressPolicy,
    phase: Option<&'static GaugeSpec>,
) -> Result<IpAddr, ProbeFailure> {
    cx.metrics.set(&DNS_LOOKUP_TIME, 0.0);
    cx.metrics.set(&IP_PROTOCOL, 0.0);
    cx.metrics.set(&IP_ADDR_HASH, 0.0);
    let protocol = policy.preferred.as_str();
    cx.log.info(
        "Resolving target address",
        &[("target", &host), ("ip_protocol", &protocol)],
    );
    // A name the policy refuses is not even looked up.
    cx.targets.check_name(host).map_err(|e| refused(cx, e))?;
    let start = Instant::now();
    let result = resolve::resolve(host, policy).await;
    let elapsed = start.elapsed().as_secs_f64();
    cx.metrics.set(&DNS_LOOKUP_TIME, elapsed);
    if let Some(spec) = phase {
        cx.metrics.add_labelled(spec, &["resolve"], elapsed);
    }
    match result {
        Ok(ip) => {
            cx.metrics
                .set(&IP_PROTOCOL, if ip.is_ipv4() { 4.0 } else { 6.0 });
            cx.metrics
                .set(&IP_ADDR_HASH, f64::from(resolve::ip_hash(&ip)));
            cx.log
                .info("Resolved target address", &[("target", &host), ("ip", &ip)]);
            cx.targets
                .check_address(host, ip)
                .map_err(|e| refused(cx, e))?;
            Ok(ip)
        }
        Err(e) => {
            cx.log.error("Error resolving address", &[("err", &e)]);
            Err(e.into())
        }
    }
}

fn refused(cx: &ProbeContext<'_>, e: Forbidden) -> ProbeFailure {
    cx.log
        .error("Target refused by the target policy", &[("err", &e)]);
    ProbeFailure::from(NetError::Forbidden(e))
}

/// Split a `host:port` target (IPv6 literals in brackets).
pub fn split_host_port(target: &str) -> Result<(String, u16), ProbeFailure> {
    let bad = |why: &str| {
        ProbeFailure::new(
            super::reason::FailureReason::InvalidTarget,
            format!("Error splitting target address and port: {why}: {target:?}"),
        )
    };
    let (host, port) = target.rsplit_once(':').ok_or_else(|| bad("missing port"))?;
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad("too many colons in address"));
    }
    let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
    let host = resolve::unbracket(host);
    // Brackets only enclose the whole host, as Go's SplitHostPort has it:
    // `[[::1]]:80` or `a]:80` is not a target.
    if let Some(c) = host.chars().find(|c| matches!(c, '[' | ']')) {
        return Err(bad(&format!("unexpected '{c}' in address")));
    }
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    Ok((host.to_string(), port))
}

/// `host:port`, or a bare host (name, IPv4, IPv6 with or without
/// brackets) on the default port, as blackbox reads a dns or grpc target.
pub fn split_target(target: &str, default_port: u16) -> Result<(String, u16), ProbeFailure> {
    if let Ok(split) = split_host_port(target) {
        return Ok(split);
    }
    let host = resolve::unbracket(target);
    let bare = !host.is_empty()
        && !host.contains(['[', ']'])
        && (!host.contains(':') || host.parse::<std::net::Ipv6Addr>().is_ok());
    if bare {
        return Ok((host.to_string(), default_port));
    }
    // Not a bare host: the host:port error says what is wrong.
    split_host_port(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_targets() {
        assert_eq!(
            split_host_port("localhost:22").unwrap(),
            ("localhost".into(), 22)
        );
        assert_eq!(split_host_port("[::1]:443").unwrap(), ("::1".into(), 443));
        assert!(split_host_port("localhost").is_err());
        assert!(split_host_port("::1:443").is_err());
        assert!(split_host_port(":80").is_err());
        assert!(split_host_port("a:99999").is_err());
    }

    #[test]
    fn stray_brackets_are_refused() {
        // Found by proptests::agrees_with_go_split_host_port: these were
        // accepted with the brackets kept in the host ("[[::1]]:80" gave
        // "[::1]", which the resolver then unbracketed again).
        for bad in ["[:1", "[:+1", "a]:80", "[[::1]]:80", "[a]]:80", "[a]b:80"] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
        assert_eq!(split_host_port("[a:b]:80").unwrap(), ("a:b".into(), 80));
    }
}

#[cfg(test)]
mod proptests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::net::address::authority;

    /// Go's `net.SplitHostPort`, restated from its documentation: a
    /// bracketed host must be followed by `:port`, an unbracketed host has
    /// no colon, and no stray `[` or `]` may appear anywhere else.
    fn go_split(t: &str) -> Option<(&str, &str)> {
        let i = t.rfind(':')?;
        let (host, rest_from) = if let Some(inner) = t.strip_prefix('[') {
            let end = inner.find(']')? + 1;
            if end + 1 != i {
                return None;
            }
            (&t[1..end], end + 1)
        } else {
            let host = &t[..i];
            if host.contains(':') {
                return None;
            }
            (host, 0)
        };
        let inside = if rest_from == 0 { t } else { &t[1..] };
        let after = &t[rest_from..];
        if inside.contains('[') || after.contains(']') {
            return None;
        }
        Some((host, &t[i + 1..]))
    }

    fn dns_name() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,3}"
    }

    /// A host as a target carries it (IPv6 in brackets) and as
    /// `split_host_port` should return it.
    fn host() -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            dns_name().prop_map(|h| (h.clone(), h)),
            any::<Ipv4Addr>().prop_map(|ip| (ip.to_string(), ip.to_string())),
            any::<Ipv6Addr>().prop_map(|ip| (format!("[{ip}]"), ip.to_string())),
        ]
    }

    /// `<host-ish>:<port-ish>` made of the characters that matter to the
    /// split (brackets, colons).
    fn target_like() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(prop::sample::select(&["[", "]", ":", "::1", "a"][..]), 0..6),
            prop::sample::select(&["80", "65536", "+1", ""][..]),
        )
            .prop_map(|(host, port)| format!("{}:{port}", host.concat()))
    }

    proptest! {
        #![proptest_config(crate::net::proptest_config(256))]

        #[test]
        fn generated_host_and_port_come_back(
            (written, want) in host(),
            port in any::<u16>(),
        ) {
            let got = split_host_port(&format!("{written}:{port}"));
            prop_assert_eq!(got.ok(), Some((want.clone(), port)));
            // authority() writes what split_host_port reads.
            prop_assert_eq!(split_host_port(&authority(&want, port)).ok(), Some((want, port)));
        }

        #[test]
        fn ipv6_without_brackets_is_refused(ip in any::<Ipv6Addr>(), port in any::<u16>()) {
            let target = format!("{ip}:{port}");
            prop_assert!(split_host_port(&target).is_err(), "{}", target);
        }

        #[test]
        fn agrees_with_go_split_host_port(t in prop_oneof![target_like(), "\\PC{0,16}"]) {
            let ours = split_host_port(&t).ok();
            let go = go_split(&t)
                .filter(|(h, _)| !h.is_empty())
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)));
            prop_assert_eq!(ours, go, "{:?}", t);
        }
    }
}
