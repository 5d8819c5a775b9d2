//! The HTTP client config at request time, shared by every HTTP-based
//! prober (http, websocket, sse): which proxy and TLS settings a request goes
//! through ([`connector`]), the credentials and headers it carries (read
//! per request, as prometheus/common does, so rotated secrets are picked up
//! without a reload), and the hyper connection it is sent on ([`conn`]).

pub mod conn;
pub mod oauth2;

use http::header::{HeaderMap, HeaderValue};

use super::reason::{FailureReason, ProbeFailure};
use crate::config::client::{Authorization, ClientSettings, ExtraHeader, SecretSource};
use crate::net::address::AddressPolicy;
use crate::net::policy::TargetPolicy;
use crate::net::proxy::ProxyUrl;
use crate::net::tls::Alpn;
use crate::net::{Connector, ProxyHop, Secret, TlsRequest};

/// The User-Agent sent unless the module sets one.
pub fn default_user_agent() -> String {
    format!("handshake_exporter/{}", env!("CARGO_PKG_VERSION"))
}

fn invalid(msg: String) -> ProbeFailure {
    ProbeFailure::new(FailureReason::InvalidTarget, msg)
}

/// `host[:port]` as the Host header shows it (port omitted when default).
pub fn authority(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// `Host` header value check (used for `hostname` and a module's Host).
pub fn host_header_value(host: &str) -> Result<HeaderValue, ProbeFailure> {
    HeaderValue::from_str(host).map_err(|_| invalid(format!("invalid Host header value {host:?}")))
}

/// The proxy a request to `host:port` goes through, if any (`secure`: an
/// https or wss URL).
pub fn proxy_for(s: &ClientSettings, secure: bool, host: &str, port: u16) -> Option<ProxyUrl> {
    s.proxy.as_ref()?.select(secure, host, port)
}

/// The ALPN offer of the module: h2 only when `enable_http2`.
pub fn alpn(enable_http2: bool) -> Alpn {
    if enable_http2 {
        Alpn::H2AndHttp1
    } else {
        Alpn::Http1
    }
}

/// The connector for one request: the module's address and target
/// policies, `proxy` (tunnelled with CONNECT when `tunnel`), and TLS with
/// the module's client when `tls` says so.
pub fn connector<'a>(
    s: &'a ClientSettings,
    (address, targets): (AddressPolicy, &'a TargetPolicy),
    proxy: Option<&'a ProxyUrl>,
    tunnel: bool,
    tls: Option<(&'a str, Alpn)>,
) -> Connector<'a> {
    Connector {
        address,
        targets,
        source: None,
        proxy: proxy.map(|url| ProxyHop {
            url,
            tunnel,
            connect_headers: s
                .proxy
                .as_ref()
                .map(|p| p.connect_headers.as_slice())
                .unwrap_or_default(),
        }),
        tls: tls.map(|(server_name, alpn)| TlsRequest {
            client: &s.tls,
            server_name,
            alpn,
            confirm: false,
        }),
    }
}

async fn read_secret(source: &SecretSource) -> Result<String, ProbeFailure> {
    match source {
        SecretSource::Inline(s) => Ok(s.expose().to_string()),
        SecretSource::File(path) => tokio::fs::read_to_string(path)
            .await
            .map(|s| s.trim().to_string())
            .map_err(|e| {
                invalid(format!(
                    "unable to read secret file {}: {e}",
                    path.display()
                ))
            }),
    }
}

/// The `Authorization` header value of the client config, if any.
pub async fn authorization_value(
    client: &ClientSettings,
) -> Result<Option<HeaderValue>, ProbeFailure> {
    let value = match &client.authorization {
        None => return Ok(None),
        Some(Authorization::Basic { username, password }) => {
            use base64::Engine as _;
            let user = read_secret(username).await?;
            let pass = match password {
                Some(p) => read_secret(p).await?,
                None => String::new(),
            };
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            )
        }
        Some(Authorization::Scheme {
            scheme,
            credentials,
        }) => {
            format!("{scheme} {}", read_secret(credentials).await?)
        }
    };
    let mut v = HeaderValue::from_str(&value).map_err(|_| {
        invalid("authorization credentials contain invalid header characters".into())
    })?;
    v.set_sensitive(true);
    Ok(Some(v))
}

