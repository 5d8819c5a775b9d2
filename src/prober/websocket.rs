//! `prober: websocket` — the real browser handshake, measured phase by
//! phase, with a reason when it fails.
//!
//! The HTTP/1.1 upgrade is done with hyper over the stream we dialled, so a
//! non-101 answer keeps its status and headers (that is what tells a proxy
//! that dropped `Upgrade` from a backend that is down). The 101 is checked
//! here (`Sec-WebSocket-Accept`, `Upgrade`, `Connection`, subprotocol) with
//! browser semantics — a server that does not echo an offered subprotocol is
//! accepted unless the module requires one — and the upgraded stream is then
//! handed to tungstenite for the message exchange, ping and close.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderMap, HeaderValue};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, frame::coding::CloseCode};
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key};

use super::address;
use super::http::client::{ConnectionTask, connect_tunnel, hyper_failure, proxy_for};
use super::http::request::{
    append_extra_headers, authority, authorization_value, default_user_agent,
};
use super::metrics::{GaugeSpec, Presence};
use super::reason::{FailureReason, ProbeFailure};
use super::tcp::Stream;
use super::{ProbeContext, tls_metrics};
use crate::config::model::{WebSocketSettings, WsStep};
use crate::net::{dial, resolve, tls::Alpn};

pub static WS_DURATION: GaugeSpec = GaugeSpec {
    name: "probe_websocket_duration_seconds",
    help: "Duration of the WebSocket probe by phase",
    presence: Presence::Always,
    label_names: &["phase"],
    initial: &[&["connect"], &["processing"], &["tls"], &["transfer"]],
};
pub static STATUS_CODE: GaugeSpec = GaugeSpec::always(
    "probe_websocket_status_code",
    "HTTP status code of the WebSocket handshake response, 0 if none",
);
pub static CONNECTION_UPGRADED: GaugeSpec = GaugeSpec::always(
    "probe_websocket_connection_upgraded",
    "Whether the connection was upgraded to a WebSocket",
);
pub static FAILED_DUE_TO_REGEX: GaugeSpec = GaugeSpec::always(
    "probe_websocket_failed_due_to_regex",
    "Whether a query_response expect failed",
);
pub static SSL: GaugeSpec = GaugeSpec::always(
    "probe_websocket_ssl",
    "Whether the WebSocket connection used TLS (wss)",
);
pub static HTTP_VERSION: GaugeSpec = GaugeSpec::when_set(
    "probe_websocket_http_version",
    "HTTP version of the handshake: 1.1, or 2 for RFC 8441 WebSockets over HTTP/2",
);
pub static SUBPROTOCOL_INFO: GaugeSpec = GaugeSpec::labelled(
    "probe_websocket_subprotocol_info",
    "The subprotocol the server selected",
    &["subprotocol"],
);
pub static PING_RTT: GaugeSpec = GaugeSpec::when_set(
    "probe_websocket_ping_rtt_seconds",
    "Round trip time of a WebSocket ping/pong",
);
pub static CLOSE_CODE: GaugeSpec = GaugeSpec::when_set(
    "probe_websocket_close_code",
    "Close code the server sent, when it sent one",
);

pub static METRICS: &[&[&GaugeSpec]] = &[
    address::METRICS,
    tls_metrics::METRICS,
    &[
        &WS_DURATION,
        &STATUS_CODE,
        &CONNECTION_UPGRADED,
        &FAILED_DUE_TO_REGEX,
        &SSL,
        &HTTP_VERSION,
        &SUBPROTOCOL_INFO,
        &PING_RTT,
        &CLOSE_CODE,
    ],
];

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

fn fail(reason: FailureReason, msg: impl Into<String>) -> ProbeFailure {
    ProbeFailure::new(reason, msg)
}

/// Parse a websocket target; `http(s)://` maps to `ws(s)://`.
pub fn parse_target(target: &str) -> Result<url::Url, ProbeFailure> {
    let url = url::Url::parse(target).map_err(|e| {
        fail(
            FailureReason::InvalidTarget,
            format!("Could not parse target URL {target:?}: {e}"),
        )
    })?;
    let secure = match url.scheme() {
        "ws" | "http" => false,
        "wss" | "https" => true,
        other => {
            return Err(fail(
                FailureReason::InvalidTarget,
                format!("unsupported scheme {other:?}: use ws://, wss://, http:// or https://"),
            ));
        }
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Err(fail(
            FailureReason::InvalidTarget,
            format!("target {target:?} has no host"),
        ));
    }
    // set_scheme refuses special→non-special changes: rebuild instead. The
    // default ports of ws/wss equal those of http/https.
    let rebuilt = format!(
        "{}://{}{}",
        if secure { "wss" } else { "ws" },
        &url[url::Position::BeforeUsername..url::Position::AfterPort],
        &url[url::Position::BeforePath..]
    );
    let url = url::Url::parse(&rebuilt)
        .map_err(|e| fail(FailureReason::InvalidTarget, format!("{e}")))?;
    Ok(url)
}

