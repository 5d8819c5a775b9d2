//! `prober: http` with `enable_http3: true` against an in-process HTTP/3
//! server (`common::h3_server`: quinn + h3) for the checks, metrics and
//! failure reasons, and end to end against hypercorn (with aioquic) from
//! PyPI through our binary's `/probe`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::exporter::Exporter;
use crate::common::h3_server::{H3Server, Handler, Hypercorn, Reply, Seen};
use crate::common::pki::{Pki, Validity};
use crate::common::probe::{Outcome, run_in};
use rcgen::ExtendedKeyUsagePurpose;

const TIMEOUT: Duration = Duration::from_secs(5);

/// An http module with HTTP/3 on (and what blackbox requires with it),
/// trusting `pki`'s root, plus `body`.
fn module(pki: &Pki, top: &str, body: &str) -> String {
    let mut s = format!(
        "{top}modules:\n  m:\n    prober: http\n    http:\n      enable_http3: true\n      enable_http2: false\n      preferred_ip_protocol: ip4\n      tls_config:\n        ca_file: {}\n",
        pki.ca_file().display()
    );
    for line in body.lines() {
        s.push_str("      ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

async fn probe_with(config: &str, target: &str, timeout: Duration) -> Outcome {
    run_in(Path::new("."), config, "m", target, None, timeout).await
}

async fn probe(pki: &Pki, body: &str, target: &str) -> Outcome {
    probe_with(&module(pki, "", body), target, TIMEOUT).await
}

fn assert_value(o: &Outcome, name: &str, labels: &[(&str, &str)], want: f64) {
    assert_eq!(o.value(name, labels), Some(want), "{name}\n{}", o.text);
}

/// `/` 200 with a header and a body; `/status/N` N; `/redirect/N` a chain
/// of N redirects to `/`; `/echo` the request body; `/big` 64 KiB.
fn handler() -> Handler {
    Arc::new(|s: &Seen| {
        let path = s
            .uri
            .split("://")
            .nth(1)
            .and_then(|r| r.find('/').map(|i| &r[i..]));
        let path = path.unwrap_or("/");
        if let Some(code) = path.strip_prefix("/status/") {
            return Reply::new(code.parse().unwrap_or(500), b"status");
        }
        if let Some(n) = path.strip_prefix("/redirect/") {
            let n: u32 = n.parse().unwrap_or(0);
            let next = if n <= 1 {
                "/".to_string()
            } else {
                format!("/redirect/{}", n - 1)
            };
            return Reply::new(302, b"").header("location", &next);
        }
        match path {
            "/echo" => Reply::new(200, &s.body),
            "/big" => Reply::new(200, &vec![b'x'; 64 * 1024]),
            _ => Reply::new(200, b"hello over h3")
                .header("x-served-by", "h3-test")
                .header("content-length", "13"),
        }
    })
}

async fn server(pki: &Pki) -> H3Server {
    H3Server::start(&pki.localhost_leaf(), handler()).await
}

#[tokio::test]
async fn http3_probe_exports_status_version_and_tls() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = H3Server::start(&leaf, handler()).await;
    let started = Instant::now();
    let o = probe(&pki, "valid_http_versions: [HTTP/3.0]", &server.url("/")).await;
    let took = started.elapsed();
    o.assert_success();
    assert_value(&o, "probe_http_status_code", &[], 200.0);
    assert_value(&o, "probe_http_version", &[], 3.0);
    assert_value(&o, "probe_http_ssl", &[], 1.0);
    assert_value(&o, "probe_http_content_length", &[], 13.0);
    assert_value(&o, "probe_http_uncompressed_body_length", &[], 13.0);
    assert_value(&o, "probe_http_redirects", &[], 0.0);
    assert_value(
        &o,
        "probe_ssl_earliest_cert_expiry",
        &[],
        leaf.earliest_expiry() as f64,
    );
    assert_value(&o, "probe_tls_version_info", &[("version", "TLS 1.3")], 1.0);
    let ciphers: Vec<_> = o.metrics.samples_named("probe_tls_cipher_info").collect();
    assert_eq!(ciphers.len(), 1, "{}", o.text);
    for phase in ["resolve", "connect", "tls", "processing", "transfer"] {
        let v = o.value("probe_http_duration_seconds", &[("phase", phase)]);
        assert!(v.is_some_and(|v| v >= 0.0), "{phase}\n{}", o.text);
    }
    assert!(o.value("probe_http_duration_seconds", &[("phase", "tls")]) > Some(0.0));
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert!(seen[0].headers.contains_key("user-agent"), "{seen:?}");
    assert!(!seen[0].headers.contains_key("connection"), "{seen:?}");
    // The connection was closed with H3_NO_ERROR, not left to time out.
    let mut closes = server.closes();
    for _ in 0..50 {
        if !closes.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        closes = server.closes();
    }
    assert_eq!(
        closes,
        vec!["Remote(ApplicationClose(H3_NO_ERROR))".to_string()],
        "the client did not close politely"
    );
    let phases: Vec<String> = ["resolve", "connect", "tls", "processing", "transfer"]
        .iter()
        .map(|p| {
            let v = o.value("probe_http_duration_seconds", &[("phase", p)]);
            format!("{p}={:.4}", v.unwrap_or(f64::NAN))
        })
        .collect();
    println!(
        "HTTP/3 probe against the in-process server took {took:?} ({})",
        phases.join(" ")
    );
}

#[tokio::test]
async fn the_negotiated_cipher_is_reported() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    // Our first choice (QUIC's Initial packets use AES-128-GCM whatever is
    // negotiated: that is not what is reported).
    let server = H3Server::start(&leaf, handler()).await;
    let o = probe(&pki, "", &server.url("/")).await;
    o.assert_success();
    assert_value(
        &o,
        "probe_tls_cipher_info",
        &[("cipher", "TLS_AES_256_GCM_SHA384")],
        1.0,
    );
    // A server that only has AES-128-GCM.
    let tls = H3Server::tls(&leaf)
        .suites(&[rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256])
        .build();
    let server = H3Server::start_tls(tls, handler()).await;
    let o = probe(&pki, "", &server.url("/")).await;
    o.assert_success();
    assert_value(
        &o,
        "probe_tls_cipher_info",
        &[("cipher", "TLS_AES_128_GCM_SHA256")],
        1.0,
    );
}

#[tokio::test]
async fn http_targets_are_upgraded_to_https() {
    let pki = Pki::new();
    let server = server(&pki).await;
    let target = format!("http://localhost:{}/", server.addr.port());
    let o = probe(&pki, "", &target).await;
    o.assert_success();
    assert_value(&o, "probe_http_version", &[], 3.0);
    assert_value(&o, "probe_http_ssl", &[], 1.0);
    let o = probe(&pki, "fail_if_ssl: true", &target).await;
    o.assert_reason("ssl_policy");
}

#[tokio::test]
async fn status_codes_and_versions_are_checked() {
    let pki = Pki::new();
    let server = server(&pki).await;
    let o = probe(&pki, "", &server.url("/status/404")).await;
    o.assert_reason("http_status");
    assert_value(&o, "probe_http_status_code", &[], 404.0);
    probe(
        &pki,
        "valid_status_codes: [404]",
        &server.url("/status/404"),
    )
    .await
    .assert_success();
    // The response's protocol string is HTTP/3.0, the only version the
    // list may hold with enable_http3.
    let o = probe(&pki, "valid_http_versions: [HTTP/3.0]", &server.url("/")).await;
    o.assert_success();
}

#[tokio::test]
async fn regexes_and_body_limits_apply() {
    let pki = Pki::new();
    let server = server(&pki).await;
    let url = server.url("/");
    probe(&pki, "fail_if_body_not_matches_regexp: ['hello']", &url)
        .await
        .assert_success();
    let o = probe(&pki, "fail_if_body_matches_regexp: ['over h3']", &url).await;
    o.assert_reason("http_body_regex");
    assert_value(&o, "probe_failed_due_to_regex", &[], 1.0);
    let o = probe(
        &pki,
        "fail_if_header_not_matches:\n  - header: X-Served-By\n    regexp: '^nginx$'",
        &url,
    )
    .await;
    o.assert_reason("http_header_regex");
    probe(
        &pki,
        "fail_if_header_matches:\n  - header: X-Served-By\n    regexp: '^nginx$'",
        &url,
    )
    .await
    .assert_success();
    let o = probe(&pki, "body_size_limit: 1KiB", &server.url("/big")).await;
    o.assert_reason("body_size_limit");
    let o = probe(
        &pki,
        "method: POST\nbody: ping-over-h3\nfail_if_body_not_matches_regexp: ['^ping-over-h3$']",
        &server.url("/echo"),
    )
    .await;
    o.assert_success();
    assert!(
        server
            .seen()
            .iter()
            .any(|s| s.method == "POST" && s.body == b"ping-over-h3")
    );
}

#[tokio::test]
async fn redirects_are_followed_over_http3() {
    let pki = Pki::new();
    let server = server(&pki).await;
    let o = probe(&pki, "", &server.url("/redirect/2")).await;
    o.assert_success();
    assert_value(&o, "probe_http_redirects", &[], 2.0);
    assert_value(&o, "probe_http_version", &[], 3.0);
    assert_eq!(server.seen().len(), 3);
    let o = probe(&pki, "follow_redirects: false", &server.url("/redirect/1")).await;
    o.assert_reason("http_status");
    assert_value(&o, "probe_http_status_code", &[], 302.0);
    let o = probe(&pki, "", &server.url("/redirect/11")).await;
    o.assert_reason("redirect_limit");
}

#[tokio::test]
async fn untrusted_mismatched_and_expired_certificates_are_tls_reasons() {
    let pki = Pki::new();
    let self_signed = pki.self_signed_leaf();
    let server = H3Server::start(&self_signed, handler()).await;
    let o = probe(&pki, "", &server.url("/")).await;
    o.assert_reason("tls_cert_untrusted");
    // What the failed handshake showed is still reported.
    assert_value(
        &o,
        "probe_ssl_earliest_cert_expiry",
        &[],
        self_signed.earliest_expiry() as f64,
    );
    assert!(server.seen().is_empty());
    let insecure =
        module(&pki, "", "").replace("ca_file:", "insecure_skip_verify: true\n        # ca_file:");
    probe_with(&insecure, &server.url("/"), TIMEOUT)
        .await
        .assert_success();

    let wrong = H3Server::start(&pki.wrong_host_leaf(), handler()).await;
    let o = probe(&pki, "", &wrong.url("/")).await;
    o.assert_reason("tls_hostname_mismatch");

    let expired = pki.expired_leaf();
    let old = H3Server::start(&expired, handler()).await;
    let o = probe(&pki, "", &old.url("/")).await;
    o.assert_reason("tls_cert_expired");
    assert_value(
        &o,
        "probe_ssl_earliest_cert_expiry",
        &[],
        expired.earliest_expiry() as f64,
    );
}

#[tokio::test]
async fn a_client_certificate_is_sent_and_its_absence_refused() {
    let pki = Pki::new();
    let tls = H3Server::tls(&pki.localhost_leaf())
        .require_client_cert(&[pki.ca_der()])
        .build();
    let server = H3Server::start_tls(tls, handler()).await;
    // TLS 1.3: the server refuses the missing certificate after our side
    // of the handshake is done, with an alert in a QUIC close.
    let o = probe(&pki, "", &server.url("/")).await;
    o.assert_reason("tls_handshake_failed");
    assert!(server.seen().is_empty());

    let client = pki.leaf_with(&["client.test"], &[], Validity::default(), |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    });
    let (cert, key) = client.write_to(pki.dir(), "client");
    let ca = format!("ca_file: {}\n", pki.ca_file().display());
    let with_cert = module(&pki, "", "").replace(
        &ca,
        &format!(
            "{ca}        cert_file: {}\n        key_file: {}\n",
            cert.display(),
            key.display()
        ),
    );
    probe_with(&with_cert, &server.url("/"), TIMEOUT)
        .await
        .assert_success();
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_is_cut_by_the_deadline() {
    let pki = Pki::new();
    let server = server(&pki).await;
    let deadline = Duration::from_millis(800);
    let o = probe_with(&module(&pki, "", ""), &server.url("/endless"), deadline).await;
    o.assert_reason("timeout");
    assert!(
        o.elapsed < deadline + Duration::from_millis(300),
        "{:?}",
        o.elapsed
    );
    assert!(o.value("probe_http_duration_seconds", &[("phase", "transfer")]) > Some(0.3));
}

/// The UDP sockets connected to `port` on 127.0.0.1 (from /proc/net/udp).
fn udp_sockets_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let want = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(2) == Some(want.as_str()))
        .count()
}

