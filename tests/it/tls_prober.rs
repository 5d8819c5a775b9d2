//! `prober: tls` against in-process rustls servers with rcgen certificates:
//! the full TLS metric family on success, the presented certificates still
//! reported (with the right failure reason) when verification fails, SNI
//! rules, version/cipher/client-certificate handshakes and OCSP staples.
//!
//! | server                                   | expected                         |
//! |------------------------------------------|----------------------------------|
//! | leaf + intermediate, trusted root        | success, every TLS series        |
//! | expired / not yet valid leaf             | `tls_cert_expired` / `_not_yet_valid`, certs still exported |
//! | unknown issuer, no intermediate, self-signed | `tls_cert_untrusted`         |
//! | leaf for another name                    | `tls_hostname_mismatch`          |
//! | TLS 1.2 only vs min TLS13 (and reverse)  | `tls_handshake_failed`           |
//! | client cert required, none sent          | `tls_handshake_failed`           |
//! | plain text server                        | `tls_handshake_failed`           |
//! | OCSP staple good/revoked/unknown/none    | `probe_ssl_ocsp_*`               |

use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::ExtendedKeyUsagePurpose;
use rustls::crypto::ring::cipher_suite;
use tokio::io::AsyncWriteExt;

use crate::common;
use crate::common::ocsp;
use crate::common::pki::{self, INTERMEDIATE_CN, Leaf, Pki, Validity};
use crate::common::probe::{Outcome, run_in};
use crate::common::tls_server::{Server, ServerTls, SniResolver};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A `tls` module `m` with these `tls_config` lines (ip4 preferred, so
/// `localhost` targets reach the 127.0.0.1 listeners).
fn tls_module(tls_config: &[String]) -> String {
    let mut yaml = String::from(
        "modules:\n  m:\n    prober: tls\n    tls:\n      preferred_ip_protocol: ip4\n",
    );
    if !tls_config.is_empty() {
        yaml.push_str("      tls_config:\n");
        for line in tls_config {
            yaml.push_str(&format!("        {line}\n"));
        }
    }
    yaml
}

fn ca_line(pki: &Pki) -> String {
    format!("ca_file: {}", pki.ca_file().display())
}

/// The module trusting the test root and nothing else.
fn trusting(pki: &Pki) -> String {
    tls_module(&[ca_line(pki)])
}

async fn probe(pki: &Pki, yaml: &str, target: &str, hostname: Option<&str>) -> Outcome {
    run_in(pki.dir(), yaml, "m", target, hostname, TIMEOUT).await
}

/// The serial of a DER certificate as the `serialnumber` labels show it.
fn serial_hex_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse certificate");
    let raw = cert.raw_serial();
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    pki::hex(&raw[start..])
}

/// What must be exported from the presented chain, whether or not it
/// verified: earliest expiry, leaf NotBefore, leaf info, one expiry series
/// per presented certificate.
fn assert_presented(o: &Outcome, leaf: &Leaf) {
    let m = &o.metrics;
    assert_eq!(
        m.value("probe_ssl_earliest_cert_expiry", &[]),
        Some(leaf.earliest_expiry() as f64),
        "{}",
        o.text
    );
    assert_eq!(
        m.value("probe_ssl_leaf_not_before_timestamp_seconds", &[]),
        Some(leaf.not_before() as f64),
        "{}",
        o.text
    );
    assert_eq!(
        m.value(
            "probe_ssl_last_chain_info",
            &[
                ("fingerprint_sha256", &leaf.fingerprint_sha256()),
                ("serialnumber", &leaf.serial_hex()),
            ]
        ),
        Some(1.0),
        "{}",
        o.text
    );
    assert_eq!(
        m.value(
            "probe_ssl_cert_expiry_timestamp_seconds",
            &[("position", "0"), ("serialnumber", &leaf.serial_hex())]
        ),
        Some(leaf.not_after() as f64),
        "{}",
        o.text
    );
    assert_eq!(
        m.samples_named("probe_ssl_cert_expiry_timestamp_seconds")
            .count(),
        leaf.chain.len(),
        "one expiry series per presented certificate:\n{}",
        o.text
    );
}

