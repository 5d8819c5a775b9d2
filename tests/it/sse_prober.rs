//! The SSE prober, in-process, against scripted loopback servers: each
//! server reads the request head, then writes a script of bytes and pauses
//! (`Step`), so every case of SPEC 11.2 — enough events, a filter, an
//! `expect`, heartbeats, a wrong content type or status, a stream that ends
//! or stalls, a server that floods — is one script.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::common::pki::Pki;
use crate::common::probe::{Outcome, run_in};
use crate::common::tls_server::{Server, ServerTls};

pub const OK_HEAD: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";

#[derive(Clone)]
pub enum Step {
    Send(Vec<u8>),
    Sleep(Duration),
    /// Write `chunk` again and again until the client goes away.
    Flood(Vec<u8>),
}

pub fn send(s: &str) -> Step {
    Step::Send(s.as_bytes().to_vec())
}

pub fn sleep_ms(ms: u64) -> Step {
    Step::Sleep(Duration::from_millis(ms))
}

/// Hold the connection open longer than any probe here.
pub fn hold() -> Step {
    Step::Sleep(Duration::from_secs(10))
}

/// The request heads the server saw.
pub type Heads = Arc<Mutex<Vec<String>>>;

pub async fn run_steps<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    steps: Vec<Step>,
    heads: Heads,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    heads
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head).into_owned());
    for step in steps {
        match step {
            Step::Send(b) => {
                if io.write_all(&b).await.is_err() || io.flush().await.is_err() {
                    return;
                }
            }
            Step::Sleep(d) => tokio::time::sleep(d).await,
            Step::Flood(chunk) => loop {
                if io.write_all(&chunk).await.is_err() {
                    return;
                }
            },
        }
    }
}

pub async fn server(steps: Vec<Step>) -> (Server, Heads) {
    let heads = Heads::default();
    let seen = heads.clone();
    let server =
        Server::start(move |stream, _| run_steps(stream, steps.clone(), seen.clone())).await;
    (server, heads)
}

/// `OK_HEAD`, then `steps`.
pub async fn sse_server(steps: Vec<Step>) -> (Server, Heads) {
    let mut all = vec![send(OK_HEAD)];
    all.extend(steps);
    server(all).await
}

/// A module `s` whose `sse:` block is `body` (ip4 unless set).
fn config(body: &str) -> String {
    let mut block = String::new();
    if !body.contains("preferred_ip_protocol") {
        block.push_str("preferred_ip_protocol: ip4\n");
    }
    block.push_str(body);
    let indented: String = block.lines().map(|l| format!("      {l}\n")).collect();
    format!("modules:\n  s:\n    prober: sse\n    sse:\n{indented}")
}

async fn probe_for(body: &str, target: &str, timeout: Duration) -> Outcome {
    run_in(Path::new("/"), &config(body), "s", target, None, timeout).await
}

async fn probe(body: &str, target: &str) -> Outcome {
    probe_for(body, target, Duration::from_secs(2)).await
}

fn url(s: &Server) -> String {
    format!("http://{}/events", s.target())
}

fn val(o: &Outcome, name: &str) -> f64 {
    o.value(name, &[])
        .unwrap_or_else(|| panic!("no {name} in:\n{}\nlog:\n{}", o.text, o.log))
}

fn events(o: &Outcome) -> f64 {
    val(o, "probe_sse_events_received")
}

