//! Request building: the target URL, headers (module headers, auth, the
//! structured `http_headers`, cookies), and the request body.
//!
//! Credentials and header files are read per request (asynchronously), as
//! prometheus/common does, so rotated secrets are picked up without reload.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};

use super::super::reason::{FailureReason, ProbeFailure};
use crate::config::model::{
    Authorization, ClientSettings, Compression, ExtraHeader, HttpSettings, RequestBody,
    SecretSource,
};

/// The User-Agent sent unless the module sets one.
pub fn default_user_agent() -> String {
    format!("handshake_exporter/{}", env!("CARGO_PKG_VERSION"))
}

fn invalid(msg: String) -> ProbeFailure {
    ProbeFailure::new(FailureReason::InvalidTarget, msg)
}

/// Parse an http prober target: `http(s)://` (scheme case-insensitive) or
/// no scheme at all (`http://` is assumed, as blackbox does).
pub fn parse_target(target: &str) -> Result<url::Url, ProbeFailure> {
    let with_scheme = if target.contains("://") {
        target.to_string()
    } else {
        format!("http://{target}")
    };
    let url = url::Url::parse(&with_scheme)
        .map_err(|e| invalid(format!("Could not parse target URL {target:?}: {e}")))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(invalid(format!(
                "unsupported scheme {other:?} in target {target:?}: use http:// or https://"
            )));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("target {target:?} has no host")));
    }
    Ok(url)
}

/// `host[:port]` as the Host header shows it (port omitted when default).
pub fn authority(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

async fn read_secret(source: &SecretSource) -> Result<String, ProbeFailure> {
    match source {
        SecretSource::Inline(s) => Ok(s.clone()),
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

/// Append the structured `http_headers` (values, secrets, then files).
pub async fn append_extra_headers(
    headers: &mut HeaderMap,
    extra: &[ExtraHeader],
) -> Result<(), ProbeFailure> {
    for h in extra {
        let mut values: Vec<(String, bool)> = Vec::new();
        values.extend(h.values.iter().map(|v| (v.clone(), false)));
        values.extend(h.secrets.iter().map(|v| (v.clone(), true)));
        for path in &h.files {
            let content = tokio::fs::read_to_string(path).await.map_err(|e| {
                invalid(format!(
                    "unable to read header file {}: {e}",
                    path.display()
                ))
            })?;
            values.push((content.trim().to_string(), true));
        }
        for (v, sensitive) in values {
            let mut value = HeaderValue::from_str(&v)
                .map_err(|_| invalid(format!("invalid value for header {}", h.name)))?;
            value.set_sensitive(sensitive);
            headers.append(h.name.clone(), value);
        }
    }
    Ok(())
}

/// The request body of the module (`body_file` is read per probe).
pub async fn load_body(s: &HttpSettings) -> Result<Bytes, ProbeFailure> {
    match &s.body {
        RequestBody::None => Ok(Bytes::new()),
        RequestBody::Inline(b) => Ok(b.clone()),
        RequestBody::File(path) => tokio::fs::read(path)
            .await
            .map(Bytes::from)
            .map_err(|e| invalid(format!("unable to read body_file {}: {e}", path.display()))),
    }
}

fn compression_token(c: Compression) -> &'static str {
    match c {
        Compression::Identity => "identity",
        Compression::Gzip => "gzip",
        Compression::Deflate => "deflate",
        Compression::Brotli => "br",
    }
}

/// All headers of one hop except Host (h1 sets it, h2 uses :authority).
pub async fn hop_headers(
    s: &HttpSettings,
    cookie: Option<&str>,
    has_body: bool,
) -> Result<HeaderMap, ProbeFailure> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_str(&default_user_agent())
            .unwrap_or(HeaderValue::from_static("handshake_exporter")),
    );
    for (name, value) in &s.headers {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(c) = s.compression
        && !headers.contains_key(header::ACCEPT_ENCODING)
    {
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static(compression_token(c)),
        );
    }
    if let Some(auth) = authorization_value(&s.client).await? {
        headers.insert(header::AUTHORIZATION, auth);
    }
    append_extra_headers(&mut headers, &s.client.extra_headers).await?;
    if let Some(c) = cookie
        && let Ok(v) = HeaderValue::from_str(c)
    {
        headers.insert(header::COOKIE, v);
    }
    if !has_body {
        headers.remove(header::CONTENT_LENGTH);
    }
    Ok(headers)
}

/// Cookies set during one probe, replayed on later hops to the same host
/// (blackbox keeps a per-probe cookie jar across redirects).
#[derive(Debug, Default)]
pub struct CookieJar {
    cookies: Vec<(String, String, String)>, // (host, name, value)
}

impl CookieJar {
    pub fn store(&mut self, host: &str, headers: &HeaderMap) {
        for v in headers.get_all(header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let pair = v.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim().to_string(), value.trim().to_string());
            self.cookies.retain(|(h, n, _)| !(h == host && *n == name));
            self.cookies.push((host.to_string(), name, value));
        }
    }

    pub fn header_for(&self, host: &str) -> Option<String> {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|(h, _, _)| h == host)
            .map(|(_, n, v)| format!("{n}={v}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }
}

/// `Host` header value check (used for `hostname` and module Host).
pub fn host_header_value(host: &str) -> Result<HeaderValue, ProbeFailure> {
    HeaderValue::from_str(host).map_err(|_| invalid(format!("invalid Host header value {host:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("example.com:8080/x").unwrap().as_str(),
            "http://example.com:8080/x"
        );
        assert_eq!(parse_target("HTTPS://a/").unwrap().scheme(), "https");
        assert!(parse_target("ftp://a/").is_err());
        assert!(parse_target("http://").is_err());
        assert_eq!(authority(&parse_target("http://a:80/").unwrap()), "a");
        assert_eq!(authority(&parse_target("http://a:81/").unwrap()), "a:81");
    }

    #[test]
    fn cookie_jar_per_host() {
        let mut jar = CookieJar::default();
        let mut h = HeaderMap::new();
        h.append(header::SET_COOKIE, HeaderValue::from_static("a=1; Path=/"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        jar.store("x", &h);
        assert_eq!(jar.header_for("x").as_deref(), Some("a=1; b=2"));
        assert_eq!(jar.header_for("y"), None);
    }
}
