//! End-to-end tests of the real binary: command line, endpoints, reload,
//! web config (basic auth, TLS), graceful shutdown and resource hygiene.
//!
//! Every test starts its own exporter process on a free 127.0.0.1 port and,
//! where it needs one, its own in-process target.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

use crate::common;
use crate::common::eventually;
use crate::common::exporter::{
    Exporter, HttpResponse, http_request, https_request, our_binary, probe_path,
};
use crate::common::exposition::Exposition;
use crate::common::free_port;
use crate::common::http_server::{TestServer, silent_server, text};
use crate::common::pki::Pki;

// ---------------------------------------------------------------------------
// Configs and small helpers
// ---------------------------------------------------------------------------

/// Modules most tests use.
const BASIC: &str = "\
modules:
  http_2xx:
    prober: http
    timeout: 5s
  alt:
    prober: http
    timeout: 5s
  notimeout:
    prober: http
  onesec:
    prober: http
    timeout: 1s
  with_host:
    prober: http
    timeout: 5s
    http:
      headers:
        Host: example.com
";

/// A module with every kind of secret we render.
const SECRETS: &str = "\
modules:
  http_2xx:
    prober: http
    timeout: 5s
  basic:
    prober: http
    timeout: 5s
    http:
      basic_auth:
        username: alice
        password: pl41nTextPassw0rd
  bearer:
    prober: http
    timeout: 5s
    http:
      bearer_token: b34rerT0kenValue
  authz:
    prober: http
    timeout: 5s
    http:
      authorization:
        type: Bearer
        credentials: auThCr3dentialValue
      http_headers:
        X-Token:
          secrets: [hTTpHeaderS3cret]
  ws:
    prober: websocket
    timeout: 5s
    websocket:
      bearer_token: w5T0kenValue
      headers:
        Authorization: Bearer w5HeaderT0ken
";

const SECRET_VALUES: &[&str] = &[
    "pl41nTextPassw0rd",
    "b34rerT0kenValue",
    "auThCr3dentialValue",
    "hTTpHeaderS3cret",
    "w5T0kenValue",
    "w5HeaderT0ken",
];

/// A target answering 200 "ok" on every path.
fn ok_server() -> TestServer {
    TestServer::http(|_req| text(StatusCode::OK, "ok"))
}

/// `http://127.0.0.1:<closed port>/`
fn closed_url() -> String {
    format!("http://{}/", common::closed_addr())
}

fn parse(resp: &HttpResponse) -> Exposition {
    assert_eq!(resp.status, 200, "expected 200, got: {}", resp.body);
    Exposition::parse(&resp.body)
}

/// The exporter's own metric `name` (no labels), 0 when absent.
async fn own_metric(exporter: &Exporter, name: &str, labels: &[(&str, &str)]) -> f64 {
    exporter.metrics().await.value(name, labels).unwrap_or(0.0)
}

/// Panics with the headers unless `Content-Type` starts with `prefix`.
#[track_caller]
fn assert_content_type(r: &HttpResponse, prefix: &str) {
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with(prefix)),
        "{:?}",
        r.headers
    );
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "{what}: expected {expected}, got {actual}"
    );
}

/// Asserts the process is alive, healthy and did not panic.
async fn assert_still_serving(exporter: &mut Exporter) {
    let resp = exporter.get("/-/healthy").await;
    assert_eq!(resp.status, 200);
    assert!(
        exporter.wait_exit(Duration::ZERO).await.is_none(),
        "exporter exited:\n{}",
        exporter.log()
    );
    assert!(
        !exporter.log().contains("panicked"),
        "exporter panicked:\n{}",
        exporter.log()
    );
}

// ---------------------------------------------------------------------------
// A process started without the Exporter helper (custom working directory,
// no --config.file, or endpoints behind auth/TLS).
// ---------------------------------------------------------------------------

struct Proc {
    child: Child,
    addr: SocketAddr,
    log_path: PathBuf,
}

