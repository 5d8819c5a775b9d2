//! `prober: grpc` against an in-process gRPC health server
//! (`common::grpc_server`: hyper's HTTP/2 server, h2c and TLS) for every
//! config key, metric and failure reason, and end to end against the
//! reference health service of grpcio from PyPI (`grpcio_health.py`)
//! through our binary's `/probe`.

use std::path::Path;
use std::time::Duration;

use crate::common;
use crate::common::exporter::Exporter;
use crate::common::grpc_server::{GrpcServer, Grpcio, Reply, health};
use crate::common::pki::Pki;
use crate::common::probe::{Outcome, run_in};
use crate::common::tls_server::ServerTls;

const TIMEOUT: Duration = Duration::from_secs(5);

const STATUSES: &[(&str, i32)] = &[
    ("", 1),
    ("up.Svc", 1),
    ("down.Svc", 2),
    ("gone.Svc", 3),
    ("unknown.Svc", 0),
];

fn module_with(top: &str, body: &str) -> String {
    let mut s = format!("{top}modules:\n  m:\n    prober: grpc\n    grpc:\n");
    for line in body.lines() {
        s.push_str("      ");
        s.push_str(line);
        s.push('\n');
    }
    if body.is_empty() {
        s.push_str("      {}\n");
    }
    s
}

async fn probe(body: &str, target: &str) -> Outcome {
    run_in(
        Path::new("."),
        &module_with("", body),
        "m",
        target,
        None,
        TIMEOUT,
    )
    .await
}

fn assert_value(o: &Outcome, name: &str, labels: &[(&str, &str)], want: f64) {
    assert_eq!(o.value(name, labels), Some(want), "{name}\n{}", o.text);
}

fn assert_absent(o: &Outcome, name: &str) {
    assert!(!o.metrics.has(name), "{name} present:\n{}", o.text);
}

/// The four serving_status series, `one` at 1 (None: all 0).
fn assert_serving(o: &Outcome, one: Option<&str>) {
    for status in ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"] {
        let want = if Some(status) == one { 1.0 } else { 0.0 };
        assert_value(
            o,
            "probe_grpc_healthcheck_response",
            &[("serving_status", status)],
            want,
        );
    }
}

// ---------------------------------------------------------------------------
// Serving statuses and the metric set
// ---------------------------------------------------------------------------

#[tokio::test]
async fn serving_exports_blackbox_s_metrics() {
    let server = GrpcServer::start(health(STATUSES)).await;
    let o = probe("preferred_ip_protocol: ip4", &server.target()).await;
    o.assert_success();
    assert_serving(&o, Some("SERVING"));
    assert_value(&o, "probe_grpc_status_code", &[], 0.0);
    assert_value(&o, "probe_grpc_ssl", &[], 0.0);
    assert_value(&o, "probe_ip_protocol", &[], 4.0);
    assert_value(&o, "probe_ip_addr_hash", &[], 3668918509.0);
    for phase in ["resolve", "check"] {
        assert!(
            o.value("probe_grpc_duration_seconds", &[("phase", phase)])
                .is_some(),
            "{phase}\n{}",
            o.text
        );
    }
    assert!(o.value("probe_grpc_duration_seconds", &[("phase", "check")]) > Some(0.0));
    // Plaintext: no TLS family (blackbox 0.23's `earliest_cert_expiry 0`
    // on plaintext is a bug fixed upstream).
    assert_absent(&o, "probe_ssl_earliest_cert_expiry");
    assert_absent(&o, "probe_tls_version_info");

    let call = server.only_call();
    assert_eq!(call.path, "/grpc.health.v1.Health/Check");
    assert_eq!(call.service.as_deref(), Some(""));
    assert_eq!(call.headers["content-type"], "application/grpc");
    assert_eq!(call.headers["te"], "trailers");
    // The deadline goes along, in milliseconds, a little under the 5 s.
    let timeout = call.headers["grpc-timeout"].to_str().unwrap();
    let ms: u64 = timeout.strip_suffix('m').unwrap().parse().unwrap();
    assert!((1000..=5000).contains(&ms), "{timeout}");
}