/// A failed verification: the reason, the presented certificates, and no
/// last-chain expiry (no chain verified) nor negotiated session.
fn assert_failed_with_certs(o: &Outcome, reason: &str, leaf: &Leaf) {
    o.assert_reason(reason);
    assert_presented(o, leaf);
    assert!(
        !o.metrics
            .has("probe_ssl_last_chain_expiry_timestamp_seconds"),
        "no chain verified:\n{}",
        o.text
    );
    assert!(!o.metrics.has("probe_tls_version_info"), "{}", o.text);
}

// ---------------------------------------------------------------------------
// Success: the full family
// ---------------------------------------------------------------------------

#[tokio::test]
async fn valid_chain_exports_the_full_tls_family() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = Server::tls(ServerTls::new(&leaf).build()).await;

    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    o.assert_success();
    let m = &o.metrics;

    // Address metrics and phases.
    assert_eq!(m.value("probe_ip_protocol", &[]), Some(4.0));
    assert_eq!(m.value("probe_ip_addr_hash", &[]), Some(3_668_918_509.0));
    assert!(m.has("probe_dns_lookup_time_seconds"), "{}", o.text);
    for phase in ["resolve", "connect", "tls"] {
        let v = m
            .value("probe_tls_duration_seconds", &[("phase", phase)])
            .unwrap_or_else(|| panic!("no phase {phase}:\n{}", o.text));
        assert!((0.0..5.0).contains(&v), "phase {phase} = {v}");
    }
    assert!(
        m.value("probe_tls_duration_seconds", &[("phase", "tls")])
            .unwrap()
            > 0.0
    );

    assert_presented(&o, &leaf);
    // leaf -> intermediate -> root: the leaf expires first.
    let chain_expiry = leaf
        .not_after()
        .min(pki.intermediate_not_after())
        .min(pki.root_not_after());
    assert_eq!(
        m.value("probe_ssl_last_chain_expiry_timestamp_seconds", &[]),
        Some(chain_expiry as f64)
    );
    let info = m.label_sets("probe_ssl_last_chain_info");
    assert_eq!(info.len(), 1, "{}", o.text);
    let info = &info[0];
    assert_eq!(info["subject"], "CN=localhost,O=Leaf Org,C=US");
    assert_eq!(info["issuer"], "CN=Test Intermediate,O=TestOrg");
    assert_eq!(info["subjectalternative"], "localhost");
    assert_eq!(info["fingerprint_sha256"], leaf.fingerprint_sha256());
    assert_eq!(info["serialnumber"], leaf.serial_hex());

    // One expiry per presented certificate, by position.
    assert_eq!(
        m.value(
            "probe_ssl_cert_expiry_timestamp_seconds",
            &[
                ("position", "0"),
                ("subject_cn", "localhost"),
                ("issuer_cn", INTERMEDIATE_CN),
                ("serialnumber", &leaf.serial_hex()),
            ]
        ),
        Some(leaf.not_after() as f64),
        "{}",
        o.text
    );
    assert_eq!(
        m.value(
            "probe_ssl_cert_expiry_timestamp_seconds",
            &[
                ("position", "1"),
                ("subject_cn", INTERMEDIATE_CN),
                ("issuer_cn", pki::ROOT_CN),
                ("serialnumber", &serial_hex_of(&pki.intermediate_der())),
            ]
        ),
        Some(pki.intermediate_not_after() as f64),
        "{}",
        o.text
    );

    assert_eq!(
        m.value("probe_tls_version_info", &[("version", "TLS 1.3")]),
        Some(1.0),
        "{}",
        o.text
    );
    assert_eq!(m.samples_named("probe_tls_cipher_info").count(), 1);
    // Nothing stapled: 0, and no status series.
    assert_eq!(m.value("probe_ssl_ocsp_stapled", &[]), Some(0.0));
    assert!(!m.has("probe_ssl_ocsp_status"), "{}", o.text);
    assert!(!m.has("probe_ssl_ocsp_next_update_timestamp_seconds"));
}

