//! `icmp:` — blackbox's ICMP prober block: the keys as written, blackbox's
//! validation (`ttl` within 0-255) plus what blackbox would only find out
//! per probe (a negative or impossible `payload_size`, a malformed
//! `source_ip_address`) as load errors naming the key.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::config::file::is_default;
use crate::config::load::show_address;
use crate::config::{ConfigError, Ctx};
use crate::net::address::AddressPolicy;

/// `icmp:` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IcmpProbeFile {
    #[serde(skip_serializing_if = "is_default")]
    pub preferred_ip_protocol: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub ip_protocol_fallback: Option<bool>,
    #[serde(skip_serializing_if = "is_default")]
    pub source_ip_address: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub payload_size: Option<i64>,
    #[serde(skip_serializing_if = "is_default")]
    pub dont_fragment: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub ttl: Option<i64>,
}

/// A validated `icmp:` block.
#[derive(Debug, Clone)]
pub struct IcmpSettings {
    pub address: AddressPolicy,
    pub source_ip_address: Option<IpAddr>,
    /// 0: blackbox's 28-byte text.
    pub payload_size: usize,
    /// IPv4 only: IPv6 routers never fragment, so blackbox ignores it there.
    pub dont_fragment: bool,
    /// The request's TTL / hop limit; 0 keeps the system's.
    pub ttl: u8,
}

/// blackbox's default `ttl`.
pub const DEFAULT_TTL: i64 = 64;
/// The largest echo payload an IPv4 packet carries (65535 − 20 − 8).
pub const MAX_PAYLOAD: i64 = 65507;

pub fn build(ctx: &Ctx<'_>, b: &IcmpProbeFile) -> Result<IcmpSettings, ConfigError> {
    let ttl = b.ttl.unwrap_or(DEFAULT_TTL);
    if ttl < 0 {
        return Err(ctx.err("icmp.ttl", "\"ttl\" cannot be negative"));
    }
    let ttl = u8::try_from(ttl).map_err(|_| ctx.err("icmp.ttl", "\"ttl\" cannot exceed 255"))?;
    let payload_size = b.payload_size.unwrap_or(0);
    if !(0..=MAX_PAYLOAD).contains(&payload_size) {
        return Err(ctx.err(
            "icmp.payload_size",
            format!("must be between 0 and {MAX_PAYLOAD} bytes, got {payload_size}"),
        ));
    }
    let source_ip_address = match b.source_ip_address.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(s.parse().map_err(|_| {
            ctx.err(
                "icmp.source_ip_address",
                format!("invalid IP address {s:?}"),
            )
        })?),
    };
    Ok(IcmpSettings {
        address: ctx.address_policy("icmp", &b.preferred_ip_protocol, b.ip_protocol_fallback)?,
        source_ip_address,
        // Within 0..=65507, checked above.
        payload_size: usize::try_from(payload_size).unwrap_or_default(),
        dont_fragment: b.dont_fragment,
        ttl,
    })
}

/// The block as shown: blackbox's defaults filled in.
pub fn shown(mut b: IcmpProbeFile) -> IcmpProbeFile {
    show_address(&mut b.preferred_ip_protocol, &mut b.ip_protocol_fallback);
    b.ttl.get_or_insert(DEFAULT_TTL);
    b
}

#[cfg(test)]
mod tests {
    use super::IcmpSettings;
    use crate::net::address::IpProtocol;
    use crate::prober::registry::ProberSettings;
    use crate::prober::registry::test_support::*;

    fn icmp_module(body: &str) -> String {
        prober_module("i", "icmp", body)
    }

    fn icmp(body: &str) -> IcmpSettings {
        let c = load(&icmp_module(body)).expect("loads");
        match &module(&c, "i").prober {
            ProberSettings::Icmp(i) => i.clone(),
            other => panic!("not icmp: {}", other.name()),
        }
    }

    #[test]
    fn defaults() {
        let i = icmp("");
        assert_eq!(i.ttl, 64);
        assert_eq!(i.payload_size, 0);
        assert!(!i.dont_fragment);
        assert_eq!(i.source_ip_address, None);
        assert_eq!(i.address.preferred, IpProtocol::V6);
        assert!(i.address.fallback);
        let c = load(&icmp_module("")).expect("loads");
        assert_contains(
            &module(&c, "i").masked_yaml,
            &[
                "ttl: 64",
                "preferred_ip_protocol: ip6",
                "ip_protocol_fallback: true",
            ],
        );
    }

    #[test]
    fn every_key() {
        let i = icmp(
            "preferred_ip_protocol: ip4\nip_protocol_fallback: false\nsource_ip_address: 127.0.0.2\npayload_size: 1200\ndont_fragment: true\nttl: 5\n",
        );
        assert_eq!(i.address.preferred, IpProtocol::V4);
        assert!(!i.address.fallback);
        assert_eq!(i.source_ip_address, Some("127.0.0.2".parse().expect("ip")));
        assert_eq!(i.payload_size, 1200);
        assert!(i.dont_fragment);
        assert_eq!(i.ttl, 5);
        assert_eq!(icmp("ttl: 0").ttl, 0);
        assert_eq!(icmp("ttl: 255").ttl, 255);
        assert_eq!(icmp("payload_size: 65507").payload_size, 65507);
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (body, key, says) in [
            ("ttl: -1", "icmp.ttl", "cannot be negative"),
            ("ttl: 256", "icmp.ttl", "cannot exceed 255"),
            (
                "payload_size: -1",
                "icmp.payload_size",
                "between 0 and 65507",
            ),
            (
                "payload_size: 65508",
                "icmp.payload_size",
                "between 0 and 65507",
            ),
            (
                "source_ip_address: nope",
                "icmp.source_ip_address",
                "invalid IP",
            ),
            (
                "preferred_ip_protocol: ip5",
                "icmp.preferred_ip_protocol",
                "ip4",
            ),
            // A value of the wrong type: the parser names the line.
            ("ttl: abc", "line 5", ""),
            ("dont_fragment: maybe", "line 5", ""),
        ] {
            let e = load_err(&icmp_module(body));
            assert_contains(&e, &[key, says]);
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = load_err(&icmp_module("count: 3"));
        assert_contains(&e, &["count"]);
    }
}
