//! `oauth2` at request time: the client credentials grant (RFC 6749 §4.4)
//! as golang.org/x/oauth2's `clientcredentials` runs it for
//! prometheus/common, and the module's token cache.
//!
//! The token request is a POST of `grant_type=client_credentials`, `scope`
//! (the scopes joined by spaces) and `endpoint_params`, form-encoded, with
//! the client id and secret in HTTP basic auth (each query-escaped first,
//! as Go does). When the endpoint answers that with a non-2xx status, the
//! request is sent once more with the credentials in the form instead
//! (golang.org/x/oauth2's auto-detection); the style that worked is kept
//! for the module's later fetches.
//!
//! The connection goes through the same connector and target policy as the
//! probe's own (a forbidden token endpoint is `target_forbidden`, a refused
//! one `connect_refused`, through the one reason table), within the probe's
//! one deadline. Its phases and certificates are not the target's and are
//! not recorded. The answer is read up to [`MAX_TOKEN_RESPONSE`] bytes.
//!
//! The token is cached per module (the cache is built with the module at
//! load) and reused until 10 s before it expires; a token without
//! `expires_in` is reused until the module is reloaded, as
//! `clientcredentials`' token source does. `client_secret_file` is read on
//! every probe, and a changed secret fetches a new token, as
//! prometheus/common does.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http_body_util::{BodyExt, Full};

use super::conn;
use super::{mark, read_secret, secret_header, user_agent};
use crate::config::client::{AuthStyle, CachedToken, OAuth2Settings};
use crate::net::address::{AddressPolicy, unbracket};
use crate::net::tls::Alpn;
use crate::net::{Connector, Endpoint, ProxyHop, Secret, TlsRequest};
use crate::prober::ProbeContext;
use crate::prober::connect;
use crate::prober::reason::{FailureReason, ProbeFailure};

/// golang.org/x/oauth2's `expiryDelta`: a token is renewed this long
/// before it expires.
pub const EARLY_EXPIRY: Duration = Duration::from_secs(10);

/// The most of a token endpoint's answer that is read; a longer one fails
/// the probe (`http_status`).
pub const MAX_TOKEN_RESPONSE: usize = 64 << 10;

/// The `Authorization` value for the probe's request: the module's cached
/// token, or a new one from the token endpoint. Concurrent probes of the
/// module wait for one fetch; the lock is not held past it.
pub async fn authorization(
    cx: &ProbeContext<'_>,
    address: AddressPolicy,
    o: &OAuth2Settings,
) -> Result<HeaderValue, ProbeFailure> {
    let secret = match &o.client_secret {
        Some(source) => Secret::new(read_secret(source).await?),
        None => Secret::default(),
    };
    let mut slot = o.cache.token.lock().await;
    let now = Instant::now();
    if let Some(token) = slot
        .as_ref()
        .filter(|t| t.fetched_with == secret && t.refresh_at.is_none_or(|at| now < at))
    {
        cx.log.info(
            "Using cached oauth2 token",
            &[("token_url", &shown_url(&o.token_url))],
        );
        return header_value(&token.authorization);
    }
    *slot = None;
    let token = fetch(cx, address, o, &secret).await?;
    let value = header_value(&token.authorization)?;
    *slot = Some(token);
    Ok(value)
}

fn header_value(authorization: &Secret) -> Result<HeaderValue, ProbeFailure> {
    secret_header(authorization).ok_or_else(|| {
        ProbeFailure::new(
            FailureReason::HttpStatus,
            "the oauth2 token cannot be sent in a header",
        )
    })
}

/// The token URL as logs show it: without its query (which may hold a
/// key) and without user info (removed at load).
fn shown_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

fn status_failure(message: String) -> ProbeFailure {
    ProbeFailure::new(FailureReason::HttpStatus, message)
}

