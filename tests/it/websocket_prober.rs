//! `prober: websocket` against in-process servers: every failure reason made
//! to happen by a server that really fails that way, and the success paths
//! with the metrics the README ("WebSocket monitoring", "Metrics") promises.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use crate::common;
use crate::common::pki::{Leaf, Pki, Validity};
use crate::common::probe::{Outcome, run, run_in};
use crate::common::proxy::Proxy;
use crate::common::tls_server::{ServerTls, SniResolver};
use crate::common::ws_server::{
    Options, RawReply, RawServer, Session, Step, Subprotocol, Tls, WsServer,
};

const PHASES: &[&str] = &["resolve", "connect", "tls", "processing", "transfer"];

/// Strips the common leading indentation of the non-empty lines.
fn dedent(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    text.lines()
        .map(|l| if l.len() >= indent { &l[indent..] } else { "" })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A config with one websocket module `m` (timeout 5s); `block` is the
/// content of its `websocket:` key (empty: no block).
fn config(block: &str) -> String {
    let mut yaml = String::from("modules:\n  m:\n    prober: websocket\n    timeout: 5s\n");
    let block = dedent(block);
    if !block.trim().is_empty() {
        yaml.push_str("    websocket:\n");
        for line in block.lines() {
            yaml.push_str("      ");
            yaml.push_str(line);
            yaml.push('\n');
        }
    }
    yaml
}

async fn probe(block: &str, target: &str) -> Outcome {
    run(&config(block), "m", target).await
}

async fn probe_within(block: &str, target: &str, timeout: Duration) -> Outcome {
    run_in(Path::new("."), &config(block), "m", target, None, timeout).await
}

fn ws_value(o: &Outcome, name: &str) -> Option<f64> {
    o.value(&format!("probe_websocket_{name}"), &[])
}

fn phase(o: &Outcome, phase: &str) -> f64 {
    o.value("probe_websocket_duration_seconds", &[("phase", phase)])
        .unwrap_or_else(|| panic!("no phase {phase}:\n{}", o.text))
}

fn tls_block(pki: &Pki) -> String {
    format!(
        "preferred_ip_protocol: ip4\ntls_config:\n  ca_file: {:?}\n",
        pki.ca_file().display().to_string()
    )
}

fn wss_echo(leaf: &Leaf) -> WsServer {
    WsServer::start(Options::default().tls(Tls::http1_only(leaf)), Session::echo)
}

// ---------------------------------------------------------------------------
// Refused upgrades: the HTTP answer says why
// ---------------------------------------------------------------------------

#[tokio::test]
async fn plain_200_page_is_upgrade_ignored() {
    let server = RawServer::start(RawReply::status(200));
    let o = probe("", &server.url("/chat")).await;
    o.assert_reason("upgrade_ignored");
    assert_eq!(ws_value(&o, "status_code"), Some(200.0), "{}", o.text);
    assert_eq!(ws_value(&o, "connection_upgraded"), Some(0.0), "{}", o.text);
    // the upgrade request was a real one
    let req = &server.requests()[0];
    assert_eq!(req.target, "/chat");
    assert_eq!(req.header("upgrade").as_deref(), Some("websocket"));
    assert_eq!(req.header("sec-websocket-version").as_deref(), Some("13"));
    assert!(req.header("sec-websocket-key").is_some());
}

#[tokio::test]
async fn status_4xx_is_upgrade_rejected() {
    for status in [426, 400, 403] {
        let server = RawServer::start(RawReply::status(status));
        let o = probe("", &server.url("/")).await;
        o.assert_reason("upgrade_rejected");
        assert_eq!(ws_value(&o, "status_code"), Some(f64::from(status)));
        assert_eq!(ws_value(&o, "connection_upgraded"), Some(0.0));
    }
}

#[tokio::test]
async fn status_502_503_504_is_upstream_unavailable() {
    for status in [502, 503, 504] {
        let server = RawServer::start(RawReply::status(status));
        let o = probe("", &server.url("/")).await;
        o.assert_reason("upstream_unavailable");
        assert_eq!(ws_value(&o, "status_code"), Some(f64::from(status)));
    }
}

#[tokio::test]
async fn status_500_is_server_error() {
    let server = RawServer::start(RawReply::status(500));
    let o = probe("", &server.url("/")).await;
    o.assert_reason("server_error");
    assert_eq!(ws_value(&o, "status_code"), Some(500.0));
}

#[tokio::test]
async fn refusal_by_a_real_websocket_server_keeps_its_status() {
    let server = WsServer::start(
        Options::default().check(|r| match r.header("origin") {
            Some(o) if o == "https://app.example.com" => Ok(()),
            _ => Err((http::StatusCode::FORBIDDEN, "origin not allowed".into())),
        }),
        Session::echo,
    );
    let o = probe("", &server.url("/")).await;
    o.assert_reason("upgrade_rejected");
    assert_eq!(ws_value(&o, "status_code"), Some(403.0));

    let o = probe(
        "headers:\n  Origin: https://app.example.com\n",
        &server.url("/"),
    )
    .await;
    o.assert_success();
}

// ---------------------------------------------------------------------------
// Broken 101s
// ---------------------------------------------------------------------------

#[tokio::test]
async fn raw_valid_101_succeeds() {
    // The raw server's correct 101: the broken ones below differ only in the
    // one header they break.
    let server = RawServer::start(RawReply::Valid101);
    let o = probe_within("", &server.url("/"), Duration::from_secs(2)).await;
    o.assert_success();
    assert_eq!(ws_value(&o, "status_code"), Some(101.0));
}

#[tokio::test]
async fn wrong_accept_key_is_invalid_handshake() {
    let server = RawServer::start(RawReply::BadAccept);
    let o = probe("", &server.url("/")).await;
    o.assert_reason("invalid_handshake");
    assert!(o.log.contains("Sec-WebSocket-Accept"), "{}", o.log);
    assert_eq!(ws_value(&o, "status_code"), Some(101.0));
    assert_eq!(ws_value(&o, "connection_upgraded"), Some(0.0));
}

#[tokio::test]
async fn missing_upgrade_header_is_invalid_handshake() {
    let server = RawServer::start(RawReply::NoUpgradeHeader);
    let o = probe("", &server.url("/")).await;
    o.assert_reason("invalid_handshake");
    assert!(o.log.contains("Upgrade: websocket"), "{}", o.log);
    assert_eq!(ws_value(&o, "connection_upgraded"), Some(0.0));
}

#[tokio::test]
async fn missing_connection_header_is_invalid_handshake() {
    let server = RawServer::start(RawReply::NoConnectionHeader);
    let o = probe("", &server.url("/")).await;
    o.assert_reason("invalid_handshake");
    assert!(o.log.contains("Connection: Upgrade"), "{}", o.log);
    assert_eq!(ws_value(&o, "connection_upgraded"), Some(0.0));
}

#[tokio::test]
async fn subprotocol_not_offered_is_mismatch() {
    let server = RawServer::start(RawReply::Subprotocol("evil".into()));
    let o = probe("subprotocols: [chat, superchat]\n", &server.url("/")).await;
    o.assert_reason("subprotocol_mismatch");
    assert!(
        !o.metrics.has("probe_websocket_subprotocol_info"),
        "{}",
        o.text
    );
    // nothing offered at all, one selected anyway
    let o = probe("", &server.url("/")).await;
    o.assert_reason("subprotocol_mismatch");
}

#[tokio::test]
async fn required_subprotocol_not_selected_is_mismatch() {
    let server = WsServer::echo(); // never selects one
    let o = probe(
        "subprotocols: [graphql-transport-ws]\nfail_if_subprotocol_not_negotiated: true\n",
        &server.url("/"),
    )
    .await;
    o.assert_reason("subprotocol_mismatch");
    assert_eq!(
        server.request().offered_subprotocols(),
        ["graphql-transport-ws"]
    );
}

// ---------------------------------------------------------------------------
// After the 101
// ---------------------------------------------------------------------------

#[tokio::test]
async fn drop_after_101_with_ping_is_closed_early() {
    let server = WsServer::plain(Session::drop_now);
    let o = probe("ping: true\n", &server.url("/")).await;
    o.assert_reason("closed_early");
    assert_eq!(ws_value(&o, "connection_upgraded"), Some(1.0));
    assert_eq!(ws_value(&o, "status_code"), Some(101.0));
    assert!(!o.metrics.has("probe_websocket_ping_rtt_seconds"));
    assert!(!o.metrics.has("probe_websocket_close_code"), "{}", o.text);
}

#[tokio::test]
async fn close_1008_before_pong_is_closed_early_with_code() {
    let server = WsServer::plain(|s| s.close_with(1008, "policy violation"));
    let o = probe("ping: true\n", &server.url("/")).await;
    o.assert_reason("closed_early");
    assert_eq!(ws_value(&o, "close_code"), Some(1008.0), "{}", o.text);
    assert!(!o.metrics.has("probe_websocket_ping_rtt_seconds"));
}

#[tokio::test]
async fn unanswered_ping_times_out_inside_the_deadline() {
    let server = WsServer::plain(Session::hold);
    let timeout = Duration::from_secs(1);
    let o = probe_within("ping: true\n", &server.url("/"), timeout).await;
    o.assert_reason("timeout");
    assert!(
        o.elapsed < timeout + Duration::from_secs(1),
        "{:?}",
        o.elapsed
    );
    assert!(phase(&o, "transfer") > 0.5, "{}", o.text);
    assert_eq!(ws_value(&o, "connection_upgraded"), Some(1.0));
}

#[tokio::test]
async fn no_match_before_deadline_is_expect_failed() {
    let server = WsServer::plain(|mut s: Session| async move {
        s.send_text("hello").await;
        s.send_text("still not it").await;
        s.hold().await;
    });
    let timeout = Duration::from_secs(1);
    let o = probe_within(
        "query_response:\n  - expect: '^never$'\n",
        &server.url("/"),
        timeout,
    )
    .await;
    o.assert_reason("expect_failed");
    assert!(
        o.elapsed >= timeout - Duration::from_millis(100),
        "{:?}",
        o.elapsed
    );
    assert!(
        o.elapsed < timeout + Duration::from_secs(1),
        "{:?}",
        o.elapsed
    );
    assert!(phase(&o, "transfer") > 0.5, "{}", o.text);
}

/// README "Metrics": `probe_websocket_failed_due_to_regex` says a query_response
/// expect failed. An expect cut by the deadline is reported as
/// `expect_failed`, so the flag must be 1 there too.
#[tokio::test]
async fn expect_cut_by_deadline_sets_failed_due_to_regex() {
    let server = WsServer::plain(|mut s: Session| async move {
        s.send_text("hello").await;
        s.hold().await;
    });
    let o = probe_within(
        "query_response:\n  - expect: '^never$'\n",
        &server.url("/"),
        Duration::from_millis(500),
    )
    .await;
    o.assert_reason("expect_failed");
    assert_eq!(ws_value(&o, "failed_due_to_regex"), Some(1.0), "{}", o.text);
}

#[tokio::test]
async fn silent_server_after_101_cannot_stretch_the_deadline() {
    let server = WsServer::plain(Session::hold);
    let timeout = Duration::from_millis(1500);
    let o = probe_within(
        "query_response:\n  - send: hello\n  - expect: anything\n",
        &server.url("/"),
        timeout,
    )
    .await;
    assert!(!o.success);
    assert!(
        o.elapsed < timeout + Duration::from_secs(1),
        "{:?}",
        o.elapsed
    );
    o.assert_reason("expect_failed");
    assert_eq!(server.texts(), Vec::<String>::new(), "server never reads");
}

#[tokio::test]
async fn close_before_match_is_expect_failed_with_code() {
    let server =
        WsServer::plain(|s: Session| s.script(vec![Step::text("nope"), Step::Close(1001)]));
    let o = probe("query_response:\n  - expect: '^yes'\n", &server.url("/")).await;
    o.assert_reason("expect_failed");
    assert_eq!(ws_value(&o, "failed_due_to_regex"), Some(1.0));
    assert_eq!(ws_value(&o, "close_code"), Some(1001.0), "{}", o.text);
    assert!(o.elapsed < Duration::from_secs(2), "{:?}", o.elapsed);
}

#[tokio::test]
async fn connection_lost_before_match_is_expect_failed() {
    let server = WsServer::plain(|s: Session| s.script(vec![Step::text("nope"), Step::Drop]));
    let o = probe("query_response:\n  - expect: '^yes'\n", &server.url("/")).await;
    o.assert_reason("expect_failed");
    assert_eq!(ws_value(&o, "failed_due_to_regex"), Some(1.0));
    assert!(!o.metrics.has("probe_websocket_close_code"), "{}", o.text);
    assert!(o.elapsed < Duration::from_secs(2), "{:?}", o.elapsed);
}

// ---------------------------------------------------------------------------
// Network and TLS failures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn silent_tcp_is_timeout_with_processing_showing_the_wait() {
    let server = RawServer::start(RawReply::Silent);
    let timeout = Duration::from_secs(1);
    let o = probe_within("", &server.url("/"), timeout).await;
    o.assert_reason("timeout");
    assert!(
        o.elapsed < timeout + Duration::from_secs(1),
        "{:?}",
        o.elapsed
    );
    assert!(phase(&o, "processing") > 0.8, "{}", o.text);
    assert!(phase(&o, "connect") < 0.5, "{}", o.text);
    assert_eq!(ws_value(&o, "status_code"), Some(0.0));
    assert_eq!(ws_value(&o, "connection_upgraded"), Some(0.0));
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn refused_connection_is_connect_refused() {
    let addr = common::closed_addr();
    let o = probe("", &format!("ws://{addr}/")).await;
    o.assert_reason("connect_refused");
    assert_eq!(ws_value(&o, "status_code"), Some(0.0));
}

#[tokio::test]
async fn unknown_host_is_dns_error() {
    let o = probe("", "ws://no-such-host.invalid/").await;
    o.assert_reason("dns_error");
    assert_eq!(ws_value(&o, "status_code"), Some(0.0));
}

#[tokio::test]
async fn expired_cert_is_tls_cert_expired_with_its_expiry() {
    let pki = Pki::new();
    let leaf = pki.expired_leaf();
    let server = wss_echo(&leaf);
    let o = probe(&tls_block(&pki), &server.url("/")).await;
    o.assert_reason("tls_cert_expired");
    assert_eq!(
        o.value("probe_ssl_earliest_cert_expiry", &[]),
        Some(leaf.not_after() as f64),
        "{}",
        o.text
    );
    assert_eq!(ws_value(&o, "ssl"), Some(1.0));
    assert_eq!(ws_value(&o, "status_code"), Some(0.0));
}

#[tokio::test]
async fn untrusted_cert_is_tls_cert_untrusted() {
    let pki = Pki::new();
    // self-signed, with the PKI's root as the only anchor
    let server = wss_echo(&pki.self_signed_leaf());
    let o = probe(&tls_block(&pki), &server.url("/")).await;
    o.assert_reason("tls_cert_untrusted");
    // issued by a CA the system does not know
    let server = wss_echo(&pki.localhost_leaf());
    let o = probe("preferred_ip_protocol: ip4\n", &server.url("/")).await;
    o.assert_reason("tls_cert_untrusted");
}

#[tokio::test]
async fn wrong_name_is_tls_hostname_mismatch() {
    let pki = Pki::new();
    let server = wss_echo(&pki.wrong_host_leaf());
    let o = probe(&tls_block(&pki), &server.url("/")).await;
    o.assert_reason("tls_hostname_mismatch");
    assert!(
        o.metrics.has("probe_ssl_earliest_cert_expiry"),
        "{}",
        o.text
    );
}

#[tokio::test]
async fn not_yet_valid_cert_is_tls_cert_not_yet_valid() {
    let pki = Pki::new();
    let leaf = pki.not_yet_valid_leaf();
    let server = wss_echo(&leaf);
    let o = probe(&tls_block(&pki), &server.url("/")).await;
    o.assert_reason("tls_cert_not_yet_valid");
    // The certificate is still reported, and no chain was verified.
    assert_eq!(
        o.value("probe_ssl_earliest_cert_expiry", &[]),
        Some(leaf.not_after() as f64),
        "{}",
        o.text
    );
    assert_eq!(
        o.value("probe_ssl_leaf_not_before_timestamp_seconds", &[]),
        Some(leaf.not_before() as f64),
        "{}",
        o.text
    );
    assert!(
        !o.metrics
            .has("probe_ssl_last_chain_expiry_timestamp_seconds"),
        "{}",
        o.text
    );
    assert_eq!(ws_value(&o, "ssl"), Some(1.0));
    assert_eq!(ws_value(&o, "status_code"), Some(0.0));
    assert_eq!(ws_value(&o, "connection_upgraded"), Some(0.0));
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

// ---------------------------------------------------------------------------
// Success
// ---------------------------------------------------------------------------

#[tokio::test]
async fn ws_success_metrics() {
    let server = WsServer::echo();
    let o = probe("", &server.url("/chat?room=1")).await;
    o.assert_success();
    assert_eq!(ws_value(&o, "status_code"), Some(101.0));
    assert_eq!(ws_value(&o, "connection_upgraded"), Some(1.0));
    assert_eq!(ws_value(&o, "failed_due_to_regex"), Some(0.0));
    assert_eq!(ws_value(&o, "ssl"), Some(0.0));
    assert_eq!(ws_value(&o, "http_version"), Some(1.1));
    for p in PHASES {
        phase(&o, p);
    }
    assert!(phase(&o, "processing") > 0.0);
    assert!(
        !o.metrics.has("probe_ssl_earliest_cert_expiry"),
        "{}",
        o.text
    );
    assert!(!o.metrics.has("probe_websocket_subprotocol_info"));
    assert!(!o.metrics.has("probe_websocket_ping_rtt_seconds"));
    assert_eq!(o.value("probe_ip_protocol", &[]), Some(4.0));
    let req = server.request();
    assert_eq!(req.target, "/chat?room=1");
    assert_eq!(req.method, "GET");
    assert!(req.header("sec-websocket-protocol").is_none());
    let host = req.header("host").unwrap();
    assert_eq!(host, format!("127.0.0.1:{}", server.port()));
    let ua = req.header("user-agent").unwrap();
    assert!(ua.starts_with("handshake_exporter/"), "{ua}");
}

#[tokio::test]
async fn wss_success_with_ca_file_has_the_tls_family() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = wss_echo(&leaf);
    let o = probe(&tls_block(&pki), &server.url("/")).await;
    o.assert_success();
    assert_eq!(ws_value(&o, "ssl"), Some(1.0));
    assert_eq!(ws_value(&o, "status_code"), Some(101.0));
    assert_eq!(
        o.value("probe_ssl_earliest_cert_expiry", &[]),
        Some(leaf.not_after() as f64),
        "{}",
        o.text
    );
    assert_eq!(leaf.earliest_expiry(), leaf.not_after());
    for family in [
        "probe_tls_version_info",
        "probe_tls_cipher_info",
        "probe_ssl_last_chain_info",
        "probe_ssl_last_chain_expiry_timestamp_seconds",
    ] {
        assert!(o.metrics.has(family), "{family} missing:\n{}", o.text);
    }
    let fp = leaf.fingerprint_sha256();
    assert!(
        o.value(
            "probe_ssl_last_chain_info",
            &[("fingerprint_sha256", fp.as_str())]
        )
        .is_some(),
        "{}",
        o.text
    );
    for p in PHASES {
        phase(&o, p);
    }
    assert!(phase(&o, "tls") > 0.0, "{}", o.text);
}

#[tokio::test]
async fn http_and_https_targets_map_to_ws_and_wss() {
    let server = WsServer::echo();
    let o = probe("", &server.url_with_scheme("http", "/x")).await;
    o.assert_success();
    assert_eq!(ws_value(&o, "ssl"), Some(0.0));
    assert_eq!(server.request().target, "/x");

    let pki = Pki::new();
    let server = wss_echo(&pki.localhost_leaf());
    let o = probe(&tls_block(&pki), &server.url_with_scheme("https", "/y")).await;
    o.assert_success();
    assert_eq!(ws_value(&o, "ssl"), Some(1.0));
    assert_eq!(server.request().target, "/y");
}

#[tokio::test]
async fn hostname_parameter_sets_the_host_header() {
    let server = WsServer::echo();
    let o = run_in(
        Path::new("."),
        &config(""),
        "m",
        &server.url("/"),
        Some("chat.example.com"),
        Duration::from_secs(5),
    )
    .await;
    o.assert_success();
    assert_eq!(
        server.request().header("host").as_deref(),
        Some("chat.example.com")
    );
}

#[tokio::test]
async fn subprotocols_are_offered() {
    let server = WsServer::echo();
    let o = probe("subprotocols: [v12.stomp, v11.stomp]\n", &server.url("/")).await;
    // not echoed by the server: still a success (browser semantics)
    o.assert_success();
    assert!(
        !o.metrics.has("probe_websocket_subprotocol_info"),
        "{}",
        o.text
    );
    assert_eq!(
        server.request().offered_subprotocols(),
        ["v12.stomp", "v11.stomp"]
    );
}

#[tokio::test]
async fn selected_subprotocol_is_exported() {
    let server = WsServer::start(
        Options::default().subprotocol(Subprotocol::first_of(&["x", "y"])),
        Session::echo,
    );
    let o = probe(
        "subprotocols: [z, x]\nfail_if_subprotocol_not_negotiated: true\n",
        &server.url("/"),
    )
    .await;
    o.assert_success();
    assert_eq!(
        o.value("probe_websocket_subprotocol_info", &[("subprotocol", "x")]),
        Some(1.0),
        "{}",
        o.text
    );
    assert_eq!(
        o.metrics
            .samples_named("probe_websocket_subprotocol_info")
            .count(),
        1
    );
}

#[tokio::test]
async fn ping_measures_rtt() {
    let server = WsServer::echo();
    let o = probe("ping: true\n", &server.url("/")).await;
    o.assert_success();
    let rtt = ws_value(&o, "ping_rtt_seconds").expect("ping rtt");
    assert!(rtt > 0.0 && rtt < 1.0, "{rtt}");
    assert!(phase(&o, "transfer") >= rtt, "{}", o.text);
}

#[tokio::test]
async fn query_response_text_and_binary() {
    let server = WsServer::echo();
    let o = probe(
        r#"
        query_response:
          - send: '{"op":"ping"}'
          - expect: '"op":"ping"'
          - send_binary: !!binary AAEC/w==
          - expect: '(?-u:^\x00\x01\x02\xff$)'
        "#,
        &server.url("/"),
    )
    .await;
    o.assert_success();
    assert_eq!(ws_value(&o, "failed_due_to_regex"), Some(0.0));
    let messages = server.messages();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].is_text());
    assert_eq!(messages[0].to_text().unwrap(), r#"{"op":"ping"}"#);
    assert!(messages[1].is_binary());
    assert_eq!(messages[1].clone().into_data().as_ref(), &[0, 1, 2, 0xff]);
}

