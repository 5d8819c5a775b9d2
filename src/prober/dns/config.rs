//! `dns:` — blackbox's DNS prober block: the keys as written, validation
//! (strict: what blackbox would only find out per probe — a transport that
//! is not udp or tcp, DoT over udp, an rcode name it does not know — is a
//! load error here), and the settings a probe uses.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::{DNSClass, Name, RecordType};
use serde::{Deserialize, Serialize};

use crate::config::file::is_default;
use crate::config::load::{non_empty, show_address};
use crate::config::tls::{TlsConfigFile, build_tls};
use crate::config::{ConfigError, Ctx};
use crate::net::address::AddressPolicy;
use crate::net::tls::TlsClient;

/// `dns:` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsProbeFile {
    #[serde(skip_serializing_if = "is_default")]
    pub preferred_ip_protocol: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub ip_protocol_fallback: Option<bool>,
    #[serde(skip_serializing_if = "is_default")]
    pub source_ip_address: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub transport_protocol: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub dns_over_tls: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub tls_config: Option<TlsConfigFile>,
    #[serde(skip_serializing_if = "is_default")]
    pub query_name: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub query_type: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub query_class: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub recursion_desired: Option<bool>,
    #[serde(skip_serializing_if = "is_default")]
    pub valid_rcodes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_default")]
    pub validate_answer_rrs: Option<RrValidatorFile>,
    #[serde(skip_serializing_if = "is_default")]
    pub validate_authority_rrs: Option<RrValidatorFile>,
    #[serde(skip_serializing_if = "is_default")]
    pub validate_additional_rrs: Option<RrValidatorFile>,
}

/// One `validate_*_rrs` block as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RrValidatorFile {
    #[serde(skip_serializing_if = "is_default")]
    pub fail_if_matches_regexp: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub fail_if_all_match_regexp: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub fail_if_not_matches_regexp: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub fail_if_none_matches_regexp: Vec<String>,
}

/// A section's checks, regexes compiled at load (semantics in
/// [`super::rr::validate`]).
#[derive(Debug, Clone, Default)]
pub struct RrValidator {
    pub fail_if_matches: Vec<regex::Regex>,
    pub fail_if_all_match: Vec<regex::Regex>,
    pub fail_if_not_matches: Vec<regex::Regex>,
    pub fail_if_none_matches: Vec<regex::Regex>,
}

/// `transport_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A validated `dns:` block.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    pub address: AddressPolicy,
    pub source_ip_address: Option<IpAddr>,
    pub transport: Transport,
    pub dns_over_tls: bool,
    pub tls_client: Arc<TlsClient>,
    /// Fully qualified (blackbox appends the root dot too).
    pub query_name: Name,
    pub query_type: RecordType,
    pub query_class: DNSClass,
    pub recursion_desired: bool,
    /// rcode numbers (the names resolved at load).
    pub valid_rcodes: Vec<u16>,
    pub validate_answer: RrValidator,
    pub validate_authority: RrValidator,
    pub validate_additional: RrValidator,
}

impl DnsSettings {
    /// The port of a target without one: 53, or 853 for DoT (RFC 7858).
    pub fn default_port(&self) -> u16 {
        if self.dns_over_tls { 853 } else { 53 }
    }
}

/// miekg/dns's rcode names (what blackbox accepts in `valid_rcodes`);
/// BADSIG and BADVERS share 16 there too.
const RCODES: &[(&str, u16)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
    ("BADSIG", 16),
    ("BADVERS", 16),
    ("BADKEY", 17),
    ("BADTIME", 18),
    ("BADMODE", 19),
    ("BADNAME", 20),
    ("BADALG", 21),
    ("BADTRUNC", 22),
    ("BADCOOKIE", 23),
];

/// The name of an rcode number, as miekg/dns prints it (for the log).
pub fn rcode_name(code: u16) -> String {
    RCODES
        .iter()
        .find(|(_, c)| *c == code)
        .map_or_else(|| code.to_string(), |(n, _)| (*n).to_string())
}