async fn fetch(
    cx: &ProbeContext<'_>,
    address: AddressPolicy,
    o: &OAuth2Settings,
    secret: &Secret,
) -> Result<CachedToken, ProbeFailure> {
    let url = shown_url(&o.token_url);
    let remembered = *o.cache.auth_style.lock().unwrap_or_else(|e| e.into_inner());
    let mut style = match remembered {
        AuthStyle::Unknown => AuthStyle::InHeader,
        known => known,
    };
    cx.log.info("Fetching oauth2 token", &[("token_url", &url)]);
    let started = Instant::now();
    let mut answer = request(cx, address, o, secret, style).await?;
    if remembered == AuthStyle::Unknown && !answer.is_success() {
        cx.log.info(
            "Token endpoint refused the client credentials in basic auth, sending them in the form",
            &[("status_code", &answer.status)],
        );
        style = AuthStyle::InParams;
        answer = request(cx, address, o, secret, style).await?;
    }
    if !answer.is_success() {
        let detail = answer
            .oauth_error()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(status_failure(format!(
            "oauth2 token endpoint {url} answered {}{detail}",
            answer.status
        )));
    }
    if answer.too_large {
        return Err(status_failure(format!(
            "oauth2 token endpoint {url} answered {} with more than {MAX_TOKEN_RESPONSE} bytes",
            answer.status
        )));
    }
    let Some(token) = answer.token() else {
        return Err(status_failure(format!(
            "oauth2 token endpoint {url} answered {} without an access_token",
            answer.status
        )));
    };
    if remembered == AuthStyle::Unknown {
        *o.cache.auth_style.lock().unwrap_or_else(|e| e.into_inner()) = style;
    }
    let received = Instant::now();
    let refresh_at = match token.expires_in {
        0 => None,
        n if n <= EARLY_EXPIRY.as_secs() as i64 => Some(received),
        n => Some(received + Duration::from_secs(n as u64) - EARLY_EXPIRY),
    };
    cx.log.info(
        "Fetched oauth2 token",
        &[
            ("token_type", &token.token_type),
            ("expires_in", &token.expires_in),
            (
                "duration_seconds",
                &format!("{:.6}", (received - started).as_secs_f64()),
            ),
        ],
    );
    Ok(CachedToken {
        authorization: Secret::new(format!("{} {}", token.token_type, token.access_token)),
        refresh_at,
        fetched_with: secret.clone(),
    })
}

/// What the token endpoint answered.
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Bytes,
    /// The body went past [`MAX_TOKEN_RESPONSE`] (and was cut there).
    too_large: bool,
}

/// A usable token.
struct Token {
    access_token: String,
    /// As golang.org/x/oauth2's `Token.Type()`: Bearer, MAC and Basic
    /// canonicalised, another type as given, Bearer when none.
    token_type: String,
    /// Seconds; 0 when absent.
    expires_in: i64,
}

impl Answer {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn is_form(&self) -> bool {
        let media = self
            .content_type
            .as_deref()
            .and_then(|c| c.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        matches!(
            media.as_deref(),
            Some("application/x-www-form-urlencoded" | "text/plain")
        )
    }

    /// The RFC 6749 `error` code of an error answer, when it is a short
    /// plain word (never more of the body, which could echo anything).
    fn oauth_error(&self) -> Option<String> {
        let code = if self.is_form() {
            form_urlencoded::parse(&self.body)
                .find(|(k, _)| k == "error")
                .map(|(_, v)| v.into_owned())
        } else {
            serde_json::from_slice::<serde_json::Value>(&self.body)
                .ok()?
                .get("error")?
                .as_str()
                .map(str::to_string)
        }?;
        let plain = !code.is_empty()
            && code.len() <= 64
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        plain.then_some(code)
    }

