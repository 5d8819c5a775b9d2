//! `prober: http` — blackbox's HTTP prober, split into request building
//! (`request`), the per-hop client (`client`), body reading (`body`),
//! response checks (`checks`) and metric emission (`metrics`).
//!
//! The first hop goes to the address chosen by `preferred_ip_protocol`
//! with the original name as Host and SNI; redirects (≤ 10) are followed on
//! new connections with phases summed; a 101 ends the probe right after the
//! response head (blackbox drains it until the server closes, past the
//! deadline).

pub mod body;
pub mod checks;
pub mod client;
pub mod metrics;
pub mod request;

use std::net::IpAddr;

use http::StatusCode;

use super::ProbeContext;
use super::address;
use super::metrics::GaugeSpec;
use super::reason::ProbeFailure;
use super::tls_metrics;
use crate::config::model::HttpSettings;
use crate::net::resolve::unbracket;
use metrics::{FinalResponse, HTTP_DURATION};

pub static METRICS: &[&[&GaugeSpec]] = &[address::METRICS, tls_metrics::METRICS, metrics::OWN];

/// Go's client follows at most 10 redirects.
const MAX_REDIRECTS: u32 = 10;

fn is_followable_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Where a hop goes, with the name-based settings that follow the host.
struct Destination {
    url: url::Url,
    address: Option<IpAddr>,
    host_header: String,
    server_name: String,
}