#[tokio::test]
async fn the_service_is_asked_for_and_its_status_decides() {
    let server = GrpcServer::start(health(STATUSES)).await;
    let o = probe("service: up.Svc", &server.target()).await;
    o.assert_success();
    assert_eq!(server.only_call().service.as_deref(), Some("up.Svc"));

    for (service, status) in [
        ("down.Svc", "NOT_SERVING"),
        ("gone.Svc", "SERVICE_UNKNOWN"),
        ("unknown.Svc", "UNKNOWN"),
    ] {
        let o = probe(&format!("service: {service}"), &server.target()).await;
        o.assert_reason("grpc_not_serving");
        assert_serving(&o, Some(status));
        // The call itself succeeded.
        assert_value(&o, "probe_grpc_status_code", &[], 0.0);
        assert!(o.log.contains(status), "{}", o.log);
    }
}

#[tokio::test]
async fn an_unknown_service_is_grpc_status_not_found() {
    let server = GrpcServer::start(health(STATUSES)).await;
    let o = probe("service: no.such.Svc", &server.target()).await;
    o.assert_reason("grpc_status");
    assert_value(&o, "probe_grpc_status_code", &[], 5.0);
    assert_serving(&o, None);
    assert!(o.log.contains("NOT_FOUND"), "{}", o.log);
    assert!(o.log.contains("unknown service"), "{}", o.log);
}

#[tokio::test]
async fn a_server_without_health_service_is_unimplemented() {
    let server =
        GrpcServer::start(|_: &_| Reply::Error(12, "unknown service grpc.health.v1.Health")).await;
    let o = probe("", &server.target()).await;
    o.assert_reason("grpc_status");
    assert_value(&o, "probe_grpc_status_code", &[], 12.0);
    assert_serving(&o, None);
    // Not gRPC at all: the HTTP status maps to a gRPC code (404 →
    // UNIMPLEMENTED, 503 → UNAVAILABLE).
    for (http, code) in [(404, 12.0), (503, 14.0)] {
        let server = GrpcServer::start(move |_: &_| Reply::Http(http)).await;
        let o = probe("", &server.target()).await;
        o.assert_reason("grpc_status");
        assert_value(&o, "probe_grpc_status_code", &[], code);
    }
}

#[tokio::test]
async fn metadata_is_sent() {
    let server = GrpcServer::start(health(STATUSES)).await;
    probe(
        "metadata:\n  X-Tenant: [blue]\n  x-multi: [a, b]\n  authorization: [Bearer t0ken]\n  trace-bin: [\"\\x01\\x02\"]",
        &server.target(),
    )
    .await
    .assert_success();
    let call = server.only_call();
    assert_eq!(call.headers["x-tenant"], "blue");
    let multi: Vec<_> = call.headers.get_all("x-multi").iter().collect();
    assert_eq!(multi, ["a", "b"]);
    assert_eq!(call.headers["authorization"], "Bearer t0ken");
    assert_eq!(call.headers["trace-bin"], "AQI");
    // gRPC's own headers are ours, whatever the metadata.
    assert_eq!(call.headers["content-type"], "application/grpc");
}

// ---------------------------------------------------------------------------
// Malformed answers: bounded and refused
// ---------------------------------------------------------------------------

