//! The TLS metric family, shared by https, wss, tls and tcp+tls probes.
//!
//! Certificates come from the recording verifier, so they are reported even
//! when verification failed: an expired certificate still yields its expiry
//! (blackbox emits nothing then, #1119). The last-chain expiry appears only
//! when a chain verified — never Go's negative zero time (#653).

//!
//! Emission only: handshakes are driven by the connector (`net`), which
//! hands over a [`TlsInfo`].

use super::ProbeContext;
use super::metrics::GaugeSpec;
use crate::net::cert::{self, CertInfo};
use crate::net::ocsp;
use crate::net::tls::TlsInfo;

pub static EARLIEST_CERT_EXPIRY: GaugeSpec = GaugeSpec::when_set(
    "probe_ssl_earliest_cert_expiry",
    "Returns last SSL chain expiry in unixtime",
);
pub static LAST_CHAIN_EXPIRY: GaugeSpec = GaugeSpec::when_set(
    "probe_ssl_last_chain_expiry_timestamp_seconds",
    "Returns last SSL chain expiry in timestamp",
);
pub static LAST_CHAIN_INFO: GaugeSpec = GaugeSpec::labelled(
    "probe_ssl_last_chain_info",
    "Contains SSL leaf certificate information",
    &[
        "fingerprint_sha256",
        "issuer",
        "serialnumber",
        "subject",
        "subjectalternative",
    ],
);
pub static LEAF_NOT_BEFORE: GaugeSpec = GaugeSpec::when_set(
    "probe_ssl_leaf_not_before_timestamp_seconds",
    "Returns the NotBefore time of the leaf certificate in unixtime",
);
pub static TLS_VERSION_INFO: GaugeSpec = GaugeSpec::labelled(
    "probe_tls_version_info",
    "Returns the TLS version used or NaN when unknown",
    &["version"],
);
pub static TLS_CIPHER_INFO: GaugeSpec = GaugeSpec::labelled(
    "probe_tls_cipher_info",
    "Returns the TLS cipher negotiated during handshake",
    &["cipher"],
);

pub static CERT_EXPIRY: GaugeSpec = GaugeSpec::labelled(
    "probe_ssl_cert_expiry_timestamp_seconds",
    "NotAfter of each certificate the server presented, by position in the chain (0 = leaf)",
    &["issuer_cn", "position", "serialnumber", "subject_cn"],
);
pub static OCSP_STAPLED: GaugeSpec = GaugeSpec::when_set(
    "probe_ssl_ocsp_stapled",
    "Whether the server stapled an OCSP response",
);
pub static OCSP_STATUS: GaugeSpec = GaugeSpec::labelled(
    "probe_ssl_ocsp_status",
    "Certificate status in the stapled OCSP response (only when one was stapled)",
    &["status"],
);
pub static OCSP_NEXT_UPDATE: GaugeSpec = GaugeSpec::when_set(
    "probe_ssl_ocsp_next_update_timestamp_seconds",
    "nextUpdate of the stapled OCSP response in unixtime",
);

/// At most this many presented certificates get their own expiry series
/// (bounded cardinality whatever a server sends).
const MAX_CERT_SERIES: usize = 10;

pub static METRICS: &[&GaugeSpec] = &[
    &CERT_EXPIRY,
    &OCSP_STAPLED,
    &OCSP_STATUS,
    &OCSP_NEXT_UPDATE,
    &EARLIEST_CERT_EXPIRY,
    &LAST_CHAIN_EXPIRY,
    &LAST_CHAIN_INFO,
    &LEAF_NOT_BEFORE,
    &TLS_VERSION_INFO,
    &TLS_CIPHER_INFO,
];