#[tokio::test]
async fn expect_scans_past_non_matching_messages() {
    let server = WsServer::plain(|s: Session| {
        s.greet_then_echo(&["welcome", "{\"type\":\"ka\"}", "{\"type\":\"ready\"}"])
    });
    let o = probe(
        "query_response:\n  - expect: '\"type\":\"ready\"'\n",
        &server.url("/"),
    )
    .await;
    o.assert_success();
}

#[tokio::test]
async fn captures_expand_in_expect_send_items() {
    let server = WsServer::plain(|mut s: Session| async move {
        s.send_text("token=abc123").await;
        let answer = s.recv_text().await.unwrap_or_default();
        s.send_text(&format!("got {answer}")).await;
        s.drain().await;
    });
    // blackbox master's shape: within one item, expect runs before send
    let o = probe(
        r#"
        query_response:
          - expect: 'token=(?P<tok>\w+)'
            send: 'auth ${1} $tok'
          - expect: '^got auth abc123 abc123$'
        "#,
        &server.url("/"),
    )
    .await;
    o.assert_success();
    assert_eq!(server.texts(), ["auth abc123 abc123"]);
}

#[tokio::test]
async fn origin_user_agent_and_custom_headers_are_sent() {
    let server = WsServer::echo();
    let o = probe(
        r#"
        headers:
          Origin: https://app.example.com
          User-Agent: custom-agent/1.0
          X-Custom: hello
        "#,
        &server.url("/"),
    )
    .await;
    o.assert_success();
    let req = server.request();
    assert_eq!(req.header_all("origin"), ["https://app.example.com"]);
    assert_eq!(req.header_all("user-agent"), ["custom-agent/1.0"]);
    assert_eq!(req.header_all("x-custom"), ["hello"]);
}

