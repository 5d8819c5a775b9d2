//! The app-protocol modules of `examples/websocket_apps.yml`, each run
//! against a small fake that speaks that protocol's first exchange (and
//! checks what the probe sent), plus one way each protocol says "no".

use std::path::{Path, PathBuf};
use std::time::Duration;

use handshake_exporter::prober::load_file;
use handshake_exporter::prober::{Config, ProberSettings};
use http::StatusCode;
use regex::Regex;

use crate::common;
use crate::common::probe::{self, Outcome};
use crate::common::ws_server::{Options, Session, Subprotocol, WsServer};

const MODULES: &[&str] = &[
    "graphql_transport_ws",
    "socketio",
    "stomp",
    "phoenix",
    "mqtt",
];

fn examples_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/websocket_apps.yml")
}

fn examples() -> Config {
    let path = examples_path();
    load_file(&path).unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()))
}

/// Runs `module` of the examples file against `target`, with the module's
/// timeout capped at `cap`.
async fn run_module(module: &str, target: &str, cap: Duration) -> Outcome {
    let config = examples();
    let module = config
        .modules
        .get(module)
        .unwrap_or_else(|| panic!("no module {module} in the examples"))
        .clone();
    let timeout = module.timeout.unwrap_or(cap).min(cap);
    probe::run_module(&module, target, None, timeout).await
}

async fn run(module: &str, target: &str) -> Outcome {
    run_module(module, target, Duration::from_secs(5)).await
}

/// For fakes that keep the connection open after saying no: the probe
/// waits for its expect until this deadline.
const SHORT: Duration = Duration::from_millis(800);

#[test]
fn examples_load_with_every_module() {
    let config = examples();
    for name in MODULES {
        let module = config
            .modules
            .get(*name)
            .unwrap_or_else(|| panic!("module {name} missing"));
        let ProberSettings::WebSocket(s) = &module.prober else {
            panic!("{name} is not a websocket module");
        };
        assert!(!s.query_response.is_empty(), "{name} has no exchange");
        assert_eq!(module.timeout, Some(Duration::from_secs(5)), "{name}");
    }
    assert_eq!(config.modules.len(), MODULES.len());
}

// ---------------------------------------------------------------------------
// graphql-transport-ws
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Graphql {
    Ack,
    /// The legacy protocol's refusal, then close 4403 Forbidden.
    ConnectionError,
}

