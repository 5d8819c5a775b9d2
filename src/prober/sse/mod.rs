//! `prober: sse` — a Server-Sent Events stream, end to end: `GET` with
//! `Accept: text/event-stream`, status 200 and the content type checked,
//! then the stream parsed ([`parse`]) until `events` matching events have
//! arrived, or the deadline.
//!
//! The request is one hop of the http prober ([`hop::round_trip_via`]):
//! the same connector (target policy, proxy, TLS, fair reads), the same
//! hyper connection, the loop mark. Redirects are not followed (a 3xx
//! fails with `http_status`, as any status but 200).
//!
//! Reasons: until the response head arrives the deadline is `timeout`;
//! from then on it is `expect_failed` (the stream is up, the events did not
//! come, or did not match — a proxy that buffers the stream shows as this
//! with `probe_sse_events_received 0` when it forwards the head at once;
//! nginx's defaults hold the head too, so they show as `timeout` with
//! status 0, see `tests/it/e2e_nginx_sse.rs`). A stream that ends first is
//! `closed_early`.
//!
//! Memory: a line, and one event's data, are capped at
//! [`MAX_EVENT_BYTES`] (1 MiB, as `websocket.max_message_bytes`' default):
//! past it the probe fails with `body_size_limit` instead of growing. The
//! bytes read in total are capped by `--probe.max-body-bytes` (a stream of
//! comments without an event ends there, if the deadline does not end it
//! first). Every chunk passes the runtime's cooperative budget, so a server
//! that never pauses cannot hold the probe past its deadline.

pub mod config;
pub mod parse;

use http::header::{self, HeaderMap, HeaderValue};
use tokio::time::Instant;

use super::address;
use super::client::{apply_module_headers, authority, mark, user_agent};
use super::http::hop::{self, Hop, HopResponse, Via};
use super::http::metrics::version_string;
use super::http::request::parse_target;
use super::metrics::{GaugeSpec, Presence};
use super::reason::{FailureReason, ProbeFailure};
use super::registry::Prober;
use super::{ProbeContext, tls_metrics};
use crate::config::{ConfigError, Ctx};
use crate::net::address::unbracket;
use crate::net::userinfo;
pub use config::{SseProbeFile, SseSettings};
use parse::{Item, Parser};

/// The cap on one line and on one event's data.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

pub static SSE_DURATION: GaugeSpec = GaugeSpec {
    name: "probe_sse_duration_seconds",
    help: "Duration of the SSE probe by phase",
    presence: Presence::Always,
    label_names: &["phase"],
    // `resolve` appears when a lookup happened, as for http.
    initial: &[&["connect"], &["processing"], &["tls"], &["transfer"]],
};
pub static STATUS_CODE: GaugeSpec = GaugeSpec::always(
    "probe_sse_status_code",
    "HTTP status code of the event-stream response, 0 if none",
);
pub static EVENTS_RECEIVED: GaugeSpec = GaugeSpec::always(
    "probe_sse_events_received",
    "Events received, of any type, matching or not",
);
pub static HEARTBEATS_RECEIVED: GaugeSpec = GaugeSpec::always(
    "probe_sse_heartbeats_received",
    "Comment lines (heartbeats) received",
);
pub static FIRST_EVENT: GaugeSpec = GaugeSpec::when_set(
    "probe_sse_first_event_seconds",
    "Time from the start of the request (connection included) to the first event",
);

impl Prober for SseSettings {
    type Block = SseProbeFile;
    const METRICS: &'static [&'static [&'static GaugeSpec]] = &[
        address::METRICS,
        tls_metrics::METRICS,
        &[
            &SSE_DURATION,
            &STATUS_CODE,
            &EVENTS_RECEIVED,
            &HEARTBEATS_RECEIVED,
            &FIRST_EVENT,
        ],
    ];

    fn build(ctx: &Ctx<'_>, block: &SseProbeFile) -> Result<Self, ConfigError> {
        config::build(ctx, block)
    }

    fn shown(block: SseProbeFile, built: &Self) -> SseProbeFile {
        config::shown(block, built)
    }

    async fn probe(&self, cx: &ProbeContext<'_>, target: &str) -> Result<(), ProbeFailure> {
        probe(cx, target, self).await
    }
}

fn fail(reason: FailureReason, msg: impl Into<String>) -> ProbeFailure {
    ProbeFailure::new(reason, msg)
}

/// The request headers: User-Agent and the SSE defaults, the module's
/// headers (which may override them), credentials, and the loop mark.
async fn request_headers(s: &SseSettings) -> Result<HeaderMap, ProbeFailure> {
    let mut headers = HeaderMap::new();
    headers.insert(header::USER_AGENT, user_agent());
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    apply_module_headers(&mut headers, &s.headers, &s.extra_headers, &s.client).await?;
    mark(&mut headers);
    Ok(headers)
}

/// `text/event-stream`, parameters allowed, case-insensitive.
pub fn is_event_stream(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
}

