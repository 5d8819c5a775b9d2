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