#[tokio::test]
async fn n_events_succeed_and_the_request_asks_for_a_stream() {
    let (s, heads) = sse_server(vec![
        send("data: one\n\n"),
        send("id: 2\ndata: two\n\n"),
        send("event: message\ndata: three\n\n"),
        hold(),
    ])
    .await;
    let o = probe("events: 3", &url(&s)).await;
    o.assert_success();
    assert_eq!(events(&o), 3.0);
    assert_eq!(val(&o, "probe_sse_status_code"), 200.0);
    assert_eq!(val(&o, "probe_sse_heartbeats_received"), 0.0);
    assert!(val(&o, "probe_sse_first_event_seconds") > 0.0);
    for phase in ["resolve", "connect", "processing", "transfer", "tls"] {
        assert!(
            o.value("probe_sse_duration_seconds", &[("phase", phase)])
                .is_some(),
            "{phase}\n{}",
            o.text
        );
    }
    assert_eq!(val(&o, "probe_ip_protocol"), 4.0);
    assert!(o.elapsed < Duration::from_secs(1), "{:?}", o.elapsed);
    eprintln!(
        "local SSE probe of 3 events: {:?} (probe_duration_seconds {})",
        o.elapsed,
        val(&o, "probe_duration_seconds")
    );
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    for want in [
        "get /events http/1.1\r\n",
        "accept: text/event-stream\r\n",
        "cache-control: no-cache\r\n",
        "x-handshake-exporter-probe: 1\r\n",
        "user-agent: handshake_exporter/",
    ] {
        assert!(head.contains(want), "{want:?} not in {head}");
    }
}

#[tokio::test]
async fn module_headers_and_credentials_are_sent() {
    let (s, heads) = sse_server(vec![send("data: x\n\n"), hold()]).await;
    let o = probe(
        "headers:\n  X-Api: k1\n  Last-Event-ID: '41'\nbasic_auth:\n  username: u\n  password: p",
        &url(&s),
    )
    .await;
    o.assert_success();
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    for want in [
        "x-api: k1\r\n",
        "last-event-id: 41\r\n",
        "authorization: basic dtpw\r\n",
    ] {
        assert!(head.contains(want), "{want:?} not in {head}");
    }
}

#[tokio::test]
async fn the_event_filter_counts_only_its_type() {
    let (s, _) = sse_server(vec![
        send("data: plain\n\n"),
        send("event: update\ndata: 1\n\n"),
        send("event: tick\ndata: t\n\n"),
        send("event: update\ndata: 2\n\n"),
        hold(),
    ])
    .await;
    let o = probe("events: 2\nevent: update", &url(&s)).await;
    o.assert_success();
    // Every event counts in the metric, matching or not.
    assert_eq!(events(&o), 4.0);

    let o = probe_for("event: other", &url(&s), Duration::from_millis(800)).await;
    o.assert_reason("expect_failed");
    assert_eq!(events(&o), 4.0);
}

#[tokio::test]
async fn expect_matches_the_data_or_fails_at_the_deadline() {
    let (s, _) = sse_server(vec![
        send("data: {\"status\":\"degraded\"}\n\n"),
        send("data: {\"status\":\n"),
        send("data: \"ok\"}\n\n"),
        hold(),
    ])
    .await;
    // Data lines are joined with "\n" before the regex sees them.
    let o = probe("expect: '\"status\":\\n\"ok\"'", &url(&s)).await;
    o.assert_success();
    assert_eq!(events(&o), 2.0);

    let o = probe_for("expect: 'healthy'", &url(&s), Duration::from_millis(800)).await;
    o.assert_reason("expect_failed");
    assert_eq!(events(&o), 2.0);
    assert!(o.elapsed < Duration::from_millis(1100), "{:?}", o.elapsed);
}

#[tokio::test]
async fn heartbeats_are_counted_and_first_event_is_timed() {
    let (s, _) = sse_server(vec![
        send(": keep-alive\n\n"),
        sleep_ms(100),
        send(":\n"),
        sleep_ms(200),
        send(": hb\n\ndata: late\n\n"),
        hold(),
    ])
    .await;
    let o = probe("", &url(&s)).await;
    o.assert_success();
    assert_eq!(val(&o, "probe_sse_heartbeats_received"), 3.0);
    let first = val(&o, "probe_sse_first_event_seconds");
    assert!((0.3..1.0).contains(&first), "first event after {first}s");
}

#[tokio::test]
async fn no_event_means_no_first_event_metric() {
    let (s, _) = sse_server(vec![send(": only heartbeats\n\n"), hold()]).await;
    let o = probe_for("", &url(&s), Duration::from_millis(500)).await;
    o.assert_reason("expect_failed");
    assert!(
        !o.metrics.has("probe_sse_first_event_seconds"),
        "{}",
        o.text
    );
    assert_eq!(val(&o, "probe_sse_heartbeats_received"), 1.0);
}

