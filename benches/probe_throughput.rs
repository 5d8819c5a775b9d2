//! Side-by-side benchmark: handshake_exporter vs Debian's blackbox_exporter
//! on the same targets, in one run. Prints probes per second, latency, CPU
//! time per probe (probes per CPU-second = per core) and memory, with ratios.
//!
//! Run: `cargo bench --bench probe_throughput` (`BENCH_SECONDS`, default 5,
//! per case and exporter; `BENCH_CONNECTIONS`, default 8). Needs nginx,
//! wrk and prometheus-blackbox-exporter (`scripts/test` installs them).
//! Exporters are pinned to CPU 0, nginx and wrk to CPU 1 (when `taskset`
//! exists), so "per CPU-second" is the exporter's own cost.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use common::exporter::Exporter;
use common::nginx::NginxConfig;
use common::pki::Pki;

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
}