#[tokio::test]
async fn insecure_skip_verify_reports_certificates_but_no_verified_chain() {
    let pki = Pki::new();
    let leaf = pki.self_signed_leaf();
    let server = Server::tls(ServerTls::new(&leaf).build()).await;

    let yaml = tls_module(&["insecure_skip_verify: true".into()]);
    let o = probe(&pki, &yaml, &server.target(), None).await;
    o.assert_success();
    assert_presented(&o, &leaf);
    assert!(
        !o.metrics
            .has("probe_ssl_last_chain_expiry_timestamp_seconds"),
        "never blackbox's negative zero time:\n{}",
        o.text
    );
    for s in &o.metrics.samples {
        assert!(s.value >= 0.0, "negative value {s}");
    }
}

// ---------------------------------------------------------------------------
// SNI
// ---------------------------------------------------------------------------

#[tokio::test]
async fn hostname_parameter_sets_sni_and_verification_name() {
    let pki = Pki::new();
    let a = pki.leaf(&["a.test"], &[], Validity::default());
    let b = pki.leaf(&["b.test"], &[], Validity::default());
    let resolver = Arc::new(SniResolver::new(&a).name("a.test", &a).name("b.test", &b));
    let server = Server::tls(ServerTls::new(&a).resolver(resolver.clone()).build()).await;

    let o = probe(&pki, &trusting(&pki), &server.target(), Some("b.test")).await;
    o.assert_success();
    assert_presented(&o, &b);
    assert_eq!(
        o.value(
            "probe_ssl_cert_expiry_timestamp_seconds",
            &[("position", "0")]
        ),
        Some(b.not_after() as f64)
    );
    let o = probe(&pki, &trusting(&pki), &server.target(), Some("a.test")).await;
    o.assert_success();
    assert_presented(&o, &a);
    assert_eq!(
        resolver.seen(),
        vec![Some("b.test".to_string()), Some("a.test".to_string())]
    );
}

#[tokio::test]
async fn ip_literal_target_sends_no_sni() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let resolver = Arc::new(SniResolver::new(&leaf));
    let server = Server::tls(ServerTls::new(&leaf).resolver(resolver.clone()).build()).await;

    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    // Verified against the 127.0.0.1 IP SAN.
    o.assert_success();
    assert_eq!(resolver.seen(), vec![None], "no SNI for an IP literal");
}

#[tokio::test]
async fn server_name_sets_sni_even_for_an_ip_target_and_wins_over_hostname() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["named.test"], &[], Validity::default());
    let resolver = Arc::new(SniResolver::new(&leaf));
    let server = Server::tls(ServerTls::new(&leaf).resolver(resolver.clone()).build()).await;

    let yaml = tls_module(&[ca_line(&pki), "server_name: named.test".into()]);
    let o = probe(&pki, &yaml, &server.target(), None).await;
    o.assert_success();
    let o = probe(&pki, &yaml, &server.target(), Some("other.test")).await;
    o.assert_success();
    assert_eq!(
        resolver.seen(),
        vec![
            Some("named.test".to_string()),
            Some("named.test".to_string())
        ]
    );
}

// ---------------------------------------------------------------------------
// Verification failures: reason + certificates still reported
// ---------------------------------------------------------------------------

#[tokio::test]
async fn expired_leaf() {
    let pki = Pki::new();
    let leaf = pki.expired_leaf();
    let server = Server::tls(ServerTls::new(&leaf).build()).await;
    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    assert_failed_with_certs(&o, "tls_cert_expired", &leaf);
    // The expired leaf drags the earliest expiry into the past.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(o.value("probe_ssl_earliest_cert_expiry", &[]).unwrap() < now);
}