/// The status of a refused upgrade, as a reason.
pub fn classify_status(status: u16) -> FailureReason {
    match status {
        502..=504 => FailureReason::UpstreamUnavailable,
        400..=499 => FailureReason::UpgradeRejected,
        500..=599 => FailureReason::ServerError,
        _ => FailureReason::UpgradeIgnored,
    }
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .unwrap_or_default()
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// Where a probe connects, computed once (a fallback to HTTP/1.1 after a
/// failed RFC 8441 attempt dials the same endpoint again).
struct Endpoint {
    url: url::Url,
    secure: bool,
    host: String,
    port: u16,
    host_header: String,
    server_name: String,
    dial_addr: SocketAddr,
    proxy_url: Option<url::Url>,
}

pub async fn probe(
    cx: &ProbeContext<'_>,
    target: &str,
    s: &WebSocketSettings,
) -> Result<(), ProbeFailure> {
    let url = parse_target(target)?;
    let secure = url.scheme() == "wss";
    let host = resolve::unbracket(url.host_str().unwrap_or_default()).to_string();
    let port = url
        .port_or_known_default()
        .unwrap_or(if secure { 443 } else { 80 });
    let host_header = cx
        .hostname
        .map(str::to_string)
        .unwrap_or_else(|| authority(&url));
    cx.metrics.set(&SSL, if secure { 1.0 } else { 0.0 });

    // resolve (through an HTTP proxy with CONNECT when configured)
    let proxy_url = proxy_for(&http_equivalent(&url), s.client.proxy.as_ref());
    let target_ip = address::resolve_target(cx, &host, s.address, Some(&WS_DURATION)).await?;
    let dial_addr = match &proxy_url {
        Some(p) => {
            let phost = resolve::unbracket(p.host_str().unwrap_or_default()).to_string();
            let ip = resolve::resolve(&phost, s.address).await?;
            SocketAddr::new(ip, p.port_or_known_default().unwrap_or(80))
        }
        None => SocketAddr::new(target_ip, port),
    };
    let server_name = s.client.tls.server_name_for(cx.hostname, &host);
    let ep = Endpoint {
        url,
        secure,
        host,
        port,
        host_header,
        server_name,
        dial_addr,
        proxy_url,
    };

    let want_h2 = secure && s.client.enable_http2;
    let alpn = if want_h2 {
        Alpn::H2AndHttp1
    } else {
        Alpn::Http1
    };
    let (stream, h2) = open(cx, s, &ep, alpn).await?;
    let (mut ws, _connection) = if h2 {
        let processing = cx.phase(&WS_DURATION, "processing");
        let attempt = upgrade_h2(cx, s, &ep, stream).await?;
        processing.finish();
        match attempt {
            Some(upgraded) => upgraded,
            None => {
                // As browsers do: a server whose h2 connection cannot carry
                // WebSockets gets an HTTP/1.1 connection of its own.
                cx.log.info(
                    "Server did not enable extended CONNECT (RFC 8441): retrying over HTTP/1.1",
                    &[],
                );
                let (stream, _) = open(cx, s, &ep, Alpn::Http1).await?;
                upgrade_http1(cx, s, &ep, stream).await?
            }
        }
    } else {
        upgrade_http1(cx, s, &ep, stream).await?
    };
    cx.metrics.set(&CONNECTION_UPGRADED, 1.0);

    let transfer = cx.phase(&WS_DURATION, "transfer");
    let result = exchange(cx, s, &mut ws).await;
    if result.is_ok() {
        close(cx, &mut ws).await;
    }
    transfer.finish();
    result
}

/// Connect (through the proxy tunnel if any) and, for wss, run TLS with the
/// given ALPN offer. Returns the stream and whether h2 was negotiated.
async fn open(
    cx: &ProbeContext<'_>,
    s: &WebSocketSettings,
    ep: &Endpoint,
    alpn: Alpn,
) -> Result<(Box<dyn Stream>, bool), ProbeFailure> {
    let connect = cx.phase(&WS_DURATION, "connect");
    let tcp = dial::connect(ep.dial_addr, None).await?;
    let mut stream: Box<dyn Stream> = Box::new(tcp);
    if let Some(p) = &ep.proxy_url {
        let authority = match ep.url.host() {
            Some(url::Host::Ipv6(v6)) => format!("[{v6}]:{}", ep.port),
            _ => format!("{}:{}", ep.host, ep.port),
        };
        connect_tunnel(stream.as_mut(), &authority, p, &s.client).await?;
    }
    connect.finish();
    cx.log.info("Connected", &[("address", &ep.dial_addr)]);
    if !ep.secure {
        return Ok((stream, false));
    }
    let handshake = cx.phase(&WS_DURATION, "tls");
    let tls = tls_metrics::handshake(cx, &s.client.tls, stream, &ep.server_name, alpn).await?;
    handshake.finish();
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    Ok((Box::new(tls), h2))
}

/// The http(s) form of a ws(s) URL (for proxy selection).
fn http_equivalent(url: &url::Url) -> url::Url {
    let scheme = if url.scheme() == "wss" {
        "https"
    } else {
        "http"
    };
    let s = format!("{scheme}{}", &url.as_str()[url.scheme().len()..]);
    url::Url::parse(&s).unwrap_or_else(|_| url.clone())
}

/// The request path with query.
fn path_and_query(url: &url::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Headers both handshakes send: User-Agent, the module's headers, auth,
/// Sec-WebSocket-Version and the offered subprotocols.
async fn handshake_headers(s: &WebSocketSettings) -> Result<HeaderMap, ProbeFailure> {
    let mut headers = HeaderMap::new();
    if let Ok(ua) = HeaderValue::from_str(&default_user_agent()) {
        headers.insert(header::USER_AGENT, ua);
    }
    for (name, value) in &s.headers {
        headers.insert(name.clone(), value.clone());
    }
    // Structured headers set their header (User-Agent, Origin...) rather
    // than adding a second value next to a default.
    for h in &s.extra_headers {
        headers.remove(&h.name);
    }
    append_extra_headers(&mut headers, &s.extra_headers).await?;
    append_extra_headers(&mut headers, &s.client.extra_headers).await?;
    if let Some(auth) = authorization_value(&s.client).await? {
        headers.insert(header::AUTHORIZATION, auth);
    }
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    if !s.subprotocols.is_empty() {
        let v = HeaderValue::from_str(&s.subprotocols.join(", "))
            .map_err(|_| fail(FailureReason::InvalidTarget, "invalid subprotocol names"))?;
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    Ok(headers)
}

fn request(
    method: http::Method,
    uri: String,
    headers: HeaderMap,
) -> Result<http::Request<Empty<Bytes>>, ProbeFailure> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Empty::<Bytes>::new())
        .map_err(|e| {
            fail(
                FailureReason::InvalidTarget,
                format!("invalid request: {e}"),
            )
        })?;
    *req.headers_mut() = headers;
    Ok(req)
}

/// A refused handshake: the status says which failure it is.
fn refused(status: u16) -> ProbeFailure {
    let reason = classify_status(status);
    let hint = match reason {
        FailureReason::UpgradeIgnored => {
            "the server answered as plain HTTP: a proxy/CDN dropped the Upgrade header or this is not a WebSocket endpoint"
        }
        FailureReason::UpgradeRejected => {
            "the upgrade was refused (a proxy forwarding without Upgrade headers answers 400/426; also auth or origin checks)"
        }
        FailureReason::UpstreamUnavailable => {
            "the proxy is up but the WebSocket backend is down, over its connection limit, or hung up on a request the proxy forwarded without Upgrade headers"
        }
        _ => "the server failed the upgrade",
    };
    fail(
        reason,
        format!("WebSocket upgrade got HTTP {status}: {hint}"),
    )
}

/// The selected subprotocol must be one we offered; with
/// `fail_if_subprotocol_not_negotiated` one must be selected. A server that
/// selects none is otherwise fine (browsers accept it; tungstenite does not).
fn check_subprotocol(
    cx: &ProbeContext<'_>,
    s: &WebSocketSettings,
    headers: &HeaderMap,
) -> Result<(), ProbeFailure> {
    let selected = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    match &selected {
        Some(p) if !s.subprotocols.iter().any(|o| o == p) => Err(fail(
            FailureReason::SubprotocolMismatch,
            format!("server selected subprotocol {p:?}, which was not offered"),
        )),
        Some(p) => {
            cx.metrics.set_labelled(&SUBPROTOCOL_INFO, &[p], 1.0);
            Ok(())
        }
        None if s.fail_if_subprotocol_not_negotiated => Err(fail(
            FailureReason::SubprotocolMismatch,
            format!(
                "server selected none of the offered subprotocols {:?}",
                s.subprotocols
            ),
        )),
        None => Ok(()),
    }
}

/// RFC 6455 opening handshake over HTTP/1.1.
async fn upgrade_http1(
    cx: &ProbeContext<'_>,
    s: &WebSocketSettings,
    ep: &Endpoint,
    stream: Box<dyn Stream>,
) -> Result<(Ws, ConnectionTask), ProbeFailure> {
    let processing = cx.phase(&WS_DURATION, "processing");
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let mut headers = handshake_headers(s).await?;
    headers.insert(
        header::HOST,
        HeaderValue::from_str(&ep.host_header).map_err(|_| {
            fail(
                FailureReason::InvalidTarget,
                format!("invalid Host {:?}", ep.host_header),
            )
        })?,
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_KEY,
        HeaderValue::from_str(&key).map_err(|_| fail(FailureReason::InvalidTarget, "bad key"))?,
    );
    let req = request(http::Method::GET, path_and_query(&ep.url), headers)?;

    cx.log.info(
        "Sending WebSocket upgrade request",
        &[
            ("url", &ep.url),
            ("host", &ep.host_header),
            ("http_version", &"1.1"),
        ],
    );
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| hyper_failure(&e, "HTTP handshake"))?;
    let connection = ConnectionTask::spawn(conn.with_upgrades());
    let mut response = sender
        .send_request(req)
        .await
        .map_err(|e| hyper_failure(&e, "WebSocket upgrade request"))?;
    let status = response.status().as_u16();
    cx.metrics.set(&STATUS_CODE, f64::from(status));
    cx.metrics.set(&HTTP_VERSION, 1.1);
    cx.log
        .info("Received handshake response", &[("status_code", &status)]);
    if status != 101 {
        return Err(refused(status));
    }
    let h = response.headers();
    if !has_token(h, header::UPGRADE, "websocket") {
        return Err(fail(
            FailureReason::InvalidHandshake,
            "101 response without \"Upgrade: websocket\"",
        ));
    }
    if !has_token(h, header::CONNECTION, "upgrade") {
        return Err(fail(
            FailureReason::InvalidHandshake,
            "101 response without \"Connection: Upgrade\"",
        ));
    }
    let expected = derive_accept_key(key.as_bytes());
    let accept = h
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .and_then(|v| v.to_str().ok());
    if accept != Some(expected.as_str()) {
        return Err(fail(
            FailureReason::InvalidHandshake,
            format!("Sec-WebSocket-Accept is {accept:?}, expected {expected:?}"),
        ));
    }
    check_subprotocol(cx, s, h)?;
    let upgraded = hyper::upgrade::on(&mut response)
        .await
        .map_err(|e| hyper_failure(&e, "WebSocket upgrade"))?;
    processing.finish();
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    Ok((ws, connection))
}