#[tokio::test]
async fn a_silent_peer_ends_at_the_deadline_and_the_socket_is_closed() {
    let pki = Pki::new();
    // Reads every datagram, answers none.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let got = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = got.clone();
    let hold = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while silent.recv_from(&mut buf).await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let deadline = Duration::from_millis(700);
    let o = probe_with(
        &module(&pki, "", ""),
        &format!("https://localhost:{port}/"),
        deadline,
    )
    .await;
    o.assert_reason("timeout");
    assert!(
        o.elapsed < deadline + Duration::from_millis(300),
        "{:?}",
        o.elapsed
    );
    assert!(
        got.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no Initial sent"
    );
    // The handshake was where the deadline cut it.
    assert!(o.value("probe_http_duration_seconds", &[("phase", "tls")]) > Some(0.5));
    // Its socket is gone once quinn's aborted tasks are dropped.
    let mut open = udp_sockets_to(port);
    for _ in 0..20 {
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        open = udp_sockets_to(port);
    }
    hold.abort();
    assert_eq!(open, 0, "a UDP socket to the silent peer is still open");
    println!("silent peer: probe ended after {:?}", o.elapsed);
}

#[tokio::test]
async fn a_closed_port_is_connect_refused() {
    let pki = Pki::new();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = probe(&pki, "", &format!("https://127.0.0.1:{port}/")).await;
    o.assert_reason("connect_refused");
    assert!(o.elapsed < Duration::from_secs(2), "{:?}", o.elapsed);
}

