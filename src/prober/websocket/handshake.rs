//! The opening handshake: RFC 6455 over HTTP/1.1, or RFC 8441 (extended
//! CONNECT) over HTTP/2, with the answer checked as a browser would —
//! `Sec-WebSocket-Accept`, `Upgrade`, `Connection`, and a subprotocol that
//! was offered (a server that selects none is accepted unless the module
//! requires one; tungstenite would refuse it).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::config::WebSocketSettings;
use super::{HTTP_VERSION, STATUS_CODE, SUBPROTOCOL_INFO, Target, WS_DURATION, fail};
use crate::net::Stream;
use crate::prober::ProbeContext;
use crate::prober::client::conn::{self, ConnectionTask};
use crate::prober::client::{apply_module_headers, host_header_value, mark, user_agent};
use crate::prober::reason::{FailureReason, ProbeFailure, closed_before_answer};

/// The upgraded connection, ready for messages.
pub type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

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
    headers.insert(header::USER_AGENT, user_agent());
    // Structured headers set their header (User-Agent, Origin...) rather
    // than adding a second value next to a default.
    apply_module_headers(&mut headers, &s.headers, &s.extra_headers, &s.client).await?;
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    mark(&mut headers);
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

/// Send the upgrade request (`what`: its name and HTTP version) and record
/// the answer's status; a status that is not `accepted` is a refusal, whose
/// reason the status tells.
async fn send_upgrade<F>(
    cx: &ProbeContext<'_>,
    request: F,
    connection: ConnectionTask,
    what: (&str, f64),
    accepted: fn(u16) -> bool,
) -> Result<(http::Response<hyper::body::Incoming>, ConnectionTask), ProbeFailure>
where
    F: std::future::Future<Output = Result<http::Response<hyper::body::Incoming>, hyper::Error>>,
{
    let (context, version) = what;
    let (response, connection) = conn::send(request, connection, context).await?;
    let status = response.status().as_u16();
    cx.metrics.set(&STATUS_CODE, f64::from(status));
    cx.metrics.set(&HTTP_VERSION, version);
    cx.log
        .info("Received handshake response", &[("status_code", &status)]);
    if !accepted(status) {
        return Err(refused(status));
    }
    Ok((response, connection))
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
pub async fn upgrade_http1(
    cx: &ProbeContext<'_>,
    s: &WebSocketSettings,
    ep: &Target,
    stream: Box<dyn Stream>,
) -> Result<(Ws, ConnectionTask), ProbeFailure> {
    let processing = cx.phase(&WS_DURATION, "processing");
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let mut headers = handshake_headers(s).await?;
    headers.insert(header::HOST, host_header_value(&ep.host_header)?);
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
    let (mut sender, connection) = conn::http1(stream, true).await?;
    let (mut response, connection) = send_upgrade(
        cx,
        sender.send_request(req),
        connection,
        ("WebSocket upgrade request", 1.1),
        |status| status == 101,
    )
    .await?;
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
        .map_err(|e| ProbeFailure::hyper(&e, "WebSocket upgrade"))?;
    processing.finish();
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, Some(s.limits))
        .await;
    Ok((ws, connection))
}

/// RFC 8441: a WebSocket in an HTTP/2 stream opened with extended CONNECT.
/// None when the server does not enable it (the caller falls back to
/// HTTP/1.1). The connection task must outlive the WebSocket: the stream
/// is multiplexed on it.
pub async fn upgrade_h2(
    cx: &ProbeContext<'_>,
    s: &WebSocketSettings,
    ep: &Target,
    stream: Box<dyn Stream>,
) -> Result<Option<(Ws, ConnectionTask)>, ProbeFailure> {
    // usize::MAX until the server's SETTINGS say otherwise: a change shows
    // they arrived.
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_max_send_streams(usize::MAX)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ProbeFailure::hyper(&e, "HTTP/2 handshake"))?;
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
                let context = "HTTP/2 connection ended during the handshake";
                return Err(match result {
                    Err(e) => ProbeFailure::hyper(&e, context),
                    Ok(()) => fail(closed_before_answer(), format!("{context}: closed")),
                });
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
    let (mut response, connection) = send_upgrade(
        cx,
        sender.send_request(req),
        connection,
        ("WebSocket extended CONNECT", 2.0),
        |status| (200..300).contains(&status),
    )
    .await?;
    check_subprotocol(cx, s, response.headers())?;
    let upgraded = hyper::upgrade::on(&mut response)
        .await
        .map_err(|e| ProbeFailure::hyper(&e, "WebSocket extended CONNECT"))?;
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, Some(s.limits))
        .await;
    Ok(Some((ws, connection)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