#[tokio::test]
async fn not_yet_valid_leaf() {
    let pki = Pki::new();
    let leaf = pki.not_yet_valid_leaf();
    let server = Server::tls(ServerTls::new(&leaf).build()).await;
    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    assert_failed_with_certs(&o, "tls_cert_not_yet_valid", &leaf);
}

#[tokio::test]
async fn unknown_issuer_is_untrusted() {
    let pki = Pki::new();
    let other = Pki::new();
    let leaf = other.localhost_leaf();
    let server = Server::tls(ServerTls::new(&leaf).build()).await;
    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    assert_failed_with_certs(&o, "tls_cert_untrusted", &leaf);
}

#[tokio::test]
async fn incomplete_chain_is_untrusted() {
    let pki = Pki::new();
    let leaf = pki.leaf_without_intermediate();
    let server = Server::tls(ServerTls::new(&leaf).build()).await;
    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    assert_failed_with_certs(&o, "tls_cert_untrusted", &leaf);
    assert_eq!(
        o.metrics
            .samples_named("probe_ssl_cert_expiry_timestamp_seconds")
            .count(),
        1
    );
}

#[tokio::test]
async fn self_signed_is_untrusted() {
    let pki = Pki::new();
    let leaf = pki.self_signed_leaf();
    let server = Server::tls(ServerTls::new(&leaf).build()).await;
    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    assert_failed_with_certs(&o, "tls_cert_untrusted", &leaf);
}

#[tokio::test]
async fn wrong_host_is_a_hostname_mismatch() {
    let pki = Pki::new();
    let leaf = pki.wrong_host_leaf();
    let server = Server::tls(ServerTls::new(&leaf).build()).await;
    // By name (hostname parameter) ...
    let o = probe(&pki, &trusting(&pki), &server.target(), Some("localhost")).await;
    assert_failed_with_certs(&o, "tls_hostname_mismatch", &leaf);
    // ... by the target's host name ...
    let o = probe(&pki, &trusting(&pki), &server.localhost_target(), None).await;
    assert_failed_with_certs(&o, "tls_hostname_mismatch", &leaf);
    // ... and by IP (the leaf has no IP SAN).
    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    assert_failed_with_certs(&o, "tls_hostname_mismatch", &leaf);
}

// ---------------------------------------------------------------------------
// Handshake failures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn min_version_tls13_against_a_tls12_only_server() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = Server::tls(
        ServerTls::new(&leaf)
            .versions(&[&rustls::version::TLS12])
            .build(),
    )
    .await;
    let yaml = tls_module(&[ca_line(&pki), "min_version: TLS13".into()]);
    let o = probe(&pki, &yaml, &server.target(), None).await;
    o.assert_reason("tls_handshake_failed");
    assert!(!o.metrics.has("probe_tls_version_info"), "{}", o.text);

    // Without the minimum the same server is fine, over TLS 1.2.
    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    o.assert_success();
    assert_eq!(
        o.value("probe_tls_version_info", &[("version", "TLS 1.2")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn max_version_tls12_against_a_tls13_only_server() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = Server::tls(
        ServerTls::new(&leaf)
            .versions(&[&rustls::version::TLS13])
            .build(),
    )
    .await;
    let yaml = tls_module(&[ca_line(&pki), "max_version: TLS12".into()]);
    let o = probe(&pki, &yaml, &server.target(), None).await;
    o.assert_reason("tls_handshake_failed");
}

/// An mTLS server (TLS `version`) and a client certificate it accepts.
async fn mtls_server(pki: &Pki, version: &'static rustls::SupportedProtocolVersion) -> Server {
    let leaf = pki.localhost_leaf();
    Server::tls(
        ServerTls::new(&leaf)
            .versions(&[version])
            .require_client_cert(&[pki.ca_der()])
            .build(),
    )
    .await
}

fn client_leaf(pki: &Pki) -> Leaf {
    pki.leaf_with(&["client.test"], &[], Validity::default(), |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    })
}

#[tokio::test]
async fn client_certificate_is_sent_when_configured() {
    let pki = Pki::new();
    let client = client_leaf(&pki);
    let cert = pki.write("client.crt", client.chain_pem());
    let key = pki.write("client.key", client.key_pem());
    let yaml = tls_module(&[
        ca_line(&pki),
        format!("cert_file: {}", cert.display()),
        format!("key_file: {}", key.display()),
    ]);
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let server = mtls_server(&pki, version).await;
        let o = probe(&pki, &yaml, &server.target(), None).await;
        o.assert_success();
    }
}