#[tokio::test]
async fn structured_user_agent_replaces_the_default() {
    // User-Agent is a singleton field (RFC 9110 10.1.5): the configured one
    // replaces ours, in the structured form as in the plain one.
    let server = WsServer::echo();
    let o = probe(
        "headers:\n  User-Agent:\n    values: [custom-agent/2.0]\n",
        &server.url("/"),
    )
    .await;
    o.assert_success();
    assert_eq!(
        server.request().header_all("user-agent"),
        ["custom-agent/2.0"]
    );
}

#[tokio::test]
async fn basic_auth_is_sent() {
    let server = WsServer::echo();
    let o = probe(
        "basic_auth:\n  username: alice\n  password: s3cret\n",
        &server.url("/"),
    )
    .await;
    o.assert_success();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
    );
    assert_eq!(server.request().header_all("authorization"), [expected]);
}

#[tokio::test]
async fn bearer_token_is_sent() {
    let server = WsServer::echo();
    let o = probe("bearer_token: tok-123\n", &server.url("/")).await;
    o.assert_success();
    assert_eq!(
        server.request().header_all("authorization"),
        ["Bearer tok-123"]
    );
}

#[tokio::test]
async fn structured_headers_values_secrets_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token.txt"), "from-file\n").unwrap();
    let server = WsServer::echo();
    let block = r#"
        headers:
          X-Values:
            values: [a, b]
          X-Secret:
            secrets: [hunter2]
          X-File:
            files: [token.txt]
        "#;
    let o = run_in(
        dir.path(),
        &config(block),
        "m",
        &server.url("/"),
        None,
        Duration::from_secs(5),
    )
    .await;
    o.assert_success();
    let req = server.request();
    assert_eq!(req.header_all("x-values"), ["a", "b"]);
    assert_eq!(req.header_all("x-secret"), ["hunter2"]);
    assert_eq!(req.header_all("x-file"), ["from-file"]);
}

