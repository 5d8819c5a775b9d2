//! Hostile targets against the real binary: each one once made the exporter
//! take gigabytes or outlive its deadline. Every test asserts the answer
//! comes within the deadline + 300 ms with one correct reason, that the
//! exporter's peak RSS (VmHWM) stays within 200 MB of where it started, and
//! that its open fds come back.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ServerConfig;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::common::exporter::Exporter;
use crate::common::exposition::Exposition;
use crate::common::pki::Pki;
use crate::common::proxy::read_head;
use crate::common::tls_server::{Server, ServerTls};

const SLACK: Duration = Duration::from_millis(300);
const RSS_BUDGET_KIB: u64 = 200 * 1024;

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A listener on 127.0.0.1 whose every connection is handled by `serve`.
async fn hostile_server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

/// Probe through the binary and check the bounds; returns the metrics.
async fn probe_within_bounds(
    exporter: &Exporter,
    target: &str,
    module: &str,
    timeout: Duration,
    reason: &str,
) -> Exposition {
    let pid = exporter.pid();
    let rss_before = status_kib(pid, "VmHWM:");
    let started = Instant::now();
    let m = exporter.probe_metrics(target, module).await;
    let took = started.elapsed();
    eprintln!("{module} {target}: {took:?}");
    assert!(
        took <= timeout + SLACK,
        "{module}: answered after {took:?} for a {timeout:?} deadline"
    );
    assert_eq!(m.value("probe_success", &[]), Some(0.0), "{module}");
    assert_eq!(
        m.value("probe_failure_info", &[("reason", reason)]),
        Some(1.0),
        "{module}: {:?}",
        m.samples_named("probe_failure_info").collect::<Vec<_>>()
    );
    let grew = status_kib(pid, "VmHWM:").saturating_sub(rss_before);
    assert!(
        grew < RSS_BUDGET_KIB,
        "{module}: peak RSS grew by {} MiB",
        grew / 1024
    );
    m
}

