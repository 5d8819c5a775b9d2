//! End to end: a `websocket_session` through real nginx whose
//! `proxy_read_timeout` is 2 s — the idle cut a load balancer makes, and
//! that a handshake probe never sees.
//!
//! * Without pings (`ping_interval: 0`) the connection is idle: nginx cuts
//!   it after 2 s, and the session shows it as a disconnect and as
//!   `probe_websocket_session_last_connection_seconds` ≈ 2.
//! * With pings every 500 ms the backend's pongs pass through nginx, and
//!   the same connection outlives the timeout.
//!
//! nginx comes from Debian's package (`scripts/test` installs it).

use std::time::Duration;

use crate::common::exporter::Exporter;
use crate::common::exposition::Exposition;
use crate::common::nginx::Nginx;
use crate::common::ws_backend::WsBackend;

const IDLE_TIMEOUT_S: f64 = 2.0;

fn config() -> String {
    let module = |name: &str, ping: &str| {
        format!(
            "  {name}:\n    prober: websocket_session\n    timeout: 3s\n    websocket:\n      session:\n        ping_interval: {ping}\n        max_silence: 30s\n        reconnect_min: 5s\n        reconnect_max: 5s\n"
        )
    };
    format!(
        "modules:\n{}{}",
        module("idle", "0"),
        module("pinged", "500ms")
    )
}

async fn start() -> (WsBackend, Nginx) {
    let backend = WsBackend::start().await;
    let upstream = backend.addr();
    let nginx = Nginx::start(&format!(
        r#"
    server {{
        listen 127.0.0.1:@PORT0@;
        location = /ws {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout {IDLE_TIMEOUT_S}s;
        }}
    }}
"#
    ));
    (backend, nginx)
}

fn disconnects(m: &Exposition) -> f64 {
    m.samples_named("probe_websocket_session_disconnects_total")
        .map(|s| s.value)
        .sum()
}

#[tokio::test]
async fn an_idle_session_shows_the_proxy_read_timeout() {
    let (backend, nginx) = start().await;
    let exporter = Exporter::start(&config()).await;
    let target = nginx.url("ws", 0, "/ws");

    let first = exporter.probe_metrics(&target, "idle").await;
    assert_eq!(first.expect("probe_success", &[]), 1.0, "{first}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    let m = loop {
        let m = exporter.probe_metrics(&target, "idle").await;
        if disconnects(&m) >= 1.0 || tokio::time::Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(disconnects(&m), 1.0, "{m}\n{}", nginx.logs());
    let lasted = m.expect("probe_websocket_session_last_connection_seconds", &[]);
    let reasons: Vec<String> = m
        .samples_named("probe_websocket_session_disconnects_total")
        .map(|s| s.to_string())
        .collect();
    eprintln!("idle cut after {lasted:.3}s: {reasons:?}");
    assert!(
        (IDLE_TIMEOUT_S - 0.1..IDLE_TIMEOUT_S + 0.8).contains(&lasted),
        "the idle cut shows as the timeout: {lasted}"
    );
    assert_eq!(
        m.expect("probe_success", &[]),
        0.0,
        "down until the reconnect: {m}"
    );
    assert_eq!(m.expect("probe_websocket_session_connected", &[]), 0.0);
    assert_eq!(backend.upgrades(), 1);
}

#[tokio::test]
async fn pings_keep_the_session_past_the_proxy_read_timeout() {
    let (backend, nginx) = start().await;
    let exporter = Exporter::start(&config()).await;
    let target = nginx.url("ws", 0, "/ws");

    let first = exporter.probe_metrics(&target, "pinged").await;
    assert_eq!(first.expect("probe_success", &[]), 1.0, "{first}");
    tokio::time::sleep(Duration::from_secs_f64(IDLE_TIMEOUT_S * 1.75)).await;
    let m = exporter.probe_metrics(&target, "pinged").await;
    assert_eq!(m.expect("probe_success", &[]), 1.0, "{m}\n{}", nginx.logs());
    assert_eq!(disconnects(&m), 0.0, "{m}");
    assert_eq!(m.expect("probe_websocket_session_connects_total", &[]), 1.0);
    let uptime = m.expect("probe_websocket_session_uptime_seconds", &[]);
    assert!(uptime > IDLE_TIMEOUT_S * 1.5, "{uptime}");
    assert!(m.expect("probe_websocket_session_ping_rtt_seconds", &[]) > 0.0);
    assert_eq!(backend.upgrades(), 1);
}