/// RFC 8441: a WebSocket in an HTTP/2 stream opened with extended CONNECT.
/// None when the server does not enable it (the caller falls back to
/// HTTP/1.1). The connection task must outlive the WebSocket: the stream
/// is multiplexed on it.
async fn upgrade_h2(
    cx: &ProbeContext<'_>,
    s: &WebSocketSettings,
    ep: &Endpoint,
    stream: Box<dyn Stream>,
) -> Result<Option<(Ws, ConnectionTask)>, ProbeFailure> {
    // usize::MAX until the server's SETTINGS say otherwise: a change shows
    // they arrived.
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_max_send_streams(usize::MAX)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| hyper_failure(&e, "HTTP/2 handshake"))?;
    // The client preface does not wait for the server's SETTINGS: drive the
    // connection until they have been applied (SETTINGS_ENABLE_CONNECT_PROTOCOL,
    // or a MAX_CONCURRENT_STREAMS showing they came without it), at most 1 s.
    // h2 applies them without waking us, hence the short re-check tick.
    let mut conn = Box::pin(conn);
    let settle_until = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(2));
    loop {
        if conn.is_extended_connect_protocol_enabled()
            || conn.current_max_send_streams() != usize::MAX
        {
            break;
        }
        if tokio::time::Instant::now() >= settle_until {
            break;
        }
        tokio::select! {
            result = conn.as_mut() => {
                let detail = result.err().map(|e| e.to_string()).unwrap_or_else(|| "closed".into());
                return Err(fail(
                    FailureReason::ConnectionReset,
                    format!("HTTP/2 connection ended during the handshake: {detail}"),
                ));
            }
            _ = tick.tick() => {}
        }
    }
    cx.log.debug(
        "HTTP/2 settings",
        &[
            (
                "extended_connect",
                &conn.is_extended_connect_protocol_enabled(),
            ),
            ("max_send_streams", &conn.current_max_send_streams()),
        ],
    );
    if !conn.is_extended_connect_protocol_enabled() {
        return Ok(None);
    }
    let connection = ConnectionTask::spawn(conn);
    let mut headers = handshake_headers(s).await?;
    headers.remove(header::HOST);
    let uri = format!("https://{}{}", ep.host_header, path_and_query(&ep.url));
    let mut req = request(http::Method::CONNECT, uri, headers)?;
    *req.version_mut() = http::Version::HTTP_2;
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    cx.log.info(
        "Sending WebSocket extended CONNECT",
        &[
            ("url", &ep.url),
            ("host", &ep.host_header),
            ("http_version", &"2"),
        ],
    );
    let mut response = sender
        .send_request(req)
        .await
        .map_err(|e| hyper_failure(&e, "WebSocket extended CONNECT"))?;
    let status = response.status().as_u16();
    cx.metrics.set(&STATUS_CODE, f64::from(status));
    cx.metrics.set(&HTTP_VERSION, 2.0);
    cx.log
        .info("Received handshake response", &[("status_code", &status)]);
    if !(200..300).contains(&status) {
        return Err(refused(status));
    }
    check_subprotocol(cx, s, response.headers())?;
    let upgraded = hyper::upgrade::on(&mut response)
        .await
        .map_err(|e| hyper_failure(&e, "WebSocket extended CONNECT"))?;
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    Ok(Some((ws, connection)))
}