#[tokio::test]
async fn wrong_content_type_is_sse_content_type() {
    let (s, _) = server(vec![
        send("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello"),
        hold(),
    ])
    .await;
    let o = probe("", &url(&s)).await;
    o.assert_reason("sse_content_type");
    assert_eq!(val(&o, "probe_sse_status_code"), 200.0);
    assert!(o.log.contains("text/html"), "{}", o.log);
    // Parameters and case do not matter.
    let (s, _) = server(vec![
        send(
            "HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream; charset=utf-8\r\n\r\ndata: x\n\n",
        ),
        hold(),
    ])
    .await;
    probe("", &url(&s)).await.assert_success();
}

#[tokio::test]
async fn not_found_is_http_status() {
    let (s, _) = server(vec![send(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/event-stream\r\nContent-Length: 0\r\n\r\n",
    )])
    .await;
    let o = probe("", &url(&s)).await;
    o.assert_reason("http_status");
    assert_eq!(val(&o, "probe_sse_status_code"), 404.0);
}

#[tokio::test]
async fn close_after_the_head_is_closed_early() {
    let (s, _) = sse_server(vec![send("data: one\n\n")]).await;
    let o = probe("events: 2", &url(&s)).await;
    o.assert_reason("closed_early");
    assert_eq!(events(&o), 1.0);
    // An event cut off by the close is discarded (WHATWG).
    let (s, _) = sse_server(vec![send("data: cut")]).await;
    let o = probe("", &url(&s)).await;
    o.assert_reason("closed_early");
    assert_eq!(events(&o), 0.0);
}

#[tokio::test]
async fn a_head_then_nothing_is_expect_failed_at_the_deadline() {
    let (s, _) = sse_server(vec![hold()]).await;
    let timeout = Duration::from_secs(1);
    let o = probe_for("", &url(&s), timeout).await;
    o.assert_reason("expect_failed");
    assert_eq!(events(&o), 0.0);
    assert_eq!(val(&o, "probe_sse_status_code"), 200.0);
    assert!(
        o.elapsed >= timeout && o.elapsed < timeout + Duration::from_millis(300),
        "{:?}",
        o.elapsed
    );
    let transfer = o
        .value("probe_sse_duration_seconds", &[("phase", "transfer")])
        .unwrap();
    assert!(transfer > 0.8, "transfer {transfer}\n{}", o.text);
}

#[tokio::test]
async fn a_silent_server_is_timeout() {
    let (s, _) = server(vec![hold()]).await;
    let timeout = Duration::from_millis(800);
    let o = probe_for("", &url(&s), timeout).await;
    o.assert_reason("timeout");
    assert_eq!(val(&o, "probe_sse_status_code"), 0.0);
    assert!(
        o.elapsed < timeout + Duration::from_millis(300),
        "{:?}",
        o.elapsed
    );
}

/// A field of /proc/self/status in KiB (VmRSS, VmHWM): the numbers the
/// flood tests print (meaningful when the test runs alone).
fn proc_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One ordinary probe first, so the flood tests' RSS numbers do not count
/// what the first probe of a process loads (root store, regexes ...).
async fn warm_up() {
    let (s, _) = sse_server(vec![send("data: x\n\n"), hold()]).await;
    probe("", &url(&s)).await.assert_success();
}

#[tokio::test]
async fn a_comment_flood_ends_on_the_cap_or_the_deadline() {
    warm_up().await;
    let (s, _) = sse_server(vec![Step::Flood(b": flood\n".repeat(1024))]).await;
    let timeout = Duration::from_secs(1);
    let rss_before = proc_kib("VmRSS");
    let o = probe_for("", &url(&s), timeout).await;
    eprintln!(
        "comment flood: VmRSS {rss_before} KiB before, {} KiB after, VmHWM {} KiB",
        proc_kib("VmRSS"),
        proc_kib("VmHWM")
    );
    assert!(
        matches!(
            o.reason.as_deref(),
            Some("expect_failed" | "body_size_limit")
        ),
        "{:?}\n{}",
        o.reason,
        o.log
    );
    assert!(
        o.elapsed < timeout + Duration::from_millis(300),
        "{:?}",
        o.elapsed
    );
    let hb = val(&o, "probe_sse_heartbeats_received");
    assert!(hb > 1000.0, "{hb}");
    eprintln!(
        "comment flood: {:?}, {:?}, {hb} heartbeats",
        o.elapsed, o.reason
    );
}