/// miekg/dns's class mnemonics (`StringToClass`).
const CLASSES: &[(&str, u16)] = &[
    ("IN", 1),
    ("CS", 2),
    ("CH", 3),
    ("HS", 4),
    ("NONE", 254),
    ("ANY", 255),
];

/// Type mnemonics miekg/dns knows and hickory's parser does not; hickory
/// covers the common ones (A, AAAA, MX, SOA, TXT, ANY ...).
const EXTRA_TYPES: &[(&str, u16)] = &[
    ("MD", 3),
    ("MF", 4),
    ("MB", 7),
    ("MG", 8),
    ("MR", 9),
    ("WKS", 11),
    ("MINFO", 14),
    ("RP", 17),
    ("AFSDB", 18),
    ("X25", 19),
    ("ISDN", 20),
    ("RT", 21),
    ("NSAPPTR", 23),
    ("PX", 26),
    ("GPOS", 27),
    ("LOC", 29),
    ("NXT", 30),
    ("EID", 31),
    ("NIMLOC", 32),
    ("ATMA", 34),
    ("KX", 36),
    ("A6", 38),
    ("APL", 42),
    ("DHCID", 49),
    ("HIP", 55),
    ("NINFO", 56),
    ("RKEY", 57),
    ("TALINK", 58),
    ("ZONEMD", 63),
    ("SPF", 99),
    ("UINFO", 100),
    ("UID", 101),
    ("GID", 102),
    ("UNSPEC", 103),
    ("NID", 104),
    ("L32", 105),
    ("L64", 106),
    ("LP", 107),
    ("EUI48", 108),
    ("EUI64", 109),
    ("TKEY", 249),
    ("IXFR", 251),
    ("MAILB", 253),
    ("MAILA", 254),
    ("URI", 256),
    ("AVC", 258),
    ("AMTRELAY", 260),
    ("TA", 32768),
    ("DLV", 32769),
];

/// A type mnemonic, upper case as miekg/dns's table has them (`a` is not
/// a type for blackbox either).
fn parse_type(text: &str) -> Option<RecordType> {
    if text == "*" {
        // hickory takes `*` for ANY; miekg/dns does not.
        return None;
    }
    text.parse::<RecordType>().ok().or_else(|| {
        EXTRA_TYPES
            .iter()
            .find(|(n, _)| *n == text)
            .map(|(_, code)| RecordType::from(*code))
    })
}

fn parse_class(text: &str) -> Option<DNSClass> {
    CLASSES
        .iter()
        .find(|(n, _)| *n == text)
        .map(|(_, code)| DNSClass::from(*code))
}

fn regexes(
    ctx: &Ctx<'_>,
    key: &str,
    patterns: &[String],
) -> Result<Vec<regex::Regex>, ConfigError> {
    patterns.iter().map(|p| ctx.regex(key, p)).collect()
}

fn validator(
    ctx: &Ctx<'_>,
    key: &str,
    v: Option<&RrValidatorFile>,
) -> Result<RrValidator, ConfigError> {
    let Some(v) = v else {
        return Ok(RrValidator::default());
    };
    Ok(RrValidator {
        fail_if_matches: regexes(
            ctx,
            &format!("{key}.fail_if_matches_regexp"),
            &v.fail_if_matches_regexp,
        )?,
        fail_if_all_match: regexes(
            ctx,
            &format!("{key}.fail_if_all_match_regexp"),
            &v.fail_if_all_match_regexp,
        )?,
        fail_if_not_matches: regexes(
            ctx,
            &format!("{key}.fail_if_not_matches_regexp"),
            &v.fail_if_not_matches_regexp,
        )?,
        fail_if_none_matches: regexes(
            ctx,
            &format!("{key}.fail_if_none_matches_regexp"),
            &v.fail_if_none_matches_regexp,
        )?,
    })
}