pub async fn probe(
    cx: &ProbeContext<'_>,
    target: &str,
    s: &HttpSettings,
) -> Result<(), ProbeFailure> {
    let url = request::parse_target(target)?;
    let url_host = unbracket(url.host_str().unwrap_or_default()).to_string();
    let host_override = cx.hostname.map(str::to_string).or_else(|| s.host.clone());

    let proxied = client::proxy_for(&url, s.client.proxy.as_ref()).is_some();
    let address = if s.skip_resolve_phase_with_proxy && proxied {
        None
    } else {
        Some(address::resolve_target(cx, &url_host, s.address, Some(&HTTP_DURATION)).await?)
    };

    let server_name = s
        .client
        .tls
        .server_name_for(host_override.as_deref(), &url_host);
    let mut dest = Destination {
        host_header: host_override.unwrap_or_else(|| request::authority(&url)),
        url,
        address,
        server_name,
    };
    let mut method = s.method.clone();
    let mut body = request::load_body(s).await?;
    let mut cookies = request::CookieJar::default();
    let mut redirects: u32 = 0;

    let (hop, redirect_refused, limit_hit) = loop {
        cx.log.info(
            "Making HTTP request",
            &[("url", &dest.url), ("host", &dest.host_header)],
        );
        let headers = request::hop_headers(
            s,
            cookies.header_for(&dest.host_header).as_deref(),
            !body.is_empty(),
        )
        .await?;
        let hop = client::round_trip(
            cx,
            s,
            client::Hop {
                url: &dest.url,
                address: dest.address,
                host_header: &dest.host_header,
                server_name: &dest.server_name,
                method: method.clone(),
                headers,
                body: body.clone(),
            },
        )
        .await
        .inspect_err(|e| {
            cx.log
                .error("Error for HTTP request", &[("err", &e.message)])
        })?;
        let status = hop.response.status();
        cookies.store(&dest.host_header, hop.response.headers());
        let location = hop
            .response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (true, Some(location)) = (is_followable_redirect(status), location) else {
            break (hop, false, false);
        };
        cx.log.info("Received redirect", &[("location", &location)]);
        if !s.client.follow_redirects {
            cx.log.info("Not following redirect", &[]);
            redirects = 1;
            break (hop, true, false);
        }
        if redirects >= MAX_REDIRECTS {
            cx.log.info(
                "Not following redirect",
                &[("reason", &"stopped after 10 redirects")],
            );
            redirects = MAX_REDIRECTS + 1;
            break (hop, true, true);
        }
        let Ok(next) = dest.url.join(&location) else {
            cx.log
                .warn("Invalid redirect location", &[("location", &location)]);
            break (hop, true, false);
        };
        if !matches!(next.scheme(), "http" | "https") {
            cx.log
                .warn("Redirect to unsupported scheme", &[("location", &location)]);
            break (hop, true, false);
        }
        redirects += 1;
        // Go: 301/302 turn POST into GET, 303 turns everything but HEAD
        // into GET; 307/308 keep method and body.
        let code = status.as_u16();
        if (code == 303 && method != http::Method::HEAD)
            || ((code == 301 || code == 302) && method == http::Method::POST)
        {
            method = http::Method::GET;
            body = bytes::Bytes::new();
        }
        let same_origin = next.scheme() == dest.url.scheme()
            && next.host_str() == dest.url.host_str()
            && next.port_or_known_default() == dest.url.port_or_known_default();
        if !same_origin {
            // A new host: resolved by the client, SNI and Host follow it.
            cx.log.info(
                "Address does not match first address, not sending TLS ServerName",
                &[
                    ("first", &dest.url.host_str().unwrap_or_default()),
                    ("address", &next.host_str().unwrap_or_default()),
                ],
            );
            dest = Destination {
                host_header: request::authority(&next),
                server_name: unbracket(next.host_str().unwrap_or_default()).to_string(),
                address: None,
                url: next,
            };
        } else {
            dest.url = next;
        }
        drop(hop);
    };

    let client::HopResponse {
        response,
        tls,
        connection,
    } = hop;
    let (parts, incoming) = response.into_parts();
    cx.log.info(
        "Received HTTP response",
        &[("status_code", &parts.status.as_u16())],
    );

    let mut final_response = FinalResponse {
        status: parts.status.as_u16(),
        content_length: content_length(&parts, &method, &incoming),
        version: Some(parts.version),
        ssl: tls.is_some(),
        last_modified: parts
            .headers
            .get(http::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64),
        body_bytes: 0,
    };
    if let Some(t) = &tls {
        t.record(cx);
    }

    // The body: not for a refused redirect (Go closes it unread), not for a
    // 101 (the connection now belongs to another protocol).
    let read = if redirect_refused || parts.status == StatusCode::SWITCHING_PROTOCOLS {
        drop(incoming);
        None
    } else {
        let _transfer = cx.phase(&HTTP_DURATION, "transfer");
        Some(
            body::read_body(
                incoming,
                s.compression,
                s.body_size_limit,
                checks::needs_body(s),
            )
            .await,
        )
    };
    drop(connection);
    if let Some(r) = &read {
        final_response.body_bytes = r.bytes;
    }
    metrics::emit(cx, &final_response, redirects);

    let verdict = checks::evaluate(
        s,
        &checks::ResponseView {
            status: final_response.status,
            version: parts.version,
            headers: &parts.headers,
            body: read.as_ref().and_then(|r| r.body.as_deref()),
            body_error: read.as_ref().and_then(|r| r.error.as_ref()),
            ssl: final_response.ssl,
            redirect_limit_hit: limit_hit,
        },
    );
    cx.metrics.set(
        &metrics::FAILED_DUE_TO_REGEX,
        if verdict.failed_due_to_regex {
            1.0
        } else {
            0.0
        },
    );
    if final_response.ssl {
        cx.log.info("Final request was over SSL", &[]);
    } else {
        cx.log.info("Final request was not over SSL", &[]);
    }
    verdict.result
}

/// Go's `resp.ContentLength`: the header's value, 0 when the response has
/// no body by definition, else -1 (unknown: chunked or close-delimited).
fn content_length(
    parts: &http::response::Parts,
    method: &http::Method,
    body: &hyper::body::Incoming,
) -> i64 {
    use hyper::body::Body as _;
    if let Some(n) = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
    {
        return n;
    }
    let code = parts.status.as_u16();
    if *method == http::Method::HEAD
        || code == 204
        || code == 304
        || (100..200).contains(&code)
        || body.is_end_stream()
    {
        return 0;
    }
    -1
}
