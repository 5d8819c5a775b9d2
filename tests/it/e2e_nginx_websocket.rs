//! End to end: real nginx in front of a WebSocket backend, probed by our
//! websocket prober — and, for every case, an http probe of the same nginx
//! that stays green. That is the "HTTP up, WebSocket down" row of the
//! diagnosis matrix reproduced with real software, and the failure reason
//! says why the WebSocket is down.
//!
//! | location        | nginx does                                  | probe says               |
//! |-----------------|---------------------------------------------|--------------------------|
//! | `/ws`           | proxies with `Upgrade`/`Connection`         | success (101, ping, echo)|
//! | `/ws-noupgrade` | proxies without them: the backend sees a    | `upgrade_rejected` (426) |
//! |                 | plain GET and answers 426                   |                          |
//! | `/page`         | `return 200`                                | `upgrade_ignored` (200)  |
//! | `/limited`      | `limit_conn` 1, held by another client      | `upstream_unavailable` (503) |
//! | `/down`         | proxies to a closed port                    | `upstream_unavailable` (502) |
//! | wss `/ws`       | TLS (leaf + intermediate of the test PKI)   | success, cert expiry     |
//! | `/health`       | `return 200`                                | http probe: success      |
//!
//! nginx comes from Debian's package (`scripts/test` installs it); without
//! it these tests fail and say what to install.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{WebSocketStream, accept_async, client_async};

use crate::common;
use crate::common::nginx::{Nginx, NginxConfig};
use crate::common::pki::{Leaf, Pki};
use crate::common::probe::{Outcome, run_in};
use crate::common::ws_backend::{WsBackend, echo};

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
const ECHO_TEXT: &str = "hello through nginx";

// ---------------------------------------------------------------------------
// nginx in front of the backend (common::ws_backend)
// ---------------------------------------------------------------------------

/// The proxy directives of a correct WebSocket location.
const WS_PROXY: &str = r#"proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 30s;"#;

struct Fixture {
    backend: WsBackend,
    nginx: Nginx,
    pki: Pki,
    leaf: Leaf,
    config_yaml: String,
}