/// Waits for the exporter's open fds to come back to `baseline` (+5).
async fn fds_come_back(exporter: &Exporter, baseline: usize) {
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let now = exporter.open_fds();
        if now <= baseline + 5 {
            return;
        }
        assert!(Instant::now() < until, "{now} fds open, {baseline} before");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Endless gzip of zeros, compressed as the reader consumes it: inflates
/// to as much as anyone reads (gigabytes, for a reader without a cap).
async fn gzip_bomb(mut stream: TcpStream) {
    let _ = read_head(&mut stream).await;
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    loop {
        if gz.write_all(&zeros).is_err() || gz.flush().is_err() {
            return;
        }
        let chunk = std::mem::take(gz.get_mut());
        if chunk.is_empty() {
            continue;
        }
        let framed = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk,
            b"\r\n".to_vec(),
        ]
        .concat();
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

/// An endless plain body.
async fn endless_body(mut stream: TcpStream) {
    let _ = read_head(&mut stream).await;
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let chunk = [
        format!("{:x}\r\n", 1 << 16).into_bytes(),
        vec![b'a'; 1 << 16],
        b"\r\n".to_vec(),
    ]
    .concat();
    while stream.write_all(&chunk).await.is_ok() {}
}

#[tokio::test]
async fn decompression_bombs_and_endless_bodies_stop_at_the_cap() {
    let bomb = hostile_server(gzip_bomb).await;
    let endless = hostile_server(endless_body).await;
    let config = "\
modules:
  gzip:
    prober: http
    timeout: 2s
    http:
      compression: gzip
  gzip_regex:
    prober: http
    timeout: 2s
    http:
      compression: gzip
      fail_if_body_not_matches_regexp: ['never there']
  endless_regex:
    prober: http
    timeout: 2s
    http:
      fail_if_body_not_matches_regexp: ['never there']
";
    let timeout = Duration::from_secs(2);
    // The default cap (32 MiB) stops a body kept for a regex.
    let exporter = Exporter::start(config).await;
    let fds = exporter.open_fds();
    let m = probe_within_bounds(
        &exporter,
        &format!("http://{endless}/"),
        "endless_regex",
        timeout,
        "body_size_limit",
    )
    .await;
    assert_eq!(
        m.value("probe_http_uncompressed_body_length", &[]),
        Some(f64::from(32u32 << 20))
    );
    fds_come_back(&exporter, fds).await;

    // --probe.max-body-bytes sets it (smaller here: inflating is slow in
    // the debug build the tests run). Decompression stops at the cap, kept
    // or not, long before the deadline.
    let exporter = Exporter::start_with_args(config, &["--probe.max-body-bytes=4MiB"]).await;
    let fds = exporter.open_fds();
    for module in ["gzip", "gzip_regex"] {
        let started = Instant::now();
        let m = probe_within_bounds(
            &exporter,
            &format!("http://{bomb}/"),
            module,
            timeout,
            "body_size_limit",
        )
        .await;
        assert!(started.elapsed() < timeout / 2, "{:?}", started.elapsed());
        assert_eq!(
            m.value("probe_http_uncompressed_body_length", &[]),
            Some(f64::from(4u32 << 20)),
            "{module}"
        );
    }
    fds_come_back(&exporter, fds).await;
}

/// A WebSocket module waiting for a message that never comes.
const WS_EXPECT: &str = "\
modules:
  ws_expect:
    prober: websocket
    timeout: 2s
    websocket:
      query_response:
        - expect: never-sent
";

/// Answers a WebSocket upgrade request with a correct 101; false when the
/// client went away.
async fn accept_upgrade(stream: &mut TcpStream) -> bool {
    let head = read_head(stream).await.unwrap_or_default();
    let key = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(answer.as_bytes()).await.is_ok()
}

/// Completes the WebSocket handshake, then sends pings as fast as it can
/// and never reads: the pongs owed to it pile up on the prober's side.
async fn ping_flood(mut stream: TcpStream) {
    if !accept_upgrade(&mut stream).await {
        return;
    }
    // Unmasked server ping frames with 125-byte payloads, 64 KiB at a time.
    let frame = [vec![0x89, 125], vec![b'p'; 125]].concat();
    let burst: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 512)
        .collect();
    while stream.write_all(&burst).await.is_ok() {}
}

/// Completes the handshake, then sends one endless message in frames of
/// 64 KiB that never finish it.
async fn endless_message(mut stream: TcpStream) {
    if !accept_upgrade(&mut stream).await {
        return;
    }
    // A text frame without FIN, then continuation frames without FIN.
    let len = 1u16 << 15;
    let first = [
        vec![0x01, 126],
        len.to_be_bytes().to_vec(),
        vec![b'x'; usize::from(len)],
    ]
    .concat();
    let more = [
        vec![0x00, 126],
        len.to_be_bytes().to_vec(),
        vec![b'x'; usize::from(len)],
    ]
    .concat();
    if stream.write_all(&first).await.is_err() {
        return;
    }
    while stream.write_all(&more).await.is_ok() {}
}

#[tokio::test]
async fn a_websocket_peer_cannot_make_the_prober_hoard() {
    let flood = hostile_server(ping_flood).await;
    let endless = hostile_server(endless_message).await;
    let exporter = Exporter::start(WS_EXPECT).await;
    let fds = exporter.open_fds();
    let timeout = Duration::from_secs(2);
    // Pings as fast as they come, pongs owed and never read: the probe runs
    // to its deadline (a release build once took 500 MB doing so).
    let m = probe_within_bounds(
        &exporter,
        &format!("ws://{flood}/"),
        "ws_expect",
        timeout,
        "expect_failed",
    )
    .await;
    assert_eq!(
        m.value("probe_websocket_connection_upgraded", &[]),
        Some(1.0)
    );
    // A message that never ends fails as soon as it passes 1 MiB, not when
    // 64 MiB of it are held, nor at the deadline.
    let started = Instant::now();
    probe_within_bounds(
        &exporter,
        &format!("ws://{endless}/"),
        "ws_expect",
        timeout,
        "expect_failed",
    )
    .await;
    assert!(started.elapsed() < timeout / 2, "{:?}", started.elapsed());
    let log = exporter
        .get(&format!("/logs?target=ws://{endless}/&module=ws_expect"))
        .await
        .body;
    assert!(log.contains("1048576"), "{log}");
    fds_come_back(&exporter, fds).await;
}

/// Sends lines of 60 kB that never match, as fast as it can.
async fn line_flood(mut stream: TcpStream) {
    let mut line = vec![b'n'; 60_000];
    line.push(b'\n');
    let burst = line.repeat(16);
    while stream.write_all(&burst).await.is_ok() {}
}

#[tokio::test]
async fn lines_that_never_match_do_not_fill_the_log_or_the_history() {
    let flood = hostile_server(line_flood).await;
    let config = "\
modules:
  tcp_expect:
    prober: tcp
    timeout: 1s
    tcp:
      query_response:
        - expect: '^NEVER'
";
    let exporter = Exporter::start(config).await;
    let fds = exporter.open_fds();
    for _ in 0..2 {
        probe_within_bounds(
            &exporter,
            &flood.to_string(),
            "tcp_expect",
            Duration::from_secs(1),
            // The deadline passed while waiting for a match (as for a
            // silent server).
            "timeout",
        )
        .await;
    }
    let page = exporter
        .get(&format!("/logs?target={flood}&module=tcp_expect"))
        .await;
    assert_eq!(page.status, 200);
    // The log part is at most 64 KiB, plus the metrics and module sections.
    assert!(page.body.len() < 80 * 1024, "{} bytes", page.body.len());
    assert!(page.body.contains("log lines ("), "the drop is said");
    fds_come_back(&exporter, fds).await;
}

/// Answers the request with a status line, then one header byte every
/// 100 ms, never ending the head.
async fn slow_head(mut stream: TcpStream) {
    let _ = read_head(&mut stream).await;
    if stream.write_all(b"HTTP/1.1 200 OK\r\n").await.is_err() {
        return;
    }
    while stream.write_all(b"X").await.is_ok() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Answers with a head that never ends: 8 kB header lines, as fast as
/// they are read (to a 101 for an upgrade as well).
async fn endless_head(mut stream: TcpStream) {
    let _ = read_head(&mut stream).await;
    let line = format!("X-Filler: {}\r\n", "f".repeat(8000)).repeat(8);
    if stream.write_all(b"HTTP/1.1 200 OK\r\n").await.is_err() {
        return;
    }
    while stream.write_all(line.as_bytes()).await.is_ok() {}
}

#[tokio::test]
async fn slow_and_endless_response_heads_end_in_time() {
    let slow = hostile_server(slow_head).await;
    let endless = hostile_server(endless_head).await;
    let config = "\
modules:
  http_1s:
    prober: http
    timeout: 1s
  ws_1s:
    prober: websocket
    timeout: 1s
";
    let exporter = Exporter::start(config).await;
    let fds = exporter.open_fds();
    let timeout = Duration::from_secs(1);
    // A head trickling in is cut at the deadline.
    for (target, module) in [
        (format!("http://{slow}/"), "http_1s"),
        (format!("ws://{slow}/"), "ws_1s"),
    ] {
        probe_within_bounds(&exporter, &target, module, timeout, "timeout").await;
    }
    // A head that never ends is refused at the client's head limit, long
    // before the deadline; it is not a clean HTTP answer.
    for (target, module) in [
        (format!("http://{endless}/"), "http_1s"),
        (format!("ws://{endless}/"), "ws_1s"),
    ] {
        let started = Instant::now();
        probe_within_bounds(&exporter, &target, module, timeout, "network_error").await;
        assert!(
            started.elapsed() < timeout / 2,
            "{module}: {:?}",
            started.elapsed()
        );
    }
    fds_come_back(&exporter, fds).await;
}

/// One HTTP/2 frame: length, type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame length");
    let mut frame = len.to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

const H2_SETTINGS: u8 = 0x4;
const H2_PING: u8 = 0x6;
const H2_HEADERS: u8 = 0x1;
const H2_CONTINUATION: u8 = 0x9;

/// How an HTTP/2 server floods its client after the preface.
#[derive(Clone, Copy, Debug)]
enum H2Flood {
    /// PINGs as fast as they go, the ACKs owed never read.
    Ping,
    /// SETTINGS frames, each owed an ACK, never read.
    Settings,
    /// The response's HEADERS without END_HEADERS, then CONTINUATION
    /// frames that never end the header block.
    Continuation,
}

/// A TLS server that speaks HTTP/2 (ALPN h2) and floods.
async fn h2_flood_server(tls: Arc<ServerConfig>, flood: H2Flood) -> SocketAddr {
    hostile_server(move |stream| {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
        async move {
            let Ok(mut stream) = acceptor.accept(stream).await else {
                return;
            };
            // The client preface, its SETTINGS and (for a response flood)
            // its request: a few hundred bytes, read once.
            let mut buf = vec![0u8; 16 * 1024];
            let _ = tokio::time::timeout(
                Duration::from_millis(200),
                tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
            )
            .await;
            if stream
                .write_all(&h2_frame(H2_SETTINGS, 0, 0, &[]))
                .await
                .is_err()
            {
                return;
            }
            let burst = match flood {
                H2Flood::Ping => h2_frame(H2_PING, 0, 0, b"pingpong").repeat(4096),
                H2Flood::Settings => {
                    // SETTINGS_MAX_CONCURRENT_STREAMS = 100, again and again.
                    h2_frame(H2_SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]).repeat(4096)
                }
                H2Flood::Continuation => {
                    // Literal header fields `x: y` (HPACK, not indexed).
                    let block = [0x00, 1, b'x', 1, b'y'].repeat(3000);
                    let headers = h2_frame(H2_HEADERS, 0, 1, &block);
                    if stream.write_all(&headers).await.is_err() {
                        return;
                    }
                    h2_frame(H2_CONTINUATION, 0, 1, &block).repeat(16)
                }
            };
            while stream.write_all(&burst).await.is_ok() {}
        }
    })
    .await
}

#[tokio::test]
async fn http2_floods_end_in_time() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let tls = ServerTls::new(&leaf).alpn(&["h2"]).build();
    let config = format!(
        "\
modules:
  h2:
    prober: http
    timeout: 2s
    http:
      valid_http_versions: [HTTP/2.0]
      tls_config:
        ca_file: {}
",
        pki.ca_file().display()
    );
    let exporter = Exporter::start(&config).await;
    let fds = exporter.open_fds();
    let timeout = Duration::from_secs(2);
    for (flood, reason) in [
        // Frames owed an answer that is never read: the client stops
        // reading until it can answer, and the deadline ends the probe.
        (H2Flood::Ping, "timeout"),
        (H2Flood::Settings, "timeout"),
        // A header block that never ends is refused at the client's
        // header-list limit.
        (H2Flood::Continuation, "network_error"),
    ] {
        let server = h2_flood_server(tls.clone(), flood).await;
        eprintln!("{flood:?}");
        probe_within_bounds(
            &exporter,
            &format!("https://localhost:{}/", server.port()),
            "h2",
            timeout,
            reason,
        )
        .await;
    }
    fds_come_back(&exporter, fds).await;
}

