//! Debian's packaged `/etc/prometheus/blackbox.yml` (installed with
//! prometheus-blackbox-exporter) loads unchanged, and every one of its
//! modules probes a local target successfully — with Debian's
//! blackbox_exporter beside ours on the same targets, giving the same
//! verdicts.
//!
//! The file is read from the package, not copied, so a new Debian release
//! with new modules fails this test until they are covered here. Targets:
//! - `http_2xx`, `http_post_2xx`, `tcp_connect`: an in-process HTTP server;
//! - `pop3s_banner` (TLS, verified against the system roots): in-process
//!   greetings over TLS, the test CA made the exporters' system roots with
//!   `SSL_CERT_FILE` (which rustls-native-certs reads, as Go does). Its
//!   `expect: "^+OK"` is, in Go's RE2 as in Rust's regex, one or more
//!   start-of-text anchors then `OK`: a real POP3 greeting (`+OK Dovecot
//!   ready.`) never matches it, in blackbox as here (asserted below), so the
//!   target that passes greets with `OK`;
//! - `grpc` (TLS, system roots): the in-process gRPC health server over TLS;
//! - `grpc_plain` (service `service1`): grpcio's reference health service;
//! - `ssh_banner`, `irc_banner`: in-process servers speaking the first lines
//!   of SSH and IRC as OpenSSH and an IRC daemon do;
//! - `icmp`, `icmp_ttl5`: 127.0.0.1.

use std::collections::{BTreeMap, BTreeSet};

use http::StatusCode;

use crate::common::blackbox;
use crate::common::exporter::Exporter;
use crate::common::grpc_server::{GrpcServer, Grpcio, health};
use crate::common::http_server::{TestServer, text};
use crate::common::pki::Pki;
use crate::common::tls_server::{Dialog, Server, ServerTls};

const PATH: &str = "/etc/prometheus/blackbox.yml";

/// The module names in the file, from its YAML.
fn module_names(yaml: &str) -> BTreeSet<String> {
    #[derive(serde::Deserialize)]
    struct File {
        modules: BTreeMap<String, serde::de::IgnoredAny>,
    }
    let file: File = serde_saphyr::from_str(yaml).expect("blackbox.yml has modules:");
    file.modules.into_keys().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_module_probes_a_local_target_as_blackbox_does() {
    let yaml = std::fs::read_to_string(PATH).unwrap_or_else(|e| {
        panic!("{PATH}: {e}: run scripts/test (it apt-installs prometheus-blackbox-exporter)")
    });
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();

    let http = TestServer::http(|req| {
        if req.method() == http::Method::POST || req.method() == http::Method::GET {
            text(StatusCode::OK, "ok")
        } else {
            text(StatusCode::METHOD_NOT_ALLOWED, "")
        }
    });
    let http_addr = http
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();

    let greeting_server = |greeting: &'static str| {
        let tls = ServerTls::new(&leaf).build();
        Server::start(move |stream, _| {
            let tls = tls.clone();
            async move {
                let Ok(mut d) = Dialog::accept_tls(stream, tls).await else {
                    return;
                };
                d.send(greeting).await;
                d.drain().await;
            }
        })
    };
    let pop3s = greeting_server("OK POP3 ready.\r\n").await;
    let real_pop3s = greeting_server("+OK Dovecot (Debian) ready.\r\n").await;

    let grpc_tls = GrpcServer::start_tls(
        ServerTls::new(&leaf).alpn(&["h2"]).build(),
        health(&[("", 1)]),
    )
    .await;
    let grpc_tls_port = grpc_tls
        .target()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    let grpcio = Grpcio::start();

    let ssh = Server::start(|stream, _| async move {
        let mut d = Dialog::new(stream);
        d.send("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n").await;
        // The client's identification line; a real server would then
        // start the key exchange.
        let _ = d.line().await;
        d.drain().await;
    })
    .await;

    let irc = Server::start(|stream, _| async move {
        let mut d = Dialog::new(stream);
        let (Some(nick), Some(user)) = (d.line().await, d.line().await) else {
            return;
        };
        if nick != "NICK prober" || !user.starts_with("USER prober") {
            d.send("ERROR :unexpected registration\r\n").await;
            return;
        }
        d.send("PING :4F2A9C1E\r\n").await;
        if d.line().await.as_deref() == Some("PONG 4F2A9C1E") {
            d.send(
                ":irc.example.test 001 prober :Welcome to the Internet Relay Network prober\r\n",
            )
            .await;
        }
        d.drain().await;
    })
    .await;

    let ca = pki.ca_file().display().to_string();
    let env = [("SSL_CERT_FILE", ca.as_str())];
    let ours = Exporter::start_with_env(&yaml, &env).await;
    let theirs = blackbox::start_with_env(&yaml, &env).await;

    let cases: Vec<(&str, String)> = vec![
        ("http_2xx", http.url("/")),
        ("http_post_2xx", http.url("/")),
        ("tcp_connect", http_addr),
        ("pop3s_banner", pop3s.localhost_target()),
        ("grpc", format!("localhost:{grpc_tls_port}")),
        ("grpc_plain", format!("127.0.0.1:{}", grpcio.health)),
        ("ssh_banner", ssh.target()),
        ("irc_banner", irc.target()),
        ("icmp", "127.0.0.1".to_string()),
        ("icmp_ttl5", "127.0.0.1".to_string()),
    ];
    let covered: BTreeSet<String> = cases.iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(
        covered,
        module_names(&yaml),
        "Debian's blackbox.yml has modules this test does not probe"
    );

    let mut failed = Vec::new();
    for (module, target) in &cases {
        for (name, exporter) in [("ours", &ours), ("blackbox", &theirs)] {
            let m = exporter.probe_metrics(target, module).await;
            if m.value("probe_success", &[]) != Some(1.0) {
                failed.push(format!("--- {name}: {module} {target}\n{m:?}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "modules that failed:\n{}\n--- our log\n{}\n--- blackbox log\n{}",
        failed.join("\n"),
        ours.log(),
        theirs.log()
    );

    // A real POP3 greeting fails Debian's pop3s_banner in both (a short
    // scrape timeout: both wait for a matching line until the deadline).
    for exporter in [&ours, &theirs] {
        let resp = exporter
            .probe_with(
                &[
                    ("target", &real_pop3s.localhost_target()),
                    ("module", "pop3s_banner"),
                ],
                &[("X-Prometheus-Scrape-Timeout-Seconds", "1.5")],
            )
            .await;
        assert!(resp.body.contains("probe_success 0"), "{}", resp.body);
    }

    // What the probes saw, beyond succeeding.
    let m = ours.probe_metrics(&http.url("/"), "http_post_2xx").await;
    assert_eq!(m.value("probe_http_status_code", &[]), Some(200.0));
    let m = ours
        .probe_metrics(&pop3s.localhost_target(), "pop3s_banner")
        .await;
    assert_eq!(
        m.value("probe_ssl_earliest_cert_expiry", &[]),
        Some(leaf.not_after() as f64)
    );
    let m = ours
        .probe_metrics(&format!("127.0.0.1:{}", grpcio.health), "grpc_plain")
        .await;
    assert_eq!(
        m.value(
            "probe_grpc_healthcheck_response",
            &[("serving_status", "SERVING")]
        ),
        Some(1.0)
    );
    let m = ours.probe_metrics("127.0.0.1", "icmp_ttl5").await;
    assert!(
        m.value("probe_icmp_reply_hop_limit", &[]).is_some(),
        "{m:?}"
    );
}