impl Fixture {
    /// The backend, and nginx with the plain server on `@PORT0@` and the
    /// TLS server on `@PORT1@`.
    async fn start() -> Fixture {
        let backend = WsBackend::start().await;
        let pki = Pki::new();
        let leaf = pki.localhost_leaf();
        let upstream = backend.addr();
        let down = common::closed_addr();

        let mut conf = NginxConfig::new();
        conf.http("limit_conn_zone $server_name zone=perserver:1m;");
        conf.server(&format!(
            r#"
    server {{
        listen 127.0.0.1:@PORT0@;
        server_name localhost;

        location = /health {{
            return 200 "healthy\n";
        }}
        location = /ws {{
            proxy_pass http://{upstream};
            {WS_PROXY}
        }}
        # The classic mistake: proxied, but Upgrade and Connection are not
        # forwarded (nginx sends "Connection: close" instead).
        location = /ws-noupgrade {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
        }}
        location = /page {{
            return 200 "<html><body>not a websocket</body></html>\n";
        }}
        location = /limited {{
            limit_conn perserver 1;
            limit_conn_status 503;
            proxy_pass http://{upstream};
            {WS_PROXY}
        }}
        location = /down {{
            proxy_pass http://{down};
            proxy_connect_timeout 2s;
            {WS_PROXY}
        }}
    }}
"#
        ));
        conf.tls_site(
            1,
            &["localhost"],
            &leaf,
            &format!(
                r#"location = /health {{
            return 200 "healthy\n";
        }}
        location = /ws {{
            proxy_pass http://{upstream};
            {WS_PROXY}
        }}"#
            ),
        );
        let nginx = conf.start();

        let ca_file = pki.ca_file();
        let config_yaml = format!(
            r#"modules:
  ws:
    prober: websocket
    timeout: 3s
    websocket:
      ping: true
  ws_echo:
    prober: websocket
    timeout: 3s
    websocket:
      query_response:
        - send: "{ECHO_TEXT}"
        - expect: "^{ECHO_TEXT}$"
      ping: true
  wss:
    prober: websocket
    timeout: 3s
    websocket:
      ping: true
      tls_config:
        ca_file: {ca_file}
  http_2xx:
    prober: http
    timeout: 3s
"#,
            ca_file = ca_file.display()
        );
        Fixture {
            backend,
            nginx,
            pki,
            leaf,
            config_yaml,
        }
    }

    /// `ws://127.0.0.1:<plain port><path>`
    fn ws_url(&self, path: &str) -> String {
        self.nginx.url("ws", 0, path)
    }

    async fn probe(&self, module: &str, target: &str) -> Outcome {
        run_in(
            Path::new("."),
            &self.config_yaml,
            module,
            target,
            None,
            PROBE_TIMEOUT,
        )
        .await
    }

    /// The other half of the matrix row: an http probe of the same nginx
    /// is green.
    async fn assert_http_green(&self) {
        let target = self.nginx.url("http", 0, "/health");
        let out = self.probe("http_2xx", &target).await;
        if !out.success {
            panic!(
                "http probe of {target} failed ({:?})\n{}\n{}\n{}",
                out.reason,
                out.log,
                out.text,
                self.nginx.logs()
            );
        }
        out.assert_success();
        assert_eq!(
            out.value("probe_http_status_code", &[]),
            Some(200.0),
            "{}",
            out.text
        );
    }

    /// Panics (with the nginx logs too) unless `out` failed with `reason`
    /// on an upgrade answered with `status`.
    fn assert_refused(&self, out: &Outcome, reason: &str, status: u16) {
        if out.reason.as_deref() != Some(reason) {
            panic!(
                "expected {reason}, got {:?}\nlog:\n{}\nmetrics:\n{}\n{}",
                out.reason,
                out.log,
                out.text,
                self.nginx.logs()
            );
        }
        out.assert_reason(reason);
        assert_eq!(
            out.value("probe_websocket_status_code", &[]),
            Some(f64::from(status)),
            "{}",
            out.text
        );
        assert_eq!(
            out.value("probe_websocket_connection_upgraded", &[]),
            Some(0.0),
            "{}",
            out.text
        );
        assert!(
            !out.metrics.has("probe_websocket_ping_rtt_seconds"),
            "{}",
            out.text
        );
    }

    fn assert_upgraded(&self, out: &Outcome) {
        if !out.success {
            panic!(
                "probe failed ({:?})\nlog:\n{}\nmetrics:\n{}\n{}",
                out.reason,
                out.log,
                out.text,
                self.nginx.logs()
            );
        }
        out.assert_success();
        for (name, value) in [
            ("probe_websocket_status_code", 101.0),
            ("probe_websocket_connection_upgraded", 1.0),
            ("probe_websocket_failed_due_to_regex", 0.0),
            ("probe_websocket_http_version", 1.1),
        ] {
            assert_eq!(out.value(name, &[]), Some(value), "{name}\n{}", out.text);
        }
        let rtt = out
            .value("probe_websocket_ping_rtt_seconds", &[])
            .unwrap_or_else(|| panic!("no ping RTT\n{}", out.text));
        assert!(rtt > 0.0 && rtt < PROBE_TIMEOUT.as_secs_f64(), "{rtt}");
        // The probe closed with 1000 and nginx relayed the backend's answer.
        assert_eq!(
            out.value("probe_websocket_close_code", &[]),
            Some(1000.0),
            "{}",
            out.text
        );
    }
}

/// A WebSocket client of our own through nginx (tokio-tungstenite).
async fn ws_client(url: &str) -> WebSocketStream<TcpStream> {
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("authority");
    let tcp = TcpStream::connect(authority)
        .await
        .expect("connect to nginx");
    let (ws, response) = client_async(url, tcp)
        .await
        .unwrap_or_else(|e| panic!("WebSocket client to {url}: {e}"));
    assert_eq!(response.status(), 101);
    ws
}

async fn echo_round_trip(ws: &mut WebSocketStream<TcpStream>, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
    let reply = tokio::time::timeout(Duration::from_secs(3), ws.next())
        .await
        .expect("echo within 3s")
        .expect("stream open")
        .expect("message");
    assert_eq!(reply, Message::text(text));
}