fn record_close(cx: &ProbeContext<'_>, frame: &Option<CloseFrame>) -> String {
    match frame {
        Some(f) => {
            let code = u16::from(f.code);
            cx.metrics.set(&CLOSE_CODE, f64::from(code));
            format!("close code {code} {:?}", f.reason.as_str())
        }
        None => "close frame without code".into(),
    }
}

/// The dialog: query_response steps in order, then the ping.
async fn exchange(
    cx: &ProbeContext<'_>,
    s: &WebSocketSettings,
    ws: &mut Ws,
) -> Result<(), ProbeFailure> {
    let mut last_match: Option<(&regex::bytes::Regex, Vec<u8>)> = None;
    for (i, step) in s.query_response.iter().enumerate() {
        match step {
            WsStep::SendText {
                text,
                expand_captures,
            } => {
                let text = match (&last_match, expand_captures) {
                    (Some((re, message)), true) => expand(re, message, text),
                    _ => text.clone(),
                };
                cx.log
                    .debug("Sending text message", &[("step", &i), ("message", &text)]);
                send(ws, Message::text(text)).await?;
            }
            WsStep::SendBinary(data) => {
                cx.log.debug(
                    "Sending binary message",
                    &[("step", &i), ("bytes", &data.len())],
                );
                send(ws, Message::binary(data.clone())).await?;
            }
            WsStep::Expect(re) => {
                // Set before waiting: the deadline may cut the wait, and
                // then this line is what the probe reports.
                cx.set_deadline_reason(FailureReason::ExpectFailed);
                cx.metrics.set(&FAILED_DUE_TO_REGEX, 1.0);
                let message = expect(cx, ws, re).await?;
                cx.metrics.set(&FAILED_DUE_TO_REGEX, 0.0);
                cx.set_deadline_reason(FailureReason::Timeout);
                last_match = Some((re, message));
            }
        }
    }
    if s.ping {
        ping(cx, ws).await?;
    }
    Ok(())
}