pub fn build(ctx: &Ctx<'_>, d: &DnsProbeFile) -> Result<DnsSettings, ConfigError> {
    let query_name = match non_empty(&d.query_name) {
        None => {
            return Err(ctx.err("dns.query_name", "query name must be set for DNS module"));
        }
        Some(text) => {
            let mut name = Name::from_ascii(text).map_err(|e| {
                ctx.err(
                    "dns.query_name",
                    format!("invalid query name {text:?}: {e}"),
                )
            })?;
            name.set_fqdn(true);
            name
        }
    };
    let query_type = match non_empty(&d.query_type) {
        None => RecordType::ANY,
        Some(t) => parse_type(t)
            .ok_or_else(|| ctx.err("dns.query_type", format!("query type '{t}' is not valid")))?,
    };
    let query_class = match non_empty(&d.query_class) {
        None => DNSClass::IN,
        Some(c) => parse_class(c)
            .ok_or_else(|| ctx.err("dns.query_class", format!("query class '{c}' is not valid")))?,
    };
    let transport = match non_empty(&d.transport_protocol) {
        None | Some("udp") => Transport::Udp,
        Some("tcp") => Transport::Tcp,
        Some(other) => {
            return Err(ctx.err(
                "dns.transport_protocol",
                format!("expected transport protocol udp or tcp, got {other:?}"),
            ));
        }
    };
    if d.dns_over_tls && transport != Transport::Tcp {
        return Err(ctx.err(
            "dns.dns_over_tls",
            "DNS over TLS needs transport_protocol: tcp",
        ));
    }
    let names = d.valid_rcodes.as_deref().unwrap_or_default();
    let mut valid_rcodes = Vec::with_capacity(names.len().max(1));
    for name in names {
        let code = RCODES
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| *c)
            .ok_or_else(|| ctx.err("dns.valid_rcodes", format!("invalid rcode {name:?}")))?;
        valid_rcodes.push(code);
    }
    // An empty list means NOERROR, as in blackbox.
    if valid_rcodes.is_empty() {
        valid_rcodes.push(0);
    }
    let source_ip_address =
        match d.source_ip_address.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(s.parse().map_err(|_| {
                ctx.err("dns.source_ip_address", format!("invalid IP address {s:?}"))
            })?),
        };
    Ok(DnsSettings {
        address: ctx.address_policy("dns", &d.preferred_ip_protocol, d.ip_protocol_fallback)?,
        source_ip_address,
        transport,
        dns_over_tls: d.dns_over_tls,
        tls_client: build_tls(ctx, "dns", d.tls_config.as_ref())?,
        query_name,
        query_type,
        query_class,
        recursion_desired: d.recursion_desired.unwrap_or(true),
        valid_rcodes,
        validate_answer: validator(
            ctx,
            "dns.validate_answer_rrs",
            d.validate_answer_rrs.as_ref(),
        )?,
        validate_authority: validator(
            ctx,
            "dns.validate_authority_rrs",
            d.validate_authority_rrs.as_ref(),
        )?,
        validate_additional: validator(
            ctx,
            "dns.validate_additional_rrs",
            d.validate_additional_rrs.as_ref(),
        )?,
    })
}