fn parse_all(certs: &[rustls::pki_types::CertificateDer<'_>]) -> Vec<CertInfo> {
    certs
        .iter()
        .filter_map(|der| cert::parse_certificate(der.as_ref()).ok())
        .collect()
}

/// Record the TLS family from what the verifier saw and, when the
/// handshake completed, the negotiated session.
pub fn record(cx: &ProbeContext<'_>, info: &TlsInfo) {
    let chain = &info.chain;
    let presented = parse_all(&chain.presented);
    if let Some(expiry) = cert::earliest_expiry(&presented) {
        cx.metrics.set(&EARLIEST_CERT_EXPIRY, expiry as f64);
    }
    if let Some(leaf) = presented.first() {
        cx.metrics.set(&LEAF_NOT_BEFORE, leaf.not_before as f64);
        cx.metrics.set_labelled(
            &LAST_CHAIN_INFO,
            &[
                &leaf.fingerprint_sha256,
                &leaf.issuer,
                &leaf.serial_hex,
                &leaf.subject,
                &leaf.dns_sans.join(","),
            ],
            1.0,
        );
    }
    for (position, c) in presented.iter().take(MAX_CERT_SERIES).enumerate() {
        cx.metrics.set_labelled(
            &CERT_EXPIRY,
            &[
                &c.issuer_cn,
                &position.to_string(),
                &c.serial_hex,
                &c.subject_cn,
            ],
            c.not_after as f64,
        );
    }
    if !chain.presented.is_empty() {
        record_ocsp(cx, chain.ocsp.as_deref(), presented.first());
    }
    if !chain.verified.is_empty() {
        let verified = parse_all(&chain.verified);
        if let Some(expiry) = cert::chain_expiry(&verified) {
            cx.metrics.set(&LAST_CHAIN_EXPIRY, expiry as f64);
        }
    }
    if let Some(s) = info.session {
        cx.metrics.set_labelled(
            &TLS_VERSION_INFO,
            &[cert::tls_version_label(s.version)],
            1.0,
        );
        cx.metrics
            .set_labelled(&TLS_CIPHER_INFO, &[&cert::cipher_suite_name(s.cipher)], 1.0);
    }
}

/// The staple, when there is one: status and next update. A staple that
/// does not parse is logged and reported as stapled without a status.
fn record_ocsp(cx: &ProbeContext<'_>, staple: Option<&[u8]>, leaf: Option<&CertInfo>) {
    let Some(der) = staple else {
        cx.metrics.set(&OCSP_STAPLED, 0.0);
        return;
    };
    cx.metrics.set(&OCSP_STAPLED, 1.0);
    let serial = leaf.map(|l| hex_bytes(&l.serial_hex));
    match ocsp::parse(der, serial.as_deref()) {
        Ok(info) => {
            cx.metrics
                .set_labelled(&OCSP_STATUS, &[info.status.as_str()], 1.0);
            if let Some(next) = info.next_update {
                cx.metrics.set(&OCSP_NEXT_UPDATE, next as f64);
            }
        }
        Err(e) => cx.log.warn("Unreadable OCSP staple", &[("err", &e)]),
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    hex.as_bytes()
        .chunks(2)
        .filter_map(|pair| std::str::from_utf8(pair).ok())
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect()
}

#[cfg(test)]
mod proptests {
    use std::sync::{Mutex, OnceLock};
    use std::time::Duration;

    use proptest::prelude::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType, SerialNumber};
    use rustls::pki_types::CertificateDer;
    use rustls::{CipherSuite, ProtocolVersion};
    use sha2::{Digest, Sha256};
    use tokio::time::Instant;

    use super::*;
    use crate::net::policy::TargetPolicy;
    use crate::net::tls::{ChainRecord, Session};
    use crate::prober::ProbeLimits;
    use crate::prober::log::{LogFormat, ProbeLog};
    use crate::prober::metrics::ProbeMetrics;
    use crate::prober::reason::FailureReason;

    fn key() -> &'static KeyPair {
        static KEY: OnceLock<KeyPair> = OnceLock::new();
        KEY.get_or_init(|| KeyPair::generate().expect("key pair"))
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Go's escaping of a distinguished-name value.
    fn go_escape(v: &str) -> String {
        let mut out = String::new();
        for (i, c) in v.char_indices() {
            let (first, last) = (i == 0, i + c.len_utf8() == v.len());
            if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
                || (c == '#' && first)
                || (c == ' ' && (first || last))
            {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    /// The exposition format's escaping of a label value.
    fn exposition_escape(v: &str) -> String {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    #[derive(Debug, Clone)]
    struct GenCert {
        cn: String,
        org: String,
        dns: Vec<String>,
        serial: Vec<u8>,
        not_before: i64,
        not_after: i64,
    }

    impl GenCert {
        fn der(&self) -> CertificateDer<'static> {
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, self.cn.as_str());
            dn.push(DnType::OrganizationName, self.org.as_str());
            params.distinguished_name = dn;
            params.subject_alt_names = self
                .dns
                .iter()
                .map(|d| SanType::DnsName(d.clone().try_into().expect("IA5")))
                .collect();
            params.serial_number = Some(SerialNumber::from_slice(&self.serial));
            params.not_before =
                time::OffsetDateTime::from_unix_timestamp(self.not_before).expect("in range");
            params.not_after =
                time::OffsetDateTime::from_unix_timestamp(self.not_after).expect("in range");
            let cert = params.self_signed(key()).expect("self-signed");
            CertificateDer::from(cert.der().to_vec())
        }

        fn subject(&self) -> String {
            let mut parts = Vec::new();
            if !self.cn.is_empty() {
                parts.push(format!("CN={}", go_escape(&self.cn)));
            }
            parts.push(format!("O={}", go_escape(&self.org)));
            parts.join(",")
        }

        fn serial_hex(&self) -> String {
            let first = self
                .serial
                .iter()
                .position(|b| *b != 0)
                .unwrap_or(self.serial.len());
            hex(&self.serial[first..])
        }
    }

    fn gen_cert() -> impl Strategy<Value = GenCert> {
        let text = prop_oneof!["[ #,+\"\\\\<>;=\\na-z]{0,8}", "\\PC{0,6}"];
        (
            text.clone(),
            text,
            prop::collection::vec("[a-z0-9-]{1,8}(\\.[a-z0-9-]{1,8}){0,2}", 0..3),
            prop::collection::vec(any::<u8>(), 1..=20),
            1_000_000_000i64..2_000_000_000,
            1_500_000_000i64..4_000_000_000,
        )
            .prop_map(|(cn, org, dns, serial, not_before, not_after)| GenCert {
                cn,
                org,
                dns,
                serial,
                not_before,
                not_after,
            })
    }

    const VERSIONS: &[(u16, &str)] = &[
        (0x0301, "TLS 1.0"),
        (0x0302, "TLS 1.1"),
        (0x0303, "TLS 1.2"),
        (0x0304, "TLS 1.3"),
        (0x0300, "unknown"),
    ];

    proptest! {
        #![proptest_config(crate::net::proptest_config(48))]

        #[test]
        fn chain_labels_and_expiries_are_those_of_the_certificates(
            chain in prop::collection::vec(gen_cert(), 1..4),
            verified in 0usize..4,
            version in prop::sample::select(VERSIONS),
            cipher in prop::sample::select(&[0x1301u16, 0x1303, 0xc02b, 0xcca8, 0xfafa][..]),
        ) {
            let ders: Vec<CertificateDer<'static>> = chain.iter().map(GenCert::der).collect();
            let verified = verified.min(chain.len());
            let info = TlsInfo {
                chain: ChainRecord {
                    presented: ders.clone(),
                    verified: ders[..verified].to_vec(),
                    ..ChainRecord::default()
                },
                session: Some(Session {
                    version: ProtocolVersion::from(version.0),
                    cipher: CipherSuite::from(cipher),
                }),
                alpn: None,
            };
            let metrics = ProbeMetrics::new(&[METRICS]);
            let log = ProbeLog::new("m", "t", LogFormat::Logfmt);
            let targets = TargetPolicy::new(Vec::new());
            let cx = ProbeContext {
                metrics: &metrics,
                log: &log,
                deadline: Instant::now() + Duration::from_secs(5),
                hostname: None,
                targets: &targets,
                limits: ProbeLimits::default(),
                session: None,
                on_deadline: Mutex::new(FailureReason::Timeout),
            };
            record(&cx, &info);

            let min = |certs: &[GenCert]| certs.iter().map(|c| c.not_after).min().map(|t| t as f64);
            prop_assert_eq!(metrics.get("probe_ssl_earliest_cert_expiry", &[]), min(&chain));
            prop_assert_eq!(
                metrics.get("probe_ssl_last_chain_expiry_timestamp_seconds", &[]),
                min(&chain[..verified])
            );
            let leaf = &chain[0];
            prop_assert_eq!(
                metrics.get("probe_ssl_leaf_not_before_timestamp_seconds", &[]),
                Some(leaf.not_before as f64)
            );
            let fingerprint = hex(&Sha256::digest(ders[0].as_ref()));
            let labels = [
                ("fingerprint_sha256", fingerprint.clone()),
                ("issuer", leaf.subject()),
                ("serialnumber", leaf.serial_hex()),
                ("subject", leaf.subject()),
                ("subjectalternative", leaf.dns.join(",")),
            ];
            let pairs: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (*n, v.as_str())).collect();
            prop_assert_eq!(metrics.get("probe_ssl_last_chain_info", &pairs), Some(1.0));
            for (i, c) in chain.iter().enumerate() {
                let position = i.to_string();
                let serial = c.serial_hex();
                prop_assert_eq!(
                    metrics.get(
                        "probe_ssl_cert_expiry_timestamp_seconds",
                        &[
                            ("issuer_cn", &c.cn),
                            ("position", &position),
                            ("serialnumber", &serial),
                            ("subject_cn", &c.cn),
                        ]
                    ),
                    Some(c.not_after as f64)
                );
            }
            prop_assert_eq!(metrics.get("probe_tls_version_info", &[("version", version.1)]), Some(1.0));
            let cipher_name = crate::net::cert::cipher_suite_name(CipherSuite::from(cipher));
            prop_assert_eq!(metrics.get("probe_tls_cipher_info", &[("cipher", &cipher_name)]), Some(1.0));

            // In the exposition: one leaf series, its values escaped.
            let text = metrics.encode_text();
            let line = format!(
                "probe_ssl_last_chain_info{{{}}} 1\n",
                labels
                    .iter()
                    .map(|(n, v)| format!("{n}=\"{}\"", exposition_escape(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            prop_assert!(text.contains(&line), "{} not in\n{}", line, text);
            prop_assert_eq!(text.matches("\nprobe_ssl_last_chain_info{").count(), 1);
        }
    }
}
