//! One HTTP round trip on a fresh connection, each phase timed: resolve,
//! connect (incl. a proxy CONNECT), tls, processing (request written until
//! the response head is parsed). The body is read by the caller (transfer).
//!
//! The client is hyper's connection API over a stream we dialled ourselves,
//! so no pool, no hidden retries, and no phase we cannot see. Keep-alive is
//! off (blackbox's behaviour): every hop opens its own connection, which is
//! why phases are summed over redirects.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::super::ProbeContext;
use super::super::reason::{FailureReason, ProbeFailure};
use super::super::tcp::Stream;
use super::super::tls_metrics::{self, TlsOutcome};
use super::metrics::HTTP_DURATION;
use crate::config::model::{ClientSettings, HttpSettings, ProxySettings};
use crate::net::{dial, io_reason, resolve, tls::Alpn};

/// Drives a connection in its own task and aborts it when dropped, so a
/// cancelled or finished probe never leaves a socket behind. Keeps the
/// connection's own error: when a request fails only because the connection
/// went away, that error says why (e.g. a TLS 1.3 server refusing our
/// client certificate after the handshake).
pub struct ConnectionTask(Option<tokio::task::JoinHandle<Option<hyper::Error>>>);

impl ConnectionTask {
    pub fn spawn<F>(conn: F) -> Self
    where
        F: std::future::Future<Output = Result<(), hyper::Error>> + Send + 'static,
    {
        Self(Some(tokio::spawn(async move { conn.await.err() })))
    }

    /// The error the connection ended with, if it has ended (or ends within
    /// a moment: it races the request's own cancellation error).
    pub async fn ended_with(&mut self) -> Option<hyper::Error> {
        let handle = self.0.as_mut()?;
        let result = tokio::time::timeout(std::time::Duration::from_millis(100), handle).await;
        match result {
            Ok(joined) => {
                self.0 = None;
                joined.ok().flatten()
            }
            Err(_) => None,
        }
    }

    /// The failure of a request on this connection: the connection's own
    /// error when the request was merely cancelled by its end.
    pub async fn request_failure(&mut self, e: &hyper::Error, context: &str) -> ProbeFailure {
        if (e.is_canceled() || e.is_closed() || e.is_incomplete_message())
            && let Some(conn_err) = self.ended_with().await
        {
            return hyper_failure(&conn_err, context);
        }
        hyper_failure(e, context)
    }
}

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

/// What one hop sends.
pub struct Hop<'a> {
    /// The URL with its real host name (not the resolved IP).
    pub url: &'a url::Url,
    /// Pre-resolved address of the URL host; None = resolve now.
    pub address: Option<IpAddr>,
    pub host_header: &'a str,
    /// TLS server name (SNI and verification).
    pub server_name: &'a str,
    pub method: http::Method,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The response head of one hop, with the connection kept alive for the body.
pub struct HopResponse {
    pub response: http::Response<Incoming>,
    /// The TLS handshake of this hop, when it was https.
    pub tls: Option<TlsOutcome>,
    pub connection: ConnectionTask,
}

/// The proxy to use for `url`, if any (`proxy_url` or the environment,
/// minus `no_proxy`).
pub fn proxy_for(url: &url::Url, settings: Option<&ProxySettings>) -> Option<url::Url> {
    let settings = settings?;
    let (proxy, no_proxy) = if let Some(u) = &settings.url {
        (Some(u.clone()), settings.no_proxy.clone())
    } else if settings.from_environment {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok())
                .filter(|v| !v.is_empty())
        };
        let proxy = if url.scheme() == "https" {
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
            url::Url::parse(&p).ok()
        });
        (proxy, no_proxy)
    } else {
        (None, Vec::new())
    };
    let proxy = proxy?;
    let host = resolve::unbracket(url.host_str().unwrap_or_default()).to_ascii_lowercase();
    let port = url.port_or_known_default().unwrap_or(80);
    if no_proxy
        .iter()
        .any(|entry| no_proxy_matches(entry, &host, port))
    {
        return None;
    }
    Some(proxy)
}

