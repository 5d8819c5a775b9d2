//! HTTP proxies: which proxy a request uses (`proxy_url`, `no_proxy`,
//! `proxy_from_environment`) and the CONNECT tunnel through it.

use std::fmt;
use std::net::IpAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::address::{Cidr, authority, unbracket};
use super::error::ProxyError;
use super::{Secret, Stream, userinfo};

/// A proxy URL. `Debug` and `Display` hide its password, as
/// prometheus/common's `url.Redacted()` does.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl(url::Url);

impl ProxyUrl {
    pub fn new(url: url::Url) -> Self {
        Self(url)
    }

    pub fn host(&self) -> String {
        unbracket(self.0.host_str().unwrap_or_default()).to_string()
    }

    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(80)
    }

    /// `Basic …` from the user info, if the URL has any (sent as
    /// Proxy-Authorization).
    pub fn basic_authorization(&self) -> Option<Secret> {
        userinfo::basic_authorization(&self.0)
    }

    /// The URL as shown: the password replaced by `xxxxx`.
    pub fn redacted(&self) -> String {
        userinfo::redact(self.0.as_str())
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The proxy part of an HTTP client config.
#[derive(Debug, Clone, Default)]
pub struct ProxySettings {
    /// `proxy_url` (http:// or https:// proxies).
    pub url: Option<ProxyUrl>,
    /// `no_proxy` entries: IPs, CIDRs, domains (".example.com" or
    /// "example.com" match subdomains), optional `:port`.
    pub no_proxy: Vec<String>,
    /// `proxy_from_environment`: HTTP_PROXY / HTTPS_PROXY / NO_PROXY.
    pub from_environment: bool,
    /// `proxy_connect_header`: sent on CONNECT.
    pub connect_headers: Vec<(http::HeaderName, Secret)>,
}

impl ProxySettings {
    /// The proxy for a request to `host:port` (`secure`: an https or wss
    /// URL, which picks HTTPS_PROXY from the environment), if any.
    pub fn select(&self, secure: bool, host: &str, port: u16) -> Option<ProxyUrl> {
        let (proxy, no_proxy) = if let Some(u) = &self.url {
            (Some(u.clone()), self.no_proxy.clone())
        } else if self.from_environment {
            environment_proxy(secure)
        } else {
            (None, Vec::new())
        };
        let proxy = proxy?;
        let host = unbracket(host).to_ascii_lowercase();
        if no_proxy
            .iter()
            .any(|entry| no_proxy_matches(entry, &host, port))
        {
            return None;
        }
        Some(proxy)
    }
}

fn environment_proxy(secure: bool) -> (Option<ProxyUrl>, Vec<String>) {
    let var = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok())
            .filter(|v| !v.is_empty())
    };
    let proxy = if secure {
        var(&["HTTPS_PROXY", "https_proxy"])
    } else {
        var(&["HTTP_PROXY", "http_proxy"])
    };
    let no_proxy = var(&["NO_PROXY", "no_proxy"])
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    let proxy = proxy.and_then(|p| {
        let p = if p.contains("://") {
            p
        } else {
            format!("http://{p}")
        };
        url::Url::parse(&p).ok().map(ProxyUrl)
    });
    (proxy, no_proxy)
}

fn no_proxy_matches(entry: &str, host: &str, port: u16) -> bool {
    let entry = entry.trim().to_ascii_lowercase();
    if entry.is_empty() {
        return false;
    }
    if entry == "*" {
        return true;
    }
    if entry.contains('/') {
        let (Ok(net), Ok(ip)) = (Cidr::parse(&entry), host.parse::<IpAddr>()) else {
            return false;
        };
        return net.contains(ip);
    }
    let (name, entry_port) = match entry.rsplit_once(':') {
        Some((n, p)) if !n.contains(':') || n.ends_with(']') => (n, p.parse::<u16>().ok()),
        _ => (entry.as_str(), None),
    };
    if entry_port.is_some_and(|p| p != port) {
        return false;
    }
    let name = unbracket(name.trim_start_matches("*."));
    let name = name.trim_start_matches('.');
    host == name || host.ends_with(&format!(".{name}"))
}

/// Longest CONNECT response head we read.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// Open a tunnel to `host:port` through the proxy `stream` is connected to.
pub async fn tunnel(
    stream: &mut dyn Stream,
    host: &str,
    port: u16,
    proxy: &ProxyUrl,
    connect_headers: &[(http::HeaderName, Secret)],
) -> Result<(), ProxyError> {
    let authority = authority(host, port);
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = proxy.basic_authorization() {
        req.push_str(&format!("Proxy-Authorization: {}\r\n", auth.expose()));
    }
    for (name, value) in connect_headers {
        req.push_str(&format!("{name}: {}\r\n", value.expose()));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(ProxyError::Io)?;
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > MAX_CONNECT_HEAD {
            return Err(ProxyError::HeadTooLong);
        }
        let n = stream.read(&mut byte).await.map_err(ProxyError::Io)?;
        if n == 0 {
            return Err(ProxyError::Closed);
        }
        head.push(byte[0]);
    }
    let status_line = String::from_utf8_lossy(&head);
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        return Err(ProxyError::Refused {
            authority,
            status_line: status_line.lines().next().unwrap_or_default().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_rules() {
        assert!(no_proxy_matches("*", "a.b", 80));
        assert!(no_proxy_matches("example.com", "www.example.com", 80));
        assert!(no_proxy_matches(".example.com", "example.com", 80));
        assert!(!no_proxy_matches("example.com", "badexample.com", 80));
        assert!(no_proxy_matches("127.0.0.0/8", "127.0.0.1", 80));
        assert!(!no_proxy_matches("10.0.0.0/8", "127.0.0.1", 80));
        assert!(no_proxy_matches("localhost:8080", "localhost", 8080));
        assert!(!no_proxy_matches("localhost:8080", "localhost", 9090));
    }

    #[test]
    fn passwords_are_redacted() {
        let url = ProxyUrl::new(url::Url::parse("http://u:pw@proxy:3128").unwrap());
        assert_eq!(format!("{url}"), "http://u:xxxxx@proxy:3128/");
        assert_eq!(format!("{url:?}"), "http://u:xxxxx@proxy:3128/");
        assert_eq!(
            url.basic_authorization().map(|s| s.expose().to_string()),
            Some("Basic dTpwdw==".into())
        );
        let plain = ProxyUrl::new(url::Url::parse("http://proxy:3128").unwrap());
        assert_eq!(plain.redacted(), "http://proxy:3128/");
        assert!(plain.basic_authorization().is_none());
    }
}
