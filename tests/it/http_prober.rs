//! The HTTP prober, in-process: every `http:` config key and every failure
//! reason the prober can give, each reason produced by a test that makes
//! exactly that failure happen, with the metric values it must report.
//!
//! Targets are 127.0.0.1 / localhost (and `[::1]` when it is bindable) on
//! ports taken from port 0. Modules get `preferred_ip_protocol: ip4` unless
//! the test sets the key itself, so `localhost` means 127.0.0.1 even on
//! hosts whose resolver lists `::1` first.
//!
//! Servers: `common::http_server` (hyper, own thread) for ordinary HTTP and
//! HTTPS, `common::proxy`'s tiny HTTP proxy (absolute-form forwarding and
//! CONNECT tunnelling), plus two local kinds spawned on the test's runtime:
//! a raw TCP responder that writes canned bytes (chunked, 101, garbage) and
//! a hyper TLS server with a hand-built rustls config (TLS 1.2 only, client
//! certificates required, SNI recorded).

use std::convert::Infallible;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls_pki_types::CertificateDer;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::common;
use crate::common::http_server::{
    Body, TestServer, Tls, closing_server, redirect, silent_server, text,
};
use crate::common::pki::{Leaf, Pki, Validity, localhost_ip};
use crate::common::probe::{Outcome, load_config, run_in, run_loaded};
use crate::common::proxy::{Proxy, read_head};
use crate::common::recording::{Log, Respond, Seen, ok, recording_server, seen_of};
use crate::common::tls_server::ServerTls;
use handshake_exporter::prober::Config;

/// FNV-1a 32 of 127.0.0.1, as blackbox exports it.
const LOCALHOST_HASH: f64 = 3_668_918_509.0;
const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
const LAST_MODIFIED_UNIX: f64 = 1_445_412_480.0;
const TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Running probes
// ---------------------------------------------------------------------------

/// A config with one http module `m` whose `http:` block is `http`
/// (YAML lines at column 0).
fn module_yaml(http: &str) -> String {
    let mut block = String::new();
    if !http.contains("preferred_ip_protocol") {
        block.push_str("preferred_ip_protocol: ip4\n");
    }
    block.push_str(http);
    let indented: String = block.lines().map(|l| format!("      {l}\n")).collect();
    format!("modules:\n  m:\n    prober: http\n    http:\n{indented}")
}

async fn probe(http: &str, target: &str) -> Outcome {
    probe_with(http, target, None, TIMEOUT).await
}

async fn probe_with(
    http: &str,
    target: &str,
    hostname: Option<&str>,
    timeout: Duration,
) -> Outcome {
    run_in(
        Path::new("/"),
        &module_yaml(http),
        "m",
        target,
        hostname,
        timeout,
    )
    .await
}

fn load(http: &str) -> Config {
    load_config(Path::new("/"), &module_yaml(http))
}

/// Probe with an already loaded config: two calls share the module, so a
/// file read per probe (not at load) shows up as a change between them.
async fn probe_loaded(config: &Config, target: &str) -> Outcome {
    run_loaded(config, "m", target, None, TIMEOUT).await
}

/// The value of an unlabelled series, panicking with the exposition when
/// it is missing.
fn val(o: &Outcome, name: &str) -> f64 {
    o.value(name, &[])
        .unwrap_or_else(|| panic!("no {name} in:\n{}\nlog:\n{}", o.text, o.log))
}

fn phase(o: &Outcome, phase: &str) -> f64 {
    o.value("probe_http_duration_seconds", &[("phase", phase)])
        .unwrap_or_else(|| panic!("no phase {phase} in:\n{}", o.text))
}

fn assert_val(o: &Outcome, name: &str, want: f64) {
    assert_eq!(val(o, name), want, "{name}\n{}\nlog:\n{}", o.text, o.log);
}

fn assert_absent(o: &Outcome, name: &str) {
    assert!(!o.metrics.has(name), "{name} must be absent:\n{}", o.text);
}

/// `tls_config:` trusting `pki`'s root, plus `extra` lines inside the block.
fn tls_config(pki: &Pki, extra: &[&str]) -> String {
    let mut s = format!("tls_config:\n  ca_file: {}\n", pki.ca_file().display());
    for line in extra {
        s.push_str(&format!("  {line}\n"));
    }
    s
}

/// `key: |` followed by `text` indented by `indent + 2` spaces.
fn block_scalar(key: &str, text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let inner = " ".repeat(indent + 2);
    let mut s = format!("{pad}{key}: |\n");
    for line in text.lines() {
        s.push_str(&format!("{inner}{line}\n"));
    }
    s
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("http-prober-")
        .tempdir()
        .expect("temp dir")
}

fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write file");
    path
}

// ---------------------------------------------------------------------------
// Responses (requests are recorded by `common::recording`)
// ---------------------------------------------------------------------------

fn with_header(mut resp: Response<Body>, name: &'static str, value: &str) -> Response<Body> {
    resp.headers_mut().append(
        http::HeaderName::from_static(name),
        HeaderValue::from_str(value).expect("header value"),
    );
    resp
}

// ---------------------------------------------------------------------------
// Local servers on the test's runtime
// ---------------------------------------------------------------------------

/// A TCP server that reads a request head, writes `response` verbatim,
/// keeps the socket open for `hold`, then closes it.
struct RawHttp {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RawHttp {
    async fn start(bind: &str, response: &[u8], hold: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let port = listener.local_addr()?.port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (h, response) = (heads.clone(), Bytes::copy_from_slice(response));
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let (h, response) = (h.clone(), response.clone());
                tokio::spawn(async move {
                    if let Some(head) = read_head(&mut stream).await {
                        h.lock().unwrap().push(head);
                    }
                    let _ = stream.write_all(&response).await;
                    let _ = stream.flush().await;
                    tokio::time::sleep(hold).await;
                });
            }
        });
        Ok(Self { port, heads })
    }

    async fn local(response: &[u8], hold: Duration) -> Self {
        Self::start("127.0.0.1:0", response, hold)
            .await
            .expect("bind 127.0.0.1:0")
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> usize {
        self.heads.lock().unwrap().len()
    }
}