fn no_proxy_matches(entry: &str, host: &str, port: u16) -> bool {
    let entry = entry.trim().to_ascii_lowercase();
    if entry.is_empty() {
        return false;
    }
    if entry == "*" {
        return true;
    }
    if let Some((net, bits)) = entry.split_once('/') {
        let (Ok(net), Ok(bits), Ok(ip)) = (
            net.parse::<IpAddr>(),
            bits.parse::<u32>(),
            host.parse::<IpAddr>(),
        ) else {
            return false;
        };
        return cidr_contains(net, bits, ip);
    }
    let (name, entry_port) = match entry.rsplit_once(':') {
        Some((n, p)) if !n.contains(':') || n.ends_with(']') => (n, p.parse::<u16>().ok()),
        _ => (entry.as_str(), None),
    };
    if entry_port.is_some_and(|p| p != port) {
        return false;
    }
    let name = resolve::unbracket(name.trim_start_matches("*."));
    let name = name.trim_start_matches('.');
    host == name || host.ends_with(&format!(".{name}"))
}

fn cidr_contains(net: IpAddr, bits: u32, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Map a hyper client error to a failure reason. A rustls error anywhere in
/// the chain is a TLS failure (TLS 1.3 alerts can arrive after the
/// handshake completed on our side).
pub fn hyper_failure(e: &hyper::Error, context: &str) -> ProbeFailure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return ProbeFailure::new(
                FailureReason::TlsHandshakeFailed,
                format!("{context}: TLS: {tls}"),
            );
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return ProbeFailure::new(
                    FailureReason::TlsHandshakeFailed,
                    format!("{context}: TLS: {tls}"),
                );
            }
            return ProbeFailure::new(io_reason(io), format!("{context}: {e}: {io}"));
        }
        source = s.source();
    }
    let reason = if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        FailureReason::ConnectionReset
    } else if e.is_timeout() {
        FailureReason::Timeout
    } else {
        FailureReason::NetworkError
    };
    ProbeFailure::new(reason, format!("{context}: {e}"))
}

/// `Basic …` from the user info of a proxy URL, if it has any.
fn proxy_authorization(proxy: &url::Url) -> Option<String> {
    use base64::Engine as _;
    if proxy.username().is_empty() {
        return None;
    }
    let user = percent_encoding::percent_decode_str(proxy.username()).decode_utf8_lossy();
    let pass =
        percent_encoding::percent_decode_str(proxy.password().unwrap_or("")).decode_utf8_lossy();
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    Some(format!("Basic {token}"))
}

/// Send a request on a connection; a failure caused by the connection
/// ending is reported with the connection's own error.
async fn send<F>(
    request: F,
    mut connection: ConnectionTask,
) -> Result<(http::Response<Incoming>, ConnectionTask), ProbeFailure>
where
    F: std::future::Future<Output = Result<http::Response<Incoming>, hyper::Error>>,
{
    match request.await {
        Ok(response) => Ok((response, connection)),
        Err(e) => Err(connection
            .request_failure(&e, "Error for HTTP request")
            .await),
    }
}

/// Open a tunnel through an HTTP proxy with CONNECT.
pub(crate) async fn connect_tunnel(
    stream: &mut dyn Stream,
    authority: &str,
    proxy: &url::Url,
    client: &ClientSettings,
) -> Result<(), ProbeFailure> {
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = proxy_authorization(proxy) {
        req.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    if let Some(p) = &client.proxy {
        for (name, value) in &p.connect_headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    req.push_str("\r\n");
    let io_fail =
        |e: std::io::Error| ProbeFailure::new(io_reason(&e), format!("proxy CONNECT: {e}"));
    stream.write_all(req.as_bytes()).await.map_err(io_fail)?;
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(ProbeFailure::new(
                FailureReason::NetworkError,
                "proxy CONNECT: response head too long",
            ));
        }
        let n = stream.read(&mut byte).await.map_err(io_fail)?;
        if n == 0 {
            return Err(ProbeFailure::new(
                FailureReason::ConnectionReset,
                "proxy closed the connection during CONNECT",
            ));
        }
        head.push(byte[0]);
    }
    let status_line = String::from_utf8_lossy(&head);
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        let line = status_line.lines().next().unwrap_or_default();
        return Err(ProbeFailure::new(
            FailureReason::NetworkError,
            format!("proxy refused CONNECT to {authority}: {line}"),
        ));
    }
    Ok(())
}