#[tokio::test]
async fn an_endless_line_fails_on_the_line_cap() {
    warm_up().await;
    let (s, _) = sse_server(vec![send("data: "), Step::Flood(vec![b'x'; 64 * 1024])]).await;
    let rss_before = proc_kib("VmRSS");
    let o = probe_for("", &url(&s), Duration::from_secs(3)).await;
    eprintln!(
        "endless line: VmRSS {rss_before} KiB before, {} KiB after, VmHWM {} KiB",
        proc_kib("VmRSS"),
        proc_kib("VmHWM")
    );
    o.assert_reason("body_size_limit");
    assert!(o.log.contains("line exceeds 1048576 bytes"), "{}", o.log);
    assert!(o.elapsed < Duration::from_secs(2), "{:?}", o.elapsed);
    eprintln!("endless line: failed after {:?}", o.elapsed);
}

#[tokio::test]
async fn crlf_split_across_reads_is_one_line_end() {
    // A second line end would make a blank line and dispatch "a" alone.
    let (s, _) = sse_server(vec![
        send("data: a\r"),
        sleep_ms(100),
        send("\ndata: b\r"),
        sleep_ms(100),
        send("\n\r"),
        sleep_ms(100),
        send("\n"),
        hold(),
    ])
    .await;
    let o = probe("expect: '^a\\nb$'", &url(&s)).await;
    o.assert_success();
    assert_eq!(events(&o), 1.0);
}

#[tokio::test]
async fn a_leading_bom_is_ignored() {
    // The BOM split across two reads.
    let (s, _) = sse_server(vec![
        Step::Send(b"\xEF\xBB".to_vec()),
        sleep_ms(50),
        Step::Send(b"\xBFevent: update\ndata: ok\n\n".to_vec()),
        hold(),
    ])
    .await;
    let o = probe("event: update\nexpect: '^ok$'", &url(&s)).await;
    o.assert_success();
}

#[tokio::test]
async fn policy_deny_is_target_forbidden_without_a_connection() {
    let (s, heads) = sse_server(vec![send("data: x\n\n"), hold()]).await;
    let yaml = format!("target_policy:\n  deny: [127.0.0.0/8]\n{}", config(""));
    let o = run_in(
        Path::new("/"),
        &yaml,
        "s",
        &url(&s),
        None,
        Duration::from_secs(2),
    )
    .await;
    o.assert_reason("target_forbidden");
    assert!(s.peers().is_empty());
    assert!(heads.lock().unwrap().is_empty());
}

#[tokio::test]
async fn tls_with_the_test_pki() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let tls = ServerTls::new(&leaf).build();
    let heads = Heads::default();
    let seen = heads.clone();
    let steps = vec![send(OK_HEAD), send("data: secure\n\n"), hold()];
    let s = Server::start(move |stream, _| {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
        let (steps, seen) = (steps.clone(), seen.clone());
        async move {
            if let Ok(io) = acceptor.accept(stream).await {
                run_steps(io, steps, seen).await;
            }
        }
    })
    .await;
    let target = format!("https://localhost:{}/events", s.addr().port());
    let body = format!(
        "tls_config:\n  ca_file: {}\nexpect: secure",
        pki.ca_file().display()
    );
    let o = probe(&body, &target).await;
    o.assert_success();
    assert_eq!(
        val(&o, "probe_ssl_earliest_cert_expiry"),
        leaf.earliest_expiry() as f64
    );
    assert!(
        o.value("probe_sse_duration_seconds", &[("phase", "tls")])
            .unwrap()
            > 0.0
    );
    // Without the CA the handshake fails with the certificate's reason.
    let o = probe("", &target).await;
    o.assert_reason("tls_cert_untrusted");
}