impl Proc {
    /// Starts the binary in `cwd` with `args` plus
    /// `--web.listen-address=127.0.0.1:<free port>` and waits until `ready`
    /// returns true (retrying on "address already in use").
    async fn start<F, Fut>(cwd: &Path, args: &[String], ready: F) -> Proc
    where
        F: Fn(SocketAddr) -> Fut,
        Fut: Future<Output = bool>,
    {
        for attempt in 1..=3 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let log_path = cwd
                .parent()
                .unwrap_or(cwd)
                .join(format!("proc-{}-{attempt}.log", addr.port()));
            let log = std::fs::File::create(&log_path).expect("log file");
            let child = Command::new(our_binary())
                .current_dir(cwd)
                .args(args)
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("dup log")))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("start exporter");
            let mut proc = Proc {
                child,
                addr,
                log_path,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = proc.child.try_wait().expect("try_wait") {
                    let log = proc.log();
                    if log.contains("in use") && attempt < 3 {
                        break;
                    }
                    panic!("exporter exited ({status}) before ready:\n{log}");
                }
                if tokio::time::timeout(Duration::from_secs(2), ready(addr))
                    .await
                    .unwrap_or(false)
                {
                    return proc;
                }
                assert!(
                    Instant::now() < deadline,
                    "exporter not ready within 10s:\n{}",
                    proc.log()
                );
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
        unreachable!("returns or panics")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http_request(self.addr, Method::GET, path, headers, Bytes::new())
            .await
            .unwrap_or_else(|e| panic!("{e}\n--- output ---\n{}", self.log()))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn plain_healthy(addr: SocketAddr) -> bool {
    matches!(
        http_request(addr, Method::GET, "/-/healthy", &[], Bytes::new()).await,
        Ok(r) if r.status == 200
    )
}

/// Runs the binary to completion (at most 10 s) in `cwd`.
fn run_to_exit(cwd: &Path, args: &[&str]) -> (ExitStatus, String, String) {
    crate::common::exporter::run_to_exit(cwd, args, &[])
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("server-test-")
        .tempdir()
        .expect("temp dir")
}

// ---------------------------------------------------------------------------
// 1. /probe input validation
// ---------------------------------------------------------------------------

#[tokio::test]
async fn probe_rejects_bad_input_with_exact_status_and_body() {
    let target = ok_server();
    let ok = target.url("/ok");
    let mut exporter = Exporter::start(BASIC).await;

    // Missing target.
    let r = exporter.probe_with(&[("module", "http_2xx")], &[]).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "Target parameter is missing\n")
    );
    // Empty target.
    let r = exporter
        .probe_with(&[("target", ""), ("module", "http_2xx")], &[])
        .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "Target parameter is missing\n")
    );

    // Unknown module, counted on /metrics.
    let before = own_metric(&exporter, "handshake_exporter_module_unknown_total", &[]).await;
    let r = exporter
        .probe_with(&[("target", &ok), ("module", "nope")], &[])
        .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "Unknown module \"nope\"\n")
    );
    let after = own_metric(&exporter, "handshake_exporter_module_unknown_total", &[]).await;
    assert_eq!(after, before + 1.0);

    // CRLF in the target (header smuggling attempt).
    let r = exporter
        .probe_with(
            &[
                ("target", "http://127.0.0.1/\r\nX-Evil: 1"),
                ("module", "http_2xx"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "CRLF target: {}", r.body);
    assert!(r.body.contains("control characters"), "{}", r.body);
    assert_eq!(target.requests(), 0);

    // A 10 kB target.
    let long = format!("http://127.0.0.1/{}", "a".repeat(10_000));
    let r = exporter
        .probe_with(&[("target", &long), ("module", "http_2xx")], &[])
        .await;
    assert_eq!(r.status, 400, "long target: {}", r.body);
    assert!(r.body.contains("too long"), "{}", r.body);

    // Non-numeric scrape timeout header.
    let r = exporter
        .probe_with(
            &[("target", &ok), ("module", "http_2xx")],
            &[("X-Prometheus-Scrape-Timeout-Seconds", "soon")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body
            .starts_with("Failed to parse timeout from Prometheus header"),
        "{}",
        r.body
    );
    // Never a 500 or a dropped connection: every value that is not a
    // timeout is a 400 naming the header; empty is absent; huge is clamped.
    for bad in ["0", "-1", "NaN", "+Inf", "abc"] {
        let r = exporter
            .probe_with(
                &[("target", &ok), ("module", "http_2xx")],
                &[("X-Prometheus-Scrape-Timeout-Seconds", bad)],
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(
            r.body.contains("X-Prometheus-Scrape-Timeout-Seconds"),
            "{bad}: {}",
            r.body
        );
    }
    for (fine, want) in [("", 119.5), ("1e20", 86_399.5), ("1e19", 86_399.5)] {
        let r = exporter
            .probe_with(
                &[("target", &ok), ("module", "notimeout")],
                &[("X-Prometheus-Scrape-Timeout-Seconds", fine)],
            )
            .await;
        assert_eq!(r.status, 200, "{fine:?}: {}", r.body);
        assert!(
            r.body.contains(&format!("probe_timeout_seconds {want}\n")),
            "{fine:?}: {}",
            r.body
        );
    }

    // hostname conflicting with the module's Host header.
    let r = exporter
        .probe_with(
            &[
                ("target", &ok),
                ("module", "with_host"),
                ("hostname", "other.example"),
            ],
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            "host header defined both in module configuration (example.com) and with \
             URL-parameter 'hostname' (other.example)\n"
        )
    );
    // The same host is not a conflict.
    let r = exporter
        .probe_with(
            &[
                ("target", &ok),
                ("module", "with_host"),
                ("hostname", "example.com"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A malformed URL is a failed probe, not an HTTP error.
    let r = exporter
        .probe_with(&[("target", "http://[::1/"), ("module", "http_2xx")], &[])
        .await;
    let m = parse(&r);
    assert_eq!(m.expect("probe_success", &[]), 0.0);
    assert_eq!(
        m.expect("probe_failure_info", &[("reason", "invalid_target")]),
        1.0
    );
    assert_eq!(m.samples_named("probe_failure_info").count(), 1);

    assert_still_serving(&mut exporter).await;
}

#[tokio::test]
async fn probe_without_module_uses_http_2xx() {
    let target = ok_server();
    let exporter = Exporter::start(BASIC).await;
    let r = exporter
        .probe_with(&[("target", &target.url("/ok"))], &[])
        .await;
    assert_eq!(parse(&r).expect("probe_success", &[]), 1.0);
    let r = exporter
        .probe_with(&[("target", &target.url("/ok")), ("debug", "true")], &[])
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("module=http_2xx"), "{}", r.body);
    let m = exporter.metrics().await;
    assert_eq!(
        m.expect(
            "handshake_exporter_probes_total",
            &[("module", "http_2xx"), ("result", "success")]
        ),
        2.0
    );
}

// ---------------------------------------------------------------------------
// 2. Timeout header
// ---------------------------------------------------------------------------

#[tokio::test]
async fn scrape_timeout_header_sets_probe_timeout() {
    let target = ok_server();
    let ok = target.url("/ok");
    let exporter = Exporter::start(BASIC).await;
    let timeout_for = |module: &'static str, header: Option<&'static str>| {
        let ok = ok.clone();
        let exporter = &exporter;
        async move {
            let headers: Vec<(&str, &str)> = header
                .map(|h| vec![("X-Prometheus-Scrape-Timeout-Seconds", h)])
                .unwrap_or_default();
            let r = exporter
                .probe_with(&[("target", &ok), ("module", module)], &headers)
                .await;
            parse(&r).expect("probe_timeout_seconds", &[])
        }
    };
    assert_close(timeout_for("notimeout", Some("2")).await, 1.5, "header 2");
    assert_close(timeout_for("onesec", Some("2")).await, 1.0, "module 1s");
    // The offset eats the whole scrape timeout: no zero deadline.
    assert_close(
        timeout_for("notimeout", Some("0.3")).await,
        0.3,
        "header 0.3",
    );
    assert_close(timeout_for("notimeout", None).await, 119.5, "no header");
    assert_close(
        timeout_for("onesec", None).await,
        1.0,
        "module 1s, no header",
    );

    // --timeout-offset changes the budget.
    let exporter = Exporter::start_with_args(BASIC, &["--timeout-offset=1.25"]).await;
    let r = exporter
        .probe_with(
            &[("target", &ok), ("module", "notimeout")],
            &[("X-Prometheus-Scrape-Timeout-Seconds", "3")],
        )
        .await;
    assert_close(
        parse(&r).expect("probe_timeout_seconds", &[]),
        1.75,
        "offset 1.25",
    );
}

// ---------------------------------------------------------------------------
// 3. debug=true
// ---------------------------------------------------------------------------

#[tokio::test]
async fn debug_page_has_three_sections_and_masks_secrets() {
    let target = ok_server();
    let url = target.url("/debugged");
    let exporter = Exporter::start(SECRETS).await;
    let r = exporter
        .probe_with(
            &[("target", &url), ("module", "basic"), ("debug", "true")],
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_content_type(&r, "text/plain");
    let body = &r.body;
    let logs = body.find("Logs for the probe:").expect("logs section");
    let metrics = body
        .find("Metrics that would have been returned:")
        .expect("metrics section");
    let module = body.find("Module configuration:").expect("module section");
    assert!(logs < metrics && metrics < module, "{body}");
    assert!(body.starts_with("Logs for the probe:\n"), "{body}");

    // Every log line carries module= and target=.
    let log_lines: Vec<&str> = body[logs..metrics]
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(!log_lines.is_empty(), "no log lines:\n{body}");
    for line in &log_lines {
        assert!(line.contains("module=basic"), "{line}");
        assert!(line.contains(&format!("target={url}")), "{line}");
    }

    // The metrics section is valid exposition with the probe result.
    let exposition = Exposition::parse(&body[metrics..module].replacen(
        "Metrics that would have been returned:",
        "",
        1,
    ));
    assert_eq!(exposition.expect("probe_success", &[]), 1.0);

    // The module configuration masks the password.
    let module_text = &body[module..];
    assert!(module_text.contains("password: <secret>"), "{module_text}");
    assert!(module_text.contains("username: alice"), "{module_text}");
    assert!(!body.contains("pl41nTextPassw0rd"), "{body}");
    // The target saw the credentials all the same.
    assert_eq!(target.requests(), 1);
}

// ---------------------------------------------------------------------------
// 4. /logs and the history
// ---------------------------------------------------------------------------

#[tokio::test]
async fn logs_by_id_and_target() {
    let server = ok_server();
    let a = server.url("/a");
    let b = closed_url();
    let exporter = Exporter::start(BASIC).await;
    exporter.probe(&a, "http_2xx").await; // id 0
    exporter.probe(&b, "http_2xx").await; // id 1, failure
    exporter.probe(&a, "alt").await; // id 2

    let r = exporter.get("/logs?id=0").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Logs for the probe:"), "{}", r.body);
    assert!(
        r.body.contains(&format!("module=http_2xx target={a}")),
        "{}",
        r.body
    );
    let r = exporter.get("/logs?id=1").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains(&format!("target={b}")), "{}", r.body);
    assert!(r.body.contains("probe_success 0"), "{}", r.body);
    let r = exporter.get("/logs?id=2").await;
    assert!(r.body.contains("module=alt"), "{}", r.body);

    // By target: the newest probe of that target (documented difference
    // from blackbox, which returns the oldest).
    let by_target = |t: &str, m: Option<&str>| {
        let mut params = vec![("target", t)];
        if let Some(m) = m {
            params.push(("module", m));
        }
        probe_path(&params).replacen("/probe?", "/logs?", 1)
    };
    let r = exporter.get(&by_target(&a, None)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("module=alt"), "{}", r.body);
    let r = exporter.get(&by_target(&a, Some("http_2xx"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("module=http_2xx"), "{}", r.body);
    assert!(!r.body.contains("module=alt"), "{}", r.body);
    let r = exporter.get(&by_target(&b, Some("alt"))).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Errors.
    let r = exporter.get(&format!("{}&id=0", by_target(&a, None))).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            "Probe id and target can't be defined at the same time\n"
        )
    );
    let r = exporter.get("/logs").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            "Probe id or target must be defined as http query parameters\n"
        )
    );
    let r = exporter.get("/logs?module=alt").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = exporter.get("/logs?id=abc").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = exporter.get("/logs?id=-1").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = exporter.get("/logs?id=99").await;
    assert_eq!((r.status, r.body.as_str()), (404, "Probe id not found\n"));
    let r = exporter
        .get("/logs?target=http%3A%2F%2Fnowhere.invalid%2F")
        .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "Probe target not found\n")
    );
}