#[tokio::test]
async fn the_target_policy_holds() {
    let pki = Pki::new();
    let server = server(&pki).await;
    let o = probe_with(
        &module(&pki, "target_policy:\n  deny: [127.0.0.0/8]\n", ""),
        &server.url("/"),
        TIMEOUT,
    )
    .await;
    o.assert_reason("target_forbidden");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.handshakes(), 0, "a forbidden target was contacted");
}

#[test]
fn http3_config_rules_are_load_errors() {
    let pki = Pki::new();
    let load = |yaml: &str| handshake_exporter::prober::load_str(yaml, Path::new("."));
    let plain = |body: &str| {
        format!("modules:\n  m:\n    prober: http\n    http:\n      enable_http3: true\n{body}")
    };
    for (body, words) in [
        ("", &["enable_http3", "enable_http2: false"][..]),
        (
            "      enable_http2: false\n      valid_http_versions: [HTTP/1.1]\n",
            &["enable_http3", "HTTP/1.1"],
        ),
        (
            "      enable_http2: false\n      valid_http_versions: [HTTP/3.0, HTTP/2.0]\n",
            &["enable_http3", "HTTP/2.0"],
        ),
    ] {
        let e = match load(&plain(body)) {
            Ok(_) => panic!("loaded:\n{body}"),
            Err(e) => e.to_string(),
        };
        for w in words {
            assert!(e.contains(w), "{w:?} not in {e}");
        }
    }
    load(&module(&pki, "", "valid_http_versions: [HTTP/3.0]")).expect("loads");
}