#[tokio::test]
async fn config_errors_name_the_key() {
    for (body, needle) in [
        ("events: 0", "sse.events"),
        ("expect: '(x'", "sse.expect"),
        ("evnts: 1", "evnts"),
    ] {
        let e = handshake_exporter::prober::load_str(&config(body), Path::new("/"))
            .err()
            .unwrap_or_else(|| panic!("{body} loaded"))
            .to_string();
        assert!(e.contains(needle), "{needle} not in {e}");
    }
}

#[tokio::test]
async fn through_an_http_proxy() {
    let (s, heads) = sse_server(vec![send("data: proxied\n\n"), hold()]).await;
    let proxy = crate::common::proxy::Proxy::start().await;
    let o = probe(
        &format!("proxy_url: {}\nexpect: proxied", proxy.url()),
        &url(&s),
    )
    .await;
    o.assert_success();
    // Absolute form to the proxy, origin form from it to the server.
    let want = format!("GET {} HTTP/1.1\r\n", url(&s));
    assert!(proxy.heads()[0].starts_with(&want), "{:?}", proxy.heads());
    assert!(heads.lock().unwrap()[0].starts_with("GET /events HTTP/1.1\r\n"));
}

#[tokio::test]
async fn over_http2_when_the_server_offers_it() {
    use crate::common::http_server::{TestServer, Tls};
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = TestServer::https(Tls::new(&leaf), |_req| {
        let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
            b": hello\n\nevent: update\ndata: over h2\n\n",
        )));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/event-stream"),
        );
        r
    });
    let target = server.url_with_host("localhost", "/events");
    let body = format!(
        "tls_config:\n  ca_file: {}\nevent: update\nexpect: 'over h2'",
        pki.ca_file().display()
    );
    let o = probe(&body, &target).await;
    o.assert_success();
    assert_eq!(val(&o, "probe_sse_heartbeats_received"), 1.0);
    assert!(o.log.contains("http_version=HTTP/2.0"), "{}", o.log);
    // With enable_http2: false the same server is asked over HTTP/1.1.
    let o = probe(&format!("{body}\nenable_http2: false"), &target).await;
    o.assert_success();
    assert!(o.log.contains("http_version=HTTP/1.1"), "{}", o.log);
}

#[tokio::test]
async fn the_stream_as_a_whole_is_capped_by_max_body_bytes() {
    use handshake_exporter::prober::log::LogFormat;
    use handshake_exporter::prober::{ProbeLimits, ProbeRequest, run_probe};
    let (s, _) = sse_server(vec![Step::Flood(b": flood\n".repeat(1024))]).await;
    let config = crate::common::probe::load_config(Path::new("/"), &config(""));
    let module = config.modules.get("s").expect("module").clone();
    let target = url(&s);
    let report = run_probe(ProbeRequest {
        module: &module,
        target: &target,
        hostname: None,
        timeout: Duration::from_secs(3),
        log_format: LogFormat::Logfmt,
        limits: ProbeLimits {
            max_body_bytes: 256 * 1024,
        },
        sessions: None,
    })
    .await;
    let failure = report.failure.expect("the probe fails");
    assert_eq!(failure.reason.as_str(), "body_size_limit");
    assert!(
        failure
            .message
            .contains("--probe.max-body-bytes of 262144 bytes"),
        "{}",
        failure.message
    );
    assert!(
        report.duration < Duration::from_secs(1),
        "{:?}",
        report.duration
    );
}

#[tokio::test]
async fn the_exporter_refuses_an_sse_probe_of_itself() {
    use crate::common::exporter::Exporter;
    let config = "modules:\n  sse:\n    prober: sse\n    timeout: 5s\n    sse:\n      preferred_ip_protocol: ip4\n";
    let exporter = Exporter::start(config).await;
    // The exporter's own /probe, probing itself.
    let inner = format!("http://{}/", exporter.addr());
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("target", inner.as_str()), ("module", "sse")])
        .finish();
    let target = format!("http://{}/probe?{query}", exporter.addr());
    let m = exporter.probe_metrics(&target, "sse").await;
    assert_eq!(m.value("probe_success", &[]), Some(0.0));
    assert_eq!(m.value("probe_sse_status_code", &[]), Some(508.0));
    assert_eq!(
        m.value("probe_failure_info", &[("reason", "http_status")]),
        Some(1.0)
    );
}
