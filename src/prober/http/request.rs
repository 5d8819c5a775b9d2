//! Request building: the target URL, headers (module headers, auth, the
//! structured `http_headers`, cookies), and the request body.
//!
//! Credentials and header files are read per request (asynchronously), as
//! prometheus/common does, so rotated secrets are picked up without reload.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};

use super::config::{Compression, HttpSettings, RequestBody};
use crate::config::file::is_credential_header;
use crate::net::userinfo;
use crate::prober::client::{
    append_extra_headers, authorization_value, mark, secret_header, user_agent,
};
use crate::prober::reason::{FailureReason, ProbeFailure};

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

/// Which credentials a hop carries.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    /// The module's, or else those in the user info of this URL (the
    /// target's, or a redirect location's own).
    Send { userinfo: &'a url::Url },
    /// A redirect to another host: none of the module's credentials, and
    /// no Authorization, Proxy-Authorization or Cookie from `headers:`.
    Withhold,
}

/// All headers of one hop except Host (h1 sets it, h2 uses :authority).
/// `oauth2`: the module's oauth2 `Authorization` value, sent only with
/// [`Credentials::Send`] like every other credential.
pub async fn hop_headers(
    s: &HttpSettings,
    cookie: Option<&str>,
    has_body: bool,
    credentials: Credentials<'_>,
    oauth2: Option<&HeaderValue>,
) -> Result<HeaderMap, ProbeFailure> {
    let send = matches!(credentials, Credentials::Send { .. });
    let mut headers = HeaderMap::new();
    headers.insert(header::USER_AGENT, user_agent());
    for (name, value) in &s.headers {
        if !send && is_credential_header(name.as_str()) {
            continue;
        }
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
    if let Credentials::Send { userinfo } = credentials {
        // The module's authorization wins over user info, as in Go (the
        // client config's round tripper sets the header last).
        // oauth2 excludes the other kinds of authorization (load checks).
        let module_auth = match oauth2 {
            Some(token) => Some(token.clone()),
            None => authorization_value(&s.client).await?,
        };
        let auth = match module_auth {
            Some(auth) => Some(auth),
            None => userinfo::basic_authorization(userinfo).and_then(|a| secret_header(&a)),
        };
        if let Some(auth) = auth {
            headers.insert(header::AUTHORIZATION, auth);
        }
    }
    append_extra_headers(&mut headers, &s.client.extra_headers, send).await?;
    if let Some(c) = cookie
        && let Ok(v) = HeaderValue::from_str(c)
    {
        headers.insert(header::COOKIE, v);
    }
    mark(&mut headers);
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
        use crate::prober::client::authority;
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