#[tokio::test]
async fn history_limit_keeps_last_entries_and_preserved_failures() {
    let server = ok_server();
    let ok = server.url("/ok");
    let exporter = Exporter::start_with_args(BASIC, &["--history.limit=2"]).await;
    exporter.probe(&closed_url(), "http_2xx").await; // 0 failure
    exporter.probe(&ok, "http_2xx").await; // 1
    exporter.probe(&ok, "http_2xx").await; // 2
    exporter.probe(&ok, "http_2xx").await; // 3
    assert_eq!(exporter.get("/logs?id=1").await.status, 404);
    assert_eq!(exporter.get("/logs?id=2").await.status, 200);
    assert_eq!(exporter.get("/logs?id=3").await.status, 200);
    // The failure fell off the recent list but is preserved.
    let r = exporter.get("/logs?id=0").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("probe_success 0"), "{}", r.body);
    let page = exporter.get("/").await.body;
    assert!(page.contains("Preserved failures"), "{page}");
    assert!(page.contains("logs?id=0"), "{page}");
    assert!(!page.contains("logs?id=1\""), "{page}");
}

// ---------------------------------------------------------------------------
// 5. /config
// ---------------------------------------------------------------------------

#[tokio::test]
async fn config_endpoint_masks_secrets() {
    let exporter = Exporter::start(SECRETS).await;
    let r = exporter.get("/config").await;
    assert_eq!(r.status, 200);
    assert_content_type(&r, "text/plain");
    let body = &r.body;
    assert!(body.starts_with("modules:"), "{body}");
    for module in ["http_2xx:", "basic:", "bearer:", "authz:", "ws:"] {
        assert!(body.contains(module), "{module} missing:\n{body}");
    }
    assert!(body.contains("password: <secret>"), "{body}");
    assert!(body.contains("bearer_token: <secret>"), "{body}");
    assert!(
        body.matches("<secret>").count() >= SECRET_VALUES.len(),
        "{body}"
    );
    for secret in SECRET_VALUES {
        assert!(!body.contains(secret), "{secret} leaked:\n{body}");
    }
    // Debug pages and the landing page must not leak them either.
    for module in ["basic", "bearer", "authz"] {
        let r = exporter
            .probe_with(
                &[
                    ("target", &closed_url()),
                    ("module", module),
                    ("debug", "true"),
                ],
                &[],
            )
            .await;
        for secret in SECRET_VALUES {
            assert!(!r.body.contains(secret), "{secret} leaked:\n{}", r.body);
        }
    }
    let log = exporter.log();
    for secret in SECRET_VALUES {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the log:\n{log}"
        );
    }
}

// ---------------------------------------------------------------------------
// 6. Reload
// ---------------------------------------------------------------------------

const OLD_ONLY: &str = "\
modules:
  old:
    prober: http
    timeout: 2s
";

const NEW_ONLY: &str = "\
modules:
  new:
    prober: http
    timeout: 2s
";

#[tokio::test]
async fn reload_via_post_swaps_modules() {
    let server = ok_server();
    let ok = server.url("/ok");
    let exporter = Exporter::start(OLD_ONLY).await;
    exporter.probe(&ok, "old").await;

    let r = exporter.get("/-/reload").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (405, "This endpoint requires a POST request.\n")
    );

    exporter.write_config(NEW_ONLY);
    let r = exporter.post("/-/reload").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let m = exporter.probe_metrics(&ok, "new").await;
    assert_eq!(m.expect("probe_success", &[]), 1.0);
    let r = exporter
        .probe_with(&[("target", &ok), ("module", "old")], &[])
        .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "Unknown module \"old\"\n")
    );
    let config = exporter.get("/config").await.body;
    assert!(
        config.contains("new:") && !config.contains("old:"),
        "{config}"
    );
}