/// `${1}` / `$name` in `template` from the captures of `re` in `message`.
fn expand(re: &regex::bytes::Regex, message: &[u8], template: &str) -> String {
    let mut out = Vec::new();
    match re.captures(message) {
        Some(c) => c.expand(template.as_bytes(), &mut out),
        None => out.extend_from_slice(template.as_bytes()),
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn send(ws: &mut Ws, msg: Message) -> Result<(), ProbeFailure> {
    ws.send(msg).await.map_err(|e| {
        fail(
            FailureReason::ClosedEarly,
            format!("could not send a message: the connection is gone ({e})"),
        )
    })
}

/// Scan incoming data messages until one matches; returns that message.
async fn expect(
    cx: &ProbeContext<'_>,
    ws: &mut Ws,
    re: &regex::bytes::Regex,
) -> Result<Vec<u8>, ProbeFailure> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                if re.is_match(t.as_bytes()) {
                    cx.log.debug("Message matched", &[("regexp", &re.as_str())]);
                    return Ok(t.as_bytes().to_vec());
                }
                cx.log
                    .debug("Skipping message", &[("message", &t.as_str())]);
            }
            Some(Ok(Message::Binary(b))) => {
                if re.is_match(&b) {
                    cx.log
                        .debug("Binary message matched", &[("regexp", &re.as_str())]);
                    return Ok(b.to_vec());
                }
                cx.log
                    .debug("Skipping binary message", &[("bytes", &b.len())]);
            }
            Some(Ok(Message::Close(frame))) => {
                let what = record_close(cx, &frame);
                return Err(fail(
                    FailureReason::ExpectFailed,
                    format!(
                        "server closed the WebSocket ({what}) before a message matched {:?}",
                        re.as_str()
                    ),
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                return Err(fail(
                    FailureReason::ExpectFailed,
                    format!(
                        "stream ended before a message matched {:?}: {e}",
                        re.as_str()
                    ),
                ));
            }
            None => {
                return Err(fail(
                    FailureReason::ExpectFailed,
                    format!("stream ended before a message matched {:?}", re.as_str()),
                ));
            }
        }
    }
}

