//! Hostile targets against the real binary: each one once made the exporter
//! take gigabytes or outlive its deadline. Every test asserts the answer
//! comes within the deadline + 300 ms with one correct reason, that the
//! exporter's peak RSS (VmHWM) stays within 200 MB of where it started, and
//! that its open fds come back.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::common::exporter::Exporter;
use crate::common::exposition::Exposition;
use crate::common::proxy::read_head;

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
    let config = "\
modules:
  ws_expect:
    prober: websocket
    timeout: 2s
    websocket:
      query_response:
        - expect: never-sent
";
    let exporter = Exporter::start(config).await;
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
