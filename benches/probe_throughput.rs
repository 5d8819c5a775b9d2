//! Side-by-side benchmark: handshake_exporter vs Debian's blackbox_exporter
//! on the same targets, in one run. Prints probes per second, latency, CPU
//! time per probe (probes per CPU-second = per core) and memory, with ratios.
//!
//! Run: `cargo bench --bench probe_throughput` (`BENCH_SECONDS`, default 5,
//! per case and exporter; `BENCH_CONNECTIONS`, default 8). Needs nginx,
//! wrk and prometheus-blackbox-exporter (`scripts/test` installs them).
//! Exporters are pinned to CPU 0, nginx and wrk to CPU 1 (when `taskset`
//! exists), so "per CPU-second" is the exporter's own cost.
//!
//! Then long-lived sessions (ours only: blackbox has none): `BENCH_SESSIONS`
//! (default 1000) `websocket_session` sessions over wss to one local
//! server, pinging every 15 s; prints the time to open them, the RSS before
//! and with them, and the CPU share while they idle for
//! `BENCH_SESSION_IDLE_SECONDS` (default 45). The issue's budget: 128 MB and
//! under 2% of a core for 1,000.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::exporter::Exporter;
use common::nginx::NginxConfig;
use common::pki::{Leaf, Pki};
use common::ws_server::Tls;

struct Measured {
    probes_per_second: f64,
    latency_avg_ms: f64,
    latency_p99_ms: f64,
    cpu_ms_per_probe: f64,
    rss_mib: f64,
    requests: f64,
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" of the command name: state is field 3, utime 14, stime 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let hz = 100.0; // USER_HZ on Linux
    (ticks(11) + ticks(12)) / hz
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn pin(pid: u32, cpu: &str) {
    if have("taskset") {
        let _ = Command::new("taskset")
            .args(["-a", "-p", "-c", cpu, &pid.to_string()])
            .output();
    }
}

/// Parse a wrk duration like `1.23ms`, `850.00us`, `1.02s` into ms.
fn wrk_ms(v: &str) -> f64 {
    let num = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
    if let Some(x) = v.strip_suffix("us") {
        num(x) / 1000.0
    } else if let Some(x) = v.strip_suffix("ms") {
        num(x)
    } else if let Some(x) = v.strip_suffix('s') {
        num(x) * 1000.0
    } else {
        f64::NAN
    }
}

fn run_wrk(url: &str, seconds: u64, connections: u32) -> (f64, f64, f64, f64) {
    let mut cmd = if have("taskset") {
        let mut c = Command::new("taskset");
        c.args(["-c", "1", "wrk"]);
        c
    } else {
        Command::new("wrk")
    };
    let out = cmd
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-H",
            "X-Prometheus-Scrape-Timeout-Seconds: 10",
            url,
        ])
        .output()
        .expect("wrk is not installed: run scripts/test or apt-get install wrk");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut rps = f64::NAN;
    let mut avg = f64::NAN;
    let mut p99 = f64::NAN;
    let mut total = f64::NAN;
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().unwrap_or(f64::NAN),
            ["Latency", a, ..] if *a != "Distribution" => avg = wrk_ms(a),
            ["99%", v] => p99 = wrk_ms(v),
            [n, "requests", "in", ..] => total = n.parse().unwrap_or(f64::NAN),
            _ => {}
        }
        if line.contains("Non-2xx") {
            eprintln!("  warning: {line}");
        }
    }
    (rps, avg, p99, total)
}

async fn measure(
    exporter: &Exporter,
    target: &str,
    module: &str,
    seconds: u64,
    connections: u32,
) -> Measured {
    // One probe first: the case must succeed on this exporter.
    let body = exporter.probe(target, module).await;
    assert!(
        body.lines().any(|l| l == "probe_success 1"),
        "{} cannot probe {target} with {module}:\n{body}",
        exporter.name()
    );
    let url = format!(
        "{}/probe?target={}&module={module}",
        exporter.base_url(),
        target.replace(':', "%3A").replace('/', "%2F")
    );
    let pid = exporter.pid();
    let cpu_before = cpu_seconds(pid);
    let (rps, avg, p99, total) = run_wrk(&url, seconds, connections);
    let cpu = cpu_seconds(pid) - cpu_before;
    Measured {
        probes_per_second: rps,
        latency_avg_ms: avg,
        latency_p99_ms: p99,
        cpu_ms_per_probe: cpu * 1000.0 / total,
        rss_mib: rss_mib(pid),
        requests: total,
    }
}