    /// golang.org/x/oauth2's parsing: form-encoded for
    /// `application/x-www-form-urlencoded` and `text/plain`, else JSON;
    /// `expires_in` a number or a numeric string.
    fn token(&self) -> Option<Token> {
        let (access_token, token_type, expires_in) = if self.is_form() {
            let get = |name: &str| {
                form_urlencoded::parse(&self.body)
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            };
            let expires_in = get("expires_in")
                .and_then(|e| e.trim().parse::<i64>().ok())
                .unwrap_or(0);
            (get("access_token")?, get("token_type"), expires_in)
        } else {
            let json: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
            let text = |name: &str| json.get(name)?.as_str().map(str::to_string);
            let expires_in = match json.get("expires_in") {
                Some(serde_json::Value::Number(n)) => n
                    .as_i64()
                    .or_else(|| n.as_f64().map(|f| f as i64))
                    .unwrap_or(0),
                Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().unwrap_or(0),
                _ => 0,
            };
            (text("access_token")?, text("token_type"), expires_in)
        };
        if access_token.is_empty() {
            return None;
        }
        let token_type = match token_type.as_deref().unwrap_or("") {
            "" => "Bearer".to_string(),
            t if t.eq_ignore_ascii_case("bearer") => "Bearer".to_string(),
            t if t.eq_ignore_ascii_case("mac") => "MAC".to_string(),
            t if t.eq_ignore_ascii_case("basic") => "Basic".to_string(),
            t => t.to_string(),
        };
        Some(Token {
            access_token,
            token_type,
            expires_in: expires_in.min(i64::from(i32::MAX)),
        })
    }
}

/// Go's `url.QueryEscape`: unreserved bytes as they are, space as `+`,
/// everything else `%XX`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The form of the token request, keys sorted (Go's `url.Values.Encode`).
fn form(o: &OAuth2Settings, secret: &Secret, style: AuthStyle) -> String {
    let mut values = std::collections::BTreeMap::new();
    values.insert("grant_type".to_string(), "client_credentials".to_string());
    if !o.scopes.is_empty() {
        values.insert("scope".to_string(), o.scopes.join(" "));
    }
    for (k, v) in &o.endpoint_params {
        values.insert(k.clone(), v.clone());
    }
    if style == AuthStyle::InParams {
        if !o.client_id.is_empty() {
            values.insert("client_id".to_string(), o.client_id.clone());
        }
        if !secret.is_empty() {
            values.insert("client_secret".to_string(), secret.expose().to_string());
        }
    }
    values
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One POST to the token endpoint on its own connection (HTTP/1.1).
async fn request(
    cx: &ProbeContext<'_>,
    address: AddressPolicy,
    o: &OAuth2Settings,
    secret: &Secret,
    style: AuthStyle,
) -> Result<Answer, ProbeFailure> {
    let url = &o.token_url;
    let https = url.scheme() == "https";
    let host = unbracket(url.host_str().unwrap_or_default()).to_string();
    let port = url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    let proxy = o.proxy.as_ref().and_then(|p| p.select(https, &host, port));
    let server_name = o.tls.server_name_for(None, &host);
    let connector = Connector {
        address,
        targets: cx.targets,
        source: None,
        proxy: proxy.as_ref().map(|url| ProxyHop {
            url,
            tunnel: https,
            connect_headers: o
                .proxy
                .as_ref()
                .map(|p| p.connect_headers.as_slice())
                .unwrap_or_default(),
        }),
        tls: https.then(|| TlsRequest {
            client: &o.tls,
            server_name: &server_name,
            alpn: Alpn::Http1,
            confirm: false,
        }),
    };
    let opened = connect::open_aside(
        cx,
        &connector,
        Endpoint {
            host: &host,
            port,
            address: None,
        },
    )
    .await?;

    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let plain_proxy = proxy.as_ref().filter(|_| !https);
    let uri = match plain_proxy {
        Some(_) => url.to_string(),
        None => path,
    };
    let authority = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let host_value = HeaderValue::from_str(&authority).map_err(|_| {
        ProbeFailure::new(
            FailureReason::InvalidTarget,
            format!("invalid oauth2 token_url host {authority:?}"),
        )
    })?;
    let body = form(o, secret, style);
    let mut req = http::Request::builder()
        .method(http::Method::POST)
        .uri(uri)
        .version(http::Version::HTTP_11)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| {
            ProbeFailure::new(
                FailureReason::InvalidTarget,
                format!("invalid oauth2 token request: {e}"),
            )
        })?;
    let headers = req.headers_mut();
    headers.insert(header::HOST, host_value);
    headers.insert(header::USER_AGENT, user_agent());
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if style == AuthStyle::InHeader {
        use base64::Engine as _;
        let basic = Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                query_escape(&o.client_id),
                query_escape(secret.expose())
            ))
        ));
        if let Some(v) = secret_header(&basic) {
            headers.insert(header::AUTHORIZATION, v);
        }
    }
    if let Some(auth) = plain_proxy
        .and_then(|p| p.basic_authorization())
        .and_then(|a| secret_header(&a))
    {
        headers.insert(header::PROXY_AUTHORIZATION, auth);
    }
    mark(headers);

    let (mut sender, connection) = conn::http1(opened.stream, false).await?;
    let (response, connection) = conn::send(
        sender.send_request(req),
        connection,
        "Error for oauth2 token request",
    )
    .await?;
    let (parts, mut incoming) = response.into_parts();
    let mut body = Vec::new();
    let mut too_large = false;
    while let Some(frame) = incoming.frame().await {
        let frame = frame
            .map_err(|e| ProbeFailure::hyper(&e, "Error reading the oauth2 token response"))?;
        if let Ok(data) = frame.into_data() {
            if body.len() + data.len() > MAX_TOKEN_RESPONSE {
                too_large = true;
                break;
            }
            body.extend_from_slice(&data);
        }
    }
    drop(connection);
    Ok(Answer {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: Bytes::from(body),
        too_large,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(content_type: &str, body: &str) -> Answer {
        Answer {
            status: 200,
            content_type: Some(content_type.to_string()),
            body: Bytes::from(body.to_string()),
            too_large: false,
        }
    }

    #[test]
    fn go_query_escape() {
        assert_eq!(query_escape("a b+c/~*é"), "a+b%2Bc%2F~%2A%C3%A9");
        assert_eq!(query_escape("id-_.Z9"), "id-_.Z9");
    }

    #[test]
    fn tokens_as_golang_parses_them() {
        let t = answer(
            "application/json; charset=utf-8",
            r#"{"access_token":"abc","token_type":"bearer","expires_in":3600}"#,
        )
        .token()
        .expect("token");
        assert_eq!(
            (t.access_token.as_str(), t.token_type.as_str(), t.expires_in),
            ("abc", "Bearer", 3600)
        );
        let t = answer(
            "application/json",
            r#"{"access_token":"x","expires_in":"60"}"#,
        )
        .token()
        .expect("token");
        assert_eq!((t.token_type.as_str(), t.expires_in), ("Bearer", 60));
        let t = answer(
            "application/x-www-form-urlencoded",
            "access_token=f%20f&token_type=DPoP&expires_in=5",
        )
        .token()
        .expect("token");
        assert_eq!(
            (t.access_token.as_str(), t.token_type.as_str(), t.expires_in),
            ("f f", "DPoP", 5)
        );
        assert!(
            answer("application/json", r#"{"token_type":"bearer"}"#)
                .token()
                .is_none()
        );
        assert!(
            answer("application/json", r#"{"access_token":""}"#)
                .token()
                .is_none()
        );
        assert!(answer("application/json", "not json").token().is_none());
        assert!(
            answer("", r#"{"access_token":"no type"}"#)
                .token()
                .is_some()
        );
    }

    #[test]
    fn error_codes_only_when_plain() {
        let mut a = answer("application/json", r#"{"error":"invalid_client"}"#);
        a.status = 401;
        assert_eq!(a.oauth_error().as_deref(), Some("invalid_client"));
        let a = answer("application/json", r#"{"error":"has spaces s3cret"}"#);
        assert_eq!(a.oauth_error(), None);
        let a = answer("text/plain", "error=unauthorized_client");
        assert_eq!(a.oauth_error().as_deref(), Some("unauthorized_client"));
    }
}
