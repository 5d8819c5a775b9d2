//! `prober: http` — blackbox's HTTP prober, split into its config block
//! (`config`), request building (`request`), one round trip per redirect
//! hop (`hop`; over HTTP/3 with `enable_http3`: `h3`), body reading
//! (`body`), response checks (`checks`, with the CEL matchers in `cel`) and
//! metric emission (`metrics`).
//!
//! The first hop goes to the address chosen by `preferred_ip_protocol`
//! with the original name as Host and SNI; redirects (≤ 10) are followed on
//! new connections with phases summed; a 101 ends the probe right after the
//! response head (blackbox drains it until the server closes, past the
//! deadline).

pub mod body;
pub mod cel;
pub mod checks;
pub mod config;
pub mod h3;
pub mod hop;
pub mod metrics;
pub mod request;

use std::net::IpAddr;

use http::StatusCode;

use super::address;
use super::metrics::GaugeSpec;
use super::reason::ProbeFailure;
use super::registry::Prober;
use super::{ProbeContext, tls_metrics};
use crate::config::{ConfigError, Ctx};
use crate::net::address::unbracket;
use crate::net::userinfo;
use crate::prober::client::{authority, may_carry_credentials, oauth2};
pub use config::{HttpProbeFile, HttpSettings};
use metrics::{FinalResponse, HTTP_DURATION};

impl Prober for HttpSettings {
    type Block = HttpProbeFile;
    const METRICS: &'static [&'static [&'static GaugeSpec]] =
        &[address::METRICS, tls_metrics::METRICS, metrics::OWN];

    fn build(ctx: &Ctx<'_>, block: &HttpProbeFile) -> Result<Self, ConfigError> {
        config::build(ctx, block)
    }

    fn shown(block: HttpProbeFile, built: &Self) -> HttpProbeFile {
        config::shown(block, built)
    }

    async fn probe(&self, cx: &ProbeContext<'_>, target: &str) -> Result<(), ProbeFailure> {
        probe(cx, target, self).await
    }
}

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

impl Destination {
    /// The first hop: the pre-resolved address (unless a proxy resolves
    /// for us), and Host/SNI from `hostname`, a module Host header, or the URL.
    async fn first(
        cx: &ProbeContext<'_>,
        target: &str,
        s: &HttpSettings,
    ) -> Result<Self, ProbeFailure> {
        let mut url = request::parse_target(target)?;
        upgrade_for_http3(cx, s, &mut url);
        let url_host = unbracket(url.host_str().unwrap_or_default()).to_string();
        let host_override = cx.hostname.map(str::to_string).or_else(|| s.host.clone());
        let address = if s.skip_resolve_phase_with_proxy && hop::proxied(s, &url) {
            None
        } else {
            Some(address::resolve_target(cx, &url_host, s.address, Some(&HTTP_DURATION)).await?)
        };
        let server_name = s
            .client
            .tls
            .server_name_for(host_override.as_deref(), &url_host);
        Ok(Self {
            host_header: host_override.unwrap_or_else(|| authority(&url)),
            url,
            address,
            server_name,
        })
    }