#[tokio::test]
async fn failed_reload_keeps_old_config() {
    let server = ok_server();
    let ok = server.url("/ok");
    let exporter = Exporter::start(OLD_ONLY).await;
    let reload_ok = || async {
        own_metric(
            &exporter,
            "handshake_exporter_config_last_reload_successful",
            &[],
        )
        .await
    };
    assert_eq!(reload_ok().await, 1.0);
    let first_ts = own_metric(
        &exporter,
        "handshake_exporter_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .await;
    assert!(first_ts > 1.0e9, "timestamp {first_ts}");

    // Unknown key: the error names it and its line.
    exporter.write_config("modules:\n  new:\n    prober: http\n    htttp: {}\n");
    let r = exporter.post("/-/reload").await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        r.body.starts_with("failed to reload config: "),
        "{}",
        r.body
    );
    assert!(r.body.contains("htttp"), "{}", r.body);
    assert!(r.body.contains("line 4"), "{}", r.body);
    assert_eq!(reload_ok().await, 0.0);
    // The old config still serves probes.
    assert_eq!(
        exporter
            .probe_metrics(&ok, "old")
            .await
            .expect("probe_success", &[]),
        1.0
    );
    let page = exporter.get("/").await.body;
    assert!(page.contains("reload failed"), "{page}");

    // Half-valid file: rejected as a whole.
    exporter.write_config(
        "modules:
  fresh:
    prober: http
  broken:
    prober: http
    http:
      fail_if_body_matches_regexp: ['(unclosed']
",
    );
    let r = exporter.post("/-/reload").await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        r.body.starts_with("failed to reload config: "),
        "{}",
        r.body
    );
    assert!(r.body.contains("broken"), "{}", r.body);
    assert!(r.body.contains("(unclosed"), "{}", r.body);
    let r = exporter
        .probe_with(&[("target", &ok), ("module", "fresh")], &[])
        .await;
    assert_eq!(r.status, 400, "half-valid config was applied: {}", r.body);
    exporter.probe(&ok, "old").await;
    assert_eq!(reload_ok().await, 0.0);

    // An empty file, or one with only comments, would drop every module:
    // refused, the old config stays.
    for empty in ["", "\n", "# nothing here yet\n# modules: coming\n"] {
        exporter.write_config(empty);
        let r = exporter.post("/-/reload").await;
        assert_eq!(r.status, 500, "{empty:?}: {}", r.body);
        assert!(r.body.contains("no modules"), "{empty:?}: {}", r.body);
        exporter.probe(&ok, "old").await;
    }
    assert_eq!(reload_ok().await, 0.0);

    // No secret in an error: a broken proxy_url's password stays out of
    // the answer and the log.
    exporter.write_config(
        "modules:\n  p:\n    prober: http\n    http:\n      proxy_url: 'http://user:hunter2-SECRET@proxy:99999999'\n",
    );
    let r = exporter.post("/-/reload").await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.body.contains("proxy_url"), "{}", r.body);
    assert!(!r.body.contains("hunter2"), "{}", r.body);
    assert!(!exporter.log().contains("hunter2"), "{}", exporter.log());

    // A good reload sets the gauge back.
    exporter.write_config(NEW_ONLY);
    let r = exporter.post("/-/reload").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(reload_ok().await, 1.0);
    let ts = own_metric(
        &exporter,
        "handshake_exporter_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .await;
    assert!(ts >= first_ts, "{ts} < {first_ts}");
    exporter.probe(&ok, "new").await;
    let page = exporter.get("/").await.body;
    assert!(!page.contains("reload failed"), "{page}");
}

#[tokio::test]
async fn sighup_reloads_config() {
    let server = ok_server();
    let ok = server.url("/ok");
    let exporter = Exporter::start(OLD_ONLY).await;
    exporter.write_config(NEW_ONLY);
    exporter.signal("HUP");
    let reloaded = eventually(Duration::from_secs(5), || async {
        exporter
            .probe_with(&[("target", &ok), ("module", "new")], &[])
            .await
            .status
            == 200
    })
    .await;
    assert!(reloaded, "SIGHUP did not reload:\n{}", exporter.log());
    let r = exporter
        .probe_with(&[("target", &ok), ("module", "old")], &[])
        .await;
    assert_eq!(r.status, 400);

    // A broken file on SIGHUP keeps the running config.
    exporter.write_config("modules: [");
    exporter.signal("HUP");
    let failed = eventually(Duration::from_secs(5), || async {
        own_metric(
            &exporter,
            "handshake_exporter_config_last_reload_successful",
            &[],
        )
        .await
            == 0.0
    })
    .await;
    assert!(failed, "broken reload not reported:\n{}", exporter.log());
    exporter.probe(&ok, "new").await;
}

// ---------------------------------------------------------------------------
// 7. --config.check
// ---------------------------------------------------------------------------

#[test]
fn config_check_exit_codes_and_errors() {
    let dir = temp_dir();
    let write = |name: &str, yaml: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, yaml).expect("write config");
        path.display().to_string()
    };
    let check = |path: &str| {
        run_to_exit(
            dir.path(),
            &[&format!("--config.file={path}"), "--config.check"],
        )
    };

    let good = write("good.yml", BASIC);
    let (status, stdout, stderr) = check(&good);
    assert_eq!(status.code(), Some(0), "{stdout}{stderr}");

    let unknown_key = write(
        "unknown.yml",
        "modules:\n  m:\n    prober: http\n    htttp:\n      method: GET\n",
    );
    let (status, _, stderr) = check(&unknown_key);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("htttp"), "{stderr}");
    assert!(stderr.contains("line 4"), "{stderr}");

    let bad_regex = write(
        "regex.yml",
        "modules:\n  m:\n    prober: http\n    http:\n      fail_if_body_matches_regexp: ['(unclosed']\n",
    );
    let (status, _, stderr) = check(&bad_regex);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("(unclosed"), "{stderr}");
    assert!(stderr.contains("regexp"), "{stderr}");

    let bad_prober = write("prober.yml", "modules:\n  m:\n    prober: icnp\n");
    let (status, _, stderr) = check(&bad_prober);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unknown prober \\\"icnp\\\""), "{stderr}");
}