fn main() {
    // `cargo test --all-targets` builds benches; only `cargo bench` runs one.
    if !std::env::args().any(|a| a == "--bench") {
        println!("probe_throughput: run with `cargo bench --bench probe_throughput`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let connections: u32 = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);

    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let mut conf = NginxConfig::new();
    conf.server(
        r#"server { listen 127.0.0.1:@PORT0@; access_log off; location / { return 200 "ok\n"; } }"#,
    );
    conf.tls_site(
        1,
        &["localhost"],
        &leaf,
        r#"access_log off; location / { return 200 "ok\n"; }"#,
    );
    let nginx = conf.start();
    pin(nginx.pid(), "1");

    let config = format!(
        r#"
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  https_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {ca}
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
"#,
        ca = pki.ca_file().display()
    );
    let ours = Exporter::start_with_args(&config, &["--log.level=warn", "--log.prober=warn"]).await;
    let theirs = common::blackbox::start(&config).await;
    pin(ours.pid(), "0");
    pin(theirs.pid(), "0");

    let plain = nginx.url("http", 0, "/");
    let tls = format!("https://localhost:{}/", nginx.port(1));
    let tcp = format!("127.0.0.1:{}", nginx.port(0));
    let cases = [
        ("http (plain)", plain.as_str(), "http_2xx"),
        ("https (TLS handshake per probe)", tls.as_str(), "https_2xx"),
        ("tcp connect", tcp.as_str(), "tcp_connect"),
    ];

    println!(
        "\nhandshake_exporter vs {} — {seconds}s per case, wrk -c{connections}, exporters pinned to one CPU\n",
        common::blackbox::version()
            .lines()
            .next()
            .unwrap_or("blackbox_exporter")
    );
    println!(
        "{:<34} {:<10} {:>10} {:>9} {:>9} {:>12} {:>13} {:>8}",
        "case",
        "exporter",
        "probes/s",
        "avg ms",
        "p99 ms",
        "CPU ms/probe",
        "probes/CPU-s",
        "RSS MiB"
    );
    for (name, target, module) in cases {
        let a = measure(&ours, target, module, seconds, connections).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let b = measure(&theirs, target, module, seconds, connections).await;
        for (who, m) in [("ours", &a), ("blackbox", &b)] {
            println!(
                "{:<34} {:<10} {:>10.0} {:>9.2} {:>9.2} {:>12.3} {:>13.0} {:>8.1}",
                name,
                who,
                m.probes_per_second,
                m.latency_avg_ms,
                m.latency_p99_ms,
                m.cpu_ms_per_probe,
                1000.0 / m.cpu_ms_per_probe,
                m.rss_mib
            );
        }
        println!(
            "{:<34} {:<10} {:>9.2}x {:>8.2}x {:>8.2}x {:>11.2}x {:>13} {:>7.2}x   (ours/blackbox; {}+{} probes)",
            name,
            "ratio",
            a.probes_per_second / b.probes_per_second,
            a.latency_avg_ms / b.latency_avg_ms,
            a.latency_p99_ms / b.latency_p99_ms,
            a.cpu_ms_per_probe / b.cpu_ms_per_probe,
            "",
            a.rss_mib / b.rss_mib,
            a.requests,
            b.requests
        );
    }

    drop(ours);
    drop(theirs);
    sessions(&pki, &leaf).await;
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A wss server that keeps every connection as long as the client does and
/// answers pings (tungstenite does); returns its port and how many
/// connections it accepted.
async fn hold_all_wss(leaf: &Leaf) -> (u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let acceptor = tokio_rustls::TlsAcceptor::from(Tls::http1_only(leaf).server_config());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(_)) = futures_util::StreamExt::next(&mut ws).await {}
            });
        }
    });
    (port, accepted, task)
}

/// Long-lived sessions: open `BENCH_SESSIONS` wss sessions through `/probe`,
/// then let them idle.
async fn sessions(pki: &Pki, leaf: &Leaf) {
    let count = env_or("BENCH_SESSIONS", 1000) as usize;
    let idle = Duration::from_secs(env_or("BENCH_SESSION_IDLE_SECONDS", 45));
    let (port, accepted, server) = hold_all_wss(leaf).await;
    let config = format!(
        "modules:\n  s:\n    prober: websocket_session\n    timeout: 10s\n    websocket:\n      tls_config:\n        ca_file: {}\n      session:\n        ping_interval: 15s\n        max_silence: 60s\n        expire_after: 10m\n",
        pki.ca_file().display()
    );
    let exporter = Arc::new(
        Exporter::start_with_args(
            &config,
            &[
                "--log.level=warn",
                "--log.prober=warn",
                &format!("--session.max={}", count.max(1)),
            ],
        )
        .await,
    );
    pin(exporter.pid(), "0");
    let pid = exporter.pid();
    let before = rss_mib(pid);
    let started = Instant::now();
    let mut failed = 0usize;
    let mut batch = Vec::new();
    for i in 0..count {
        let (e, url) = (exporter.clone(), format!("wss://localhost:{port}/s{i}"));
        batch.push(tokio::spawn(async move {
            e.probe_metrics(&url, "s").await.value("probe_success", &[]) == Some(1.0)
        }));
        if batch.len() == 50 || i + 1 == count {
            for t in batch.drain(..) {
                if !t.await.unwrap_or(false) {
                    failed += 1;
                }
            }
        }
    }
    let opened_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let with = rss_mib(pid);
    let cpu0 = cpu_seconds(pid);
    tokio::time::sleep(idle).await;
    let cpu_share = (cpu_seconds(pid) - cpu0) / idle.as_secs_f64();
    let after = rss_mib(pid);
    let reconnects = accepted.load(Ordering::SeqCst).saturating_sub(count);
    server.abort();
    println!(
        "\nlong-lived sessions (ours): {count} websocket_session over wss, pings every 15s\n\
         opened in {opened_in:.1?} ({failed} failed); RSS {before:.1} MiB before, {with:.1} MiB with them \
         ({:.1} KiB per session), {after:.1} MiB after {idle:?} idle; idle CPU {:.2}% of a core; \
         {reconnects} reconnects",
        (with - before) * 1024.0 / count.max(1) as f64,
        cpu_share * 100.0
    );
}