/// A hyper server behind a hand-built rustls config; records SNI and
/// whether a client certificate came.
async fn custom_tls_server(
    config: Arc<rustls::ServerConfig>,
    log: &Log,
    respond: impl Fn(&Seen) -> Response<Body> + Send + Sync + 'static,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let respond: Respond = Arc::new(respond);
    let log = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, respond, log) = (acceptor.clone(), respond.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let conn = tls.get_ref().1;
                let sni = conn.server_name().map(str::to_string);
                let client_cert = conn.peer_certificates().is_some_and(|c| !c.is_empty());
                let service = service_fn(move |req| {
                    let (respond, log, sni) = (respond.clone(), log.clone(), sni.clone());
                    async move {
                        let seen = seen_of(req, sni, client_cert).await;
                        let resp = respond(&seen);
                        log.push(seen);
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

/// A rustls server config serving `leaf` with only `versions`, ALPN
/// http/1.1, and client certificates from `client_root` required when set.
fn server_config(
    leaf: &Leaf,
    versions: &[&'static rustls::SupportedProtocolVersion],
    client_root: Option<CertificateDer<'static>>,
) -> Arc<rustls::ServerConfig> {
    let tls = ServerTls::new(leaf).versions(versions).alpn(&["http/1.1"]);
    match client_root {
        Some(root) => tls.require_client_cert(&[root]),
        None => tls,
    }
    .build()
}

// ---------------------------------------------------------------------------
// Compression helpers
// ---------------------------------------------------------------------------

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Raw deflate (RFC 1951), what Go's `flate.NewReader` reads.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A valid brotli stream without a compressor: WBITS=16, one uncompressed
/// meta-block (ISLAST=0, MNIBBLES=4, MLEN-1, ISUNCOMPRESSED=1, padding,
/// the raw bytes), then an empty last meta-block (ISLAST=1, ISLASTEMPTY=1).
fn brotli_stored(data: &[u8]) -> Vec<u8> {
    assert!(!data.is_empty() && data.len() <= 1 << 16);
    let header: u32 = (((data.len() - 1) as u32) << 4) | (1 << 20);
    let mut out = vec![header as u8, (header >> 8) as u8, (header >> 16) as u8];
    out.extend_from_slice(data);
    out.push(0b11);
    out
}

/// A response whose body is `bytes` with `Content-Encoding: encoding`.
fn encoded(bytes: Vec<u8>, encoding: &str) -> Response<Body> {
    with_header(text(StatusCode::OK, bytes), "content-encoding", encoding)
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

// ===========================================================================
// Failure reasons
// ===========================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_error_for_a_name_that_does_not_resolve() {
    let o = probe("", "http://no-such-host.invalid/").await;
    o.assert_reason("dns_error");
    // Registered as soon as resolution starts, 0 on failure.
    assert_val(&o, "probe_ip_protocol", 0.0);
    assert_val(&o, "probe_ip_addr_hash", 0.0);
    assert!(val(&o, "probe_dns_lookup_time_seconds") >= 0.0);
    assert!(phase(&o, "resolve") >= 0.0);
    assert_val(&o, "probe_http_status_code", 0.0);
    assert_val(&o, "probe_http_content_length", 0.0);
    assert_val(&o, "probe_http_version", 0.0);
    assert_absent(&o, "probe_ssl_earliest_cert_expiry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_error_when_the_literal_is_of_the_wrong_family_without_fallback() {
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    let o = probe(
        "preferred_ip_protocol: ip6\nip_protocol_fallback: false\n",
        &server.url("/"),
    )
    .await;
    o.assert_reason("dns_error");
    assert_val(&o, "probe_ip_protocol", 0.0);
    assert_eq!(server.connections(), 0);

    // With the fallback (the default) the IPv4 literal is used.
    let o = probe("preferred_ip_protocol: ip6\n", &server.url("/")).await;
    o.assert_success();
    assert_val(&o, "probe_ip_protocol", 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_when_nobody_listens() {
    let addr = common::closed_addr();
    let o = probe("", &format!("http://{addr}/")).await;
    o.assert_reason("connect_refused");
    assert_val(&o, "probe_ip_protocol", 4.0);
    assert_val(&o, "probe_ip_addr_hash", LOCALHOST_HASH);
    assert_val(&o, "probe_http_status_code", 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_reset_when_the_server_closes_without_answering() {
    let server = closing_server();
    let o = probe("", &server.url("/")).await;
    o.assert_reason("connection_reset");
    assert!(server.connections() >= 1);
    assert_val(&o, "probe_http_status_code", 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_while_the_server_does_not_answer_shows_processing() {
    let server = silent_server();
    let timeout = Duration::from_secs(1);
    let o = probe_with("", &server.url("/"), None, timeout).await;
    o.assert_reason("timeout");
    assert!(
        o.elapsed < timeout + Duration::from_secs(1),
        "took {:?}",
        o.elapsed
    );
    assert_val(&o, "probe_timeout_seconds", 1.0);
    // The request was written and the probe hung waiting for the answer.
    let processing = phase(&o, "processing");
    assert!(
        (0.8..1.5).contains(&processing),
        "processing {processing}\n{}",
        o.text
    );
    assert!(phase(&o, "connect") < 0.5, "{}", o.text);
    assert_eq!(phase(&o, "tls"), 0.0, "plain http: {}", o.text);
    assert_eq!(phase(&o, "transfer"), 0.0, "no response: {}", o.text);
    assert_val(&o, "probe_http_status_code", 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_during_the_tls_handshake_shows_tls() {
    let server = silent_server();
    let timeout = Duration::from_secs(1);
    let target = format!("https://127.0.0.1:{}/", server.port());
    let o = probe_with("", &target, None, timeout).await;
    o.assert_reason("timeout");
    assert!(
        o.elapsed < timeout + Duration::from_secs(1),
        "took {:?}",
        o.elapsed
    );
    let tls = phase(&o, "tls");
    assert!((0.8..1.5).contains(&tls), "tls {tls}\n{}", o.text);
    assert_eq!(phase(&o, "processing"), 0.0, "{}", o.text);
    // No certificate was presented: no TLS family.
    assert_absent(&o, "probe_ssl_earliest_cert_expiry");
    assert_absent(&o, "probe_tls_version_info");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_error_when_the_answer_is_not_http() {
    let server = RawHttp::local(
        b"SSH-2.0-OpenSSH_9.6\r\nnot http at all\r\n\r\n",
        Duration::from_millis(500),
    )
    .await;
    let o = probe("", &server.url("/")).await;
    o.assert_reason("network_error");
    assert_eq!(server.requests(), 1);
    assert_val(&o, "probe_http_status_code", 0.0);
    assert_val(&o, "probe_http_version", 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_failed_against_a_plain_http_port() {
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    let target = format!("https://127.0.0.1:{}/", server.port());
    let o = probe("", &target).await;
    o.assert_reason("tls_handshake_failed");
    assert!(log.all().is_empty(), "no HTTP request got through");
    assert_val(&o, "probe_http_ssl", 0.0);
    assert_absent(&o, "probe_tls_version_info");
    assert_absent(&o, "probe_ssl_earliest_cert_expiry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_failed_when_min_version_is_above_the_server() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let log = Log::default();
    let port = custom_tls_server(
        server_config(&leaf, &[&rustls::version::TLS12], None),
        &log,
        ok,
    )
    .await;
    let target = format!("https://localhost:{port}/");

    let o = probe(&tls_config(&pki, &["min_version: TLS13"]), &target).await;
    o.assert_reason("tls_handshake_failed");
    assert!(log.all().is_empty());
    assert_absent(&o, "probe_tls_version_info");

    // The same server is fine for a TLS 1.2 client.
    let o = probe(&tls_config(&pki, &["max_version: TLS12"]), &target).await;
    o.assert_success();
    assert_eq!(
        o.value("probe_tls_version_info", &[("version", "TLS 1.2")]),
        Some(1.0)
    );
    let ciphers = o.metrics.label_sets("probe_tls_cipher_info");
    assert_eq!(ciphers.len(), 1, "{}", o.text);
    let cipher = &ciphers[0]["cipher"];
    assert!(
        cipher.starts_with("TLS_ECDHE_"),
        "TLS 1.2 suite name: {cipher}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cert_expired_still_reports_the_certificate() {
    let pki = Pki::new();
    let leaf = pki.expired_leaf();
    let log = Log::default();
    let server = recording_server(Some(Tls::new(&leaf)), &log, ok);
    let o = probe(&tls_config(&pki, &[]), &server.url("/")).await;
    o.assert_reason("tls_cert_expired");
    assert!(log.all().is_empty());
    // Certificate metrics even though verification failed.
    assert_val(
        &o,
        "probe_ssl_earliest_cert_expiry",
        leaf.not_after() as f64,
    );
    assert_eq!(leaf.earliest_expiry(), leaf.not_after());
    assert_val(
        &o,
        "probe_ssl_leaf_not_before_timestamp_seconds",
        leaf.not_before() as f64,
    );
    assert_eq!(
        o.value(
            "probe_ssl_last_chain_info",
            &[("serialnumber", leaf.serial_hex().as_str())]
        ),
        Some(1.0),
        "{}",
        o.text
    );
    // No verified chain, no handshake: no chain expiry, no version.
    assert_absent(&o, "probe_ssl_last_chain_expiry_timestamp_seconds");
    assert_absent(&o, "probe_tls_version_info");
    assert_absent(&o, "probe_tls_cipher_info");
    assert_val(&o, "probe_http_status_code", 0.0);
    assert!(phase(&o, "tls") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cert_not_yet_valid_reports_not_before() {
    let pki = Pki::new();
    let leaf = pki.not_yet_valid_leaf();
    let server = TestServer::https(Tls::new(&leaf), |_| text(StatusCode::OK, "ok"));
    let o = probe(&tls_config(&pki, &[]), &server.url("/")).await;
    o.assert_reason("tls_cert_not_yet_valid");
    assert_val(
        &o,
        "probe_ssl_leaf_not_before_timestamp_seconds",
        leaf.not_before() as f64,
    );
    assert!(
        leaf.not_before() as f64 > now_unix(),
        "the leaf starts in the future"
    );
    assert_val(
        &o,
        "probe_ssl_earliest_cert_expiry",
        leaf.not_after() as f64,
    );
    assert_absent(&o, "probe_ssl_last_chain_expiry_timestamp_seconds");
    assert_eq!(server.requests(), 0);
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cert_untrusted_for_an_unknown_ca() {
    let pki = Pki::new();
    let other = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = TestServer::https(Tls::new(&leaf), |_| text(StatusCode::OK, "ok"));
    let o = probe(&tls_config(&other, &[]), &server.url("/")).await;
    o.assert_reason("tls_cert_untrusted");
    assert_val(
        &o,
        "probe_ssl_earliest_cert_expiry",
        leaf.earliest_expiry() as f64,
    );
    assert_absent(&o, "probe_ssl_last_chain_expiry_timestamp_seconds");

    // The system roots do not know the test PKI either.
    let o = probe("", &server.url("/")).await;
    o.assert_reason("tls_cert_untrusted");
    assert_eq!(server.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cert_untrusted_for_a_self_signed_leaf() {
    let pki = Pki::new();
    let leaf = pki.self_signed_leaf();
    let server = TestServer::https(Tls::new(&leaf), |_| text(StatusCode::OK, "ok"));
    let o = probe(&tls_config(&pki, &[]), &server.url("/")).await;
    o.assert_reason("tls_cert_untrusted");
    assert_val(
        &o,
        "probe_ssl_earliest_cert_expiry",
        leaf.not_after() as f64,
    );
    let info = o.metrics.label_sets("probe_ssl_last_chain_info");
    assert_eq!(info.len(), 1, "{}", o.text);
    assert_eq!(info[0]["fingerprint_sha256"], leaf.fingerprint_sha256());
    // Self-signed: the issuer is the subject.
    assert_eq!(info[0]["issuer"], info[0]["subject"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cert_untrusted_when_the_intermediate_is_missing() {
    let pki = Pki::new();
    let leaf = pki.leaf_without_intermediate();
    assert_eq!(leaf.chain.len(), 1);
    let server = TestServer::https(Tls::new(&leaf), |_| text(StatusCode::OK, "ok"));
    let o = probe(&tls_config(&pki, &[]), &server.url("/")).await;
    o.assert_reason("tls_cert_untrusted");
    // Only the leaf was presented.
    assert_val(
        &o,
        "probe_ssl_earliest_cert_expiry",
        leaf.not_after() as f64,
    );
    assert_absent(&o, "probe_ssl_last_chain_expiry_timestamp_seconds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_hostname_mismatch_when_the_certificate_names_another_host() {
    let pki = Pki::new();
    let leaf = pki.wrong_host_leaf();
    let server = TestServer::https(Tls::new(&leaf), |_| text(StatusCode::OK, "ok"));
    let o = probe(&tls_config(&pki, &[]), &server.url("/")).await;
    o.assert_reason("tls_hostname_mismatch");
    let info = o.metrics.label_sets("probe_ssl_last_chain_info");
    assert_eq!(info.len(), 1, "{}", o.text);
    assert_eq!(info[0]["subjectalternative"], "wrong.example.test");
    assert_absent(&o, "probe_ssl_last_chain_expiry_timestamp_seconds");

    // tls_config.server_name naming the certificate's host makes it pass.
    let o = probe(
        &tls_config(&pki, &["server_name: wrong.example.test"]),
        &server.url("/"),
    )
    .await;
    o.assert_success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_status_outside_2xx_and_valid_status_codes() {
    let server = TestServer::http(|req| match req.uri().path() {
        "/missing" => text(StatusCode::NOT_FOUND, "not found"),
        "/created" => text(StatusCode::CREATED, "created"),
        _ => text(StatusCode::OK, "ok"),
    });
    let o = probe("", &server.url("/missing")).await;
    o.assert_reason("http_status");
    assert_val(&o, "probe_http_status_code", 404.0);
    // The body of a failing status is still read.
    assert_val(&o, "probe_http_uncompressed_body_length", 9.0);
    assert_val(&o, "probe_http_content_length", 9.0);
    assert_val(&o, "probe_failed_due_to_regex", 0.0);

    let o = probe("valid_status_codes: [404]\n", &server.url("/missing")).await;
    o.assert_success();
    assert_val(&o, "probe_http_status_code", 404.0);

    let o = probe("valid_status_codes: [200, 201]\n", &server.url("/missing")).await;
    o.assert_reason("http_status");
    let o = probe("valid_status_codes: [200, 201]\n", &server.url("/created")).await;
    o.assert_success();
    assert_val(&o, "probe_http_status_code", 201.0);

    // A list without 200 makes 200 a failure.
    let o = probe("valid_status_codes: [404]\n", &server.url("/")).await;
    o.assert_reason("http_status");
    assert_val(&o, "probe_http_status_code", 200.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_version_not_in_valid_http_versions() {
    let server = TestServer::http(|_| text(StatusCode::OK, "ok"));
    let o = probe("valid_http_versions: [HTTP/2.0]\n", &server.url("/")).await;
    o.assert_reason("http_version");
    assert_val(&o, "probe_http_version", 1.1);
    assert_val(&o, "probe_http_status_code", 200.0);

    // Compared exactly: "HTTP/2" is not "HTTP/2.0", "HTTP/1.1" matches.
    let o = probe("valid_http_versions: [HTTP/1.1]\n", &server.url("/")).await;
    o.assert_success();
    assert_val(&o, "probe_http_version", 1.1);
    let o = probe(
        "valid_http_versions: [\"HTTP/1.0\", \"HTTP/1.1\"]\n",
        &server.url("/"),
    )
    .await;
    o.assert_success();
}

fn header_server() -> TestServer {
    TestServer::http(|_| {
        let resp = text(StatusCode::OK, "ok");
        let resp = with_header(resp, "x-multi", "first");
        with_header(resp, "x-multi", "second")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_header_regex_fail_if_header_matches() {
    let server = header_server();
    let o = probe(
        "fail_if_header_matches:\n  - header: Content-Type\n    regexp: 'text/plain'\n",
        &server.url("/"),
    )
    .await;
    o.assert_reason("http_header_regex");
    assert_val(&o, "probe_failed_due_to_regex", 1.0);
    assert_val(&o, "probe_http_status_code", 200.0);

    // Any value of the header matching is a failure (the second here).
    let o = probe(
        "fail_if_header_matches:\n  - header: X-Multi\n    regexp: '^sec'\n",
        &server.url("/"),
    )
    .await;
    o.assert_reason("http_header_regex");

    // No match: success.
    let o = probe(
        "fail_if_header_matches:\n  - header: content-type\n    regexp: 'json'\n",
        &server.url("/"),
    )
    .await;
    o.assert_success();
    assert_val(&o, "probe_failed_due_to_regex", 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_header_regex_fail_if_header_not_matches() {
    let server = header_server();
    let o = probe(
        "fail_if_header_not_matches:\n  - header: Content-Type\n    regexp: 'application/json'\n",
        &server.url("/"),
    )
    .await;
    o.assert_reason("http_header_regex");
    assert_val(&o, "probe_failed_due_to_regex", 1.0);

    // One matching value among several is enough; unanchored.
    let o = probe(
        "fail_if_header_not_matches:\n  - header: X-Multi\n    regexp: 'econ'\n  - header: Content-Type\n    regexp: 'plain'\n",
        &server.url("/"),
    )
    .await;
    o.assert_success();
    assert_val(&o, "probe_failed_due_to_regex", 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_header_regex_missing_header_with_and_without_allow_missing() {
    let server = header_server();
    for list in ["fail_if_header_matches", "fail_if_header_not_matches"] {
        let o = probe(
            &format!("{list}:\n  - header: X-Absent\n    regexp: 'anything'\n"),
            &server.url("/"),
        )
        .await;
        o.assert_reason("http_header_regex");
        assert_val(&o, "probe_failed_due_to_regex", 1.0);

        let o = probe(
            &format!(
                "{list}:\n  - header: X-Absent\n    regexp: 'anything'\n    allow_missing: true\n"
            ),
            &server.url("/"),
        )
        .await;
        o.assert_success();
        assert_val(&o, "probe_failed_due_to_regex", 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_body_regex_both_lists() {
    let server = TestServer::http(|_| text(StatusCode::OK, "status: degraded\nversion: 1.2.3\n"));
    let url = server.url("/");

    let o = probe("fail_if_body_matches_regexp: ['degraded']\n", &url).await;
    o.assert_reason("http_body_regex");
    assert_val(&o, "probe_failed_due_to_regex", 1.0);
    assert_val(&o, "probe_http_uncompressed_body_length", 32.0);

    let o = probe("fail_if_body_not_matches_regexp: ['status: ok']\n", &url).await;
    o.assert_reason("http_body_regex");
    assert_val(&o, "probe_failed_due_to_regex", 1.0);

    // Every not-matches regex must match; a single miss fails.
    let o = probe(
        "fail_if_body_not_matches_regexp: ['version: [0-9]+', 'missing']\n",
        &url,
    )
    .await;
    o.assert_reason("http_body_regex");

    let o = probe(
        "fail_if_body_matches_regexp: ['panic|fatal']\nfail_if_body_not_matches_regexp: ['version: [0-9]+\\.[0-9]+', '(?m)^status']\n",
        &url,
    )
    .await;
    o.assert_success();
    assert_val(&o, "probe_failed_due_to_regex", 0.0);
}

/// A body over 64 KiB is matched on the blocking pool; same verdicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_regex_on_a_large_body() {
    let mut body = "filler line\n".repeat(90_000);
    body.push_str("status: degraded\n");
    let len = body.len();
    let server = TestServer::http(move |_| text(StatusCode::OK, body.clone()));
    let url = server.url("/");
    let o = probe("fail_if_body_matches_regexp: ['degraded']\n", &url).await;
    o.assert_reason("http_body_regex");
    assert_val(&o, "probe_failed_due_to_regex", 1.0);
    assert_val(&o, "probe_http_uncompressed_body_length", len as f64);
    let o = probe(
        "fail_if_body_not_matches_regexp: ['(?m)^status: degraded$']\n",
        &url,
    )
    .await;
    o.assert_success();
    assert_val(&o, "probe_failed_due_to_regex", 0.0);
}

/// The CEL matchers over a JSON body (blackbox 0.27): `probe_failed_due_to_cel`
/// is present only when a matcher is configured, 1 when one failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_body_cel_matchers() {
    let server = TestServer::http(|req| match req.uri().path() {
        "/health" => text(
            StatusCode::OK,
            r#"{"status":"ok","checks":[{"name":"db","up":true},{"name":"cache","up":false}],"version":{"major":2}}"#,
        ),
        "/html" => text(StatusCode::OK, "<html>maintenance</html>"),
        "/gz" => encoded(gzip(br#"{"status":"degraded"}"#), "gzip"),
        _ => text(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"down"}"#),
    });
    let health = server.url("/health");

    // Without a matcher the gauge is absent, as in blackbox.
    let o = probe("", &health).await;
    o.assert_success();
    assert_absent(&o, "probe_failed_due_to_cel");

    let o = probe(
        "fail_if_body_json_matches_cel: 'body.checks.exists(c, !c.up)'\n",
        &health,
    )
    .await;
    o.assert_reason("http_body_cel");
    assert_val(&o, "probe_failed_due_to_cel", 1.0);
    assert_val(&o, "probe_failed_due_to_regex", 0.0);
    assert!(o.log.contains("Body matched CEL expression"), "{}", o.log);

    let o = probe(
        "fail_if_body_json_matches_cel: \"body.status != 'ok'\"\nfail_if_body_json_not_matches_cel: 'body.version.major >= 2 && size(body.checks) == 2'\n",
        &health,
    )
    .await;
    o.assert_success();
    assert_val(&o, "probe_failed_due_to_cel", 0.0);

    let o = probe(
        "fail_if_body_json_not_matches_cel: 'body.checks.all(c, c.up)'\n",
        &health,
    )
    .await;
    o.assert_reason("http_body_cel");
    assert_val(&o, "probe_failed_due_to_cel", 1.0);

    // Not JSON, a missing key, a result that is not a bool: all fail.
    let o = probe(
        "fail_if_body_json_matches_cel: 'body.ok'
",
        &server.url("/html"),
    )
    .await;
    o.assert_reason("http_body_cel");
    assert!(
        o.log.contains("Error unmarshalling HTTP body to JSON"),
        "{}",
        o.log
    );
    let o = probe(
        "fail_if_body_json_not_matches_cel: 'body.nope == 1'
",
        &health,
    )
    .await;
    o.assert_reason("http_body_cel");
    let o = probe(
        "fail_if_body_json_not_matches_cel: 'body.status'
",
        &health,
    )
    .await;
    o.assert_reason("http_body_cel");
    assert!(o.log.contains("not a boolean"), "{}", o.log);

    // A failing status comes first: the CEL gauge stays 0.
    let o = probe(
        "fail_if_body_json_matches_cel: 'true'
",
        &server.url("/down"),
    )
    .await;
    o.assert_reason("http_status");
    assert_val(&o, "probe_failed_due_to_cel", 0.0);

    // Body regexes run first; both see the same body (blackbox's regex
    // check consumes it, so its CEL then sees an empty body).
    let o = probe(
        "fail_if_body_not_matches_regexp: ['\"status\"']\nfail_if_body_json_not_matches_cel: \"body.status == 'ok'\"\n",
        &health,
    )
    .await;
    o.assert_success();
    let o = probe(
        "fail_if_body_matches_regexp: ['cache']\nfail_if_body_json_matches_cel: 'true'\n",
        &health,
    )
    .await;
    o.assert_reason("http_body_regex");
    assert_val(&o, "probe_failed_due_to_regex", 1.0);
    assert_val(&o, "probe_failed_due_to_cel", 0.0);

    // The decoded body is what CEL sees.
    let o = probe(
        "compression: gzip\nfail_if_body_json_matches_cel: \"body.status == 'degraded'\"\n",
        &server.url("/gz"),
    )
    .await;
    o.assert_reason("http_body_cel");
}

/// A JSON body past the cap is `body_size_limit`, not a CEL verdict on a
/// truncated document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_body_cel_respects_the_body_cap() {
    let items: Vec<String> = (0..2000).map(|i| format!("{{\"id\":{i}}}")).collect();
    let body = format!("{{\"items\":[{}]}}", items.join(","));
    let len = body.len();
    let server = TestServer::http(move |_| text(StatusCode::OK, body.clone()));
    let o = probe(
        "body_size_limit: 1KB\nfail_if_body_json_not_matches_cel: 'size(body.items) == 2000'\n",
        &server.url("/"),
    )
    .await;
    o.assert_reason("body_size_limit");
    assert_val(&o, "probe_failed_due_to_cel", 0.0);
    let o = probe(
        "fail_if_body_json_not_matches_cel: 'size(body.items) == 2000 && body.items[1999].id == 1999'\n",
        &server.url("/"),
    )
    .await;
    o.assert_success();
    assert_val(&o, "probe_http_uncompressed_body_length", len as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_size_limit_counts_up_to_the_limit() {
    let body = "x".repeat(2000);
    let server = TestServer::http(move |_| text(StatusCode::OK, body.clone()));
    let o = probe("body_size_limit: 1KB\n", &server.url("/")).await;
    o.assert_reason("body_size_limit");
    assert_val(&o, "probe_http_uncompressed_body_length", 1024.0);
    // Content-Length is not checked against the limit.
    assert_val(&o, "probe_http_content_length", 2000.0);
    assert_val(&o, "probe_failed_due_to_regex", 0.0);

    let o = probe("body_size_limit: 100\n", &server.url("/")).await;
    o.assert_reason("body_size_limit");
    assert_val(&o, "probe_http_uncompressed_body_length", 100.0);

    // Exactly the limit is fine; 0 means unlimited.
    let o = probe("body_size_limit: 2000\n", &server.url("/")).await;
    o.assert_success();
    assert_val(&o, "probe_http_uncompressed_body_length", 2000.0);
    let o = probe("body_size_limit: 0\n", &server.url("/")).await;
    o.assert_success();
    assert_val(&o, "probe_http_uncompressed_body_length", 2000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_size_limit_applies_after_decompression() {
    let original = "a".repeat(500);
    let gz = gzip(original.as_bytes());
    let gz_len = gz.len();
    assert!(gz_len < 100);
    let server = TestServer::http(move |_| encoded(gz.clone(), "gzip"));
    let o = probe(
        "compression: gzip\nbody_size_limit: 100\n",
        &server.url("/"),
    )
    .await;
    o.assert_reason("body_size_limit");
    assert_val(&o, "probe_http_uncompressed_body_length", 100.0);
    assert_val(&o, "probe_http_content_length", gz_len as f64);
}

fn redirect_router(seen: &Seen) -> Response<Body> {
    let path = seen.path.as_str();
    match path {
        "/loop" => redirect(StatusCode::FOUND, "/loop"),
        "/r1" => redirect(StatusCode::FOUND, "/r2"),
        "/r2" => redirect(StatusCode::MOVED_PERMANENTLY, "/r3"),
        "/r3" => redirect(StatusCode::TEMPORARY_REDIRECT, "/ok"),
        "/moved" => {
            let mut resp = text(StatusCode::FOUND, "moved over there");
            resp.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/ok"));
            resp
        }
        "/login" => {
            let resp = redirect(StatusCode::FOUND, "/home");
            with_header(resp, "set-cookie", "session=s3cr3t; Path=/; HttpOnly")
        }
        "/home" => {
            let cookie = seen.header("cookie").unwrap_or_default();
            if cookie.contains("session=s3cr3t") {
                text(StatusCode::OK, "welcome")
            } else {
                text(StatusCode::FORBIDDEN, "no session")
            }
        }
        "/abs" => {
            let host = seen.host.clone().unwrap_or_default();
            let port = host.rsplit(':').next().unwrap_or_default();
            redirect(StatusCode::FOUND, &format!("http://localhost:{port}/ok"))
        }
        p if p.starts_with("/r/") => {
            let code: u16 = p[3..].parse().expect("status in path");
            redirect(StatusCode::from_u16(code).unwrap(), "/target")
        }
        _ => text(StatusCode::OK, "arrived"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_limit_on_a_redirect_loop() {
    let log = Log::default();
    let server = recording_server(None, &log, redirect_router);
    let o = probe("", &server.url("/loop")).await;
    o.assert_reason("redirect_limit");
    assert_val(&o, "probe_http_redirects", 11.0);
    assert_val(&o, "probe_http_status_code", 302.0);
    // The initial request and 10 followed redirects.
    assert_eq!(log.all().len(), 11);
    assert_val(&o, "probe_http_uncompressed_body_length", 0.0);

    // A 3xx that is valid is a success even at the limit.
    let o = probe("valid_status_codes: [302]\n", &server.url("/loop")).await;
    o.assert_success();
    assert_val(&o, "probe_http_redirects", 11.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_policy_fail_if_ssl_and_fail_if_not_ssl() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let https = TestServer::https(Tls::new(&leaf), |_| text(StatusCode::OK, "ok"));
    let http = TestServer::http(|_| text(StatusCode::OK, "ok"));

    let o = probe(
        &format!("{}fail_if_ssl: true\n", tls_config(&pki, &[])),
        &https.url("/"),
    )
    .await;
    o.assert_reason("ssl_policy");
    assert_val(&o, "probe_http_ssl", 1.0);
    // The TLS family is still reported for the final response.
    assert_val(
        &o,
        "probe_ssl_earliest_cert_expiry",
        leaf.not_after() as f64,
    );

    let o = probe("fail_if_not_ssl: true\n", &http.url("/")).await;
    o.assert_reason("ssl_policy");
    assert_val(&o, "probe_http_ssl", 0.0);

    let o = probe(
        &format!("{}fail_if_not_ssl: true\n", tls_config(&pki, &[])),
        &https.url("/"),
    )
    .await;
    o.assert_success();
    let o = probe("fail_if_ssl: true\n", &http.url("/")).await;
    o.assert_success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_target_for_a_missing_body_file_and_bad_urls() {
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    let dir = temp_dir();
    let missing = dir.path().join("no-such-body.json");
    let o = probe(
        &format!("method: POST\nbody_file: {}\n", missing.display()),
        &server.url("/"),
    )
    .await;
    o.assert_reason("invalid_target");
    assert!(log.all().is_empty(), "nothing was sent");
    assert_val(&o, "probe_http_status_code", 0.0);

    // A hostname that is no valid Host header, a server_name that is no
    // valid TLS name.
    let o = probe_with("", &server.url("/"), Some("bad\u{1}host"), TIMEOUT).await;
    o.assert_reason("invalid_target");
    let o = probe(
        "tls_config:\n  server_name: 'not a valid name!'\n",
        &format!("https://127.0.0.1:{}/", server.port()),
    )
    .await;
    o.assert_reason("invalid_target");
    assert!(log.all().is_empty(), "nothing was sent");

    for target in [
        "http://[::1/",
        "http://exa mple.com/",
        "ftp://127.0.0.1/",
        "http://",
    ] {
        let o = probe("", target).await;
        o.assert_reason("invalid_target");
        assert_val(&o, "probe_http_status_code", 0.0);
    }
}

// ===========================================================================
// Request keys
// ===========================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_and_body_reach_the_server() {
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    let o = probe(
        "method: POST\nbody: '{\"hello\": \"world\"}'\nheaders:\n  Content-Type: application/json\n",
        &server.url("/submit?x=1"),
    )
    .await;
    o.assert_success();
    let seen = log.one();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, "/submit?x=1");
    assert_eq!(seen.body, Bytes::from_static(b"{\"hello\": \"world\"}"));
    assert_eq!(seen.header("content-length").as_deref(), Some("18"));
    assert_eq!(
        seen.header("content-type").as_deref(),
        Some("application/json")
    );

    // Any method token.
    let o = probe("method: DELETE\n", &server.url("/thing")).await;
    o.assert_success();
    assert_eq!(log.at("/thing").method, Method::DELETE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_file_is_read_per_probe() {
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    let dir = temp_dir();
    let file = write_file(dir.path(), "body.txt", "first body");
    let config = load(&format!("method: PUT\nbody_file: {}\n", file.display()));
    probe_loaded(&config, &server.url("/one"))
        .await
        .assert_success();
    std::fs::write(&file, "second body, longer").unwrap();
    probe_loaded(&config, &server.url("/two"))
        .await
        .assert_success();
    assert_eq!(log.at("/one").method, Method::PUT);
    assert_eq!(log.at("/one").body, Bytes::from_static(b"first body"));
    assert_eq!(
        log.at("/two").body,
        Bytes::from_static(b"second body, longer")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_sent_and_replace_the_user_agent() {
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    let o = probe(
        "headers:\n  X-Custom: custom value\n  User-Agent: probe-agent/1.0\n  Accept: text/plain\n",
        &server.url("/"),
    )
    .await;
    o.assert_success();
    let seen = log.one();
    assert_eq!(seen.header("x-custom").as_deref(), Some("custom value"));
    assert_eq!(seen.header_all("user-agent"), vec!["probe-agent/1.0"]);
    assert_eq!(seen.header("accept").as_deref(), Some("text/plain"));
    // Keep-alive is off, as in blackbox.
    assert_eq!(seen.header("connection").as_deref(), Some("close"));
    assert_eq!(
        seen.host.as_deref(),
        Some(format!("127.0.0.1:{}", server.port()).as_str())
    );
}

/// A TLS server for `vhost.test` only (no IP SAN), recording SNI.
async fn vhost_server(pki: &Pki, log: &Log) -> u16 {
    let leaf = pki.leaf(&["vhost.test"], &[], Validity::default());
    custom_tls_server(
        server_config(
            &leaf,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            None,
        ),
        log,
        ok,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_header_sets_host_and_sni() {
    let pki = Pki::new();
    let log = Log::default();
    let port = vhost_server(&pki, &log).await;
    let target = format!("https://127.0.0.1:{port}/vhost");

    let o = probe(
        &format!("headers:\n  Host: vhost.test\n{}", tls_config(&pki, &[])),
        &target,
    )
    .await;
    o.assert_success();
    let seen = log.one();
    assert_eq!(seen.host.as_deref(), Some("vhost.test"));
    assert_eq!(seen.sni.as_deref(), Some("vhost.test"));
    assert_eq!(
        o.value(
            "probe_ssl_last_chain_info",
            &[("subjectalternative", "vhost.test")]
        ),
        Some(1.0)
    );
    // The address is still the target's.
    assert_val(&o, "probe_ip_addr_hash", LOCALHOST_HASH);

    // Without the Host header: no SNI for an IP literal, and the name check
    // against 127.0.0.1 fails.
    let o = probe(&tls_config(&pki, &[]), &target).await;
    o.assert_reason("tls_hostname_mismatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_parameter_sets_host_and_sni() {
    let pki = Pki::new();
    let log = Log::default();
    let port = vhost_server(&pki, &log).await;
    let target = format!("https://127.0.0.1:{port}/param");
    let o = probe_with(&tls_config(&pki, &[]), &target, Some("vhost.test"), TIMEOUT).await;
    o.assert_success();
    let seen = log.one();
    assert_eq!(seen.host.as_deref(), Some("vhost.test"));
    assert_eq!(seen.sni.as_deref(), Some("vhost.test"));

    // Plain http: the Host header, port included when given.
    let plain_log = Log::default();
    let server = recording_server(None, &plain_log, ok);
    let o = probe_with("", &server.url("/"), Some("example.test:8080"), TIMEOUT).await;
    o.assert_success();
    assert_eq!(plain_log.one().host.as_deref(), Some("example.test:8080"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_config_server_name_sets_sni_and_verification() {
    let pki = Pki::new();
    let log = Log::default();
    let port = vhost_server(&pki, &log).await;
    let target = format!("https://127.0.0.1:{port}/");
    let o = probe(&tls_config(&pki, &["server_name: vhost.test"]), &target).await;
    o.assert_success();
    let seen = log.one();
    assert_eq!(seen.sni.as_deref(), Some("vhost.test"));
    // server_name does not change the Host header.
    assert_eq!(seen.host, Some(format!("127.0.0.1:{port}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_gzip_deflate_identity_and_br() {
    let original = "compressed hello world, ".repeat(20);
    let len = original.len() as f64;
    let (gz, df, br) = (
        gzip(original.as_bytes()),
        deflate(original.as_bytes()),
        brotli_stored(original.as_bytes()),
    );
    // The hand-made brotli stream is valid.
    let mut check = Vec::new();
    brotli_decompressor::Decompressor::new(&br[..], 4096)
        .read_to_end(&mut check)
        .expect("valid brotli");
    assert_eq!(check, original.as_bytes());

    let plain = original.clone();
    let (gz2, df2, br2) = (gz.clone(), df.clone(), br.clone());
    let log = Log::default();
    let server = recording_server(None, &log, move |seen| match seen.path.as_str() {
        "/gzip" => encoded(gz2.clone(), "gzip"),
        "/deflate" => encoded(df2.clone(), "deflate"),
        "/br" => encoded(br2.clone(), "br"),
        "/bad-gzip" => encoded(b"this is not gzip at all".to_vec(), "gzip"),
        _ => text(StatusCode::OK, plain.clone()),
    });

    for (path, name, wire_len) in [
        ("/gzip", "gzip", gz.len()),
        ("/deflate", "deflate", df.len()),
        ("/br", "br", br.len()),
        ("/identity", "identity", original.len()),
        // Case-insensitive.
        ("/gzip", "GZIP", gz.len()),
    ] {
        let o = probe(
            &format!("compression: {name}\nfail_if_body_not_matches_regexp: ['hello world, compressed']\n"),
            &server.url(path),
        )
        .await;
        o.assert_success();
        assert_val(&o, "probe_http_uncompressed_body_length", len);
        assert_val(&o, "probe_http_content_length", wire_len as f64);
        assert_val(&o, "probe_failed_due_to_regex", 0.0);
    }

    // Without `compression` the bytes are counted as they came.
    let o = probe("", &server.url("/gzip")).await;
    o.assert_success();
    assert_val(&o, "probe_http_uncompressed_body_length", gz.len() as f64);

    // A body that does not decode fails the probe.
    let o = probe("compression: gzip\n", &server.url("/bad-gzip")).await;
    o.assert_reason("network_error");
    assert_val(&o, "probe_http_status_code", 200.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_redirects_false_stops_at_the_first_redirect() {
    let log = Log::default();
    let server = recording_server(None, &log, redirect_router);
    let o = probe("follow_redirects: false\n", &server.url("/moved")).await;
    o.assert_reason("http_status");
    assert_val(&o, "probe_http_redirects", 1.0);
    assert_val(&o, "probe_http_status_code", 302.0);
    // The 3xx body is not read.
    assert_val(&o, "probe_http_uncompressed_body_length", 0.0);
    assert_val(&o, "probe_http_content_length", 16.0);
    assert_eq!(log.paths(), vec!["/moved"]);

    let o = probe(
        "follow_redirects: false\nvalid_status_codes: [302]\n",
        &server.url("/moved"),
    )
    .await;
    o.assert_success();
    assert_val(&o, "probe_http_redirects", 1.0);

    // The deprecated spelling, which wins over follow_redirects.
    let o = probe(
        "no_follow_redirects: true\nfollow_redirects: true\nvalid_status_codes: [302]\n",
        &server.url("/moved"),
    )
    .await;
    o.assert_success();
    assert_val(&o, "probe_http_redirects", 1.0);

    // No redirect at all: 0.
    let o = probe("follow_redirects: false\n", &server.url("/ok")).await;
    o.assert_success();
    assert_val(&o, "probe_http_redirects", 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_and_phases_summed() {
    let log = Log::default();
    let server = recording_server(None, &log, redirect_router);
    let o = probe("", &server.url("/r1")).await;
    o.assert_success();
    assert_val(&o, "probe_http_redirects", 3.0);
    assert_val(&o, "probe_http_status_code", 200.0);
    assert_val(&o, "probe_http_uncompressed_body_length", 7.0);
    assert_eq!(log.paths(), vec!["/r1", "/r2", "/r3", "/ok"]);
    // Keep-alive off: one connection per hop.
    assert_eq!(server.connections(), 4);
    for p in ["connect", "processing", "transfer"] {
        assert!(phase(&o, p) > 0.0, "{p}: {}", o.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_301_302_303_turn_post_into_get_307_308_keep_it() {
    for code in [301, 302, 303, 307, 308] {
        let log = Log::default();
        let server = recording_server(None, &log, redirect_router);
        let o = probe(
            "method: POST\nbody: payload\n",
            &server.url(&format!("/r/{code}")),
        )
        .await;
        o.assert_success();
        assert_val(&o, "probe_http_redirects", 1.0);
        let first = log.at(&format!("/r/{code}"));
        assert_eq!(first.method, Method::POST);
        assert_eq!(first.body, Bytes::from_static(b"payload"));
        let second = log.at("/target");
        if code == 307 || code == 308 {
            assert_eq!(second.method, Method::POST, "{code}");
            assert_eq!(second.body, Bytes::from_static(b"payload"), "{code}");
        } else {
            assert_eq!(second.method, Method::GET, "{code}");
            assert!(second.body.is_empty(), "{code}");
            assert_eq!(second.header("content-length"), None, "{code}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_redirect_to_another_host_name() {
    let log = Log::default();
    let server = recording_server(None, &log, redirect_router);
    let o = probe("", &server.url("/abs")).await;
    o.assert_success();
    assert_val(&o, "probe_http_redirects", 1.0);
    let port = server.port();
    assert_eq!(log.at("/abs").host, Some(format!("127.0.0.1:{port}")));
    assert_eq!(log.at("/ok").host, Some(format!("localhost:{port}")));
    // The first hop's address metrics stay.
    assert_val(&o, "probe_ip_addr_hash", LOCALHOST_HASH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_set_on_one_hop_are_sent_on_the_next() {
    let log = Log::default();
    let server = recording_server(None, &log, redirect_router);
    let o = probe("", &server.url("/login")).await;
    o.assert_success();
    assert_val(&o, "probe_http_redirects", 1.0);
    assert_eq!(log.at("/login").header("cookie"), None);
    assert_eq!(
        log.at("/home").header("cookie").as_deref(),
        Some("session=s3cr3t")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_ip_protocol_ip4_without_fallback_on_localhost() {
    let server = TestServer::http(|_| text(StatusCode::OK, "ok"));
    let target = format!("http://localhost:{}/", server.port());
    let o = probe(
        "preferred_ip_protocol: ip4\nip_protocol_fallback: false\n",
        &target,
    )
    .await;
    o.assert_success();
    assert_val(&o, "probe_ip_protocol", 4.0);
    assert_val(&o, "probe_ip_addr_hash", LOCALHOST_HASH);
    assert!(val(&o, "probe_dns_lookup_time_seconds") > 0.0);
    assert_eq!(
        phase(&o, "resolve"),
        val(&o, "probe_dns_lookup_time_seconds")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_ip_protocol_ip6_on_ipv6_loopback() {
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    let server = match RawHttp::start("[::1]:0", response, Duration::ZERO).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipping: cannot bind [::1]:0 ({e})");
            return;
        }
    };
    let target = format!("http://[::1]:{}/", server.port);
    let o = probe(
        "preferred_ip_protocol: ip6\nip_protocol_fallback: false\n",
        &target,
    )
    .await;
    o.assert_success();
    assert_val(&o, "probe_ip_protocol", 6.0);
    let v6: std::net::Ipv6Addr = "::1".parse().unwrap();
    assert_val(&o, "probe_ip_addr_hash", f64::from(fnv1a32(&v6.octets())));
    assert_eq!(server.requests(), 1);
    assert!(
        server.heads.lock().unwrap()[0].contains(&format!("Host: [::1]:{}", server.port)),
        "{:?}",
        server.heads
    );

    // ip4 without fallback cannot use an IPv6 literal.
    let o = probe(
        "preferred_ip_protocol: ip4\nip_protocol_fallback: false\n",
        &target,
    )
    .await;
    o.assert_reason("dns_error");
}

// ===========================================================================
// tls_config
// ===========================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_config_inline_ca() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = TestServer::https(Tls::new(&leaf), |_| text(StatusCode::OK, "ok"));
    let yaml = format!("tls_config:\n{}", block_scalar("ca", &pki.ca_pem(), 2));
    let o = probe(&yaml, &server.url("/")).await;
    o.assert_success();
    assert_val(
        &o,
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        leaf.not_after() as f64,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_config_insecure_skip_verify_accepts_self_signed() {
    let pki = Pki::new();
    let leaf = pki.self_signed_leaf();
    let server = TestServer::https(Tls::new(&leaf), |_| text(StatusCode::OK, "ok"));
    let o = probe(
        "tls_config:\n  insecure_skip_verify: true\n",
        &server.url("/"),
    )
    .await;
    o.assert_success();
    assert_val(&o, "probe_http_ssl", 1.0);
    assert_val(
        &o,
        "probe_ssl_earliest_cert_expiry",
        leaf.not_after() as f64,
    );
    // Nothing verified: no chain expiry (never Go's negative zero time).
    assert_absent(&o, "probe_ssl_last_chain_expiry_timestamp_seconds");
    assert_eq!(
        o.value(
            "probe_ssl_last_chain_info",
            &[("fingerprint_sha256", leaf.fingerprint_sha256().as_str())]
        ),
        Some(1.0)
    );
    assert_eq!(o.metrics.label_sets("probe_tls_version_info").len(), 1);

    // Also past an expired certificate and a wrong name.
    let expired = TestServer::https(Tls::new(&pki.expired_leaf()), |_| {
        text(StatusCode::OK, "ok")
    });
    let o = probe(
        "tls_config:\n  insecure_skip_verify: true\n",
        &expired.url_with_host("127.0.0.1", "/"),
    )
    .await;
    o.assert_success();
}

fn client_leaf(pki: &Pki) -> Leaf {
    pki.leaf_with(&["probe-client"], &[], Validity::default(), |p| {
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_config_client_certificate_for_mtls() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let client = client_leaf(&pki);
    let dir = temp_dir();
    let (cert_file, key_file) = client.write_to(dir.path(), "client");
    let log = Log::default();
    let port = custom_tls_server(
        server_config(
            &leaf,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            Some(pki.ca_der()),
        ),
        &log,
        ok,
    )
    .await;
    let target = format!("https://localhost:{port}/mtls");

    let o = probe(
        &tls_config(
            &pki,
            &[
                &format!("cert_file: {}", cert_file.display()),
                &format!("key_file: {}", key_file.display()),
            ],
        ),
        &target,
    )
    .await;
    o.assert_success();
    assert!(
        log.one().client_cert,
        "the server saw the client certificate"
    );

    // Inline cert and key.
    let inline = format!(
        "{}{}{}",
        tls_config(&pki, &[]),
        block_scalar("cert", client.chain_pem(), 2),
        block_scalar("key", client.key_pem(), 2)
    );
    let o = probe(&inline, &target).await;
    o.assert_success();
    assert_eq!(log.all().len(), 2);
    assert!(log.all()[1].client_cert);

    // Without a client certificate a TLS 1.2 server refuses the handshake
    // itself (TLS 1.3: see the next test).
    let o = probe(&tls_config(&pki, &["max_version: TLS12"]), &target).await;
    o.assert_reason("tls_handshake_failed");
    assert_eq!(log.all().len(), 2);
}

/// A TLS 1.3 server checks the client certificate after the client has
/// finished its side of the handshake, so its refusal (a
/// `certificate_required` alert) arrives with the first read of the
/// response. It is still the handshake the peer refused: one reason,
/// `tls_handshake_failed`, however the alert and the closed socket race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_failed_when_a_tls13_server_requires_a_client_certificate() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let log = Log::default();
    let port = custom_tls_server(
        server_config(&leaf, &[&rustls::version::TLS13], Some(pki.ca_der())),
        &log,
        ok,
    )
    .await;
    let target = format!("https://localhost:{port}/mtls");
    for _ in 0..5 {
        let o = probe(&tls_config(&pki, &["min_version: TLS13"]), &target).await;
        o.assert_reason("tls_handshake_failed");
    }
    assert!(log.all().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_config_min_and_max_version() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = TestServer::https(Tls::new(&leaf), |_| text(StatusCode::OK, "ok"));
    for (extra, want) in [
        (vec![], "TLS 1.3"),
        (vec!["min_version: TLS13"], "TLS 1.3"),
        (vec!["max_version: TLS12"], "TLS 1.2"),
        (vec!["min_version: TLS12", "max_version: TLS12"], "TLS 1.2"),
    ] {
        let o = probe(&tls_config(&pki, &extra), &server.url("/")).await;
        o.assert_success();
        let versions = o.metrics.label_sets("probe_tls_version_info");
        assert_eq!(versions.len(), 1, "{extra:?}: {}", o.text);
        assert_eq!(versions[0]["version"], want, "{extra:?}");
    }
}

// ===========================================================================
// Authentication and extra headers
// ===========================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_inline_and_from_files() {
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    let o = probe(
        "basic_auth:\n  username: alice\n  password: s3cret\n",
        &server.url("/inline"),
    )
    .await;
    o.assert_success();
    assert_eq!(
        log.at("/inline").header("authorization").as_deref(),
        Some("Basic YWxpY2U6czNjcmV0")
    );

    let dir = temp_dir();
    let user = write_file(dir.path(), "user", "bob\n");
    let pass = write_file(dir.path(), "pass", "from-file\n");
    let o = probe(
        &format!(
            "basic_auth:\n  username_file: {}\n  password_file: {}\n",
            user.display(),
            pass.display()
        ),
        &server.url("/files"),
    )
    .await;
    o.assert_success();
    assert_eq!(
        log.at("/files").header("authorization").as_deref(),
        Some("Basic Ym9iOmZyb20tZmlsZQ==")
    );

    // Username with password_file.
    let o = probe(
        &format!(
            "basic_auth:\n  username: u\n  password_file: {}\n",
            pass.display()
        ),
        &server.url("/mixed"),
    )
    .await;
    o.assert_success();
    assert_eq!(
        log.at("/mixed").header("authorization").as_deref(),
        Some("Basic dTpmcm9tLWZpbGU=")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_type_credentials_and_credentials_file() {
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    probe(
        "authorization:\n  type: Token\n  credentials: abc123\n",
        &server.url("/token"),
    )
    .await
    .assert_success();
    probe(
        "authorization:\n  credentials: default-type\n",
        &server.url("/default"),
    )
    .await
    .assert_success();
    let dir = temp_dir();
    let creds = write_file(dir.path(), "creds", "  from-file  \n");
    probe(
        &format!(
            "authorization:\n  type: Custom\n  credentials_file: {}\n",
            creds.display()
        ),
        &server.url("/file"),
    )
    .await
    .assert_success();
    assert_eq!(
        log.at("/token").header("authorization").as_deref(),
        Some("Token abc123")
    );
    assert_eq!(
        log.at("/default").header("authorization").as_deref(),
        Some("Bearer default-type")
    );
    assert_eq!(
        log.at("/file").header("authorization").as_deref(),
        Some("Custom from-file")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_and_bearer_token_file_read_per_probe() {
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    probe("bearer_token: inline-token\n", &server.url("/inline"))
        .await
        .assert_success();
    assert_eq!(
        log.at("/inline").header("authorization").as_deref(),
        Some("Bearer inline-token")
    );

    let dir = temp_dir();
    let file = write_file(dir.path(), "token", "token-one\n");
    let config = load(&format!("bearer_token_file: {}\n", file.display()));
    probe_loaded(&config, &server.url("/one"))
        .await
        .assert_success();
    std::fs::write(&file, "token-two").unwrap();
    probe_loaded(&config, &server.url("/two"))
        .await
        .assert_success();
    assert_eq!(
        log.at("/one").header("authorization").as_deref(),
        Some("Bearer token-one")
    );
    assert_eq!(
        log.at("/two").header("authorization").as_deref(),
        Some("Bearer token-two")
    );

    // A token file that disappears is a failure of that probe.
    std::fs::remove_file(&file).unwrap();
    let o = probe_loaded(&config, &server.url("/three")).await;
    o.assert_reason("invalid_target");
    assert_eq!(log.all().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_headers_values_secrets_and_files() {
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    let dir = temp_dir();
    let file = write_file(dir.path(), "header", "file-value-1\n");
    let config = load(&format!(
        "headers:\n  X-Plain: plain\nhttp_headers:\n  X-Values:\n    values: [one, two]\n  X-Secret:\n    secrets: [hidden]\n  X-File:\n    files: [{}]\n  X-All:\n    values: [v]\n    secrets: [s]\n    files: [{}]\n",
        file.display(),
        file.display()
    ));
    probe_loaded(&config, &server.url("/one"))
        .await
        .assert_success();
    std::fs::write(&file, "file-value-2").unwrap();
    probe_loaded(&config, &server.url("/two"))
        .await
        .assert_success();

    let one = log.at("/one");
    assert_eq!(one.header_all("x-values"), vec!["one", "two"]);
    assert_eq!(one.header_all("x-secret"), vec!["hidden"]);
    assert_eq!(one.header_all("x-file"), vec!["file-value-1"]);
    // Values, then secrets, then files.
    assert_eq!(one.header_all("x-all"), vec!["v", "s", "file-value-1"]);
    assert_eq!(one.header("x-plain").as_deref(), Some("plain"));
    // Files are read per request.
    assert_eq!(log.at("/two").header_all("x-file"), vec!["file-value-2"]);
}

// ===========================================================================
// Proxies
// ===========================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_url_forwards_http_requests() {
    let proxy = Proxy::start().await;
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    let target = server.url("/via-proxy?q=1");
    let proxy_url = format!("http://u:p@127.0.0.1:{}", proxy.port());
    let o = probe(&format!("proxy_url: {proxy_url}\n"), &target).await;
    o.assert_success();
    // Absolute form, with the proxy credentials.
    proxy.assert_one_head_as_u_p(&format!("GET {target} HTTP/1.1"));
    assert_eq!(log.one().path, "/via-proxy?q=1");
    // The target was still resolved locally (no skip_resolve_phase_with_proxy).
    assert_val(&o, "probe_ip_protocol", 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_url_tunnels_https_with_proxy_connect_header() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let proxy = Proxy::start().await;
    let log = Log::default();
    let server = recording_server(Some(Tls::new(&leaf)), &log, ok);
    let o = probe(
        &format!(
            "proxy_url: {}\nproxy_connect_header:\n  X-Proxy-Token: [tunnel-secret]\n  X-Multi: [a, b]\n{}",
            proxy.url(),
            tls_config(&pki, &[])
        ),
        &server.url("/tunnelled"),
    )
    .await;
    o.assert_success();
    let heads = proxy.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = &heads[0];
    assert!(
        head.starts_with(&format!("CONNECT localhost:{} HTTP/1.1\r\n", server.port())),
        "{head}"
    );
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("x-proxy-token: tunnel-secret\r\n"), "{head}");
    assert!(
        lower.contains("x-multi: a\r\n") && lower.contains("x-multi: b\r\n"),
        "{head}"
    );
    assert_eq!(log.one().path, "/tunnelled");
    // TLS end to end with the origin, through the tunnel.
    assert_val(&o, "probe_http_ssl", 1.0);
    assert_val(
        &o,
        "probe_ssl_earliest_cert_expiry",
        leaf.not_after() as f64,
    );
    assert_eq!(log.one().version, http::Version::HTTP_2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_refusing_connect_is_a_network_error_and_closing_is_a_reset() {
    let refusing = RawHttp::local(
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        Duration::ZERO,
    )
    .await;
    let target = "https://localhost:1/";
    let o = probe(
        &format!("proxy_url: http://127.0.0.1:{}\n", refusing.port),
        target,
    )
    .await;
    o.assert_reason("network_error");
    assert!(refusing.heads.lock().unwrap()[0].starts_with("CONNECT localhost:1 HTTP/1.1\r\n"));
    assert_val(&o, "probe_http_status_code", 0.0);

    let closing = closing_server();
    let o = probe(
        &format!("proxy_url: http://127.0.0.1:{}\n", closing.port()),
        target,
    )
    .await;
    o.assert_reason("connection_reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_proxy_bypasses_the_proxy() {
    let proxy = Proxy::start().await;
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    for no_proxy in ["127.0.0.1", "127.0.0.0/8", "localhost,127.0.0.1"] {
        let o = probe(
            &format!("proxy_url: {}\nno_proxy: '{no_proxy}'\n", proxy.url()),
            &server.url("/direct"),
        )
        .await;
        o.assert_success();
    }
    assert!(proxy.heads().is_empty(), "{:?}", proxy.heads());
    assert_eq!(log.all().len(), 3);

    // A no_proxy entry for another host leaves the proxy in use.
    let o = probe(
        &format!("proxy_url: {}\nno_proxy: example.com\n", proxy.url()),
        &server.url("/proxied"),
    )
    .await;
    o.assert_success();
    assert_eq!(proxy.heads().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_resolve_phase_with_proxy_leaves_out_resolution() {
    let proxy = Proxy::start().await;
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    let target = format!("http://localhost:{}/skip", server.port());
    let o = probe(
        &format!(
            "proxy_url: {}\nskip_resolve_phase_with_proxy: true\n",
            proxy.url()
        ),
        &target,
    )
    .await;
    o.assert_success();
    assert_eq!(proxy.heads().len(), 1);
    assert!(proxy.heads()[0].starts_with(&format!("GET {target} HTTP/1.1\r\n")));
    assert_eq!(log.one().host, Some(format!("localhost:{}", server.port())));
    assert_absent(&o, "probe_ip_protocol");
    assert_absent(&o, "probe_ip_addr_hash");
    assert_absent(&o, "probe_dns_lookup_time_seconds");
    assert_eq!(
        o.value("probe_http_duration_seconds", &[("phase", "resolve")]),
        None,
        "no resolve phase:\n{}",
        o.text
    );

    // Without a proxy the key has no effect.
    let o = probe("skip_resolve_phase_with_proxy: true\n", &target).await;
    o.assert_success();
    assert_val(&o, "probe_ip_protocol", 4.0);
}

/// blackbox: the `resolve` phase of the first hop is the target lookup
/// (`probe_dns_lookup_time_seconds`); the client's own lookup of the proxy
/// is not added to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_first_hop_resolve_phase_is_the_target_lookup() {
    let proxy = Proxy::start().await;
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    let target = format!("http://localhost:{}/", server.port());
    let o = probe(
        &format!("proxy_url: http://localhost:{}\n", proxy.port()),
        &target,
    )
    .await;
    o.assert_success();
    assert_eq!(proxy.heads().len(), 1);
    assert_eq!(
        phase(&o, "resolve"),
        val(&o, "probe_dns_lookup_time_seconds"),
        "{}",
        o.text
    );
}

/// Set by `proxy_from_environment_uses_the_environment` for the child
/// process it starts; without it, `proxy_from_environment_child` does
/// nothing.
const CHILD_TARGET_VAR: &str = "HTTP_PROBER_TEST_CHILD_TARGET";

/// The probe half of the proxy_from_environment test, run in a child
/// process so that the proxy variables are set in its environment from the
/// start instead of being changed under the other tests of this process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_from_environment_child() {
    let Ok(target) = std::env::var(CHILD_TARGET_VAR) else {
        return;
    };
    let o = probe("proxy_from_environment: true\n", &target).await;
    o.assert_success();
    println!("child probe succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_from_environment_uses_the_environment() {
    let proxy = Proxy::start().await;
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    let exe = std::env::current_exe().expect("test binary");
    // The test's name in this binary: its module path without the crate.
    let child_test = match module_path!().split_once("::") {
        Some((_crate, module)) => format!("{module}::proxy_from_environment_child"),
        None => "proxy_from_environment_child".to_string(),
    };
    let run_child = |target: String, no_proxy: &str| {
        tokio::process::Command::new(&exe)
            .args(["--exact", &child_test, "--nocapture"])
            .env(CHILD_TARGET_VAR, target)
            .env("HTTP_PROXY", proxy.url())
            .env_remove("http_proxy")
            .env("NO_PROXY", no_proxy)
            .env_remove("no_proxy")
            .output()
    };
    let check = |out: std::process::Output| {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("child probe succeeded"),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    check(run_child(server.url("/env"), "").await.expect("run child"));
    let heads = proxy.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(heads[0].starts_with(&format!("GET {} HTTP/1.1\r\n", server.url("/env"))));

    // NO_PROXY from the environment bypasses it.
    check(
        run_child(server.url("/bypass"), "127.0.0.1")
            .await
            .expect("run child"),
    );
    assert_eq!(proxy.heads().len(), 1);
    assert_eq!(log.paths(), vec!["/env", "/bypass"]);
}

// ===========================================================================
// HTTP versions
// ===========================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_http2_true_and_false() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let log = Log::default();
    let server = recording_server(Some(Tls::new(&leaf)), &log, ok);

    let o = probe(&tls_config(&pki, &[]), &server.url("/default")).await;
    o.assert_success();
    assert_val(&o, "probe_http_version", 2.0);
    let o = probe(
        &format!(
            "enable_http2: true\nvalid_http_versions: [HTTP/2.0]\n{}",
            tls_config(&pki, &[])
        ),
        &server.url("/h2"),
    )
    .await;
    o.assert_success();
    assert_val(&o, "probe_http_version", 2.0);
    let o = probe(
        &format!(
            "enable_http2: false\nvalid_http_versions: [HTTP/1.1]\n{}",
            tls_config(&pki, &[])
        ),
        &server.url("/h1"),
    )
    .await;
    o.assert_success();
    assert_val(&o, "probe_http_version", 1.1);
    let o = probe(
        &format!(
            "enable_http2: false\nvalid_http_versions: [HTTP/2.0]\n{}",
            tls_config(&pki, &[])
        ),
        &server.url("/h1-fail"),
    )
    .await;
    o.assert_reason("http_version");

    assert_eq!(log.at("/default").version, http::Version::HTTP_2);
    assert_eq!(log.at("/h2").version, http::Version::HTTP_2);
    assert_eq!(log.at("/h1").version, http::Version::HTTP_11);

    // A server without h2 in ALPN answers HTTP/1.1 even when h2 is offered.
    let h1 = TestServer::https(Tls::http1_only(&leaf), |_| text(StatusCode::OK, "ok"));
    let o = probe(&tls_config(&pki, &[]), &h1.url("/")).await;
    o.assert_success();
    assert_val(&o, "probe_http_version", 1.1);
}

// ===========================================================================
// Metric shapes
// ===========================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_success_reports_the_whole_tls_family() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = TestServer::https(Tls::new(&leaf), |_| text(StatusCode::OK, "hello tls"));
    let o = probe(&tls_config(&pki, &[]), &server.url("/")).await;
    o.assert_success();

    assert_val(&o, "probe_success", 1.0);
    assert_val(&o, "probe_timeout_seconds", 5.0);
    assert_val(&o, "probe_http_status_code", 200.0);
    assert_val(&o, "probe_http_ssl", 1.0);
    assert_val(&o, "probe_http_version", 2.0);
    assert_val(&o, "probe_http_content_length", 9.0);
    assert_val(&o, "probe_http_uncompressed_body_length", 9.0);
    assert_val(&o, "probe_http_redirects", 0.0);
    assert_val(&o, "probe_failed_due_to_regex", 0.0);
    assert_val(&o, "probe_ip_protocol", 4.0);
    assert_val(&o, "probe_ip_addr_hash", LOCALHOST_HASH);
    assert_absent(&o, "probe_http_last_modified_timestamp_seconds");
    for p in ["resolve", "connect", "tls", "processing", "transfer"] {
        assert!(phase(&o, p) >= 0.0);
    }
    assert!(phase(&o, "tls") > 0.0);

    // Expiries: the leaf is the first to expire.
    let expected_chain = leaf
        .not_after()
        .min(pki.intermediate_not_after())
        .min(pki.root_not_after());
    assert_eq!(expected_chain, leaf.not_after());
    assert_val(
        &o,
        "probe_ssl_earliest_cert_expiry",
        leaf.not_after() as f64,
    );
    assert_val(
        &o,
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        expected_chain as f64,
    );
    assert_val(
        &o,
        "probe_ssl_leaf_not_before_timestamp_seconds",
        leaf.not_before() as f64,
    );

    let info = o.metrics.label_sets("probe_ssl_last_chain_info");
    assert_eq!(info.len(), 1, "{}", o.text);
    let want: common::exposition::Labels = [
        ("fingerprint_sha256", leaf.fingerprint_sha256()),
        ("subject", "CN=localhost,O=Leaf Org,C=US".to_string()),
        ("issuer", "CN=Test Intermediate,O=TestOrg".to_string()),
        ("subjectalternative", "localhost".to_string()),
        ("serialnumber", leaf.serial_hex()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(info[0], want);
    assert_eq!(
        o.metrics
            .get("probe_ssl_last_chain_info", &want)
            .unwrap()
            .value,
        1.0
    );

    assert_eq!(
        o.metrics.label_sets("probe_tls_version_info"),
        vec![[("version".to_string(), "TLS 1.3".to_string())].into()]
    );
    assert_eq!(
        o.value("probe_tls_version_info", &[("version", "TLS 1.3")]),
        Some(1.0)
    );
    let ciphers = o.metrics.label_sets("probe_tls_cipher_info");
    assert_eq!(ciphers.len(), 1, "{}", o.text);
    assert!(
        [
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256"
        ]
        .contains(&ciphers[0]["cipher"].as_str()),
        "{ciphers:?}"
    );
    assert_eq!(
        o.metrics
            .samples_named("probe_tls_cipher_info")
            .next()
            .unwrap()
            .value,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_expiry_is_the_minimum_over_the_chain() {
    // A leaf outliving its intermediate: both expiries follow the
    // intermediate, the earliest certificate of the chain.
    let pki = Pki::new();
    let leaf = pki.leaf(&["localhost"], &[localhost_ip()], Validity::days(4000));
    assert!(leaf.not_after() > pki.intermediate_not_after());
    assert!(pki.root_not_after() > pki.intermediate_not_after());
    let server = TestServer::https(Tls::new(&leaf), |_| text(StatusCode::OK, "ok"));
    let o = probe(&tls_config(&pki, &[]), &server.url("/")).await;
    o.assert_success();
    assert_val(
        &o,
        "probe_ssl_earliest_cert_expiry",
        pki.intermediate_not_after() as f64,
    );
    assert_val(
        &o,
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        pki.intermediate_not_after() as f64,
    );
    assert_val(
        &o,
        "probe_ssl_leaf_not_before_timestamp_seconds",
        leaf.not_before() as f64,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_success_shape_and_last_modified() {
    let server = TestServer::http(|_| {
        with_header(
            text(StatusCode::OK, "hello world"),
            "last-modified",
            LAST_MODIFIED,
        )
    });
    let o = probe("", &server.url("/")).await;
    o.assert_success();
    assert_val(
        &o,
        "probe_http_last_modified_timestamp_seconds",
        LAST_MODIFIED_UNIX,
    );
    assert_val(&o, "probe_http_status_code", 200.0);
    assert_val(&o, "probe_http_version", 1.1);
    assert_val(&o, "probe_http_ssl", 0.0);
    assert_val(&o, "probe_http_content_length", 11.0);
    assert_val(&o, "probe_http_uncompressed_body_length", 11.0);
    assert_eq!(phase(&o, "tls"), 0.0);
    for name in [
        "probe_ssl_earliest_cert_expiry",
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        "probe_ssl_last_chain_info",
        "probe_ssl_leaf_not_before_timestamp_seconds",
        "probe_tls_version_info",
        "probe_tls_cipher_info",
        "probe_failure_info",
    ] {
        assert_absent(&o, name);
    }
    // The five phases, each once.
    let phases: Vec<String> = o
        .metrics
        .label_sets("probe_http_duration_seconds")
        .into_iter()
        .map(|l| l["phase"].clone())
        .collect();
    assert_eq!(phases.len(), 5, "{phases:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_is_minus_one_for_chunked_and_close_delimited() {
    let chunked = RawHttp::local(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        Duration::ZERO,
    )
    .await;
    let o = probe("", &chunked.url("/")).await;
    o.assert_success();
    assert_val(&o, "probe_http_content_length", -1.0);
    assert_val(&o, "probe_http_uncompressed_body_length", 11.0);

    let close_delimited = RawHttp::local(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
        Duration::ZERO,
    )
    .await;
    let o = probe("", &close_delimited.url("/")).await;
    o.assert_success();
    assert_val(&o, "probe_http_content_length", -1.0);
    assert_val(&o, "probe_http_uncompressed_body_length", 13.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_protocols_returns_at_once() {
    // The server answers 101 and keeps the socket for 30 s.
    let server = RawHttp::local(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        Duration::from_secs(30),
    )
    .await;
    let o = probe(
        "valid_status_codes: [101]\nheaders:\n  Upgrade: websocket\n  Connection: Upgrade\n",
        &server.url("/ws"),
    )
    .await;
    o.assert_success();
    assert!(o.elapsed < Duration::from_secs(2), "took {:?}", o.elapsed);
    assert_val(&o, "probe_http_status_code", 101.0);
    assert_val(&o, "probe_http_uncompressed_body_length", 0.0);
    assert_val(&o, "probe_http_content_length", 0.0);

    // Not in valid_status_codes: http_status, just as fast.
    let o = probe("", &server.url("/ws")).await;
    o.assert_reason("http_status");
    assert!(o.elapsed < Duration::from_secs(2), "took {:?}", o.elapsed);
}

// ---------------------------------------------------------------------------
// Credentials: user info in the target, redirects to other hosts
// ---------------------------------------------------------------------------

#[tokio::test]
async fn user_info_in_the_target_is_basic_auth() {
    let log = Log::default();
    let server = recording_server(None, &log, ok);
    let target = format!(
        "http://al%40ice:pa%3Ass-SECRET@127.0.0.1:{}/ui",
        server.port()
    );
    let o = probe("", &target).await;
    o.assert_success();
    let seen = log.at("/ui");
    // base64("al@ice:pa:ss-SECRET")
    assert_eq!(
        seen.header("authorization").as_deref(),
        Some("Basic YWxAaWNlOnBhOnNzLVNFQ1JFVA==")
    );
    assert_eq!(
        seen.host.as_deref(),
        Some(format!("127.0.0.1:{}", server.port()).as_str())
    );
    // The password is nowhere in the probe's log or metrics.
    assert!(!o.log.contains("SECRET"), "{}", o.log);
    assert!(!o.text.contains("SECRET"), "{}", o.text);

    // The module's own credentials win over the user info (as in Go).
    let o = probe("bearer_token: module-token\n", &target).await;
    o.assert_success();
    assert_eq!(
        log.all()
            .last()
            .and_then(|s| s.header("authorization"))
            .as_deref(),
        Some("Bearer module-token")
    );
}

#[tokio::test]
async fn a_redirect_to_another_host_gets_no_credentials() {
    let log = Log::default();
    let other = recording_server(None, &log, ok);
    // Same address, another host name: another host, as for a browser.
    let elsewhere = other.url_with_host("localhost", "/elsewhere");
    let same_host = other.url("/same");
    let origin = recording_server(None, &log, move |seen: &Seen| match seen.path.as_str() {
        "/to-other" => redirect(StatusCode::FOUND, &elsewhere),
        _ => redirect(StatusCode::FOUND, &same_host),
    });
    let module = "\
preferred_ip_protocol: ip4
headers:
  Authorization: Bearer plain-header-SECRET
  Cookie: session=cookie-SECRET
  X-Plain: visible
http_headers:
  X-Mixed:
    values: [value-visible]
    secrets: [secret-SECRET]
";
    let o = probe(module, &origin.url("/to-other")).await;
    o.assert_success();
    let seen = log.at("/elsewhere");
    assert_eq!(seen.header("authorization"), None, "{seen:#?}");
    assert_eq!(seen.header("cookie"), None, "{seen:#?}");
    assert_eq!(seen.header_all("x-mixed"), vec!["value-visible"]);
    assert_eq!(seen.header("x-plain").as_deref(), Some("visible"));
    assert!(
        o.log.contains("not sending the module's credentials"),
        "{}",
        o.log
    );
    // The first hop had them all.
    let first = log.at("/to-other");
    assert!(first.header("authorization").is_some());
    assert_eq!(first.header_all("x-mixed").len(), 2);

    // Another port of the same host is the same host (ports do not count,
    // as in Go): the credentials go along.
    let o = probe(
        "basic_auth:\n  username: u\n  password: p\n",
        &origin.url("/to-same"),
    )
    .await;
    o.assert_success();
    assert_eq!(
        log.at("/same").header("authorization").as_deref(),
        Some("Basic dTpw")
    );

    // The module's basic auth does not follow to another host either.
    let o = probe(
        "preferred_ip_protocol: ip4\nbasic_auth:\n  username: u\n  password: p\n",
        &origin.url("/to-other"),
    )
    .await;
    o.assert_success();
    let last = log.all().into_iter().rev().find(|s| s.path == "/elsewhere");
    assert_eq!(last.and_then(|s| s.header("authorization")), None);
}
