//! `prober: grpc` — one `grpc.health.v1.Health/Check` call, as blackbox
//! makes it, over hyper's HTTP/2 client on a socket the connector opened
//! (so the target policy, TLS with ALPN h2 and the TLS metrics are those
//! of every other prober; no gRPC library with its own dialer, retries and
//! name resolution under the probe).
//!
//! Unlike blackbox (whose health call ignores the deadline), the probe is
//! cut by `run_probe`'s deadline like every other; the status code then
//! reads DEADLINE_EXCEEDED, what a gRPC client with that deadline reports.

pub mod config;
pub mod wire;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::address::{self, split_target};
use super::client::conn::{self, ConnectionTask};
use super::client::{mark, user_agent};
use super::connect::{self, TlsReport};
use super::metrics::{GaugeSpec, Presence};
use super::reason::{FailureReason, ProbeFailure};
use super::registry::Prober;
use super::{ProbeContext, tls_metrics};
use crate::config::{ConfigError, Ctx};
use crate::net::tls::Alpn;
use crate::net::{Connector, Endpoint, TlsRequest};
pub use config::{GrpcProbeFile, GrpcSettings};

pub static GRPC_DURATION: GaugeSpec = GaugeSpec {
    name: "probe_grpc_duration_seconds",
    help: "Duration of gRPC request by phase",
    presence: Presence::Always,
    label_names: &["phase"],
    initial: &[&["resolve"]],
};
pub static GRPC_SSL: GaugeSpec = GaugeSpec::always(
    "probe_grpc_ssl",
    "Indicates if SSL was used for the connection",
);
pub static GRPC_STATUS_CODE: GaugeSpec =
    GaugeSpec::always("probe_grpc_status_code", "Response gRPC status code");
/// Its four series appear (0) once the check starts, as in blackbox, which
/// sets them after the call whatever its outcome.
pub static HEALTHCHECK_RESPONSE: GaugeSpec = GaugeSpec::labelled(
    "probe_grpc_healthcheck_response",
    "Response HealthCheck response",
    &["serving_status"],
);

/// gRPC status codes the probe reports itself.
mod code {
    pub const OK: u32 = 0;
    pub const UNKNOWN: u32 = 2;
    pub const DEADLINE_EXCEEDED: u32 = 4;
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const INTERNAL: u32 = 13;
    pub const UNAVAILABLE: u32 = 14;
    pub const UNAUTHENTICATED: u32 = 16;
    pub const PERMISSION_DENIED: u32 = 7;
}

/// gRPC's code names, for the log.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn code_name(code: u32) -> String {
    usize::try_from(code)
        .ok()
        .and_then(|i| CODE_NAMES.get(i))
        .map_or_else(|| code.to_string(), |s| (*s).to_string())
}

impl Prober for GrpcSettings {
    type Block = GrpcProbeFile;
    const METRICS: &'static [&'static [&'static GaugeSpec]] = &[
        address::METRICS,
        tls_metrics::METRICS,
        &[
            &GRPC_DURATION,
            &GRPC_SSL,
            &GRPC_STATUS_CODE,
            &HEALTHCHECK_RESPONSE,
        ],
    ];

    fn build(ctx: &Ctx<'_>, block: &GrpcProbeFile) -> Result<Self, ConfigError> {
        config::build(ctx, block)
    }

    fn shown(block: GrpcProbeFile, _built: &Self) -> GrpcProbeFile {
        config::shown(block)
    }

    async fn probe(&self, cx: &ProbeContext<'_>, target: &str) -> Result<(), ProbeFailure> {
        probe(cx, target, self).await
    }
}

/// blackbox's target: `host:port`, a bare host (port 80, or 443 with
/// `tls`), optionally behind `http://` or `https://` — the scheme is
/// ignored (TLS comes from `tls` only) and so is a path.
pub fn parse_target(target: &str, default_port: u16) -> Result<(String, u16), ProbeFailure> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .unwrap_or(target);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    split_target(authority, default_port)
}