/// A graphql-ws (library) server: requires the subprotocol, then
/// ConnectionInit → ConnectionAck.
async fn graphql_session(mut s: Session, mode: Graphql) {
    if s.subprotocol.as_deref() != Some("graphql-transport-ws") {
        return s.close_with(4406, "Subprotocol not acceptable").await;
    }
    let init = Regex::new(r#"^\{\s*"type"\s*:\s*"connection_init""#).unwrap();
    match s.recv_text().await {
        Some(m) if init.is_match(&m) => {}
        Some(_) => return s.close_with(4400, "Invalid message received").await,
        None => return,
    }
    match mode {
        Graphql::Ack => {
            s.send_text(r#"{"type":"connection_ack"}"#).await;
            s.drain().await;
        }
        Graphql::ConnectionError => {
            s.send_text(r#"{"type":"connection_error","payload":{"message":"Unauthorized"}}"#)
                .await;
            s.close_with(4403, "Forbidden").await;
        }
    }
}

fn graphql_server(subprotocol: Subprotocol, mode: Graphql) -> WsServer {
    WsServer::start(Options::default().subprotocol(subprotocol), move |s| {
        graphql_session(s, mode)
    })
}

fn graphql_subprotocols() -> Subprotocol {
    Subprotocol::first_of(&["graphql-transport-ws", "graphql-ws"])
}

#[tokio::test]
async fn graphql_transport_ws_acks() {
    let server = graphql_server(graphql_subprotocols(), Graphql::Ack);
    let o = run("graphql_transport_ws", &server.url("/graphql")).await;
    o.assert_success();
    assert_eq!(
        o.value(
            "probe_websocket_subprotocol_info",
            &[("subprotocol", "graphql-transport-ws")]
        ),
        Some(1.0)
    );
    assert_eq!(
        server.request().offered_subprotocols(),
        ["graphql-transport-ws"]
    );
    assert_eq!(
        server.texts(),
        [r#"{"type":"connection_init","payload":{}}"#]
    );
}

#[tokio::test]
async fn graphql_connection_error_is_expect_failed() {
    let server = graphql_server(graphql_subprotocols(), Graphql::ConnectionError);
    let o = run("graphql_transport_ws", &server.url("/graphql")).await;
    o.assert_reason("expect_failed");
    assert_eq!(
        o.value("probe_websocket_close_code", &[]),
        Some(4403.0),
        "{}",
        o.text
    );
}

#[tokio::test]
async fn graphql_endpoint_without_the_subprotocol_is_mismatch() {
    // e.g. a plain WebSocket endpoint mounted where the GraphQL one should be
    let server = graphql_server(Subprotocol::Omit, Graphql::Ack);
    let o = run("graphql_transport_ws", &server.url("/graphql")).await;
    o.assert_reason("subprotocol_mismatch");
}

// ---------------------------------------------------------------------------
// Socket.IO over Engine.IO v4
// ---------------------------------------------------------------------------

const SOCKETIO_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// Engine.IO refuses other protocol versions and transports with 400.
fn engineio_check(r: &common::ws_server::SeenRequest) -> Result<(), (StatusCode, String)> {
    let q = r.query_pairs();
    let has = |k: &str, v: &str| q.iter().any(|(qk, qv)| qk == k && qv == v);
    if r.path() != "/socket.io/" {
        return Err((StatusCode::NOT_FOUND, "Not Found".into()));
    }
    if !has("EIO", "4") {
        return Err((
            StatusCode::BAD_REQUEST,
            r#"{"code":5,"message":"Unsupported protocol version"}"#.into(),
        ));
    }
    if !has("transport", "websocket") {
        return Err((
            StatusCode::BAD_REQUEST,
            r#"{"code":0,"message":"Transport unknown"}"#.into(),
        ));
    }
    Ok(())
}

fn socketio_server(accept: bool) -> WsServer {
    WsServer::start(
        Options::default().check(engineio_check),
        move |mut s: Session| async move {
            s.send_text(
                r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
            )
            .await;
            let connect = Regex::new(r"^40(\{.*\})?$").unwrap();
            while let Some(m) = s.recv_text().await {
                if !connect.is_match(&m) {
                    continue;
                }
                if accept {
                    s.send_text(r#"40{"sid":"wZX3oN0bSVIhsaknAAAI"}"#).await;
                } else {
                    s.send_text(r#"44{"message":"Not authorized"}"#).await;
                }
            }
        },
    )
}

#[tokio::test]
async fn socketio_connects_to_the_main_namespace() {
    let server = socketio_server(true);
    let o = run("socketio", &server.url(SOCKETIO_PATH)).await;
    o.assert_success();
    assert_eq!(server.request().target, SOCKETIO_PATH);
    assert_eq!(server.texts(), ["40"]);
}

#[tokio::test]
async fn socketio_connect_error_is_expect_failed() {
    let server = socketio_server(false);
    let o = run_module("socketio", &server.url(SOCKETIO_PATH), SHORT).await;
    o.assert_reason("expect_failed");
    assert!(
        o.elapsed < SHORT + Duration::from_secs(1),
        "{:?}",
        o.elapsed
    );
    assert_eq!(server.texts(), ["40"]);
}

#[tokio::test]
async fn socketio_wrong_engineio_version_is_upgrade_rejected() {
    let server = socketio_server(true);
    let o = run(
        "socketio",
        &server.url("/socket.io/?EIO=3&transport=websocket"),
    )
    .await;
    o.assert_reason("upgrade_rejected");
    assert_eq!(o.value("probe_websocket_status_code", &[]), Some(400.0));
}

// ---------------------------------------------------------------------------
// STOMP 1.2
// ---------------------------------------------------------------------------

const STOMP_CONNECT: &str = "CONNECT\naccept-version:1.2\nhost:localhost\n\n\0";

/// A STOMP CONNECT/STOMP frame: command, headers; None when malformed.
fn parse_stomp(frame: &str) -> Option<(String, Vec<(String, String)>)> {
    let frame = frame.strip_suffix('\0')?;
    let (head, _body) = frame.split_once("\n\n")?;
    let mut lines = head.lines();
    let command = lines.next()?.trim_end_matches('\r').to_string();
    let headers = lines
        .map(|l| {
            let (k, v) = l.trim_end_matches('\r').split_once(':')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((command, headers))
}

fn stomp_server(accept: bool) -> WsServer {
    WsServer::start(
        Options::default().subprotocol(Subprotocol::first_of(&[
            "v12.stomp",
            "v11.stomp",
            "v10.stomp",
        ])),
        move |mut s: Session| async move {
            let Some(frame) = s.recv_text().await else {
                return;
            };
            let header = |headers: &[(String, String)], k: &str| {
                headers
                    .iter()
                    .find(|(hk, _)| hk == k)
                    .map(|(_, v)| v.clone())
            };
            let valid = match parse_stomp(&frame) {
                Some((cmd, h)) => {
                    (cmd == "CONNECT" || cmd == "STOMP")
                        && header(&h, "accept-version")
                            .is_some_and(|v| v.split(',').any(|v| v == "1.2"))
                        && header(&h, "host").is_some()
                }
                None => false,
            };
            if valid && accept {
                s.send_text("CONNECTED\nversion:1.2\nheart-beat:0,0\nserver:fake-broker/1.0\n\n\0")
                    .await;
                s.drain().await;
            } else {
                let why = if valid {
                    "Access refused for user 'guest'"
                } else {
                    "malformed CONNECT frame"
                };
                s.send_text(&format!(
                    "ERROR\nmessage:Bad CONNECT\ncontent-type:text/plain\n\n{why}\0"
                ))
                .await;
                // STOMP: the server closes the connection after an ERROR
                s.close_with(1000, "").await;
            }
        },
    )
}

#[tokio::test]
async fn stomp_connects() {
    let server = stomp_server(true);
    let o = run("stomp", &server.url("/ws")).await;
    o.assert_success();
    assert_eq!(
        o.value(
            "probe_websocket_subprotocol_info",
            &[("subprotocol", "v12.stomp")]
        ),
        Some(1.0)
    );
    // the YAML escapes produced the exact frame, NUL included
    assert_eq!(server.texts(), [STOMP_CONNECT]);
}

#[tokio::test]
async fn stomp_error_frame_is_expect_failed() {
    let server = stomp_server(false);
    let o = run("stomp", &server.url("/ws")).await;
    o.assert_reason("expect_failed");
    assert_eq!(
        o.value("probe_websocket_failed_due_to_regex", &[]),
        Some(1.0)
    );
    assert!(o.elapsed < Duration::from_secs(2), "{:?}", o.elapsed);
}

// ---------------------------------------------------------------------------
// Phoenix Channels (v2 serializer)
// ---------------------------------------------------------------------------

const PHOENIX_PATH: &str = "/socket/websocket?vsn=2.0.0";

/// A Phoenix endpoint: v2 JSON arrays; a heartbeat on "phoenix" gets a
/// phx_reply with the same ref. Payload keys in Jason's order (sorted).
fn phoenix_server(status: &'static str) -> WsServer {
    let check = |r: &common::ws_server::SeenRequest| {
        let vsn2 = r
            .query_pairs()
            .iter()
            .any(|(k, v)| k == "vsn" && v.starts_with("2."));
        if r.path() == "/socket/websocket" && vsn2 {
            Ok(())
        } else {
            Err((StatusCode::BAD_REQUEST, "unsupported serializer".into()))
        }
    };
    WsServer::start(
        Options::default().check(check),
        move |mut s: Session| async move {
            let msg = Regex::new(r#"^\[(null|"[^"]*"),"([^"]*)","([^"]*)","([^"]*)",(\{.*\})\]$"#)
                .unwrap();
            while let Some(m) = s.recv_text().await {
                let Some(c) = msg.captures(&m) else {
                    return s.close_with(1003, "invalid message").await;
                };
                let (join_ref, msg_ref, topic, event) = (&c[1], &c[2], &c[3], &c[4]);
                if topic == "phoenix" && event == "heartbeat" {
                    let response = if status == "ok" {
                        "{}"
                    } else {
                        r#"{"reason":"unmatched topic"}"#
                    };
                    s.send_text(&format!(
                        r#"[{join_ref},"{msg_ref}","phoenix","phx_reply",{{"response":{response},"status":"{status}"}}]"#
                    ))
                    .await;
                }
            }
        },
    )
}

#[tokio::test]
async fn phoenix_heartbeat_is_answered() {
    let server = phoenix_server("ok");
    let o = run("phoenix", &server.url(PHOENIX_PATH)).await;
    o.assert_success();
    assert_eq!(server.texts(), [r#"[null,"1","phoenix","heartbeat",{}]"#]);
}

#[tokio::test]
async fn phoenix_error_reply_is_expect_failed() {
    let server = phoenix_server("error");
    let o = run_module("phoenix", &server.url(PHOENIX_PATH), SHORT).await;
    o.assert_reason("expect_failed");
    assert!(
        o.elapsed < SHORT + Duration::from_secs(1),
        "{:?}",
        o.elapsed
    );
}

// ---------------------------------------------------------------------------
// MQTT 3.1.1
// ---------------------------------------------------------------------------

/// The CONNECT packet of the example (29 bytes).
const MQTT_CONNECT: &[u8] = b"\x10\x1b\x00\x04MQTT\x04\x02\x00\x3c\x00\x0fhandshake-probe";

/// Parses an MQTT 3.1.1 CONNECT packet; returns the client id.
fn parse_mqtt_connect(p: &[u8]) -> Option<String> {
    if *p.first()? != 0x10 {
        return None;
    }
    // remaining length: base-128 varint, at most 4 bytes
    let (mut len, mut mult, mut i) = (0usize, 1usize, 1usize);
    loop {
        let b = *p.get(i)?;
        len += usize::from(b & 0x7f) * mult;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        mult *= 128;
        if i > 4 {
            return None;
        }
    }
    let rest = p.get(i..)?;
    if rest.len() != len {
        return None;
    }
    let (name, rest) = (rest.get(..6)?, rest.get(6..)?);
    if name != b"\x00\x04MQTT" || *rest.first()? != 4 {
        return None;
    }
    let flags = *rest.get(1)?;
    if flags & 0x01 != 0 {
        return None; // reserved bit
    }
    let id_len = usize::from(u16::from_be_bytes([*rest.get(4)?, *rest.get(5)?]));
    let id = rest.get(6..6 + id_len)?;
    String::from_utf8(id.to_vec()).ok()
}

fn mqtt_server(return_code: u8) -> WsServer {
    WsServer::start(
        Options::default().subprotocol(Subprotocol::first_of(&["mqtt"])),
        move |mut s: Session| async move {
            let Some(packet) = s.recv().await else {
                return;
            };
            // MQTT over WebSocket is binary frames only; anything but a valid
            // CONNECT is a protocol violation: the broker just disconnects.
            if !packet.is_binary() || parse_mqtt_connect(&packet.into_data()).is_none() {
                return;
            }
            s.send_binary(&[0x20, 0x02, 0x00, return_code]).await;
            if return_code != 0 {
                // a refused CONNECT: the broker closes the connection
                return;
            }
            s.drain().await;
        },
    )
}

#[test]
fn mqtt_connect_of_the_example_parses() {
    assert_eq!(MQTT_CONNECT.len(), 29);
    assert_eq!(
        parse_mqtt_connect(MQTT_CONNECT).as_deref(),
        Some("handshake-probe")
    );
    assert_eq!(parse_mqtt_connect(&MQTT_CONNECT[..20]), None);
}

#[tokio::test]
async fn mqtt_connack_accepted() {
    let server = mqtt_server(0);
    let o = run("mqtt", &server.url("/mqtt")).await;
    o.assert_success();
    assert_eq!(
        o.value(
            "probe_websocket_subprotocol_info",
            &[("subprotocol", "mqtt")]
        ),
        Some(1.0)
    );
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].is_binary());
    assert_eq!(messages[0].clone().into_data().as_ref(), MQTT_CONNECT);
}

#[tokio::test]
async fn mqtt_connack_not_authorized_is_expect_failed() {
    let server = mqtt_server(5);
    let o = run("mqtt", &server.url("/mqtt")).await;
    o.assert_reason("expect_failed");
    assert_eq!(
        o.value("probe_websocket_failed_due_to_regex", &[]),
        Some(1.0)
    );
    assert!(o.elapsed < Duration::from_secs(2), "{:?}", o.elapsed);
}