/// Completes the handshake, then announces a text frame of 2 GiB (or of
/// 2^63 - 1 bytes) and sends its payload slowly.
async fn huge_frame_header(mut stream: TcpStream, len: u64) {
    if !accept_upgrade(&mut stream).await {
        return;
    }
    let mut header = vec![0x81, 127];
    header.extend_from_slice(&len.to_be_bytes());
    if stream.write_all(&header).await.is_err() {
        return;
    }
    while stream.write_all(b"x").await.is_ok() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Completes the handshake, then starts a message and continues it with
/// endless continuation frames carrying `payload` each (empty: the message
/// never grows; one byte: it grows by a byte per 3 bytes on the wire).
async fn fragment_flood(mut stream: TcpStream, payload: &'static [u8]) {
    if !accept_upgrade(&mut stream).await {
        return;
    }
    let len = u8::try_from(payload.len()).expect("short payload");
    if stream.write_all(&[0x01, 1, b'x']).await.is_err() {
        return;
    }
    let frame = [&[0x00, len][..], payload].concat();
    let burst = frame.repeat(16 * 1024);
    while stream.write_all(&burst).await.is_ok() {}
}

#[tokio::test]
async fn websocket_frame_headers_and_fragment_floods_stay_bounded() {
    let two_gib = hostile_server(|s| huge_frame_header(s, 2 << 30)).await;
    let max_len = hostile_server(|s| huge_frame_header(s, i64::MAX as u64)).await;
    let empty_fragments = hostile_server(|s| fragment_flood(s, b"")).await;
    let byte_fragments = hostile_server(|s| fragment_flood(s, b"y")).await;
    let exporter = Exporter::start(WS_EXPECT).await;
    let fds = exporter.open_fds();
    let timeout = Duration::from_secs(2);
    // A frame header announcing more than max_message_bytes fails at the
    // header, not after reading (or allocating) the payload.
    for server in [two_gib, max_len] {
        let started = Instant::now();
        probe_within_bounds(
            &exporter,
            &format!("ws://{server}/"),
            "ws_expect",
            timeout,
            "expect_failed",
        )
        .await;
        assert!(started.elapsed() < timeout / 2, "{:?}", started.elapsed());
    }
    // Fragments that never end a message: bounded by the message cap or
    // the deadline, whichever comes first.
    for server in [empty_fragments, byte_fragments] {
        probe_within_bounds(
            &exporter,
            &format!("ws://{server}/"),
            "ws_expect",
            timeout,
            "expect_failed",
        )
        .await;
    }
    fds_come_back(&exporter, fds).await;
}

#[tokio::test]
async fn long_and_decoy_certificate_chains_end_in_time() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    // 500 certificates: more than a TLS handshake message can carry.
    let mut long = leaf.chain.clone();
    long.extend(std::iter::repeat_n(pki.intermediate_der(), 498));
    let long = Server::tls(ServerTls::with_chain(long, leaf.key()).build()).await;
    // 120 issuers named like the real one, every path through them to be
    // tried: the verifier's budget ends the search (in 0.7 s in the debug
    // build), and the real path is found.
    let mut decoys = vec![leaf.cert.clone()];
    decoys.extend(pki.decoy_intermediates(120));
    decoys.push(pki.intermediate_der());
    let decoys = Server::tls(ServerTls::with_chain(decoys, leaf.key()).build()).await;
    let config = format!(
        "\
modules:
  tls:
    prober: tls
    timeout: 2s
    tls:
      tls_config:
        ca_file: {ca}
  https:
    prober: http
    timeout: 2s
    http:
      tls_config:
        ca_file: {ca}
",
        ca = pki.ca_file().display()
    );
    let exporter = Exporter::start(&config).await;
    let fds = exporter.open_fds();
    let timeout = Duration::from_secs(2);
    for (module, target) in [
        ("tls", long.localhost_target()),
        ("https", format!("https://{}/", long.localhost_target())),
    ] {
        let started = Instant::now();
        probe_within_bounds(&exporter, &target, module, timeout, "tls_handshake_failed").await;
        assert!(
            started.elapsed() < timeout / 2,
            "{module}: {:?}",
            started.elapsed()
        );
    }
    let rss_before = status_kib(exporter.pid(), "VmHWM:");
    let started = Instant::now();
    let m = exporter
        .probe_metrics(&decoys.localhost_target(), "tls")
        .await;
    eprintln!("decoys: {:?}", started.elapsed());
    assert!(started.elapsed() < timeout, "{:?}", started.elapsed());
    assert_eq!(m.value("probe_success", &[]), Some(1.0));
    assert!(status_kib(exporter.pid(), "VmHWM:") - rss_before < RSS_BUDGET_KIB);
    fds_come_back(&exporter, fds).await;
}