/// The gRPC code a non-200 HTTP answer stands for (the HTTP to gRPC
/// status mapping of the gRPC spec, as grpc-go applies it).
fn code_for_http(status: http::StatusCode) -> u32 {
    match status.as_u16() {
        400 => code::INTERNAL,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        404 => code::UNIMPLEMENTED,
        429 | 502..=504 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

fn status_failure(cx: &ProbeContext<'_>, code: u32, message: String) -> ProbeFailure {
    cx.metrics.set(&GRPC_STATUS_CODE, f64::from(code));
    ProbeFailure::new(
        FailureReason::GrpcStatus,
        format!("health check failed with {}: {message}", code_name(code)),
    )
}

pub async fn probe(
    cx: &ProbeContext<'_>,
    target: &str,
    s: &GrpcSettings,
) -> Result<(), ProbeFailure> {
    let (host, port) = parse_target(target, s.default_port())?;
    let ip = address::resolve_target(cx, &host, s.address, Some(&GRPC_DURATION)).await?;
    for status in wire::SERVING_STATUSES {
        cx.metrics
            .set_labelled(&HEALTHCHECK_RESPONSE, &[status], 0.0);
    }
    let check = cx.phase(&GRPC_DURATION, "check");
    // Until the call ends one way or another: what is left when the
    // deadline drops this future.
    cx.metrics
        .set(&GRPC_STATUS_CODE, f64::from(code::DEADLINE_EXCEEDED));
    let result = call(cx, s, &host, port, ip).await;
    check.finish();
    let status = result?;
    let name = wire::serving_status_name(status);
    cx.metrics.set(&GRPC_STATUS_CODE, f64::from(code::OK));
    cx.metrics
        .set_labelled(&HEALTHCHECK_RESPONSE, &[name.as_str()], 1.0);
    cx.log
        .info("Got health check response", &[("serving_status", &name)]);
    if status == wire::SERVING {
        Ok(())
    } else {
        Err(ProbeFailure::new(
            FailureReason::GrpcNotServing,
            format!("service {:?} is {name}", s.service),
        ))
    }
}

/// A failure before any gRPC answer: the call was unavailable (grpc-go's
/// code for a connection that could not be made or was lost), unless the
/// probe refused it itself.
fn unavailable(cx: &ProbeContext<'_>, failure: ProbeFailure) -> ProbeFailure {
    let code = match failure.reason {
        FailureReason::TargetForbidden | FailureReason::InvalidTarget => code::OK,
        _ => code::UNAVAILABLE,
    };
    cx.metrics.set(&GRPC_STATUS_CODE, f64::from(code));
    failure
}

/// Connect, call, and return the ServingStatus number of an OK answer.
async fn call(
    cx: &ProbeContext<'_>,
    s: &GrpcSettings,
    host: &str,
    port: u16,
    ip: std::net::IpAddr,
) -> Result<i32, ProbeFailure> {
    // blackbox: tls_config.server_name, else the target host (the
    // `hostname` parameter is not used by grpc).
    let server_name = s.tls_client.server_name_for(None, host);
    let connector = Connector {
        address: s.address,
        targets: cx.targets,
        source: None,
        proxy: None,
        tls: s.tls.then_some(TlsRequest {
            client: &s.tls_client,
            server_name: &server_name,
            alpn: Alpn::H2,
            // The response is read: a rejected client certificate shows there.
            confirm: false,
        }),
    };
    let endpoint = Endpoint {
        host,
        port,
        address: Some(ip),
    };
    cx.log.info(
        "Making gRPC health check",
        &[
            ("target", &std::net::SocketAddr::new(ip, port)),
            ("service", &s.service),
            ("tls", &s.tls),
        ],
    );
    // blackbox has no connect or tls phase: all of it is `check`.
    let opened = connect::open(cx, None, &connector, endpoint, TlsReport::Now)
        .await
        .map_err(|f| unavailable(cx, f))?;
    if opened.tls.is_some() {
        cx.metrics.set(&GRPC_SSL, 1.0);
    }

    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let scheme = if s.tls { "https" } else { "http" };
    let mut req = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("{scheme}://{authority}{}", wire::CHECK_PATH))
        .version(http::Version::HTTP_2)
        .body(Full::new(wire::request_body(&s.service)))
        .map_err(|e| {
            unavailable(
                cx,
                ProbeFailure::new(
                    FailureReason::InvalidTarget,
                    format!("invalid request: {e}"),
                ),
            )
        })?;
    let headers = req.headers_mut();
    for (name, value) in &s.metadata {
        headers.append(name, value.clone());
    }
    // After the metadata: the module cannot replace what gRPC needs
    // (the config refuses those names too).
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    // The probe's deadline, as a gRPC client with one sends it: the server
    // (and any proxy) can drop the call when the probe has given up.
    let left = cx
        .deadline
        .saturating_duration_since(tokio::time::Instant::now());
    headers.insert("grpc-timeout", grpc_timeout(left));
    headers.insert(header::USER_AGENT, user_agent());
    mark(headers);

    let (mut sender, h2) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(opened.stream))
            .await
            .map_err(|e| unavailable(cx, ProbeFailure::hyper(&e, "HTTP/2 handshake")))?;
    let connection = ConnectionTask::spawn(h2);
    let (response, _connection) = conn::send(
        sender.send_request(req),
        connection,
        "Error for gRPC request",
    )
    .await
    .map_err(|f| unavailable(cx, f))?;
    answer(cx, response).await
}