/// Perform one hop: dial (via proxy when configured), TLS for https,
/// HTTP/1.1 or HTTP/2 by ALPN, and wait for the response head.
pub async fn round_trip(
    cx: &ProbeContext<'_>,
    s: &HttpSettings,
    hop: Hop<'_>,
) -> Result<HopResponse, ProbeFailure> {
    let https = hop.url.scheme() == "https";
    let host = resolve::unbracket(hop.url.host_str().unwrap_or_default()).to_string();
    let port = hop
        .url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    let proxy = proxy_for(hop.url, s.client.proxy.as_ref());

    // The target's own lookup is the resolve phase (a redirect to a new
    // host; the first hop was resolved by the caller). Looking up a proxy is
    // part of reaching it, timed as connect, so `resolve` stays absent with
    // skip_resolve_phase_with_proxy.
    let (dial_addr, connect) = match &proxy {
        Some(p) => {
            let connect = cx.phase(&HTTP_DURATION, "connect");
            let phost = resolve::unbracket(p.host_str().unwrap_or_default()).to_string();
            let pport = p.port_or_known_default().unwrap_or(80);
            let ip = resolve::resolve(&phost, s.address).await?;
            (SocketAddr::new(ip, pport), connect)
        }
        None => {
            let ip = match hop.address {
                Some(ip) => ip,
                None => {
                    let lookup = cx.phase(&HTTP_DURATION, "resolve");
                    let ip = resolve::resolve(&host, s.address).await?;
                    lookup.finish();
                    ip
                }
            };
            (
                SocketAddr::new(ip, port),
                cx.phase(&HTTP_DURATION, "connect"),
            )
        }
    };
    let tcp = dial::connect(dial_addr, None).await?;
    let mut stream: Box<dyn Stream> = Box::new(tcp);
    if let (Some(p), true) = (&proxy, https) {
        let authority = match hop.url.host() {
            Some(url::Host::Ipv6(v6)) => format!("[{v6}]:{port}"),
            _ => format!("{host}:{port}"),
        };
        connect_tunnel(stream.as_mut(), &authority, p, &s.client).await?;
    }
    connect.finish();

    let mut tls = None;
    let mut h2 = false;
    if https {
        let alpn = if s.client.enable_http2 {
            Alpn::H2AndHttp1
        } else {
            Alpn::Http1
        };
        let handshake = cx.phase(&HTTP_DURATION, "tls");
        let (result, outcome) =
            tls_metrics::connect(&s.client.tls, stream, hop.server_name, alpn).await;
        handshake.finish();
        match result {
            Ok(t) => {
                h2 = t.get_ref().1.alpn_protocol() == Some(b"h2");
                stream = Box::new(t);
                tls = Some(outcome);
            }
            Err(e) => {
                // The final response never came: this hop's certificates
                // are what the probe reports.
                outcome.record(cx);
                return Err(e);
            }
        }
    }

    let processing = cx.phase(&HTTP_DURATION, "processing");
    let io = TokioIo::new(stream);
    let path = match hop.url.query() {
        Some(q) => format!("{}?{q}", hop.url.path()),
        None => hop.url.path().to_string(),
    };
    // h2: absolute URI (its authority is `:authority`), no connection
    // headers. h1: origin form (absolute form to a plain-http proxy), Host,
    // `Connection: close` (no keep-alive, as blackbox).
    let (uri, version, headers) = if h2 {
        let uri = format!("https://{}{}", hop.host_header, path);
        (uri, http::Version::HTTP_2, hop.headers)
    } else {
        let via_proxy = proxy.as_ref().filter(|_| !https);
        let uri = match via_proxy {
            Some(_) => {
                let mut u = hop.url.clone();
                u.set_fragment(None);
                u.to_string()
            }
            None => path,
        };
        let mut headers = HeaderMap::with_capacity(hop.headers.len() + 3);
        headers.insert(
            header::HOST,
            super::request::host_header_value(hop.host_header)?,
        );
        headers.extend(hop.headers);
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        if let Some(auth) = via_proxy.and_then(proxy_authorization)
            && let Ok(v) = HeaderValue::from_str(&auth)
        {
            headers.insert(header::PROXY_AUTHORIZATION, v);
        }
        (uri, http::Version::HTTP_11, headers)
    };
    let mut req = http::Request::builder()
        .method(hop.method)
        .uri(uri)
        .version(version)
        .body(Full::new(hop.body))
        .map_err(|e| {
            ProbeFailure::new(
                FailureReason::InvalidTarget,
                format!("invalid request: {e}"),
            )
        })?;
    *req.headers_mut() = headers;
    let (response, connection) = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| hyper_failure(&e, "HTTP/2 handshake"))?;
        let connection = ConnectionTask::spawn(conn);
        send(sender.send_request(req), connection).await?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .title_case_headers(true)
            .handshake(io)
            .await
            .map_err(|e| hyper_failure(&e, "HTTP handshake"))?;
        let connection = ConnectionTask::spawn(conn);
        send(sender.send_request(req), connection).await?
    };
    processing.finish();
    Ok(HopResponse {
        response,
        tls,
        connection,
    })
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
}