#[tokio::test]
async fn blackbox_master_http_config_module() {
    // The shape of blackbox_exporter master's websocket prober: nested
    // http_config, structured headers, {expect, send} items.
    let pki = Pki::new();
    let server = WsServer::start(
        Options::default().tls(Tls::http1_only(&pki.localhost_leaf())),
        |s: Session| s.greet_then_echo(&["hello from server"]),
    );
    let block = format!(
        r#"
        preferred_ip_protocol: ip4
        http_config:
          basic_auth:
            username: bob
            password: pw
          tls_config:
            ca_file: {:?}
        headers:
          X-Some-Header:
            values: [my_header]
        query_response:
          - expect: "^hello from (\\w+)"
            send: "hi ${{1}}"
          - expect: "^hi server$"
        "#,
        pki.ca_file().display().to_string()
    );
    let o = probe(&block, &server.url("/")).await;
    o.assert_success();
    assert_eq!(ws_value(&o, "ssl"), Some(1.0));
    let req = server.request();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bob:pw")
    );
    assert_eq!(req.header_all("authorization"), [expected]);
    assert_eq!(req.header_all("x-some-header"), ["my_header"]);
    assert_eq!(server.texts(), ["hi server"]);
}

#[tokio::test]
async fn close_code_of_a_clean_close_is_exported() {
    // tungstenite echoes our 1000
    let server = WsServer::echo();
    let o = probe("", &server.url("/")).await;
    o.assert_success();
    assert_eq!(ws_value(&o, "close_code"), Some(1000.0), "{}", o.text);

    // a server that answers our close with another code
    let server = WsServer::plain(|s: Session| s.answer_close_with(1001));
    let o = probe("", &server.url("/")).await;
    o.assert_success();
    assert_eq!(ws_value(&o, "close_code"), Some(1001.0), "{}", o.text);
}