pub async fn probe(
    cx: &ProbeContext<'_>,
    target: &str,
    s: &SseSettings,
) -> Result<(), ProbeFailure> {
    cx.metrics.set(&STATUS_CODE, 0.0);
    cx.metrics.set(&EVENTS_RECEIVED, 0.0);
    cx.metrics.set(&HEARTBEATS_RECEIVED, 0.0);
    let url = parse_target(target)?;
    let host = unbracket(url.host_str().unwrap_or_default()).to_string();
    let address = address::resolve_target(cx, &host, s.address, Some(&SSE_DURATION)).await?;
    let host_header = cx
        .hostname
        .map(str::to_string)
        .unwrap_or_else(|| authority(&url));
    let server_name = s.client.tls.server_name_for(cx.hostname, &host);
    let headers = request_headers(s).await?;
    cx.log.info(
        "Opening event stream",
        &[
            ("url", &userinfo::redact(url.as_str())),
            ("host", &host_header),
        ],
    );
    let started = Instant::now();
    let via = Via {
        client: &s.client,
        address: s.address,
        phases: &SSE_DURATION,
    };
    let HopResponse {
        response,
        tls,
        connection,
    } = hop::round_trip_via(
        cx,
        via,
        Hop {
            url: &url,
            address: Some(address),
            host_header: &host_header,
            server_name: &server_name,
            method: http::Method::GET,
            headers,
            body: bytes::Bytes::new(),
        },
    )
    .await
    .inspect_err(|e| {
        cx.log
            .error("Error for SSE request", &[("err", &e.message)])
    })?;
    // The head arrived: from now on the deadline means the events did not.
    cx.set_deadline_reason(FailureReason::ExpectFailed);
    if let Some(t) = &tls {
        tls_metrics::record(cx, t);
    }
    let (parts, mut body) = response.into_parts();
    let status = parts.status.as_u16();
    cx.metrics.set(&STATUS_CODE, f64::from(status));
    let content_type = parts.headers.get(header::CONTENT_TYPE);
    cx.log.info(
        "Received SSE response",
        &[
            ("status_code", &status),
            ("http_version", &version_string(parts.version)),
            (
                "content_type",
                &content_type.and_then(|v| v.to_str().ok()).unwrap_or(""),
            ),
        ],
    );
    if status != 200 {
        connection.close().await;
        return Err(fail(
            FailureReason::HttpStatus,
            format!("event stream answered HTTP {status}, expected 200"),
        ));
    }
    if !is_event_stream(content_type) {
        connection.close().await;
        return Err(fail(
            FailureReason::SseContentType,
            format!(
                "Content-Type is {:?}, expected text/event-stream",
                content_type
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default()
            ),
        ));
    }

    let transfer = cx.phase(&SSE_DURATION, "transfer");
    let result = read_events(cx, s, &mut body, started).await;
    transfer.finish();
    connection.close().await;
    result
}

/// Read and parse the stream until enough matching events have arrived.
async fn read_events(
    cx: &ProbeContext<'_>,
    s: &SseSettings,
    body: &mut super::http::body::ResponseBody,
    started: Instant,
) -> Result<(), ProbeFailure> {
    let mut parser = Parser::new(MAX_EVENT_BYTES);
    let (mut events, mut heartbeats, mut matched) = (0u64, 0u64, 0u64);
    let mut total: u64 = 0;
    let max_total = cx.limits.max_body_bytes;
    loop {
        // A server that never pauses still lets the deadline fire.
        tokio::task::consume_budget().await;
        let chunk = match body.chunk().await {
            None => {
                return Err(fail(
                    FailureReason::ClosedEarly,
                    format!(
                        "the stream ended after {events} events ({matched} matching), {} needed",
                        s.events
                    ),
                ));
            }
            Some(Err(e)) => return Err(e),
            Some(Ok(chunk)) => chunk,
        };
        total += chunk.len() as u64;
        if total > max_total {
            return Err(fail(
                FailureReason::BodySizeLimit,
                format!(
                    "the stream passed --probe.max-body-bytes of {max_total} bytes with {matched} of {} matching events",
                    s.events
                ),
            ));
        }
        // Items are handled as the parser finds them: a chunk of a
        // thousand comments allocates nothing.
        let parsed = parser.feed(&chunk, &mut |item| match item {
            Item::Comment => heartbeats += 1,
            Item::Event(e) => {
                events += 1;
                if events == 1 {
                    cx.metrics
                        .set(&FIRST_EVENT, started.elapsed().as_secs_f64());
                }
                let type_ok = s.event.as_ref().is_none_or(|t| *t == e.event_type);
                let data_ok = s.expect.as_ref().is_none_or(|re| re.is_match(&e.data));
                cx.log.debug(
                    "Received event",
                    &[
                        ("event", &e.event_type),
                        ("id", &e.id),
                        ("bytes", &e.data.len()),
                        ("matches", &(type_ok && data_ok)),
                    ],
                );
                if type_ok && data_ok {
                    matched += 1;
                }
            }
        });
        cx.metrics.set(&EVENTS_RECEIVED, events as f64);
        cx.metrics.set(&HEARTBEATS_RECEIVED, heartbeats as f64);
        if let Err(e) = parsed {
            return Err(fail(FailureReason::BodySizeLimit, e.to_string()));
        }
        if matched >= s.events {
            cx.log.info(
                "Received enough events",
                &[
                    ("events", &events),
                    ("matching", &matched),
                    ("heartbeats", &heartbeats),
                ],
            );
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(is_event_stream(Some(&v("text/event-stream"))));
        assert!(is_event_stream(Some(&v(
            "Text/Event-Stream; charset=utf-8"
        ))));
        assert!(!is_event_stream(Some(&v("text/plain"))));
        assert!(!is_event_stream(Some(&v("text/event-streams"))));
        assert!(!is_event_stream(None));
    }
}