/// A module's own request headers over `headers` (which holds the
/// prober's defaults): the plain `headers:` values replace a default, the
/// structured ones (`{values, secrets, files}`) replace it and then append
/// their values, then the client config's `http_headers` and its
/// `Authorization`. Used by the probers that send one request with a
/// module's headers (websocket, sse).
pub async fn apply_module_headers(
    headers: &mut HeaderMap,
    plain: &[(http::HeaderName, HeaderValue)],
    structured: &[ExtraHeader],
    client: &ClientSettings,
) -> Result<(), ProbeFailure> {
    for (name, value) in plain {
        headers.insert(name.clone(), value.clone());
    }
    for h in structured {
        headers.remove(&h.name);
    }
    append_extra_headers(headers, structured, true).await?;
    append_extra_headers(headers, &client.extra_headers, true).await?;
    if let Some(auth) = authorization_value(client).await? {
        headers.insert(http::header::AUTHORIZATION, auth);
    }
    Ok(())
}

/// Append the structured `http_headers` (values, secrets, then files).
/// Without `with_secrets` (a redirect to another host), only the plain
/// values: secrets and files are credentials.
pub async fn append_extra_headers(
    headers: &mut HeaderMap,
    extra: &[ExtraHeader],
    with_secrets: bool,
) -> Result<(), ProbeFailure> {
    for h in extra {
        let mut values: Vec<(String, bool)> = Vec::new();
        values.extend(h.values.iter().map(|v| (v.clone(), false)));
        if !with_secrets {
            append_values(headers, h, values)?;
            continue;
        }
        values.extend(h.secrets.iter().map(|v| (v.expose().to_string(), true)));
        for path in &h.files {
            let content = tokio::fs::read_to_string(path).await.map_err(|e| {
                invalid(format!(
                    "unable to read header file {}: {e}",
                    path.display()
                ))
            })?;
            values.push((content.trim().to_string(), true));
        }
        append_values(headers, h, values)?;
    }
    Ok(())
}

fn append_values(
    headers: &mut HeaderMap,
    h: &ExtraHeader,
    values: Vec<(String, bool)>,
) -> Result<(), ProbeFailure> {
    for (v, sensitive) in values {
        let mut value = HeaderValue::from_str(&v)
            .map_err(|_| invalid(format!("invalid value for header {}", h.name)))?;
        value.set_sensitive(sensitive);
        headers.append(h.name.clone(), value);
    }
    Ok(())
}

/// Whether a request to `hop` may carry the credentials meant for
/// `first`: the same host, or a name below it (Go's rule for redirects, as
/// browsers do); never another host.
pub fn may_carry_credentials(first: &url::Url, hop: &url::Url) -> bool {
    let host = |u: &url::Url| {
        u.host_str()
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_ascii_lowercase()
    };
    let (first, hop) = (host(first), host(hop));
    hop == first || hop.ends_with(&format!(".{first}"))
}

/// The header every HTTP-based request of a probe carries, so the
/// exporter's own `/probe` can refuse requests that come from a probe
/// (508 Loop Detected): a target redirecting to the exporter cannot make it
/// probe itself, over and over.
pub const LOOP_MARK: http::HeaderName = http::HeaderName::from_static("x-handshake-exporter-probe");

/// Mark a probe's request (after the module's headers: a module cannot
/// remove the mark).
pub fn mark(headers: &mut HeaderMap) {
    headers.insert(LOOP_MARK, HeaderValue::from_static("1"));
}

/// The User-Agent header value sent unless the module sets one.
pub fn user_agent() -> HeaderValue {
    HeaderValue::from_str(&default_user_agent())
        .unwrap_or(HeaderValue::from_static("handshake_exporter"))
}

/// A header value holding a secret (a proxy's Proxy-Authorization).
pub fn secret_header(value: &Secret) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value.expose()).ok()?;
    v.set_sensitive(true);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(authority(&url("http://a:80/")), "a");
        assert_eq!(authority(&url("http://a:81/")), "a:81");
        assert_eq!(authority(&url("http://[::1]:81/")), "[::1]:81");
    }
}