#[tokio::test]
async fn script_server_checks_what_the_probe_sends() {
    let server = WsServer::plain(|s: Session| {
        s.script(vec![
            Step::text("READY"),
            Step::expect("^SUBSCRIBE news$"),
            Step::text("SUBSCRIBED news"),
        ])
    });
    let o = probe(
        "query_response:\n  - expect: ^READY$\n  - send: SUBSCRIBE news\n  - expect: ^SUBSCRIBED\n",
        &server.url("/"),
    )
    .await;
    o.assert_success();

    // a wrong message makes the script server close with 1008
    let o = probe(
        "query_response:\n  - expect: ^READY$\n  - send: SUBSCRIBE sports\n  - expect: ^SUBSCRIBED\n",
        &server.url("/"),
    )
    .await;
    o.assert_reason("expect_failed");
    assert_eq!(ws_value(&o, "close_code"), Some(1008.0), "{}", o.text);
}

// ---------------------------------------------------------------------------
// TLS settings: skip verification, server name
// ---------------------------------------------------------------------------

#[tokio::test]
async fn insecure_skip_verify_accepts_a_self_signed_cert_without_a_verified_chain() {
    let pki = Pki::new();
    let leaf = pki.self_signed_leaf();
    let server = wss_echo(&leaf);
    let o = probe(
        "preferred_ip_protocol: ip4\ntls_config:\n  insecure_skip_verify: true\n",
        &server.url("/"),
    )
    .await;
    o.assert_success();
    assert_eq!(ws_value(&o, "ssl"), Some(1.0));
    assert_eq!(ws_value(&o, "status_code"), Some(101.0));
    // What the server presented is reported ...
    assert_eq!(
        o.value("probe_ssl_earliest_cert_expiry", &[]),
        Some(leaf.not_after() as f64),
        "{}",
        o.text
    );
    assert!(o.metrics.has("probe_tls_version_info"), "{}", o.text);
    // ... but nothing was verified, so no verified-chain expiry (never
    // blackbox's negative zero time).
    assert!(
        !o.metrics
            .has("probe_ssl_last_chain_expiry_timestamp_seconds"),
        "{}",
        o.text
    );
    for s in &o.metrics.samples {
        assert!(s.value >= 0.0, "negative value {s}");
    }
    server.request();
}

