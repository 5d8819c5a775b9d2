//! `prober: websocket_session` through the exporter's `/probe`, against
//! in-process WebSocket servers on loopback: one connection reused across
//! probes, pings, silence, server closes with their codes, a target that
//! went down, expiry, `--session.max`, reload, the target policy and
//! shutdown. Intervals are a few hundred milliseconds so the whole group
//! runs in seconds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::exporter::Exporter;
use crate::common::exposition::Exposition;
use crate::common::ws_server::{Session, WsServer};

/// A config with websocket_session modules: (name, extra lines under
/// `websocket:`) with a fast `session:` block (`session` lines appended to
/// it).
fn config(modules: &[(&str, &str)]) -> String {
    let mut yaml = String::from("modules:\n");
    for (name, session) in modules {
        yaml.push_str(&format!(
            "  {name}:\n    prober: websocket_session\n    timeout: 3s\n    websocket:\n      session:\n"
        ));
        let mut keys: Vec<(&str, &str)> = vec![
            ("ping_interval", "200ms"),
            ("max_silence", "1s"),
            ("reconnect_min", "100ms"),
            ("reconnect_max", "400ms"),
            ("expire_after", "1m"),
        ];
        for line in session.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once(':').expect("key: value");
            let (k, v) = (k.trim(), v.trim());
            match keys.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => keys.push((k, v)),
            }
        }
        for (k, v) in keys {
            yaml.push_str(&format!("        {k}: {v}\n"));
        }
    }
    yaml
}

fn success(m: &Exposition) -> f64 {
    m.expect("probe_success", &[])
}

fn disconnects(m: &Exposition, reason: &str) -> f64 {
    m.value(
        "probe_websocket_session_disconnects_total",
        &[("reason", reason)],
    )
    .unwrap_or(0.0)
}

fn failure(m: &Exposition) -> Option<String> {
    m.samples_named("probe_failure_info")
        .find(|s| s.value == 1.0)
        .and_then(|s| s.labels.get("reason").cloned())
}

/// Server-side closes seen, by request path: the session that read until
/// the client closed records its path.
#[derive(Clone, Default)]
struct Closes(Arc<Mutex<Vec<String>>>);

impl Closes {
    fn of(&self, path: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|p| *p == path).count()
    }

    /// An echo behaviour that records the path when the client closes.
    fn echo(
        &self,
    ) -> impl Fn(Session) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static
    {
        let closes = self.0.clone();
        move |mut s: Session| {
            let closes = closes.clone();
            Box::pin(async move {
                let path = s.request.path().to_string();
                while let Some(m) = s.recv().await {
                    s.send(m).await;
                }
                closes.lock().unwrap().push(path);
            })
        }
    }
}

