//! `target_policy` (README "Target policy"): who may be probed. Every test
//! checks the refusal reason *and* that no connection reached the refused
//! server — a refused probe makes no connection. Only loopback addresses
//! are used: the built-in policy's link-local and metadata ranges are
//! checked without the network (a refused probe to them would send nothing,
//! but a broken one would).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use http::StatusCode;

use crate::common::exporter::Exporter;
use crate::common::http_server::{TestServer, redirect, silent_server, text};
use crate::common::probe::{load_config, run, run_in};
use crate::common::proxy::Proxy;
use crate::common::ws_backend::WsBackend;

fn ok_server() -> TestServer {
    TestServer::http(|_| text(StatusCode::OK, "ok"))
}

/// A listener on another loopback address that counts nothing but is
/// checked for a pending connection afterwards.
fn listener_on(ip: &str) -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind((ip, 0)).expect("bind a second loopback address");
    l.set_nonblocking(true).expect("nonblocking");
    let addr = l.local_addr().expect("addr");
    (l, addr)
}

fn nobody_connected(l: &TcpListener) -> bool {
    matches!(l.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test]
async fn a_denied_range_is_refused_without_a_connection() {
    let server = ok_server();
    let config = r#"
target_policy:
  deny: [127.0.0.0/8]
modules:
  http_2xx:
    prober: http
    http:
      preferred_ip_protocol: ip4
"#;
    let o = run(config, "http_2xx", &server.url("/")).await;
    o.assert_reason("target_forbidden");
    assert_eq!(server.connections(), 0);
    assert!(o.log.contains("127.0.0.0/8"), "{}", o.log);

    // A name is refused once it resolves into the range.
    let o = run(config, "http_2xx", &server.url_with_host("localhost", "/")).await;
    o.assert_reason("target_forbidden");
    assert_eq!(server.connections(), 0);
    assert_eq!(o.value("probe_ip_protocol", &[]), Some(4.0), "{}", o.text);
}

#[tokio::test]
async fn a_denied_name_is_refused_before_it_is_looked_up() {
    let server = ok_server();
    let config = r#"
target_policy:
  deny: ["LOCAL*."]
modules:
  http_2xx:
    prober: http
    http:
      preferred_ip_protocol: ip4
"#;
    let o = run(config, "http_2xx", &server.url_with_host("localhost", "/")).await;
    o.assert_reason("target_forbidden");
    assert_eq!(server.connections(), 0);
    assert!(!o.log.contains("Resolved target address"), "{}", o.log);
    // The address itself is not a name: the glob does not refuse it.
    run(config, "http_2xx", &server.url("/"))
        .await
        .assert_success();
}

#[tokio::test]
async fn the_allow_list_admits_only_what_it_names() {
    let server = ok_server();
    let config = r#"
modules:
  loopback_only:
    prober: http
    target_policy:
      allow: [127.0.0.1]
  intranet_only:
    prober: http
    target_policy:
      allow: [10.0.0.0/8, "*.intranet.example"]
"#;
    run(config, "loopback_only", &server.url("/"))
        .await
        .assert_success();
    let o = run(config, "intranet_only", &server.url("/")).await;
    o.assert_reason("target_forbidden");
    assert_eq!(server.connections(), 1);
    assert!(o.log.contains("allows it nowhere"), "{}", o.log);
}

#[tokio::test]
async fn a_module_policy_adds_to_the_top_level_one() {
    let server = ok_server();
    let config = r#"
target_policy:
  deny: ["localhost"]
modules:
  loopback:
    prober: http
    target_policy:
      allow: [127.0.0.0/8]
"#;
    run(config, "loopback", &server.url("/"))
        .await
        .assert_success();
    // Allowed by the module, denied by the top level: refused.
    let o = run(config, "loopback", &server.url_with_host("localhost", "/")).await;
    o.assert_reason("target_forbidden");
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn every_redirect_hop_is_checked() {
    // A redirect to a denied address...
    let (forbidden, forbidden_addr) = listener_on("127.0.0.2");
    let location = format!("http://{forbidden_addr}/");
    let server = TestServer::http(move |_| redirect(StatusCode::FOUND, &location));
    let config = r#"
target_policy:
  deny: [127.0.0.2/32]
modules:
  http_2xx:
    prober: http
"#;
    let o = run(config, "http_2xx", &server.url("/")).await;
    o.assert_reason("target_forbidden");
    assert_eq!(server.connections(), 1);
    assert!(nobody_connected(&forbidden));

    // ... and to a denied name.
    let target = ok_server();
    let location = target.url_with_host("localhost", "/");
    let server = TestServer::http(move |_| redirect(StatusCode::FOUND, &location));
    let config = r#"
target_policy:
  deny: ["localhost"]
modules:
  http_2xx:
    prober: http
"#;
    let o = run(config, "http_2xx", &server.url("/")).await;
    o.assert_reason("target_forbidden");
    assert_eq!(target.connections(), 0);
}

#[tokio::test]
async fn every_prober_is_refused_before_connecting() {
    let silent = silent_server();
    let ws = WsBackend::start().await;
    let config = r#"
target_policy:
  deny: [127.0.0.0/8]
modules:
  tcp:
    prober: tcp
  tls:
    prober: tls
  websocket:
    prober: websocket
"#;
    for (module, target) in [
        ("tcp", silent.target()),
        ("tls", silent.target()),
        ("websocket", format!("ws://{}/", ws.addr())),
    ] {
        let o = run_in(
            Path::new("."),
            config,
            module,
            &target,
            None,
            Duration::from_secs(2),
        )
        .await;
        o.assert_reason("target_forbidden");
        assert!(
            o.elapsed < Duration::from_secs(1),
            "{module}: {:?}",
            o.elapsed
        );
    }
    assert_eq!(silent.connections(), 0);
    assert_eq!(ws.upgrades() + ws.plain_requests(), 0);
}

#[tokio::test]
async fn a_proxy_is_the_operators_own_and_is_not_checked() {
    let server = ok_server();
    let proxy = Proxy::start().await;
    // The proxy listens on 127.0.0.1, which the policy denies; the target is
    // a name the policy does not deny, and is not resolved here.
    let config = format!(
        r#"
target_policy:
  deny: [127.0.0.1/32]
modules:
  via_proxy:
    prober: http
    http:
      proxy_url: {}
      skip_resolve_phase_with_proxy: true
"#,
        proxy.url()
    );
    run(
        &config,
        "via_proxy",
        &server.url_with_host("localhost", "/"),
    )
    .await
    .assert_success();
    assert_eq!(proxy.heads().len(), 1);
}

#[test]
fn the_builtin_policy_and_turning_it_off() {
    let dir = Path::new(".");
    let builtin = load_config(dir, "modules:\n  m:\n    prober: http\n");
    let policy = &builtin.modules["m"].target_policy;
    for refused in [
        "169.254.169.254",
        "[fe80::1]",
        "fd00:ec2::254",
        "[::ffff:169.254.169.254]",
    ] {
        assert!(policy.check_name(refused).is_err(), "{refused}");
    }
    assert!(policy.check_name("127.0.0.1").is_ok());
    assert!(!policy.is_open());

    let off = load_config(
        dir,
        "target_policy:\n  deny: []\nmodules:\n  m:\n    prober: http\n",
    );
    let policy = &off.modules["m"].target_policy;
    assert!(policy.is_open());
    assert!(policy.check_name("169.254.169.254").is_ok());
    // /config shows the top-level policy as written.
    assert!(
        off.masked_yaml.contains("target_policy:"),
        "{}",
        off.masked_yaml
    );
}

#[test]
fn bad_entries_are_load_errors_that_name_them() {
    let err = |yaml: &str| match handshake_exporter::prober::load_str(yaml, Path::new(".")) {
        Ok(_) => panic!("loaded:\n{yaml}"),
        Err(e) => e.to_string(),
    };
    let e = err("target_policy:\n  deny: [10.0.0.0/33]\nmodules: {}\n");
    assert!(e.contains("target_policy.deny[0]"), "{e}");
    let e = err(
        "modules:\n  m:\n    prober: http\n    target_policy:\n      allow: [ok.example, 'bad name']\n",
    );
    assert!(
        e.contains("module \"m\"") && e.contains("target_policy.allow[1]"),
        "{e}"
    );
    let e = err("target_policy:\n  denny: []\nmodules: {}\n");
    assert!(e.contains("denny"), "{e}");
}

#[tokio::test]
async fn a_probe_never_feeds_the_exporters_own_probe_endpoint() {
    let config = "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n";
    let exporter = Exporter::start(config).await;
    // A target that redirects to the exporter's own /probe of itself.
    let exporter_addr = exporter.addr();
    let server = TestServer::http(move |req| {
        let me = format!(
            "http://{}{}",
            req.headers()["host"].to_str().unwrap_or(""),
            "/"
        );
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("target", me.as_str()), ("module", "http_2xx")])
            .finish();
        redirect(
            StatusCode::FOUND,
            &format!("http://{exporter_addr}/probe?{query}"),
        )
    });
    let m = exporter.probe_metrics(&server.url("/"), "http_2xx").await;
    assert_eq!(m.value("probe_success", &[]), Some(0.0));
    assert_eq!(m.value("probe_http_status_code", &[]), Some(508.0));
    assert_eq!(server.requests(), 1, "the loop went round");
    let own = exporter.metrics().await;
    assert_eq!(
        own.value(
            "handshake_exporter_probe_requests_refused_total",
            &[("reason", "loop")]
        ),
        Some(1.0)
    );
    // One probe ran (the outer one); the refused request did not probe.
    assert_eq!(
        own.value(
            "handshake_exporter_probes_total",
            &[("module", "http_2xx"), ("result", "failure")]
        ),
        Some(1.0)
    );

    // The mark itself is what is refused.
    let r = exporter
        .probe_with(
            &[("target", &server.url("/")), ("module", "http_2xx")],
            &[("X-Handshake-Exporter-Probe", "1")],
        )
        .await;
    assert_eq!(r.status, 508, "{}", r.body);
}