#[tokio::test]
async fn tls_config_server_name_sets_sni_and_verification_name() {
    let pki = Pki::new();
    // Only the name: an IP-literal target does not match it.
    let leaf = pki.leaf(&["ws.example.test"], &[], Validity::default());
    let resolver = Arc::new(SniResolver::new(&leaf));
    let config = ServerTls::new(&leaf)
        .resolver(resolver.clone())
        .alpn(&["http/1.1"])
        .build();
    let server = WsServer::start(Options::default().server_config(config), Session::echo);
    let target = server.url_with_host("127.0.0.1", "/");
    let block = format!(
        "preferred_ip_protocol: ip4\ntls_config:\n  ca_file: {:?}\n  server_name: ws.example.test\n",
        pki.ca_file().display().to_string()
    );
    let o = probe(&block, &target).await;
    o.assert_success();
    assert_eq!(ws_value(&o, "ssl"), Some(1.0));
    assert_eq!(resolver.seen(), [Some("ws.example.test".to_string())]);
    // server_name is TLS only: Host stays the target's.
    assert_eq!(
        server.request().header("host"),
        Some(format!("127.0.0.1:{}", server.port()))
    );

    // Without it: no SNI for the IP literal, and the name does not match.
    let o = probe(&tls_block(&pki), &target).await;
    o.assert_reason("tls_hostname_mismatch");
    assert_eq!(resolver.seen(), [Some("ws.example.test".to_string()), None]);
}