/// Answers 200 with `size` bytes of words that never contain "NEVER".
async fn wordy_body(mut stream: TcpStream, size: usize) {
    let _ = read_head(&mut stream).await;
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
    let words = b"lorem ipsum dolor sit amet consectetur ".repeat(size / 39 + 1);
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&words[..size]).await;
}

#[tokio::test]
async fn a_slow_body_regex_does_not_hold_the_answer_past_the_deadline() {
    let server = hostile_server(|s| wordy_body(s, 8 << 20)).await;
    // Counted repetitions of a Unicode class: the lazy DFA gives up on its
    // cache and the search takes over 5 s over 8 MiB in a release build
    // (more in the debug build the tests run).
    let config = r"
modules:
  regex:
    prober: http
    timeout: 2s
    http:
      fail_if_body_not_matches_regexp: ['(?:\w{1,10}\s+){1,20}NEVER']
";
    let exporter = Exporter::start(config).await;
    let fds = exporter.open_fds();
    probe_within_bounds(
        &exporter,
        &format!("http://{server}/"),
        "regex",
        Duration::from_secs(2),
        "timeout",
    )
    .await;
    // The runtime stayed free while the search ran on a blocking thread.
    let started = Instant::now();
    assert_eq!(exporter.get("/-/healthy").await.status, 200);
    assert!(started.elapsed() < Duration::from_millis(300));
    fds_come_back(&exporter, fds).await;
}