#[tokio::test]
async fn malformed_answers_are_grpc_status_failures() {
    let mut oversized = vec![0, 0, 1, 0, 1];
    oversized.extend(vec![0u8; 65537]);
    for (body, code) in [
        // Over the 64 KiB message limit: RESOURCE_EXHAUSTED.
        (oversized, 8.0),
        // Compressed, though we accept no compression: INTERNAL.
        (vec![1, 0, 0, 0, 2, 0x08, 1], 13.0),
        // Cut inside the message.
        (vec![0, 0, 0, 0, 9, 0x08], 13.0),
        // No message at all.
        (Vec::new(), 13.0),
    ] {
        let server = GrpcServer::start(move |_: &_| Reply::RawBody(body.clone())).await;
        let o = probe("", &server.target()).await;
        o.assert_reason("grpc_status");
        assert_value(&o, "probe_grpc_status_code", &[], code);
    }
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tls_exports_the_tls_family() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = GrpcServer::start_tls(
        ServerTls::new(&leaf).alpn(&["h2"]).build(),
        health(STATUSES),
    )
    .await;
    let o = probe(
        &format!(
            "tls: true\ntls_config:\n  ca_file: {}\n  server_name: localhost",
            pki.ca_file().display()
        ),
        &server.target(),
    )
    .await;
    o.assert_success();
    assert_value(&o, "probe_grpc_ssl", &[], 1.0);
    assert_value(
        &o,
        "probe_ssl_earliest_cert_expiry",
        &[],
        leaf.earliest_expiry() as f64,
    );
    assert!(o.metrics.has("probe_tls_version_info"), "{}", o.text);
    assert!(o.metrics.has("probe_ssl_last_chain_info"), "{}", o.text);

    // Without the CA: untrusted, from the table, with the certificate
    // still reported.
    let o = probe("tls: true", &server.target()).await;
    o.assert_reason("tls_cert_untrusted");
    assert_value(&o, "probe_grpc_status_code", &[], 14.0);
    assert!(
        o.metrics.has("probe_ssl_earliest_cert_expiry"),
        "{}",
        o.text
    );

    // The server name must match the certificate.
    let o = probe(
        &format!(
            "tls: true\ntls_config:\n  ca_file: {}\n  server_name: other.test",
            pki.ca_file().display()
        ),
        &server.target(),
    )
    .await;
    o.assert_reason("tls_hostname_mismatch");
}

#[tokio::test]
async fn tls_mismatches_fail_as_unavailable() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let tls = GrpcServer::start_tls(
        ServerTls::new(&leaf).alpn(&["h2"]).build(),
        health(STATUSES),
    )
    .await;
    let o = probe("", &tls.target()).await;
    assert!(!o.success, "{}", o.log);
    assert_value(&o, "probe_grpc_status_code", &[], 14.0);
    // A TLS server that speaks only HTTP/1.1: no common ALPN protocol.
    let http1 = GrpcServer::start_tls(
        ServerTls::new(&leaf).alpn(&["http/1.1"]).build(),
        health(STATUSES),
    )
    .await;
    let o = probe(
        &format!(
            "tls: true\ntls_config:\n  ca_file: {}\n  server_name: localhost",
            pki.ca_file().display()
        ),
        &http1.target(),
    )
    .await;
    o.assert_reason("tls_handshake_failed");
    assert_value(&o, "probe_grpc_status_code", &[], 14.0);
    let plain = GrpcServer::start(health(STATUSES)).await;
    let o = probe(
        "tls: true\ntls_config:\n  insecure_skip_verify: true",
        &plain.target(),
    )
    .await;
    assert!(!o.success, "{}", o.log);
    assert_value(&o, "probe_grpc_status_code", &[], 14.0);
}

// ---------------------------------------------------------------------------
// Network failures, the target policy, targets
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_refused_port_is_connect_refused() {
    let o = probe("", &common::closed_addr().to_string()).await;
    o.assert_reason("connect_refused");
    assert_value(&o, "probe_grpc_status_code", &[], 14.0);
    assert_serving(&o, None);
    assert_value(&o, "probe_grpc_ssl", &[], 0.0);
}

#[tokio::test]
async fn the_target_policy_holds() {
    let server = GrpcServer::start(health(STATUSES)).await;
    let o = run_in(
        Path::new("."),
        &module_with("target_policy:\n  deny: [127.0.0.0/8]\n", ""),
        "m",
        &server.target(),
        None,
        TIMEOUT,
    )
    .await;
    o.assert_reason("target_forbidden");
    assert!(server.calls().is_empty());
}