// ---------------------------------------------------------------------------
// Proxies: ws and wss both go through a CONNECT tunnel
// ---------------------------------------------------------------------------

#[tokio::test]
async fn proxy_url_tunnels_ws_with_connect() {
    let proxy = Proxy::start().await;
    let server = WsServer::echo();
    let proxy_url = format!("http://u:p@127.0.0.1:{}", proxy.port());
    let o = probe(
        &format!("proxy_url: {proxy_url}\nping: true\n"),
        &server.url("/chat?room=1"),
    )
    .await;
    o.assert_success();
    assert_eq!(ws_value(&o, "status_code"), Some(101.0));
    assert_eq!(ws_value(&o, "connection_upgraded"), Some(1.0));
    assert_eq!(ws_value(&o, "ssl"), Some(0.0));
    assert!(ws_value(&o, "ping_rtt_seconds").is_some(), "{}", o.text);
    proxy.assert_one_head_as_u_p(&format!("CONNECT 127.0.0.1:{} HTTP/1.1", server.port()));
    // The upgrade went through the tunnel in origin form, and the proxy
    // credentials stayed with the proxy.
    let req = server.request();
    assert_eq!(req.target, "/chat?room=1");
    assert_eq!(req.header("upgrade").as_deref(), Some("websocket"));
    assert_eq!(
        req.header("host"),
        Some(format!("127.0.0.1:{}", server.port()))
    );
    assert!(req.header("proxy-authorization").is_none(), "{req:?}");
}