// ---------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_proxy_upgrades_and_answers_ping() {
    let f = Fixture::start().await;
    let out = f.probe("ws", &f.ws_url("/ws")).await;
    f.assert_upgraded(&out);
    assert_eq!(out.value("probe_websocket_ssl", &[]), Some(0.0));
    assert!(f.backend.upgrades() >= 1);
    f.assert_http_green().await;

    // nginx logged our upgrade (when the tunnel closed) with its 101.
    let line = f
        .nginx
        .wait_access_log(
            &[
                "\"GET /ws HTTP/1.1\" 101",
                "upgrade=\"websocket\"",
                "ua=\"handshake_exporter/",
            ],
            Duration::from_secs(3),
        )
        .await;
    assert!(line.starts_with("127.0.0.1 "), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_proxy_echoes_query_response() {
    let f = Fixture::start().await;
    let out = f.probe("ws_echo", &f.ws_url("/ws")).await;
    f.assert_upgraded(&out);
    f.assert_http_green().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_without_upgrade_headers_is_upgrade_rejected() {
    let f = Fixture::start().await;
    let out = f.probe("ws", &f.ws_url("/ws-noupgrade")).await;
    f.assert_refused(&out, "upgrade_rejected", 426);
    // The backend saw a plain GET: nginx dropped the Upgrade header ...
    assert_eq!(f.backend.plain_requests(), 1);
    assert_eq!(f.backend.upgrades(), 0);
    // ... that our probe did send.
    f.nginx
        .wait_access_log(
            &[
                "\"GET /ws-noupgrade HTTP/1.1\" 426",
                "upgrade=\"websocket\"",
                "ua=\"handshake_exporter/",
            ],
            Duration::from_secs(3),
        )
        .await;
    f.assert_http_green().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_location_is_upgrade_ignored() {
    let f = Fixture::start().await;
    let out = f.probe("ws", &f.ws_url("/page")).await;
    f.assert_refused(&out, "upgrade_ignored", 200);
    assert_eq!(f.backend.upgrades(), 0);
    f.nginx
        .wait_access_log(
            &["\"GET /page HTTP/1.1\" 200", "ua=\"handshake_exporter/"],
            Duration::from_secs(3),
        )
        .await;
    f.assert_http_green().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_conn_exhausted_is_upstream_unavailable() {
    let f = Fixture::start().await;
    // Another client holds the only connection /limited allows.
    let mut holder = ws_client(&f.ws_url("/limited")).await;
    echo_round_trip(&mut holder, "holding the slot").await;

    let out = f.probe("ws", &f.ws_url("/limited")).await;
    f.assert_refused(&out, "upstream_unavailable", 503);
    f.nginx
        .wait_access_log(
            &["\"GET /limited HTTP/1.1\" 503", "ua=\"handshake_exporter/"],
            Duration::from_secs(3),
        )
        .await;
    assert!(
        f.nginx
            .error_log()
            .contains("limiting connections by zone \"perserver\""),
        "{}",
        f.nginx.logs()
    );
    // The holder is unaffected, and plain HTTP is green all along.
    echo_round_trip(&mut holder, "still here").await;
    f.assert_http_green().await;

    // Once the slot is free the same probe succeeds: the 503 was the limit.
    holder.close(None).await.expect("close holder");
    while holder.next().await.is_some() {}
    drop(holder);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let out = f.probe("ws", &f.ws_url("/limited")).await;
        if out.success {
            f.assert_upgraded(&out);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the probe still fails after the holder left: {:?}\n{}\n{}",
            out.reason,
            out.log,
            f.nginx.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_down_is_upstream_unavailable() {
    let f = Fixture::start().await;
    let out = f.probe("ws", &f.ws_url("/down")).await;
    f.assert_refused(&out, "upstream_unavailable", 502);
    f.nginx
        .wait_access_log(
            &["\"GET /down HTTP/1.1\" 502", "ua=\"handshake_exporter/"],
            Duration::from_secs(3),
        )
        .await;
    assert!(
        f.nginx.error_log().contains("Connection refused"),
        "{}",
        f.nginx.logs()
    );
    f.assert_http_green().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_through_nginx_with_test_ca() {
    let f = Fixture::start().await;
    let out = f.probe("wss", &f.nginx.url("wss", 1, "/ws")).await;
    f.assert_upgraded(&out);
    assert_eq!(
        out.value("probe_websocket_ssl", &[]),
        Some(1.0),
        "{}",
        out.text
    );

    // nginx sends leaf + intermediate; the earliest NotAfter is the leaf's.
    assert_eq!(f.leaf.chain.len(), 2);
    let earliest = f.leaf.earliest_expiry();
    assert_eq!(earliest, f.leaf.not_after());
    assert!(earliest < f.pki.intermediate_not_after());
    assert_eq!(
        out.value("probe_ssl_earliest_cert_expiry", &[]),
        Some(earliest as f64),
        "{}",
        out.text
    );
    // Verified chain leaf -> intermediate -> root: its earliest NotAfter
    // is the leaf's too.
    assert_eq!(
        out.value("probe_ssl_last_chain_expiry_timestamp_seconds", &[]),
        Some(earliest as f64),
        "{}",
        out.text
    );
    let chain_info = out
        .metrics
        .label_sets("probe_ssl_last_chain_info")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no probe_ssl_last_chain_info\n{}", out.text));
    assert_eq!(
        chain_info.get("fingerprint_sha256").map(String::as_str),
        Some(f.leaf.fingerprint_sha256().as_str()),
        "{}",
        out.text
    );
    assert!(out.metrics.has("probe_tls_version_info"), "{}", out.text);
    f.nginx
        .wait_access_log(
            &["\"GET /ws HTTP/1.1\" 101", "tls=TLSv1."],
            Duration::from_secs(3),
        )
        .await;
    f.assert_http_green().await;
}

/// The same misconfiguration in front of a backend that, like a bare
/// tungstenite `accept_async`, answers a GET without upgrade headers with
/// no response at all: nginx reports "upstream prematurely closed
/// connection" and answers 502. The probe can only see the 502, so the
/// reason is `upstream_unavailable`, and the nginx error log tells the
/// two apart. (Also the short form of the harness: `Nginx::start`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_without_upgrade_headers_to_silent_backend_is_502() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let upstream = listener.local_addr().expect("backend addr");
    let handshake_errors = Arc::new(AtomicUsize::new(0));
    let errors = handshake_errors.clone();
    let backend = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let errors = errors.clone();
            tokio::spawn(async move {
                match accept_async(stream).await {
                    Ok(ws) => echo(ws).await,
                    Err(_) => {
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let nginx = Nginx::start(&format!(
        r#"server {{
            listen 127.0.0.1:@PORT@;
            location = /health {{ return 200 "healthy\n"; }}
            location / {{ proxy_pass http://{upstream}; proxy_http_version 1.1; }}
        }}"#
    ));
    let yaml = "modules:\n  ws:\n    prober: websocket\n    timeout: 3s\n  http_2xx:\n    prober: http\n    timeout: 3s\n";
    let out = run_in(
        Path::new("."),
        yaml,
        "ws",
        &nginx.url("ws", 0, "/socket"),
        None,
        PROBE_TIMEOUT,
    )
    .await;
    out.assert_reason("upstream_unavailable");
    assert_eq!(
        out.value("probe_websocket_status_code", &[]),
        Some(502.0),
        "{}",
        out.text
    );
    // The backend's task counts its failed handshake right after it closed
    // the connection, which is what made nginx answer: it may not have run
    // yet when the probe returns.
    let counted = tokio::time::Instant::now() + Duration::from_secs(2);
    while handshake_errors.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < counted {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handshake_errors.load(Ordering::SeqCst), 1);
    assert!(
        nginx
            .error_log()
            .contains("upstream prematurely closed connection"),
        "{}",
        nginx.logs()
    );
    let http = run_in(
        Path::new("."),
        yaml,
        "http_2xx",
        &nginx.url("http", 0, "/health"),
        None,
        PROBE_TIMEOUT,
    )
    .await;
    http.assert_success();
    backend.abort();
}
