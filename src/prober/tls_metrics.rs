//! The TLS metric family, shared by https, wss, tls and tcp+tls probes.
//!
//! Certificates come from the recording verifier, so they are reported even
//! when verification failed: an expired certificate still yields its expiry
//! (blackbox emits nothing then, #1119). The last-chain expiry appears only
//! when a chain verified — never Go's negative zero time (#653).

use super::ProbeContext;
use super::metrics::GaugeSpec;
use crate::net::cert::{self, CertInfo};
use crate::net::tls::ChainRecord;

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

pub static METRICS: &[&GaugeSpec] = &[
    &EARLIEST_CERT_EXPIRY,
    &LAST_CHAIN_EXPIRY,
    &LAST_CHAIN_INFO,
    &LEAF_NOT_BEFORE,
    &TLS_VERSION_INFO,
    &TLS_CIPHER_INFO,
];

/// The negotiated parameters of a completed handshake.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    pub version: rustls::ProtocolVersion,
    pub cipher: rustls::CipherSuite,
}

impl Session {
    pub fn of(conn: &rustls::ClientConnection) -> Option<Self> {
        Some(Self {
            version: conn.protocol_version()?,
            cipher: conn.negotiated_cipher_suite()?.suite(),
        })
    }
}

fn parse_all(certs: &[rustls::pki_types::CertificateDer<'_>]) -> Vec<CertInfo> {
    certs
        .iter()
        .filter_map(|der| cert::parse_certificate(der.as_ref()).ok())
        .collect()
}

/// Record the TLS family from what the verifier saw and, when the
/// handshake completed, the negotiated session.
pub fn record(cx: &ProbeContext<'_>, chain: &ChainRecord, session: Option<Session>) {
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
    if !chain.verified.is_empty() {
        let verified = parse_all(&chain.verified);
        if let Some(expiry) = cert::chain_expiry(&verified) {
            cx.metrics.set(&LAST_CHAIN_EXPIRY, expiry as f64);
        }
    }
    if let Some(s) = session {
        cx.metrics.set_labelled(
            &TLS_VERSION_INFO,
            &[cert::tls_version_label(s.version)],
            1.0,
        );
        cx.metrics
            .set_labelled(&TLS_CIPHER_INFO, &[&cert::cipher_suite_name(s.cipher)], 1.0);
    }
}

/// What one handshake showed: the verifier's record and, when it
/// completed, the negotiated session.
#[derive(Debug, Clone, Default)]
pub struct TlsOutcome {
    pub chain: ChainRecord,
    pub session: Option<Session>,
}

impl TlsOutcome {
    pub fn record(&self, cx: &ProbeContext<'_>) {
        record(cx, &self.chain, self.session);
    }
}

/// Run a TLS handshake over `io` without recording metrics yet (the HTTP
/// prober reports the TLS family of the final response only).
pub async fn connect<IO>(
    client: &crate::net::tls::TlsClient,
    io: IO,
    server_name: &str,
    alpn: crate::net::tls::Alpn,
) -> (
    Result<tokio_rustls::client::TlsStream<IO>, super::reason::ProbeFailure>,
    TlsOutcome,
)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name = match crate::net::tls::server_name(server_name) {
        Ok(n) => n,
        Err(e) => return (Err(e), TlsOutcome::default()),
    };
    let (result, chain) = client.handshake(io, name, alpn).await;
    match result {
        Ok(stream) => {
            let session = Session::of(stream.get_ref().1);
            (Ok(stream), TlsOutcome { chain, session })
        }
        Err(e) => {
            let failure = crate::net::tls::handshake_failure(&e, &chain);
            (
                Err(failure),
                TlsOutcome {
                    chain,
                    session: None,
                },
            )
        }
    }
}

/// Run a TLS handshake over `io` and record the TLS family whatever the
/// outcome (the verifier's record survives a failed verification).
pub async fn handshake<IO>(
    cx: &ProbeContext<'_>,
    client: &crate::net::tls::TlsClient,
    io: IO,
    server_name: &str,
    alpn: crate::net::tls::Alpn,
) -> Result<tokio_rustls::client::TlsStream<IO>, super::reason::ProbeFailure>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (result, outcome) = connect(client, io, server_name, alpn).await;
    outcome.record(cx);
    if let Some(s) = outcome.session {
        cx.log.debug(
            "TLS handshake done",
            &[
                ("version", &cert::tls_version_label(s.version)),
                ("cipher", &cert::cipher_suite_name(s.cipher)),
            ],
        );
    }
    result
}