#[tokio::test]
async fn missing_client_certificate_fails_the_handshake_tls12() {
    let pki = Pki::new();
    let server = mtls_server(&pki, &rustls::version::TLS12).await;
    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    o.assert_reason("tls_handshake_failed");
}

/// In TLS 1.3 the client's handshake is complete before the server has
/// looked at the (empty) client certificate: its `certificate_required`
/// alert arrives after that. The probe must still fail.
#[tokio::test]
async fn missing_client_certificate_fails_the_handshake_tls13() {
    let pki = Pki::new();
    let server = mtls_server(&pki, &rustls::version::TLS13).await;
    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    o.assert_reason("tls_handshake_failed");
}

#[tokio::test]
async fn plain_text_server_is_not_tls() {
    let pki = Pki::new();
    let server = Server::start(|mut stream, _| async move {
        let _ = stream
            .write_all(b"220 smtp.test ESMTP this is not TLS\r\n")
            .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
    })
    .await;
    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    o.assert_reason("tls_handshake_failed");
    assert!(!o.metrics.has("probe_ssl_earliest_cert_expiry"));
}

#[tokio::test]
async fn refused_connection_has_no_tls_metrics() {
    let pki = Pki::new();
    let target = common::closed_addr().to_string();
    let o = probe(&pki, &trusting(&pki), &target, None).await;
    o.assert_reason("connect_refused");
    assert!(!o.metrics.has("probe_ssl_earliest_cert_expiry"));
    assert!(!o.metrics.has("probe_ssl_ocsp_stapled"));
    assert_eq!(o.value("probe_ip_protocol", &[]), Some(4.0));
}

#[tokio::test]
async fn silent_server_times_out_within_the_deadline() {
    let pki = Pki::new();
    // Accepts and never answers (the stream is held, not closed).
    let server = Server::start(|stream, _| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(stream);
    })
    .await;
    let start = Instant::now();
    let o = run_in(
        pki.dir(),
        &trusting(&pki),
        "m",
        &server.target(),
        None,
        Duration::from_millis(700),
    )
    .await;
    o.assert_reason("timeout");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(650) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
    // The phase metrics show where the time went.
    let tls = o
        .value("probe_tls_duration_seconds", &[("phase", "tls")])
        .unwrap();
    assert!(tls > 0.5, "tls phase {tls}\n{}", o.text);
}

// ---------------------------------------------------------------------------
// Cipher suites and versions, Go/IANA spelling
// ---------------------------------------------------------------------------

#[tokio::test]
async fn cipher_names_in_go_spelling() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let cases = [
        (
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            &rustls::version::TLS13,
            "TLS_AES_128_GCM_SHA256",
            "TLS 1.3",
        ),
        (
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            &rustls::version::TLS13,
            "TLS_AES_256_GCM_SHA384",
            "TLS 1.3",
        ),
        (
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            &rustls::version::TLS13,
            "TLS_CHACHA20_POLY1305_SHA256",
            "TLS 1.3",
        ),
        (
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            &rustls::version::TLS12,
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS 1.2",
        ),
        (
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            &rustls::version::TLS12,
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS 1.2",
        ),
        (
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            &rustls::version::TLS12,
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS 1.2",
        ),
    ];
    for (suite, version, name, version_label) in cases {
        let server = Server::tls(
            ServerTls::new(&leaf)
                .versions(&[version])
                .suites(&[suite])
                .build(),
        )
        .await;
        let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
        o.assert_success();
        assert_eq!(
            o.metrics.label_sets("probe_tls_cipher_info"),
            vec![[("cipher".to_string(), name.to_string())].into()],
            "{}",
            o.text
        );
        assert_eq!(
            o.metrics.label_sets("probe_tls_version_info"),
            vec![[("version".to_string(), version_label.to_string())].into()],
        );
    }
}