/// The gRPC answer: HTTP status and content type, then the message and
/// the status in the trailers (or in the head of a trailers-only answer).
async fn answer(
    cx: &ProbeContext<'_>,
    response: http::Response<Incoming>,
) -> Result<i32, ProbeFailure> {
    let (head, mut body) = response.into_parts();
    if head.status != http::StatusCode::OK {
        return Err(status_failure(
            cx,
            code_for_http(head.status),
            format!("HTTP status {}", head.status),
        ));
    }
    let grpc_content = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if !grpc_content {
        return Err(status_failure(
            cx,
            code::UNKNOWN,
            format!(
                "content-type {:?} is not application/grpc",
                head.headers.get(header::CONTENT_TYPE)
            ),
        ));
    }
    let mut data = BytesMut::new();
    let mut trailers: Option<HeaderMap> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            unavailable(
                cx,
                ProbeFailure::hyper(&e, "Error reading the gRPC response"),
            )
        })?;
        match frame.into_data() {
            Ok(chunk) => {
                data.extend_from_slice(&chunk);
                bounded(&data).map_err(|e| frame_failure(cx, &e))?;
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    // A trailers-only answer (an error without a message) carries the
    // status in the head.
    let status_from = trailers.as_ref().unwrap_or(&head.headers);
    let Some(code) = status_from.get("grpc-status") else {
        return Err(status_failure(
            cx,
            code::INTERNAL,
            "the server sent no grpc-status".to_string(),
        ));
    };
    let code = code
        .to_str()
        .ok()
        .and_then(|c| c.parse::<u32>().ok())
        .unwrap_or(code::UNKNOWN);
    if code != code::OK {
        let message = status_from
            .get("grpc-message")
            .map(|m| {
                percent_encoding::percent_decode(m.as_bytes())
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        return Err(status_failure(cx, code, message));
    }
    let message = wire::decode_response(&data).map_err(|e| frame_failure(cx, &e))?;
    Ok(message.status)
}

/// A `grpc-timeout` value: at most 8 digits, in milliseconds (in seconds
/// past 27 hours, far beyond any scrape).
fn grpc_timeout(left: std::time::Duration) -> HeaderValue {
    let ms = left.as_millis();
    let text = if ms <= 99_999_999 {
        format!("{ms}m")
    } else {
        format!("{}S", left.as_secs().min(99_999_999))
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("0m"))
}

/// Refuse a body that is already more than one allowed message, before
/// buffering any more of it.
fn bounded(data: &[u8]) -> Result<(), wire::FrameError> {
    if data.len() < 5 {
        return Ok(());
    }
    let len = wire::check_prefix(data)?;
    if data.len() > 5 + len {
        return Err(wire::FrameError::Trailing);
    }
    Ok(())
}

/// A response the probe cannot read: the status a gRPC client reports for
/// it (RESOURCE_EXHAUSTED over the size limit, else INTERNAL).
fn frame_failure(cx: &ProbeContext<'_>, e: &wire::FrameError) -> ProbeFailure {
    let code = match e {
        wire::FrameError::TooLarge(_) => code::RESOURCE_EXHAUSTED,
        _ => code::INTERNAL,
    };
    status_failure(cx, code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = |s: &str, port| parse_target(s, port).map_err(|e| e.message);
        assert_eq!(t("127.0.0.1:9000", 80), Ok(("127.0.0.1".into(), 9000)));
        assert_eq!(t("grpc.example", 80), Ok(("grpc.example".into(), 80)));
        assert_eq!(t("grpc.example", 443), Ok(("grpc.example".into(), 443)));
        assert_eq!(
            t("https://grpc.example:8443/x", 80),
            Ok(("grpc.example".into(), 8443))
        );
        assert_eq!(
            t("http://grpc.example", 80),
            Ok(("grpc.example".into(), 80))
        );
        // Bracketed IPv6 works (it fails in every blackbox release).
        assert_eq!(t("[::1]:9000", 80), Ok(("::1".into(), 9000)));
        assert_eq!(t("http://[::1]:9000", 80), Ok(("::1".into(), 9000)));
        assert!(t("a:b:c", 80).is_err());
        assert!(t("host:99999", 80).is_err());
        assert!(t("", 80).is_err());
    }

    #[test]
    fn http_statuses_map_to_grpc_codes() {
        assert_eq!(
            code_for_http(http::StatusCode::NOT_FOUND),
            code::UNIMPLEMENTED
        );
        assert_eq!(
            code_for_http(http::StatusCode::BAD_GATEWAY),
            code::UNAVAILABLE
        );
        assert_eq!(
            code_for_http(http::StatusCode::FORBIDDEN),
            code::PERMISSION_DENIED
        );
        assert_eq!(code_for_http(http::StatusCode::IM_A_TEAPOT), code::UNKNOWN);
        assert_eq!(code_name(5), "NOT_FOUND");
        assert_eq!(code_name(99), "99");
    }

    #[test]
    fn timeouts_fit_eight_digits() {
        use std::time::Duration;
        assert_eq!(grpc_timeout(Duration::from_millis(4500)), "4500m");
        assert_eq!(grpc_timeout(Duration::ZERO), "0m");
        assert_eq!(grpc_timeout(Duration::from_secs(100_000)), "100000S");
        assert_eq!(grpc_timeout(Duration::MAX), "99999999S");
    }

    #[test]
    fn bodies_are_bounded_while_read() {
        assert_eq!(bounded(&[0, 0]), Ok(()));
        assert_eq!(bounded(&[0, 0, 0, 0, 2, 8, 1]), Ok(()));
        assert_eq!(
            bounded(&[0, 0, 0, 0, 2, 8, 1, 0]),
            Err(wire::FrameError::Trailing)
        );
        assert_eq!(
            bounded(&[0, 0, 1, 0, 1]),
            Err(wire::FrameError::TooLarge(65537))
        );
    }
}