/// Polls `probe` until `done` holds (at most `within`); returns the last
/// answer.
async fn probe_until(
    exporter: &Exporter,
    target: &str,
    module: &str,
    within: Duration,
    done: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let m = exporter.probe_metrics(target, module).await;
        if done(&m) || tokio::time::Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for(within: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test]
async fn later_probes_reuse_the_first_connection_and_report_ping_rtt() {
    let server = WsServer::echo();
    let target = server.url("/live");
    let exporter = Exporter::start(&config(&[("s", "")])).await;

    let first = exporter.probe_metrics(&target, "s").await;
    assert_eq!(success(&first), 1.0, "{first}");
    assert_eq!(first.expect("probe_websocket_session_connected", &[]), 1.0);
    assert_eq!(
        first.expect("probe_websocket_session_connects_total", &[]),
        1.0
    );
    assert!(
        !first.has("probe_websocket_session_last_close_code"),
        "{first}"
    );
    assert!(
        !first.has("probe_websocket_session_last_connection_seconds"),
        "{first}"
    );

    tokio::time::sleep(Duration::from_millis(700)).await;
    let later = exporter.probe_metrics(&target, "s").await;
    assert_eq!(success(&later), 1.0, "{later}");
    assert_eq!(
        later.expect("probe_websocket_session_connects_total", &[]),
        1.0
    );
    let uptime = later.expect("probe_websocket_session_uptime_seconds", &[]);
    assert!(uptime >= 0.6, "uptime {uptime}");
    let rtt = later.expect("probe_websocket_session_ping_rtt_seconds", &[]);
    assert!(rtt > 0.0 && rtt < 0.5, "rtt {rtt}");
    let age = later.expect("probe_websocket_session_last_message_age_seconds", &[]);
    assert!(age < 1.0, "pongs keep the last message young: {age}");
    // A later probe answers at once, without a connection of its own.
    let duration = later.expect("probe_duration_seconds", &[]);
    assert!(duration < 0.25, "{duration}");
    assert_eq!(server.connections(), 1, "one connection for every probe");
}

#[tokio::test]
async fn a_silent_server_is_cut_after_max_silence_and_the_session_reconnects() {
    // Never reads: pings go unanswered and nothing ever arrives.
    let server = WsServer::plain(Session::hold);
    let target = server.url("/quiet");
    let exporter = Exporter::start(&config(&[(
        "s",
        // A second between connections: the probe sees the session down.
        "ping_interval: 100ms\nmax_silence: 500ms\nreconnect_min: 1s\nreconnect_max: 1s",
    )]))
    .await;

    let first = exporter.probe_metrics(&target, "s").await;
    assert_eq!(success(&first), 1.0, "{first}");
    let m = probe_until(&exporter, &target, "s", Duration::from_secs(5), |m| {
        disconnects(m, "silence") >= 1.0
    })
    .await;
    assert_eq!(disconnects(&m, "silence"), 1.0, "{m}");
    // Down until the reconnect: the reason is the silence.
    assert_eq!(success(&m), 0.0, "{m}");
    assert_eq!(failure(&m).as_deref(), Some("silence"), "{m}");
    assert_eq!(m.expect("probe_websocket_session_connected", &[]), 0.0);
    let lasted = m.expect("probe_websocket_session_last_connection_seconds", &[]);
    assert!(
        (0.4..1.5).contains(&lasted),
        "cut after max_silence: {lasted}"
    );
    assert!(
        wait_for(Duration::from_secs(3), || server.connections() >= 2).await,
        "no reconnect after the silence"
    );
    // The server counts the connection before our handshake is done.
    let m = probe_until(&exporter, &target, "s", Duration::from_secs(2), |m| {
        m.expect("probe_websocket_session_connects_total", &[]) >= 2.0
    })
    .await;
    assert_eq!(
        m.expect("probe_websocket_session_connects_total", &[]),
        2.0,
        "{m}"
    );
}

#[tokio::test]
async fn server_closes_are_counted_with_their_codes_and_the_session_reconnects() {
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    let server = WsServer::plain(move |s: Session| {
        let i = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            match i {
                0 => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    s.close_with(1008, "policy").await;
                }
                1 => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    s.close_with(1001, "going away").await;
                }
                _ => s.echo().await,
            }
        }
    });
    let target = server.url("/closing");
    let exporter = Exporter::start(&config(&[("s", "")])).await;

    assert_eq!(success(&exporter.probe_metrics(&target, "s").await), 1.0);
    let after_first = probe_until(&exporter, &target, "s", Duration::from_secs(3), |m| {
        m.value("probe_websocket_session_last_close_code", &[])
            .is_some()
    })
    .await;
    assert_eq!(
        after_first.expect("probe_websocket_session_last_close_code", &[]),
        1008.0,
        "{after_first}"
    );
    let m = probe_until(&exporter, &target, "s", Duration::from_secs(5), |m| {
        m.expect("probe_websocket_session_connects_total", &[]) >= 3.0 && success(m) == 1.0
    })
    .await;
    assert_eq!(success(&m), 1.0, "{m}");
    assert_eq!(disconnects(&m, "closed_by_server"), 2.0, "{m}");
    assert_eq!(
        m.expect("probe_websocket_session_last_close_code", &[]),
        1001.0
    );
    assert_eq!(m.expect("probe_websocket_session_connects_total", &[]), 3.0);
    let lasted = m.expect("probe_websocket_session_last_connection_seconds", &[]);
    assert!((0.25..1.0).contains(&lasted), "{lasted}");
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn a_target_that_went_down_reports_the_failed_reconnect() {
    let server = WsServer::echo();
    let target = server.url("/gone");
    let exporter = Exporter::start(&config(&[("s", "")])).await;
    assert_eq!(success(&exporter.probe_metrics(&target, "s").await), 1.0);

    drop(server);
    let m = probe_until(&exporter, &target, "s", Duration::from_secs(3), |m| {
        failure(m).as_deref() == Some("connect_refused")
    })
    .await;
    assert_eq!(success(&m), 0.0, "{m}");
    assert_eq!(failure(&m).as_deref(), Some("connect_refused"), "{m}");
    assert_eq!(m.expect("probe_websocket_session_connected", &[]), 0.0);
    assert_eq!(m.expect("probe_websocket_session_uptime_seconds", &[]), 0.0);
    // The connection that was cut without a close frame is counted.
    let total: f64 = m
        .samples_named("probe_websocket_session_disconnects_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(total, 1.0, "{m}");
    // A first probe of a target that refuses fails at once with the reason.
    let refused = crate::common::closed_addr();
    let m = exporter
        .probe_metrics(&format!("ws://{refused}/"), "s")
        .await;
    assert_eq!(failure(&m).as_deref(), Some("connect_refused"), "{m}");
    assert_eq!(m.expect("probe_websocket_session_connects_total", &[]), 0.0);
}

#[tokio::test]
async fn an_unasked_session_expires_and_closes_its_connection() {
    let closes = Closes::default();
    let server = WsServer::plain(closes.echo());
    let target = server.url("/expiring");
    let exporter = Exporter::start(&config(&[("s", "expire_after: 1s")])).await;
    let fds_before = exporter.open_fds();

    assert_eq!(success(&exporter.probe_metrics(&target, "s").await), 1.0);
    assert!(
        exporter.open_fds() > fds_before,
        "the session holds a socket"
    );
    // Probes keep it alive...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        exporter.probe_metrics(&target, "s").await;
    }
    assert_eq!(closes.of("/expiring"), 0);
    assert_eq!(server.connections(), 1);
    // ...and without them it ends: the server sees our close.
    assert!(
        wait_for(Duration::from_secs(3), || closes.of("/expiring") == 1).await,
        "the expired session did not close its connection"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.connections(),
        1,
        "an expired session does not reconnect"
    );
    // Its socket is closed (the probes' HTTP connections close too).
    assert!(
        wait_for(Duration::from_secs(3), || exporter.open_fds() <= fds_before).await,
        "open fds {} > {fds_before} after the session expired",
        exporter.open_fds()
    );
    // The next probe starts a new session.
    let m = exporter.probe_metrics(&target, "s").await;
    assert_eq!(success(&m), 1.0, "{m}");
    assert_eq!(m.expect("probe_websocket_session_connects_total", &[]), 1.0);
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn session_max_refuses_new_sessions_and_keeps_the_others() {
    let server = WsServer::echo();
    let exporter = Exporter::start_with_args(&config(&[("s", "")]), &["--session.max", "1"]).await;
    let a = server.url("/a");
    assert_eq!(success(&exporter.probe_metrics(&a, "s").await), 1.0);
    let refused = exporter.probe_metrics(&server.url("/b"), "s").await;
    assert_eq!(success(&refused), 0.0, "{refused}");
    assert_eq!(failure(&refused).as_deref(), Some("session_limit"));
    assert_eq!(success(&exporter.probe_metrics(&a, "s").await), 1.0);
    let own = exporter.metrics().await;
    assert_eq!(
        own.expect("handshake_exporter_websocket_sessions", &[]),
        1.0
    );
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn reload_closes_the_sessions_whose_module_changed() {
    let closes = Closes::default();
    let server = WsServer::plain(closes.echo());
    let (same, changed) = (server.url("/same"), server.url("/changed"));
    let exporter = Exporter::start(&config(&[("keep", ""), ("edit", "")])).await;
    assert_eq!(success(&exporter.probe_metrics(&same, "keep").await), 1.0);
    assert_eq!(
        success(&exporter.probe_metrics(&changed, "edit").await),
        1.0
    );

    exporter.write_config(&config(&[("keep", ""), ("edit", "max_silence: 2s")]));
    let resp = exporter.post("/-/reload").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(
        wait_for(Duration::from_secs(3), || closes.of("/changed") == 1).await,
        "the changed module's session was not closed"
    );
    let kept = exporter.probe_metrics(&same, "keep").await;
    assert_eq!(success(&kept), 1.0);
    let uptime = kept.expect("probe_websocket_session_uptime_seconds", &[]);
    assert!(uptime > 0.0, "{kept}");
    assert_eq!(closes.of("/same"), 0);
    // The changed module's next probe opens a new session.
    let m = exporter.probe_metrics(&changed, "edit").await;
    assert_eq!(success(&m), 1.0, "{m}");
    assert_eq!(server.connections(), 3);

    // A removed module's session is closed too; shutdown closes the rest.
    exporter.write_config(&config(&[("keep", "")]));
    assert_eq!(exporter.post("/-/reload").await.status, 200);
    assert!(wait_for(Duration::from_secs(3), || closes.of("/changed") == 2).await);
    let mut exporter = exporter;
    exporter.signal("TERM");
    assert!(exporter.wait_exit(Duration::from_secs(10)).await.is_some());
    assert!(
        wait_for(Duration::from_secs(3), || closes.of("/same") == 1).await,
        "shutdown did not close the session"
    );
}

#[tokio::test]
async fn the_target_policy_applies_to_sessions() {
    let server = WsServer::echo();
    let yaml = format!(
        "target_policy:\n  deny: [127.0.0.0/8]\n{}",
        config(&[("s", "")])
    );
    let exporter = Exporter::start(&yaml).await;
    let m = exporter.probe_metrics(&server.url("/x"), "s").await;
    assert_eq!(success(&m), 0.0, "{m}");
    assert_eq!(failure(&m).as_deref(), Some("target_forbidden"), "{m}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.connections(),
        0,
        "a forbidden target is never connected"
    );
}

#[tokio::test]
async fn a_reload_that_forbids_the_target_closes_its_session() {
    let closes = Closes::default();
    let server = WsServer::plain(closes.echo());
    let target = server.url("/policy");
    let exporter = Exporter::start(&config(&[("s", "")])).await;
    assert_eq!(success(&exporter.probe_metrics(&target, "s").await), 1.0);

    // Only the top-level policy changes: the module's own text does not.
    exporter.write_config(&format!(
        "target_policy:\n  deny: [127.0.0.0/8]\n{}",
        config(&[("s", "")])
    ));
    assert_eq!(exporter.post("/-/reload").await.status, 200);
    assert!(
        wait_for(Duration::from_secs(3), || closes.of("/policy") == 1).await,
        "the session survived a policy that forbids its target"
    );
    let m = exporter.probe_metrics(&target, "s").await;
    assert_eq!(failure(&m).as_deref(), Some("target_forbidden"), "{m}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.connections(),
        1,
        "no reconnect to a forbidden target"
    );
}

#[tokio::test]
async fn wss_sessions_verify_the_certificate() {
    use crate::common::pki::Pki;
    use crate::common::ws_server::{Options, Tls};

    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = WsServer::start(
        Options::default().tls(Tls::http1_only(&leaf)),
        Session::echo,
    );
    let target = server.url("/secure");
    let module = |name: &str, ca: Option<&std::path::Path>| {
        let tls = ca
            .map(|ca| format!("      tls_config:\n        ca_file: {}\n", ca.display()))
            .unwrap_or_default();
        format!(
            "  {name}:\n    prober: websocket_session\n    timeout: 3s\n    websocket:\n{tls}      session:\n        ping_interval: 200ms\n        reconnect_min: 100ms\n"
        )
    };
    let yaml = format!(
        "modules:\n{}{}",
        module("trusted", Some(&pki.ca_file())),
        module("untrusted", None)
    );
    let exporter = Exporter::start(&yaml).await;
    let m = exporter.probe_metrics(&target, "trusted").await;
    assert_eq!(success(&m), 1.0, "{m}");
    let m = exporter.probe_metrics(&target, "untrusted").await;
    assert_eq!(failure(&m).as_deref(), Some("tls_cert_untrusted"), "{m}");
    assert_eq!(m.expect("probe_websocket_session_connects_total", &[]), 0.0);
}