#[tokio::test]
async fn targets_in_blackbox_s_forms() {
    let server = GrpcServer::start(health(STATUSES)).await;
    let port = server.addr.port();
    for target in [
        format!("127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}"),
        // The scheme does not turn TLS on (blackbox: only `tls` does).
        format!("https://127.0.0.1:{port}/ignored"),
        format!("localhost:{port}"),
    ] {
        probe("preferred_ip_protocol: ip4", &target)
            .await
            .assert_success();
    }
    let o = probe("", "a:b:c").await;
    o.assert_reason("invalid_target");
}

#[tokio::test]
async fn a_silent_server_is_cut_by_the_deadline() {
    // Accepts and never answers (no HTTP/2 preface from the server).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let o = run_in(
        Path::new("."),
        &module_with("", ""),
        "m",
        &addr.to_string(),
        None,
        Duration::from_millis(500),
    )
    .await;
    hold.abort();
    o.assert_reason("timeout");
    assert!(o.elapsed < Duration::from_secs(3), "{:?}", o.elapsed);
    // What a gRPC client with that deadline reports.
    assert_value(&o, "probe_grpc_status_code", &[], 4.0);
    assert!(o.value("probe_grpc_duration_seconds", &[("phase", "check")]) > Some(0.4));
}

// ---------------------------------------------------------------------------
// End to end: grpcio's reference health service, through /probe
// ---------------------------------------------------------------------------

#[tokio::test]
async fn grpcio_reference_health_service_end_to_end() {
    let grpcio = Grpcio::start();
    let exporter = Exporter::start(
        "modules:\n\
         \x20 grpc_plain:\n    prober: grpc\n    grpc:\n      preferred_ip_protocol: ip4\n\
         \x20 grpc_up:\n    prober: grpc\n    grpc:\n      service: serving.Svc\n      preferred_ip_protocol: ip4\n\
         \x20 grpc_down:\n    prober: grpc\n    grpc:\n      service: down.Svc\n      preferred_ip_protocol: ip4\n\
         \x20 grpc_missing:\n    prober: grpc\n    grpc:\n      service: no.such.Svc\n      preferred_ip_protocol: ip4\n\
         \x20 grpc_meta:\n    prober: grpc\n    grpc:\n      preferred_ip_protocol: ip4\n      metadata:\n        x-tenant: [blue]\n",
    )
    .await;
    let health = format!("127.0.0.1:{}", grpcio.health);
    let bare = format!("127.0.0.1:{}", grpcio.bare);
    let serving = |m: &common::exposition::Exposition, status: &str| {
        m.value(
            "probe_grpc_healthcheck_response",
            &[("serving_status", status)],
        )
    };

    for module in ["grpc_plain", "grpc_up", "grpc_meta"] {
        let m = exporter.probe_metrics(&health, module).await;
        assert_eq!(m.value("probe_success", &[]), Some(1.0), "{module}");
        assert_eq!(serving(&m, "SERVING"), Some(1.0), "{module}");
        assert_eq!(m.value("probe_grpc_status_code", &[]), Some(0.0));
    }

    let m = exporter.probe_metrics(&health, "grpc_down").await;
    assert_eq!(m.value("probe_success", &[]), Some(0.0));
    assert_eq!(serving(&m, "NOT_SERVING"), Some(1.0));
    assert_eq!(serving(&m, "SERVING"), Some(0.0));
    assert_eq!(
        m.value("probe_failure_info", &[("reason", "grpc_not_serving")]),
        Some(1.0)
    );

    let m = exporter.probe_metrics(&health, "grpc_missing").await;
    assert_eq!(m.value("probe_grpc_status_code", &[]), Some(5.0));
    assert_eq!(
        m.value("probe_failure_info", &[("reason", "grpc_status")]),
        Some(1.0)
    );

    let m = exporter.probe_metrics(&bare, "grpc_plain").await;
    assert_eq!(m.value("probe_grpc_status_code", &[]), Some(12.0));
    assert_eq!(
        m.value("probe_failure_info", &[("reason", "grpc_status")]),
        Some(1.0)
    );
}