    /// The next hop of a redirect: same origin keeps address, Host and SNI;
    /// a new host is resolved by the client and Host/SNI follow it.
    fn redirect(self, cx: &ProbeContext<'_>, next: url::Url) -> Self {
        let same_origin = next.scheme() == self.url.scheme()
            && next.host_str() == self.url.host_str()
            && next.port_or_known_default() == self.url.port_or_known_default();
        if same_origin {
            return Self { url: next, ..self };
        }
        cx.log.info(
            "Address does not match first address, not sending TLS ServerName",
            &[
                ("first", &self.url.host_str().unwrap_or_default()),
                ("address", &next.host_str().unwrap_or_default()),
            ],
        );
        Self {
            host_header: authority(&next),
            server_name: unbracket(next.host_str().unwrap_or_default()).to_string(),
            address: None,
            url: next,
        }
    }
}

/// The response the probe judges, and how it was reached.
struct Fetched {
    hop: hop::HopResponse,
    /// The method of the final request (redirects may turn POST into GET).
    method: http::Method,
    /// `probe_http_redirects`: followed redirects; 1 when not following;
    /// 11 when the limit was hit.
    redirects: u32,
    /// The final response is a redirect we did not follow (its body is
    /// left unread, as Go closes it).
    refused_redirect: bool,
    limit_hit: bool,
}

/// Send the request and follow redirects (≤ 10) as Go's client does.
async fn fetch(
    cx: &ProbeContext<'_>,
    s: &HttpSettings,
    mut dest: Destination,
) -> Result<Fetched, ProbeFailure> {
    let mut method = s.method.clone();
    let mut body = request::load_body(s).await?;
    let mut cookies = request::CookieJar::default();
    let mut redirects: u32 = 0;
    let first = dest.url.clone();
    // The oauth2 token, fetched for the first hop that may carry it and
    // reused by the later ones.
    let mut token: Option<http::HeaderValue> = None;
    loop {
        cx.log.info(
            "Making HTTP request",
            &[
                ("url", &userinfo::redact(dest.url.as_str())),
                ("host", &dest.host_header),
            ],
        );
        let credentials = if may_carry_credentials(&first, &dest.url) {
            // A redirect location's own user info, else the target's.
            let has_userinfo = !dest.url.username().is_empty() || dest.url.password().is_some();
            request::Credentials::Send {
                userinfo: if has_userinfo { &dest.url } else { &first },
            }
        } else {
            cx.log.info(
                "Redirected to another host: not sending the module's credentials",
                &[("host", &dest.url.host_str().unwrap_or_default())],
            );
            request::Credentials::Withhold
        };
        if let (request::Credentials::Send { .. }, Some(o), None) =
            (credentials, &s.client.oauth2, &token)
        {
            token = Some(
                oauth2::authorization(cx, s.address, o)
                    .await
                    .inspect_err(|e| {
                        cx.log
                            .error("Error fetching oauth2 token", &[("err", &e.message)])
                    })?,
            );
        }
        let headers = request::hop_headers(
            s,
            cookies.header_for(&dest.host_header).as_deref(),
            !body.is_empty(),
            credentials,
            token.as_ref(),
        )
        .await?;
        let hop = hop::round_trip(
            cx,
            s,
            hop::Hop {
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
        let done = |hop, redirects, refused_redirect, limit_hit| Fetched {
            hop,
            method: method.clone(),
            redirects,
            refused_redirect,
            limit_hit,
        };
        let (true, Some(location)) = (is_followable_redirect(status), location) else {
            return Ok(done(hop, redirects, false, false));
        };
        cx.log.info("Received redirect", &[("location", &location)]);
        if !s.client.follow_redirects {
            cx.log.info("Not following redirect", &[]);
            return Ok(done(hop, 1, true, false));
        }
        if redirects >= MAX_REDIRECTS {
            cx.log.info(
                "Not following redirect",
                &[("reason", &"stopped after 10 redirects")],
            );
            return Ok(done(hop, MAX_REDIRECTS + 1, true, true));
        }
        let mut next = match dest.url.join(&location) {
            Ok(next) if matches!(next.scheme(), "http" | "https") => next,
            _ => {
                cx.log
                    .warn("Invalid redirect location", &[("location", &location)]);
                return Ok(done(hop, redirects, true, false));
            }
        };
        upgrade_for_http3(cx, s, &mut next);
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
        hop.connection.close().await;
        dest = dest.redirect(cx, next);
    }
}

/// With `enable_http3` every request is HTTP/3, which is always TLS: an
/// `http://` target or redirect location is upgraded to `https://` (its
/// port kept, or 443), as blackbox does.
fn upgrade_for_http3(cx: &ProbeContext<'_>, s: &HttpSettings, url: &mut url::Url) {
    if s.http3.is_some() && url.scheme() == "http" && url.set_scheme("https").is_ok() {
        cx.log.info(
            "HTTP/3: upgraded the URL to https",
            &[("url", &userinfo::redact(url.as_str()))],
        );
    }
}

pub async fn probe(
    cx: &ProbeContext<'_>,
    target: &str,
    s: &HttpSettings,
) -> Result<(), ProbeFailure> {
    let dest = Destination::first(cx, target, s).await?;
    let fetched = fetch(cx, s, dest).await?;
    let hop::HopResponse {
        response,
        tls,
        connection,
    } = fetched.hop;
    let (parts, incoming) = response.into_parts();
    cx.log.info(
        "Received HTTP response",
        &[("status_code", &parts.status.as_u16())],
    );
    let mut final_response = FinalResponse {
        status: parts.status.as_u16(),
        content_length: content_length(&parts, &fetched.method, &incoming),
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
        tls_metrics::record(cx, t);
    }

    // The body: not for a refused redirect (Go closes it unread), not for a
    // 101 (the connection now belongs to another protocol).
    let mut read = if fetched.refused_redirect || parts.status == StatusCode::SWITCHING_PROTOCOLS {
        None
    } else {
        let _transfer = cx.phase(&HTTP_DURATION, "transfer");
        Some(
            body::read_body(
                incoming,
                s.compression,
                body_limit(s, cx.limits.max_body_bytes),
                checks::needs_body(s),
            )
            .await,
        )
    };
    connection.close().await;
    let mut body_check = None;
    if let Some(r) = &mut read {
        final_response.body_bytes = r.bytes;
        if let Some(kept) = r.body.take() {
            body_check = Some(checks::check_body_off_runtime(s, kept).await);
        }
    }
    metrics::emit(cx, &final_response, fetched.redirects);

    let verdict = checks::evaluate(
        s,
        &checks::ResponseView {
            status: final_response.status,
            version: parts.version,
            headers: &parts.headers,
            body_check: body_check.as_ref(),
            body_error: read.as_ref().and_then(|r| r.error.as_ref()),
            ssl: final_response.ssl,
            redirect_limit_hit: fetched.limit_hit,
        },
    );
    let regex_failed = if verdict.failed_due_to_regex {
        1.0
    } else {
        0.0
    };
    cx.metrics.set(&metrics::FAILED_DUE_TO_REGEX, regex_failed);
    if s.cel.is_configured() {
        let cel_failed = if verdict.failed_due_to_cel { 1.0 } else { 0.0 };
        cx.metrics.set(&metrics::FAILED_DUE_TO_CEL, cel_failed);
    }
    if final_response.ssl {
        cx.log.info("Final request was over SSL", &[]);
    } else {
        cx.log.info("Final request was not over SSL", &[]);
    }
    verdict.result
}

/// The cap on the final body: the module's `body_size_limit`; else, for a
/// body that is kept for regexes or decompressed, the exporter's
/// `--probe.max-body-bytes`; else none (the body is only counted).
fn body_limit(s: &HttpSettings, max_body_bytes: u64) -> Option<body::Limit> {
    if let Some(bytes) = s.body_size_limit {
        return Some(body::Limit {
            bytes,
            from_module: true,
        });
    }
    let decoded = matches!(s.compression, Some(c) if c != config::Compression::Identity);
    (checks::needs_body(s) || decoded).then_some(body::Limit {
        bytes: max_body_bytes,
        from_module: false,
    })
}

/// Go's `resp.ContentLength`: the header's value, 0 when the response has
/// no body by definition, else -1 (unknown: chunked or close-delimited).
fn content_length(
    parts: &http::response::Parts,
    method: &http::Method,
    body: &body::ResponseBody,
) -> i64 {
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