// ---------------------------------------------------------------------------
// OCSP stapling
// ---------------------------------------------------------------------------

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn stapled(status: u8, next_update: Option<i64>) -> (Outcome, Leaf) {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let this_update = unix_now() - 3600;
    let der = ocsp::response(&leaf.serial, status, this_update, next_update);
    let server = Server::tls(ServerTls::new(&leaf).ocsp(der).build()).await;
    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    (o, leaf)
}

#[tokio::test]
async fn ocsp_staple_good() {
    let next = unix_now() + 86_400;
    let (o, leaf) = stapled(0, Some(next)).await;
    o.assert_success();
    assert_presented(&o, &leaf);
    assert_eq!(o.value("probe_ssl_ocsp_stapled", &[]), Some(1.0));
    assert_eq!(
        o.metrics.label_sets("probe_ssl_ocsp_status"),
        vec![[("status".to_string(), "good".to_string())].into()],
        "{}",
        o.text
    );
    assert_eq!(o.value("probe_ssl_ocsp_status", &[]), Some(1.0));
    assert_eq!(
        o.value("probe_ssl_ocsp_next_update_timestamp_seconds", &[]),
        Some(next as f64)
    );
}

#[tokio::test]
async fn ocsp_staple_revoked() {
    let next = unix_now() + 7200;
    let (o, _) = stapled(1, Some(next)).await;
    assert_eq!(o.value("probe_ssl_ocsp_stapled", &[]), Some(1.0));
    assert_eq!(
        o.metrics.label_sets("probe_ssl_ocsp_status"),
        vec![[("status".to_string(), "revoked".to_string())].into()],
        "{}",
        o.text
    );
    assert_eq!(
        o.value("probe_ssl_ocsp_next_update_timestamp_seconds", &[]),
        Some(next as f64)
    );
}

#[tokio::test]
async fn ocsp_staple_unknown_without_next_update() {
    let (o, _) = stapled(2, None).await;
    o.assert_success();
    assert_eq!(o.value("probe_ssl_ocsp_stapled", &[]), Some(1.0));
    assert_eq!(
        o.metrics.label_sets("probe_ssl_ocsp_status"),
        vec![[("status".to_string(), "unknown".to_string())].into()],
        "{}",
        o.text
    );
    assert!(
        !o.metrics
            .has("probe_ssl_ocsp_next_update_timestamp_seconds"),
        "{}",
        o.text
    );
}

#[tokio::test]
async fn ocsp_staple_over_tls12() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let next = unix_now() + 3600;
    let der = ocsp::response(&leaf.serial, 0, unix_now() - 60, Some(next));
    let server = Server::tls(
        ServerTls::new(&leaf)
            .versions(&[&rustls::version::TLS12])
            .ocsp(der)
            .build(),
    )
    .await;
    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    o.assert_success();
    assert_eq!(o.value("probe_ssl_ocsp_stapled", &[]), Some(1.0));
    assert_eq!(
        o.value("probe_ssl_ocsp_status", &[("status", "good")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn ocsp_staple_is_reported_when_verification_fails() {
    let pki = Pki::new();
    let leaf = pki.expired_leaf();
    let der = ocsp::response(&leaf.serial, 1, unix_now() - 60, None);
    let server = Server::tls(ServerTls::new(&leaf).ocsp(der).build()).await;
    let o = probe(&pki, &trusting(&pki), &server.target(), None).await;
    assert_failed_with_certs(&o, "tls_cert_expired", &leaf);
    assert_eq!(o.value("probe_ssl_ocsp_stapled", &[]), Some(1.0));
    assert_eq!(
        o.value("probe_ssl_ocsp_status", &[("status", "revoked")]),
        Some(1.0)
    );
}