/// Send a ping and wait for its pong; data messages in between are skipped.
async fn ping(cx: &ProbeContext<'_>, ws: &mut Ws) -> Result<(), ProbeFailure> {
    let payload = Bytes::from(rand::random::<u64>().to_be_bytes().to_vec());
    let start = Instant::now();
    send(ws, Message::Ping(payload.clone())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Pong(p))) if p == payload => {
                let rtt = start.elapsed().as_secs_f64();
                cx.metrics.set(&PING_RTT, rtt);
                cx.log.debug("Received pong", &[("rtt_seconds", &rtt)]);
                return Ok(());
            }
            Some(Ok(Message::Close(frame))) => {
                let what = record_close(cx, &frame);
                return Err(fail(
                    FailureReason::ClosedEarly,
                    format!("server closed the WebSocket ({what}) before answering the ping"),
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                return Err(fail(
                    FailureReason::ClosedEarly,
                    format!("connection lost before the pong: {e}"),
                ));
            }
            None => {
                return Err(fail(
                    FailureReason::ClosedEarly,
                    "connection closed before the pong",
                ));
            }
        }
    }
}

/// Close with 1000 and wait (briefly, inside the deadline) for the
/// server's close frame, recording its code.
async fn close(cx: &ProbeContext<'_>, ws: &mut Ws) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    if ws.close(Some(frame)).await.is_err() {
        return;
    }
    let remaining = cx
        .deadline
        .saturating_duration_since(tokio::time::Instant::now());
    let wait = remaining
        .mul_f64(0.5)
        .min(std::time::Duration::from_secs(1));
    let _ = tokio::time::timeout(wait, async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(frame)) => {
                    record_close(cx, &frame);
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_map_to_ws() {
        assert_eq!(
            parse_target("http://a/x?y=1").unwrap().as_str(),
            "ws://a/x?y=1"
        );
        assert_eq!(
            parse_target("https://a:8443/").unwrap().as_str(),
            "wss://a:8443/"
        );
        assert_eq!(parse_target("wss://a/").unwrap().as_str(), "wss://a/");
        assert_eq!(
            parse_target("ws://127.0.0.1:80/")
                .unwrap()
                .port_or_known_default(),
            Some(80)
        );
        assert!(parse_target("ftp://a/").is_err());
        assert!(parse_target("a:80").is_err());
    }

    #[test]
    fn status_classes() {
        assert_eq!(classify_status(200), FailureReason::UpgradeIgnored);
        assert_eq!(classify_status(302), FailureReason::UpgradeIgnored);
        assert_eq!(classify_status(426), FailureReason::UpgradeRejected);
        assert_eq!(classify_status(404), FailureReason::UpgradeRejected);
        assert_eq!(classify_status(502), FailureReason::UpstreamUnavailable);
        assert_eq!(classify_status(503), FailureReason::UpstreamUnavailable);
        assert_eq!(classify_status(500), FailureReason::ServerError);
    }
}