/// The block as shown: blackbox's defaults filled in.
pub fn shown(mut d: DnsProbeFile) -> DnsProbeFile {
    show_address(&mut d.preferred_ip_protocol, &mut d.ip_protocol_fallback);
    for (key, default) in [
        (&mut d.query_type, "ANY"),
        (&mut d.query_class, "IN"),
        (&mut d.transport_protocol, "udp"),
    ] {
        if non_empty(key).is_none() {
            *key = Some(default.to_string());
        }
    }
    d.recursion_desired.get_or_insert(true);
    if d.valid_rcodes.as_ref().is_none_or(Vec::is_empty) {
        d.valid_rcodes = Some(vec!["NOERROR".to_string()]);
    }
    d
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::{DNSClass, RecordType};

    use super::{DnsSettings, Transport};
    use crate::net::address::IpProtocol;
    use crate::prober::registry::ProberSettings;
    use crate::prober::registry::test_support::*;

    fn dns_module(body: &str) -> String {
        prober_module("d", "dns", body)
    }

    fn dns(body: &str) -> DnsSettings {
        let c = load(&dns_module(body)).expect("loads");
        match &module(&c, "d").prober {
            ProberSettings::Dns(d) => d.clone(),
            other => panic!("not dns: {}", other.name()),
        }
    }

    #[test]
    fn defaults() {
        let d = dns("query_name: example.com");
        assert_eq!(d.query_name.to_string(), "example.com.");
        assert_eq!(d.query_type, RecordType::ANY);
        assert_eq!(d.query_class, DNSClass::IN);
        assert_eq!(d.transport, Transport::Udp);
        assert!(d.recursion_desired);
        assert!(!d.dns_over_tls);
        assert_eq!(d.valid_rcodes, vec![0]);
        assert_eq!(d.default_port(), 53);
        assert_eq!(d.address.preferred, IpProtocol::V6);
        assert!(d.validate_answer.fail_if_matches.is_empty());
        // The shown block carries the defaults.
        let c = load(&dns_module("query_name: example.com")).expect("loads");
        let shown = &module(&c, "d").masked_yaml;
        assert_contains(
            shown,
            &[
                "query_type: ANY",
                "query_class: IN",
                "transport_protocol: udp",
                "recursion_desired: true",
                "NOERROR",
            ],
        );
    }

    #[test]
    fn every_key() {
        let d = dns(r#"query_name: example.org.
query_type: SOA
query_class: CH
recursion_desired: false
valid_rcodes: [NOERROR, NXDOMAIN, BADCOOKIE]
transport_protocol: tcp
dns_over_tls: true
tls_config:
  insecure_skip_verify: true
source_ip_address: 127.0.0.1
preferred_ip_protocol: ip4
ip_protocol_fallback: false
validate_answer_rrs:
  fail_if_matches_regexp: [a]
  fail_if_all_match_regexp: [b]
  fail_if_not_matches_regexp: [c]
  fail_if_none_matches_regexp: [d]
validate_authority_rrs:
  fail_if_matches_regexp: [e]
validate_additional_rrs:
  fail_if_none_matches_regexp: [f, g]
"#);
        assert_eq!(d.query_name.to_string(), "example.org.");
        assert_eq!(d.query_type, RecordType::SOA);
        assert_eq!(d.query_class, DNSClass::CH);
        assert!(!d.recursion_desired);
        assert_eq!(d.valid_rcodes, vec![0, 3, 23]);
        assert_eq!(d.transport, Transport::Tcp);
        assert!(d.dns_over_tls);
        assert_eq!(d.default_port(), 853);
        assert_eq!(d.source_ip_address, Some("127.0.0.1".parse().expect("ip")));
        assert_eq!(d.address.preferred, IpProtocol::V4);
        assert!(!d.address.fallback);
        assert_eq!(d.validate_answer.fail_if_matches[0].as_str(), "a");
        assert_eq!(d.validate_answer.fail_if_all_match[0].as_str(), "b");
        assert_eq!(d.validate_answer.fail_if_not_matches[0].as_str(), "c");
        assert_eq!(d.validate_answer.fail_if_none_matches[0].as_str(), "d");
        assert_eq!(d.validate_authority.fail_if_matches[0].as_str(), "e");
        assert_eq!(d.validate_additional.fail_if_none_matches.len(), 2);
        // Types miekg/dns knows beyond hickory's parser, and numbers.
        assert_eq!(
            dns("query_name: x\nquery_type: SPF").query_type,
            RecordType::from(99)
        );
        assert_eq!(
            dns("query_name: x\nquery_type: IXFR").query_type,
            RecordType::from(251)
        );
        assert_eq!(
            dns("query_name: x\nquery_class: ANY").query_class,
            DNSClass::ANY
        );
        // An empty valid_rcodes list is NOERROR.
        assert_eq!(dns("query_name: x\nvalid_rcodes: []").valid_rcodes, vec![0]);
    }

    /// blackbox's documented dns modules load as written (empty validator
    /// blocks included), and its config/testdata's invalid dns modules are
    /// load errors here too.
    #[test]
    fn blackbox_s_examples_and_invalid_testdata() {
        let c = load(
            r#"modules:
  dns_udp_example:
    prober: dns
    timeout: 5s
    dns:
      query_name: "www.prometheus.io"
      query_type: "A"
      valid_rcodes:
        - NOERROR
      validate_answer_rrs:
      validate_authority_rrs:
      validate_additional_rrs:
  dns_soa:
    prober: dns
    dns:
      query_name: "prometheus.io"
      query_type: "SOA"
  dns_tcp_example:
    prober: dns
    dns:
      transport_protocol: "tcp"
      preferred_ip_protocol: "ip4"
      query_name: "www.prometheus.io"
      query_type: "A"
      validate_answer_rrs:
        fail_if_matches_regexp: []
        fail_if_not_matches_regexp: []
"#,
        )
        .expect("loads");
        assert_eq!(c.modules.len(), 3);
        for (body, key) in [
            // No query_name (a validator is there).
            (
                "preferred_ip_protocol: ip6
validate_answer_rrs:
  fail_if_matches_regexp: [test]",
                "dns.query_name",
            ),
            (
                "query_name: example.com
query_class: X
query_type: A",
                "dns.query_class",
            ),
            (
                "query_name: example.com
query_type: X",
                "dns.query_type",
            ),
            // A key of a later blackbox: unknown here, so refused.
            (
                "query_name: example.com
query_type: A
edns0_udp_size: 100",
                "edns0_udp_size",
            ),
        ] {
            assert_contains(&load_err(&dns_module(body)), &[key]);
        }
    }

    #[test]
    fn invalid_blocks_name_the_key() {
        for (body, needles) in [
            (
                "query_type: A",
                &["dns.query_name", "query name must be set"][..],
            ),
            ("query_name: ''", &["dns.query_name", "must be set"][..]),
            (
                "query_name: a..b",
                &["dns.query_name", "invalid query name"][..],
            ),
            (
                "query_name: x\nquery_type: AAA",
                &["dns.query_type", "query type 'AAA' is not valid"][..],
            ),
            // Mnemonics are upper case, as in miekg/dns's table.
            (
                "query_name: x\nquery_type: a",
                &["dns.query_type", "'a'"][..],
            ),
            (
                "query_name: x\nquery_class: INET",
                &["dns.query_class", "query class 'INET' is not valid"][..],
            ),
            (
                "query_name: x\nvalid_rcodes: [NOERROR, NOSUCH]",
                &["dns.valid_rcodes", "invalid rcode \"NOSUCH\""][..],
            ),
            (
                "query_name: x\ntransport_protocol: quic",
                &["dns.transport_protocol", "udp or tcp", "quic"][..],
            ),
            (
                "query_name: x\ndns_over_tls: true",
                &["dns.dns_over_tls", "transport_protocol: tcp"][..],
            ),
            (
                "query_name: x\ndns_over_tls: true\ntransport_protocol: udp",
                &["dns.dns_over_tls"][..],
            ),
            (
                "query_name: x\nsource_ip_address: nope",
                &["dns.source_ip_address", "nope"][..],
            ),
            (
                "query_name: x\npreferred_ip_protocol: ip5",
                &["dns.preferred_ip_protocol"][..],
            ),
            (
                "query_name: x\nvalidate_answer_rrs:\n  fail_if_matches_regexp: ['(']",
                &[
                    "dns.validate_answer_rrs.fail_if_matches_regexp",
                    "invalid regexp",
                ][..],
            ),
            (
                "query_name: x\nvalidate_authority_rrs:\n  fail_if_all_match_regexp: ['[']",
                &["dns.validate_authority_rrs.fail_if_all_match_regexp"][..],
            ),
            (
                "query_name: x\nvalidate_additional_rrs:\n  fail_if_not_matches_regexp: ['a{2,1}']",
                &["dns.validate_additional_rrs.fail_if_not_matches_regexp"][..],
            ),
            (
                "query_name: x\nvalidate_answer_rrs:\n  fail_if_none_matches_regexp: ['(?<']",
                &["dns.validate_answer_rrs.fail_if_none_matches_regexp"][..],
            ),
            ("query_name: x\nquery: A", &["query"][..]),
            (
                "query_name: x\nvalidate_answer_rrs:\n  fail_if_matches: [a]",
                &["fail_if_matches"][..],
            ),
            (
                "query_name: x\ntls_config:\n  min_version: TLS99",
                &["dns.tls_config.min_version"][..],
            ),
        ] {
            let e = load_err(&dns_module(body));
            assert_contains(&e, needles);
        }
    }
}