/// blackbox's `config/testdata` has one invalid file per validation rule.
/// Each rule for the probers and http keys of SPEC section 8 (dns, icmp,
/// grpc, unix, HTTP/3, oauth2), written out here, is refused by
/// `--config.check` with an error that names the key. Keys of blackbox
/// releases newer than ours (`pinned_public_key_hashes`, `check_revoked`,
/// `edns0_udp_size`, `expect_bytes`, JWT-bearer oauth2) are unknown keys
/// here, refused by name, so a config that relies on them never loads
/// silently.
#[test]
fn config_check_rejects_blackbox_s_invalid_testdata() {
    let dir = temp_dir();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "invalid-dns-module",
            "dns:\n      preferred_ip_protocol: ip6\n      validate_answer_rrs:\n        fail_if_matches_regexp: [test]",
            &["dns.query_name", "query name must be set"],
        ),
        (
            "invalid-dns-class",
            "dns:\n      query_name: example.com\n      query_class: X",
            &["dns.query_class", "X"],
        ),
        (
            "invalid-dns-type",
            "dns:\n      query_name: example.com\n      query_type: X",
            &["dns.query_type", "X"],
        ),
        (
            "invalid-dns-edns0-udp-size",
            "dns:\n      query_name: example.com\n      edns0_udp_size: 100",
            &["edns0_udp_size"],
        ),
        (
            "invalid-dns-pinned-public-key-hashes-without-tls",
            "dns:\n      query_name: example.com\n      dns_over_tls: false\n      pinned_public_key_hashes: ['C5+lpZ7tcVwmwQIMcRtPbsQtWLABXhQzejna0wHFr8M=']",
            &["pinned_public_key_hashes"],
        ),
        (
            "invalid-icmp-ttl",
            "icmp:\n      ttl: -1",
            &["icmp.ttl", "cannot be negative"],
        ),
        (
            "invalid-icmp-ttl-overflow",
            "icmp:\n      ttl: 256",
            &["icmp.ttl", "cannot exceed 255"],
        ),
        (
            "invalid-grpc-check-revoked-without-tls",
            "grpc:\n      tls: false\n      check_revoked: true",
            &["check_revoked"],
        ),
        (
            "invalid-grpc-pinned-public-key-hashes-without-tls",
            "grpc:\n      tls: false\n      pinned_public_key_hashes: ['C5+lpZ7tcVwmwQIMcRtPbsQtWLABXhQzejna0wHFr8M=']",
            &["pinned_public_key_hashes"],
        ),
        (
            "invalid-unix-query-response-regexp",
            "unix:\n      query_response:\n        - send: PING\n          expect: ':['",
            &["unix.query_response[0].expect", ":["],
        ),
        (
            "invalid-unix-query-response-expect-and-expect-bytes",
            "unix:\n      query_response:\n        - expect: '^PONG'\n          expect_bytes: PONG",
            &["expect_bytes"],
        ),
        (
            "invalid-no-versions-http3-enabled",
            "http:\n      enable_http3: true\n      preferred_ip_protocol: ip4",
            &["http.enable_http3", "enable_http2: false"],
        ),
        (
            "invalid-http-http3-http2-enabled",
            "http:\n      enable_http3: true\n      enable_http2: true\n      valid_http_versions: [HTTP/3.0]",
            &["http.enable_http3", "enable_http2: false"],
        ),
        (
            "invalid-http-http3-http2",
            "http:\n      enable_http3: true\n      enable_http2: true\n      valid_http_versions: [HTTP/1.1, HTTP/2.0, HTTP/3.0]",
            &["http.enable_http3"],
        ),
        (
            "invalid-http-http3-http2-version",
            "http:\n      enable_http3: true\n      enable_http2: false\n      valid_http_versions: [HTTP/1.1, HTTP/2.0, HTTP/3.0]",
            &["http.enable_http3", "valid_http_versions", "HTTP/1.1"],
        ),
        (
            "invalid-http-oauth2-jwt-bearer-signature-algorithm",
            "http:\n      oauth2:\n        client_id: c\n        grant_type: urn:ietf:params:oauth:grant-type:jwt-bearer\n        client_certificate_key_file: /etc/k.pem\n        signature_algorithm: HS256\n        token_url: https://api.example.com/token",
            &["http.oauth2.grant_type", "not supported"],
        ),
        (
            "invalid-http-oauth2-jwt-bearer-key-and-key-file",
            "http:\n      oauth2:\n        client_id: c\n        grant_type: urn:ietf:params:oauth:grant-type:jwt-bearer\n        client_certificate_key: abc\n        client_certificate_key_file: /etc/k.pem\n        token_url: https://api.example.com/token",
            &["http.oauth2.grant_type", "not supported"],
        ),
    ];
    let mut wrong = Vec::new();
    for (name, block, needles) in cases {
        let prober = block.split(':').next().unwrap_or_default();
        let yaml = format!("modules:\n  m:\n    prober: {prober}\n    timeout: 5s\n    {block}\n");
        let path = dir.path().join(format!("{name}.yml"));
        std::fs::write(&path, &yaml).expect("write config");
        let (status, _, stderr) = run_to_exit(
            dir.path(),
            &[
                &format!("--config.file={}", path.display()),
                "--config.check",
            ],
        );
        let missing: Vec<_> = needles.iter().filter(|n| !stderr.contains(**n)).collect();
        if status.code() != Some(1) || !missing.is_empty() {
            wrong.push(format!(
                "{name}: exit {status}, missing {missing:?}\n{yaml}{stderr}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn version_and_help_flags() {
    let dir = temp_dir();
    let (status, stdout, stderr) = run_to_exit(dir.path(), &["--version"]);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")), "{stdout}");
    let (status, stdout, stderr) = run_to_exit(dir.path(), &["--help"]);
    assert_eq!(status.code(), Some(0), "{stderr}");
    for flag in [
        "--config.file",
        "--config.check",
        "--web.listen-address",
        "--web.config.file",
        "--timeout-offset",
        "--history.limit",
        "--log.level",
        "--log.format",
        "--log.prober",
        "--web.route-prefix",
        "--web.external-url",
        "--web.systemd-socket",
        "--config.enable-auto-reload",
        "--config.auto-reload-interval",
    ] {
        assert!(
            stdout.contains(flag),
            "{flag} missing from --help:\n{stdout}"
        );
    }
    let (status, _, stderr) = run_to_exit(dir.path(), &["--no-such-flag"]);
    assert_ne!(status.code(), Some(0), "{stderr}");
}

// ---------------------------------------------------------------------------
// 8. Config file discovery
// ---------------------------------------------------------------------------

#[tokio::test]
async fn embedded_default_config_without_blackbox_yml() {
    let dir = temp_dir();
    let cwd = dir.path().join("empty");
    std::fs::create_dir(&cwd).expect("mkdir");
    let proc = Proc::start(&cwd, &[], plain_healthy).await;
    let config = proc.get("/config", &[]).await;
    assert_eq!(config.status, 200);
    for module in [
        "http_2xx",
        "http_post_2xx",
        "tcp_connect",
        "tls_connect",
        "ws_upgrade",
        "wss_upgrade_ping",
        "ws_session",
        "sse_events",
    ] {
        assert!(
            config.body.contains(&format!("{module}:")),
            "{module} missing:\n{}",
            config.body
        );
    }
    assert!(
        proc.log().contains("embedded default config"),
        "{}",
        proc.log()
    );
    // Usable: the default module probes a local target.
    let server = ok_server();
    let r = proc
        .get(&probe_path(&[("target", &server.url("/"))]), &[])
        .await;
    assert_eq!(parse(&r).expect("probe_success", &[]), 1.0);
}

#[tokio::test]
async fn blackbox_yml_in_working_directory_is_used() {
    let dir = temp_dir();
    let cwd = dir.path().join("cwd");
    std::fs::create_dir(&cwd).expect("mkdir");
    std::fs::write(
        cwd.join("blackbox.yml"),
        "modules:\n  from_cwd:\n    prober: tcp\n    timeout: 1s\n",
    )
    .expect("write blackbox.yml");
    let proc = Proc::start(&cwd, &[], plain_healthy).await;
    let config = proc.get("/config", &[]).await.body;
    assert!(config.contains("from_cwd:"), "{config}");
    assert!(!config.contains("http_post_2xx"), "{config}");
    assert!(
        !proc.log().contains("embedded default config"),
        "{}",
        proc.log()
    );
}

#[test]
fn explicit_missing_config_file_is_fatal() {
    let dir = temp_dir();
    let port = free_port();
    let (status, _, stderr) = run_to_exit(
        dir.path(),
        &[
            "--config.file=does-not-exist.yml",
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ],
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does-not-exist.yml"), "{stderr}");
    assert!(stderr.contains("No such file or directory"), "{stderr}");
}

/// The logged error names the I/O error once (anyhow's `{:#}` already
/// prints the source chain, so an error type must not repeat its source).
#[test]
fn missing_config_file_error_is_not_repeated() {
    let dir = temp_dir();
    std::fs::write(
        dir.path().join("ca.yml"),
        "modules:\n  m:\n    prober: http\n    http:\n      tls_config:\n        ca_file: missing-ca.pem\n",
    )
    .expect("write config");
    for config in ["does-not-exist.yml", "ca.yml"] {
        let (status, _, stderr) = run_to_exit(
            dir.path(),
            &[&format!("--config.file={config}"), "--config.check"],
        );
        assert_eq!(status.code(), Some(1), "{stderr}");
        let line = stderr
            .lines()
            .find(|l| l.contains("level=error"))
            .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
        assert_eq!(
            line.matches("No such file or directory").count(),
            1,
            "error repeated: {line}"
        );
    }
}

// ---------------------------------------------------------------------------
// 9. /metrics
// ---------------------------------------------------------------------------

#[tokio::test]
async fn exporter_metrics() {
    let server = ok_server();
    let exporter = Exporter::start(BASIC).await;
    exporter.probe(&server.url("/ok"), "http_2xx").await;
    exporter.probe(&server.url("/ok"), "http_2xx").await;
    exporter.probe(&closed_url(), "http_2xx").await;
    exporter.probe(&server.url("/ok"), "alt").await;

    let r = exporter.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert_content_type(&r, "text/plain; version=0.0.4");
    let m = Exposition::parse(&r.body);

    let build = m.label_sets("handshake_exporter_build_info");
    assert_eq!(build.len(), 1, "{m}");
    for label in ["version", "revision", "rustc"] {
        assert!(
            build[0].get(label).is_some_and(|v| !v.is_empty()),
            "build_info {label}: {build:?}"
        );
    }
    assert_eq!(build[0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(m.expect("handshake_exporter_build_info", &[]), 1.0);

    let total = |module: &str, result: &str| {
        m.value(
            "handshake_exporter_probes_total",
            &[("module", module), ("result", result)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(total("http_2xx", "success"), 2.0);
    assert_eq!(total("http_2xx", "failure"), 1.0);
    assert_eq!(total("alt", "success"), 1.0);
    assert_eq!(total("alt", "failure"), 0.0);

    assert_eq!(
        m.types
            .get("handshake_exporter_probe_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        m.expect(
            "handshake_exporter_probe_duration_seconds_count",
            &[("module", "http_2xx")]
        ),
        3.0
    );
    assert_eq!(
        m.expect(
            "handshake_exporter_probe_duration_seconds_bucket",
            &[("module", "http_2xx"), ("le", "+Inf")]
        ),
        3.0
    );
    assert!(
        m.expect(
            "handshake_exporter_probe_duration_seconds_sum",
            &[("module", "http_2xx")]
        ) > 0.0
    );
    assert_eq!(m.expect("handshake_exporter_probes_in_flight", &[]), 0.0);
    assert_eq!(
        m.expect("handshake_exporter_config_last_reload_successful", &[]),
        1.0
    );
    assert!(
        m.expect(
            "handshake_exporter_config_last_reload_success_timestamp_seconds",
            &[]
        ) > 1.0e9
    );
    assert_eq!(
        m.expect("handshake_exporter_module_unknown_total", &[]),
        0.0
    );
    for name in [
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
    ] {
        assert!(m.has(name), "{name} missing:\n{m}");
    }
}

// ---------------------------------------------------------------------------
// 10/11. Landing page, health, 404
// ---------------------------------------------------------------------------

#[tokio::test]
async fn landing_page_lists_modules_and_recent_probes() {
    let server = ok_server();
    let exporter = Exporter::start(BASIC).await;
    exporter.probe(&server.url("/ok"), "http_2xx").await; // 0
    exporter.probe(&closed_url(), "alt").await; // 1
    let evil = format!("{}?q=<script>alert(1)</script>", server.url("/x"));
    exporter.probe(&evil, "http_2xx").await; // 2

    let r = exporter.get("/").await;
    assert_eq!(r.status, 200);
    assert_content_type(&r, "text/html");
    let page = &r.body;
    for module in ["http_2xx", "alt", "notimeout", "onesec", "with_host"] {
        assert!(
            page.contains(&format!("<td>{module}</td>")),
            "{module}:\n{page}"
        );
    }
    let row = |id: u64| {
        page.lines()
            .find(|l| l.contains(&format!("href=\"logs?id={id}\"")))
            .unwrap_or_else(|| panic!("no row for probe {id}:\n{page}"))
    };
    assert!(row(0).contains("Success"), "{}", row(0));
    assert!(row(0).contains(" ms<"), "{}", row(0));
    assert!(row(1).contains("<strong>Failure</strong>"), "{}", row(1));
    assert!(row(1).contains("connect_refused"), "{}", row(1));
    assert!(row(1).contains("<td>alt</td>"), "{}", row(1));
    // Newest first.
    assert!(page.find("logs?id=2") < page.find("logs?id=0"));
    // User-controlled target escaped.
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
}

#[tokio::test]
async fn health_ready_and_unknown_paths() {
    let exporter = Exporter::start(BASIC).await;
    let r = exporter.get("/-/healthy").await;
    assert_eq!((r.status, r.body.as_str()), (200, "Healthy"));
    let r = exporter.get("/-/ready").await;
    assert_eq!(r.status, 200);
    let r = exporter.post("/-/healthy").await;
    assert_eq!(r.status, 200);
    for path in ["/nope", "/probe/extra", "/metricsx", "/-/"] {
        let r = exporter.get(path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
}

// ---------------------------------------------------------------------------
// 12. --web.config.file
// ---------------------------------------------------------------------------

fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test]
async fn web_config_basic_auth() {
    let dir = temp_dir();
    let hash = bcrypt::hash("correct horse", 4).expect("bcrypt");
    std::fs::write(dir.path().join("blackbox.yml"), BASIC).expect("write config");
    std::fs::write(
        dir.path().join("web.yml"),
        format!("basic_auth_users:\n  alice: '{hash}'\n"),
    )
    .expect("write web config");
    let good = basic_auth("alice", "correct horse");
    let args = vec![
        "--config.file=blackbox.yml".to_string(),
        "--web.config.file=web.yml".to_string(),
    ];
    let good_ref = good.clone();
    let proc = Proc::start(dir.path(), &args, move |addr| {
        let auth = good_ref.clone();
        async move {
            matches!(
                http_request(addr, Method::GET, "/-/healthy", &[("Authorization", &auth)], Bytes::new()).await,
                Ok(r) if r.status == 200
            )
        }
    })
    .await;

    let server = ok_server();
    let probe = probe_path(&[("target", &server.url("/ok")), ("module", "http_2xx")]);
    for path in ["/-/healthy", "/metrics", probe.as_str(), "/config", "/"] {
        let r = proc.get(path, &[]).await;
        assert_eq!(r.status, 401, "{path} without credentials: {}", r.body);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Basic")),
            "{path}: {:?}",
            r.headers
        );
        let wrong = basic_auth("alice", "wrong");
        let r = proc.get(path, &[("Authorization", &wrong)]).await;
        assert_eq!(r.status, 401, "{path} wrong password");
        let unknown = basic_auth("mallory", "correct horse");
        let r = proc.get(path, &[("Authorization", &unknown)]).await;
        assert_eq!(r.status, 401, "{path} unknown user");
        let r = proc.get(path, &[("Authorization", &good)]).await;
        assert_eq!(r.status, 200, "{path} right credentials: {}", r.body);
    }
    assert_eq!(server.requests(), 1, "only the authorised probe ran");
    let r = proc.get(&probe, &[("Authorization", &good)]).await;
    assert_eq!(parse(&r).expect("probe_success", &[]), 1.0);
    assert!(
        !proc.log().contains(&hash),
        "hash in the log:\n{}",
        proc.log()
    );
}

/// A rustls client trusting only the test CA.
fn tls_connector(pki: &Pki) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der()).expect("add CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// One HTTP/1.1 GET over TLS to `localhost`.
async fn https_get(
    connector: &TlsConnector,
    addr: SocketAddr,
    path: &str,
) -> Result<HttpResponse, String> {
    https_request(
        connector,
        "localhost",
        addr,
        Method::GET,
        path,
        &[],
        Bytes::new(),
    )
    .await
}

#[tokio::test]
async fn web_config_tls_serves_https_only() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let dir = temp_dir();
    leaf.write_to(dir.path(), "server");
    std::fs::write(dir.path().join("blackbox.yml"), BASIC).expect("write config");
    // Relative paths resolve against the web config file's directory.
    std::fs::write(
        dir.path().join("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .expect("write web config");
    let connector = tls_connector(&pki);
    let args = vec![
        "--config.file=blackbox.yml".to_string(),
        "--web.config.file=web.yml".to_string(),
    ];
    let ready_connector = connector.clone();
    let proc = Proc::start(dir.path(), &args, move |addr| {
        let connector = ready_connector.clone();
        async move {
            matches!(https_get(&connector, addr, "/-/healthy").await, Ok(r) if r.status == 200)
        }
    })
    .await;

    let r = https_get(&connector, proc.addr, "/metrics")
        .await
        .expect("HTTPS /metrics");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("handshake_exporter_build_info"));
    let server = ok_server();
    let r = https_get(
        &connector,
        proc.addr,
        &probe_path(&[("target", &server.url("/ok")), ("module", "http_2xx")]),
    )
    .await
    .expect("HTTPS /probe");
    assert_eq!(parse(&r).expect("probe_success", &[]), 1.0);

    // Plain HTTP on the TLS port gets no successful answer.
    let plain = http_request(proc.addr, Method::GET, "/-/healthy", &[], Bytes::new()).await;
    assert!(
        !matches!(&plain, Ok(r) if r.status == 200),
        "plain HTTP served: {plain:?}"
    );
    // The exporter survives the garbage and keeps serving TLS.
    let r = https_get(&connector, proc.addr, "/-/healthy")
        .await
        .expect("HTTPS after plain");
    assert_eq!(r.status, 200);
}

// ---------------------------------------------------------------------------
// 13. Several listen addresses
// ---------------------------------------------------------------------------

#[tokio::test]
async fn multiple_listen_addresses_all_serve() {
    let second = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let exporter =
        Exporter::start_with_args(BASIC, &[&format!("--web.listen-address={second}")]).await;
    let first = exporter.get("/-/healthy").await;
    assert_eq!(first.status, 200);
    let r = http_request(second, Method::GET, "/-/healthy", &[], Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("second address: {e}\n{}", exporter.log()));
    assert_eq!(r.status, 200);
    let server = ok_server();
    let r = http_request(
        second,
        Method::GET,
        &probe_path(&[("target", &server.url("/")), ("module", "http_2xx")]),
        &[],
        Bytes::new(),
    )
    .await
    .expect("probe on second address");
    assert_eq!(parse(&r).expect("probe_success", &[]), 1.0);
}

// ---------------------------------------------------------------------------
// 14. Graceful shutdown
// ---------------------------------------------------------------------------

const SLOW: &str = "\
modules:
  slow:
    prober: http
    timeout: 3s
  short:
    prober: http
    timeout: 200ms
  http_2xx:
    prober: http
    timeout: 5s
";

#[tokio::test]
async fn sigterm_lets_in_flight_probe_finish() {
    let silent = silent_server();
    let mut exporter = Exporter::start(SLOW).await;
    let addr = exporter.addr();
    let started = Instant::now();
    let path = probe_path(&[("target", &silent.url("/")), ("module", "slow")]);
    let probe =
        tokio::spawn(
            async move { http_request(addr, Method::GET, &path, &[], Bytes::new()).await },
        );
    let running = eventually(Duration::from_secs(2), || async {
        own_metric(&exporter, "handshake_exporter_probes_in_flight", &[]).await == 1.0
    })
    .await;
    assert!(running, "probe did not start:\n{}", exporter.log());

    exporter.signal("TERM");
    // New connections are refused once the listener is closed.
    let refused = eventually(Duration::from_secs(1), || async {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(refused, "still accepting after SIGTERM");

    let resp = probe
        .await
        .expect("probe task")
        .unwrap_or_else(|e| panic!("in-flight probe lost: {e}\n{}", exporter.log()));
    let m = parse(&resp);
    assert_eq!(m.expect("probe_success", &[]), 0.0);
    assert_eq!(
        m.expect("probe_failure_info", &[("reason", "timeout")]),
        1.0
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2900),
        "probe cut short: {elapsed:?}"
    );

    let status = exporter
        .wait_exit((started + Duration::from_secs(5)).saturating_duration_since(Instant::now()))
        .await
        .unwrap_or_else(|| panic!("no exit within deadline + 2s:\n{}", exporter.log()));
    assert_eq!(status.code(), Some(0), "{}", exporter.log());
    let log = exporter.log();
    assert!(
        log.contains("Received SIGTERM, exiting gracefully"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn sigint_exits_cleanly() {
    let mut exporter = Exporter::start(BASIC).await;
    exporter.signal("INT");
    let status = exporter
        .wait_exit(Duration::from_secs(3))
        .await
        .unwrap_or_else(|| panic!("no exit after SIGINT:\n{}", exporter.log()));
    assert_eq!(status.code(), Some(0), "{}", exporter.log());
    assert!(
        exporter
            .log()
            .contains("Received SIGINT, exiting gracefully"),
        "{}",
        exporter.log()
    );
}

// ---------------------------------------------------------------------------
// 15. Concurrency and resource hygiene
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_probes_succeed() {
    let server = ok_server();
    let exporter = Exporter::start(BASIC).await;
    let addr = exporter.addr();
    let path = probe_path(&[("target", &server.url("/ok")), ("module", "http_2xx")]);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let path = path.clone();
        tasks.spawn(async move { http_request(addr, Method::GET, &path, &[], Bytes::new()).await });
    }
    let mut ok = 0;
    while let Some(result) = tasks.join_next().await {
        let resp = result
            .expect("task")
            .unwrap_or_else(|e| panic!("{e}\n{}", exporter.log()));
        assert_eq!(parse(&resp).expect("probe_success", &[]), 1.0);
        ok += 1;
    }
    assert_eq!(ok, 50);
    let m = exporter.metrics().await;
    assert_eq!(
        m.expect(
            "handshake_exporter_probes_total",
            &[("module", "http_2xx"), ("result", "success")]
        ),
        50.0
    );
    assert_eq!(m.expect("handshake_exporter_probes_in_flight", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timed_out_probes_do_not_leak_sockets() {
    let silent = silent_server();
    let server = ok_server();
    let exporter = Exporter::start(SLOW).await;
    let addr = exporter.addr();
    // Warm up (runtime threads, blocking pool) before the baseline.
    exporter.probe(&server.url("/"), "http_2xx").await;
    exporter.probe(&silent.url("/"), "short").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = exporter.open_fds();

    let path = probe_path(&[("target", &silent.url("/")), ("module", "short")]);
    for _batch in 0..4 {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let path = path.clone();
            tasks.spawn(
                async move { http_request(addr, Method::GET, &path, &[], Bytes::new()).await },
            );
        }
        while let Some(result) = tasks.join_next().await {
            let resp = result.expect("task").expect("probe answer");
            let m = parse(&resp);
            assert_eq!(m.expect("probe_success", &[]), 0.0);
            assert_eq!(
                m.expect("probe_failure_info", &[("reason", "timeout")]),
                1.0
            );
        }
    }
    assert!(silent.connections() >= 200, "{}", silent.connections());
    let mut last = 0;
    let settled = eventually(Duration::from_secs(3), || {
        last = exporter.open_fds();
        async move { last <= baseline + 5 }
    })
    .await;
    assert!(
        settled,
        "fd leak: {baseline} open before, {last} after 200 timed-out probes"
    );
}

/// Prometheus drops a scrape at its timeout. A probe whose client went away
/// must not stay counted in `probes_in_flight` forever.
#[tokio::test]
async fn client_disconnect_mid_probe_does_not_leak_in_flight() {
    let silent = silent_server();
    let exporter = Exporter::start(SLOW).await;
    let path = probe_path(&[("target", &silent.url("/")), ("module", "short")]);
    let addr = exporter.addr();
    // Give up long before the 200 ms probe deadline... then some more.
    let _ = tokio::time::timeout(
        Duration::from_millis(50),
        http_request(addr, Method::GET, &path, &[], Bytes::new()),
    )
    .await;
    // The probe itself ends at its 200 ms deadline either way.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut in_flight;
    loop {
        in_flight = own_metric(&exporter, "handshake_exporter_probes_in_flight", &[]).await;
        if in_flight == 0.0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        in_flight, 0.0,
        "probes_in_flight stuck after the client disconnected"
    );
    assert!(exporter.get("/-/healthy").await.status == 200);
}

/// When the caller of /probe goes away, its probe is cancelled at once (not
/// left to run to its deadline), and counted and kept as cancelled.
#[tokio::test]
async fn a_probe_whose_caller_leaves_is_cancelled() {
    let silent = silent_server();
    let exporter = Exporter::start(SLOW).await;
    let target = silent.url("/");
    let path = probe_path(&[("target", &target), ("module", "slow")]);
    let addr = exporter.addr();
    let fds = exporter.open_fds();
    let started = Instant::now();
    let _ = tokio::time::timeout(
        Duration::from_millis(300),
        http_request(addr, Method::GET, &path, &[], Bytes::new()),
    )
    .await;
    // Cancelled well before the probe's 3 s deadline.
    assert!(
        eventually(Duration::from_secs(1), || async {
            own_metric(
                &exporter,
                "handshake_exporter_probes_total",
                &[("module", "slow"), ("result", "cancelled")],
            )
            .await
                == 1.0
        })
        .await,
        "not counted as cancelled"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        own_metric(&exporter, "handshake_exporter_probes_in_flight", &[]).await,
        0.0
    );
    assert_eq!(
        own_metric(
            &exporter,
            "handshake_exporter_probes_total",
            &[("module", "slow"), ("result", "failure")],
        )
        .await,
        0.0
    );
    // Its socket to the target is closed, and the history says why.
    assert!(
        eventually(Duration::from_secs(1), || async {
            exporter.open_fds() <= fds + 1
        })
        .await,
        "the cancelled probe's socket stayed open"
    );
    let log = exporter
        .get(&format!(
            "/logs?target={}&module=slow",
            form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
        ))
        .await;
    assert_eq!(log.status, 200, "{}", log.body);
    assert!(log.body.contains("Probe cancelled"), "{}", log.body);
    assert!(exporter.get("/").await.body.contains("cancelled"));
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

#[tokio::test]
async fn probes_beyond_max_in_flight_are_refused_at_once() {
    let silent = silent_server();
    let exporter = Exporter::start_with_args(BASIC, &["--probe.max-in-flight=2"]).await;
    let path = probe_path(&[("target", &silent.url("/")), ("module", "onesec")]);
    // Two probes wait for their 1 s deadline on a silent target...
    let running = exporter.spawn_gets(&path, 2);
    let until = Instant::now() + Duration::from_secs(2);
    while own_metric(&exporter, "handshake_exporter_probes_in_flight", &[]).await < 2.0 {
        assert!(Instant::now() < until, "the two probes did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ... so a third is refused at once, with a one-line reason.
    let started = Instant::now();
    let r = exporter.get(&path).await;
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body.lines().count(), 1, "{}", r.body);
    assert!(r.body.contains("--probe.max-in-flight=2"), "{}", r.body);
    for probe in running {
        let r = probe.await.expect("task").expect("answer");
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // The slots are free again.
    assert_eq!(exporter.get(&path).await.status, 200);
    let refused = |reason: &'static str| {
        let exporter = &exporter;
        async move {
            own_metric(
                exporter,
                "handshake_exporter_probe_requests_refused_total",
                &[("reason", reason)],
            )
            .await
        }
    };
    assert_eq!(refused("in_flight").await, 1.0);
    assert_eq!(refused("loop").await, 0.0);
    // Invalid flag values are refused at start.
    let out = Command::new(our_binary())
        .args(["--probe.max-in-flight=0", "--config.check"])
        .output()
        .expect("run");
    assert!(!out.status.success());
}

/// Reads until the server closes the connection; the time it took, or None
/// if it stayed open for `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt as _;
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn slow_request_heads_and_idle_connections_are_cut_off() {
    use tokio::io::AsyncWriteExt as _;
    let exporter = Exporter::start_with_args(
        BASIC,
        &["--web.read-header-timeout=1s", "--web.idle-timeout=2s"],
    )
    .await;
    let addr = exporter.addr();
    // One byte every 200 ms: the head never completes; cut at 1 s.
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    let writer = async {
        for byte in b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n" {
            if slow.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(3), writer)
        .await
        .ok();
    let closed = closed_within(&mut slow, Duration::from_secs(3)).await;
    assert!(closed.is_some(), "a dribbled head kept its connection");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );

    // A connection that sends nothing is idle, not a slow head: it stays
    // past the header timeout and closes at the idle timeout.
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    let closed = closed_within(&mut idle, Duration::from_secs(4))
        .await
        .expect("an idle connection stayed open");
    assert!(
        closed >= Duration::from_millis(1900) && closed < Duration::from_millis(3000),
        "{closed:?}"
    );
    // The server serves on.
    assert_eq!(exporter.get("/-/healthy").await.status, 200);
}

#[tokio::test]
async fn the_oldest_idle_connection_makes_room_for_a_new_one() {
    let exporter = Exporter::start_with_args(BASIC, &["--web.max-connections=8"]).await;
    let addr = exporter.addr();
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // Healthy answers although 20 idle connections came before it.
    assert_eq!(exporter.get("/-/healthy").await.status, 200);
    let mut closed = 0;
    for stream in &mut idle {
        if closed_within(stream, Duration::from_millis(100))
            .await
            .is_some()
        {
            closed += 1;
        }
    }
    // At most 8 are open once all 20 are accepted, so at least 12 were
    // closed. (Not 13: the kernel completes a connect() before the server
    // accepts it, so the health check may be accepted, answered and closed
    // before the last idle connections, and then evicts none of them.)
    assert!(
        closed >= 12,
        "only {closed} of 20 idle connections were closed"
    );
    // The newest ones are the ones still open.
    let last = idle.last_mut().expect("one");
    assert!(
        closed_within(last, Duration::from_millis(100))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn busy_connections_are_never_closed_for_new_ones() {
    let silent = silent_server();
    let exporter = Exporter::start_with_args(SLOW, &["--web.max-connections=2"]).await;
    let addr = exporter.addr();
    let path = probe_path(&[("target", &silent.url("/")), ("module", "slow")]);
    let busy = exporter.spawn_gets(&path, 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Both connections are busy: a third is refused at once, not queued.
    let mut third = TcpStream::connect(addr).await.expect("connect");
    assert!(
        closed_within(&mut third, Duration::from_millis(500))
            .await
            .is_some(),
        "a third connection was admitted"
    );
    for probe in busy {
        let r = probe.await.expect("task").expect("answer");
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(exporter.get("/-/healthy").await.status, 200);
}
