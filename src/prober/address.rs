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