// ---------------------------------------------------------------------------
// End to end: hypercorn (aioquic) from PyPI, through /probe
// ---------------------------------------------------------------------------

#[tokio::test]
async fn hypercorn_over_http3_end_to_end() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let hypercorn = Hypercorn::start(&leaf);
    let tls = format!(
        "      tls_config:\n        ca_file: {}\n",
        pki.ca_file().display()
    );
    let h3 =
        "      enable_http3: true\n      enable_http2: false\n      preferred_ip_protocol: ip4\n";
    let exporter = Exporter::start(&format!(
        "modules:\n\
         \x20 h3:\n    prober: http\n    http:\n{h3}{tls}      valid_http_versions: [HTTP/3.0]\n      fail_if_body_not_matches_regexp: ['hello from hypercorn']\n      fail_if_header_not_matches:\n        - header: X-Server\n          regexp: hypercorn\n\
         \x20 h3_teapot:\n    prober: http\n    http:\n{h3}{tls}      valid_status_codes: [418]\n\
         \x20 h3_untrusted:\n    prober: http\n    http:\n{h3}"
    ))
    .await;
    let base = format!("localhost:{}", hypercorn.port);

    // hypercorn's QUIC side may need a moment after its TCP side listens.
    let started = Instant::now();
    let mut m = exporter
        .probe_metrics(&format!("https://{base}/"), "h3")
        .await;
    while m.value("probe_success", &[]) != Some(1.0) && started.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        m = exporter
            .probe_metrics(&format!("https://{base}/"), "h3")
            .await;
    }
    assert_eq!(m.value("probe_success", &[]), Some(1.0), "{m:?}");
    assert_eq!(m.value("probe_http_status_code", &[]), Some(200.0));
    assert_eq!(m.value("probe_http_version", &[]), Some(3.0));
    assert_eq!(m.value("probe_http_ssl", &[]), Some(1.0));
    assert_eq!(
        m.value("probe_tls_version_info", &[("version", "TLS 1.3")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("probe_ssl_earliest_cert_expiry", &[]),
        Some(leaf.earliest_expiry() as f64)
    );
    if let Some(d) = m.value("probe_duration_seconds", &[]) {
        println!("HTTP/3 probe of hypercorn through /probe: {d:.4} s");
    }
    // Every probe's UDP socket is closed with the probe.
    let baseline = exporter.open_fds();
    for _ in 0..20 {
        let m = exporter
            .probe_metrics(&format!("https://{base}/"), "h3")
            .await;
        assert_eq!(m.value("probe_success", &[]), Some(1.0));
    }
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let now = exporter.open_fds();
        if now <= baseline + 2 {
            break;
        }
        assert!(Instant::now() < until, "{now} fds open, {baseline} before");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let m = exporter
        .probe_metrics(&format!("http://{base}/moved"), "h3")
        .await;
    assert_eq!(m.value("probe_success", &[]), Some(1.0));
    assert_eq!(m.value("probe_http_redirects", &[]), Some(1.0));

    let m = exporter
        .probe_metrics(&format!("https://{base}/teapot"), "h3_teapot")
        .await;
    assert_eq!(m.value("probe_success", &[]), Some(1.0));
    assert_eq!(m.value("probe_http_status_code", &[]), Some(418.0));

    let m = exporter
        .probe_metrics(&format!("https://{base}/teapot"), "h3")
        .await;
    assert_eq!(
        m.value("probe_failure_info", &[("reason", "http_status")]),
        Some(1.0)
    );

    let m = exporter
        .probe_metrics(&format!("https://{base}/"), "h3_untrusted")
        .await;
    assert_eq!(
        m.value("probe_failure_info", &[("reason", "tls_cert_untrusted")]),
        Some(1.0)
    );
}