#[tokio::test]
async fn proxy_url_tunnels_wss_with_tls_inside_the_tunnel() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = wss_echo(&leaf);
    let proxy = Proxy::start().await;
    let o = probe(
        &format!("proxy_url: {}\n{}", proxy.url(), tls_block(&pki)),
        &server.url("/secure"),
    )
    .await;
    o.assert_success();
    let heads = proxy.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        heads[0].starts_with(&format!("CONNECT localhost:{} HTTP/1.1\r\n", server.port())),
        "{heads:?}"
    );
    assert_eq!(server.request().target, "/secure");
    // TLS end to end with the server, through the tunnel.
    assert_eq!(ws_value(&o, "ssl"), Some(1.0));
    assert_eq!(ws_value(&o, "status_code"), Some(101.0));
    assert_eq!(
        o.value("probe_ssl_earliest_cert_expiry", &[]),
        Some(leaf.not_after() as f64),
        "{}",
        o.text
    );
    for family in [
        "probe_tls_version_info",
        "probe_tls_cipher_info",
        "probe_ssl_last_chain_info",
        "probe_ssl_last_chain_expiry_timestamp_seconds",
    ] {
        assert!(o.metrics.has(family), "{family} missing:\n{}", o.text);
    }
    assert!(phase(&o, "tls") > 0.0, "{}", o.text);
}

#[tokio::test]
async fn no_proxy_bypasses_the_proxy_for_a_ws_target() {
    let proxy = Proxy::start().await;
    let server = WsServer::echo();
    // no_proxy is a key of the nested client config (`http_config:`).
    let block = |no_proxy: &str| {
        format!(
            "http_config:\n  proxy_url: {}\n  no_proxy: '{no_proxy}'\n",
            proxy.url()
        )
    };
    for no_proxy in ["127.0.0.1", "127.0.0.0/8", "localhost,127.0.0.1"] {
        let o = probe(&block(no_proxy), &server.url("/direct")).await;
        o.assert_success();
    }
    assert!(proxy.heads().is_empty(), "{:?}", proxy.heads());
    assert_eq!(server.requests().len(), 3);

    // A no_proxy entry for another host leaves the proxy in use.
    let o = probe(&block("example.com"), &server.url("/proxied")).await;
    o.assert_success();
    let heads = proxy.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(heads[0].starts_with("CONNECT 127.0.0.1:"), "{heads:?}");
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn proxy_refusing_connect_is_a_network_error() {
    let refusing = RawServer::start(RawReply::status(403));
    let server = WsServer::echo();
    let o = probe(
        &format!("proxy_url: http://127.0.0.1:{}\n", refusing.port()),
        &server.url("/"),
    )
    .await;
    // connect_tunnel: any answer to CONNECT but 200 is a network_error.
    o.assert_reason("network_error");
    assert!(o.log.contains("proxy refused CONNECT"), "{}", o.log);
    assert_eq!(ws_value(&o, "status_code"), Some(0.0), "{}", o.text);
    assert_eq!(ws_value(&o, "connection_upgraded"), Some(0.0));
    let seen = refusing.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, format!("127.0.0.1:{}", server.port()));
    assert_eq!(server.connections(), 0);
}
