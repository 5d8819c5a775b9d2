//! One HTTP round trip on a fresh connection: the connector (through a
//! proxy when one applies) times resolve, connect and tls; here the request
//! goes out on HTTP/1.1 or HTTP/2 (by ALPN) — or on HTTP/3 with
//! `enable_http3` (`super::h3`) — and `processing` runs until the response
//! head is parsed. The body is read by the caller (transfer).
//!
//! [`round_trip_via`] is the same hop for other probers that send one
//! HTTP request (sse), timed into their own phase gauge.
//!
//! Keep-alive is off (blackbox's behaviour): every hop opens its own
//! connection, which is why phases are summed over redirects.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::body::ResponseBody;
use super::config::HttpSettings;
use super::h3::{self as http3, H3Link};
use super::metrics::HTTP_DURATION;
use crate::config::client::ClientSettings;
use crate::net::Endpoint;
use crate::net::address::{AddressPolicy, unbracket};
use crate::net::tls::TlsInfo;
use crate::net::userinfo;
use crate::prober::ProbeContext;
use crate::prober::client::conn::{self, ConnectionTask};
use crate::prober::client::{self as http_client, host_header_value, proxy_for, secret_header};
use crate::prober::connect::{self, TlsReport};
use crate::prober::metrics::GaugeSpec;
use crate::prober::reason::{FailureReason, ProbeFailure};

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
    pub response: http::Response<ResponseBody>,
    /// The TLS handshake of this hop, when it was https.
    pub tls: Option<TlsInfo>,
    pub connection: Link,
}

/// What keeps a hop's connection open until the body is read; dropping it
/// closes the connection.
pub enum Link {
    Hyper(ConnectionTask),
    H3(Box<H3Link>),
}

impl Link {
    /// Close the connection: hyper's is aborted; HTTP/3's is closed with
    /// a CONNECTION_CLOSE first (see [`H3Link::close`]).
    pub async fn close(self) {
        match self {
            Link::Hyper(task) => drop(task),
            Link::H3(link) => link.close().await,
        }
    }
}

/// Whether `url` goes through the module's proxy.
pub fn proxied(s: &HttpSettings, url: &url::Url) -> bool {
    let (host, port) = host_port(url);
    proxy_for(&s.client, url.scheme() == "https", &host, port).is_some()
}

pub fn host_port(url: &url::Url) -> (String, u16) {
    let https = url.scheme() == "https";
    let host = unbracket(url.host_str().unwrap_or_default()).to_string();
    let port = url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    (host, port)
}

/// Perform one hop: connect (through the proxy when configured: a CONNECT
/// tunnel for https, absolute-form requests for http), TLS for https,
/// HTTP/1.1 or HTTP/2 by ALPN, and wait for the response head.
pub async fn round_trip(
    cx: &ProbeContext<'_>,
    s: &HttpSettings,
    hop: Hop<'_>,
) -> Result<HopResponse, ProbeFailure> {
    if let Some(quic) = &s.http3 {
        return http3::round_trip(cx, s, quic, hop).await;
    }
    let via = Via {
        client: &s.client,
        address: s.address,
        phases: &HTTP_DURATION,
    };
    round_trip_via(cx, via, hop).await
}

/// The client side of a hop over TCP (HTTP/1.1 or HTTP/2), for every
/// HTTP-based prober that sends one request and reads a response (http,
/// sse): the module's client config and address policy, and the gauge its
/// phases are timed into.
#[derive(Clone, Copy)]
pub struct Via<'a> {
    pub client: &'a ClientSettings,
    pub address: AddressPolicy,
    pub phases: &'static GaugeSpec,
}

/// [`round_trip`] without HTTP/3: one request on a fresh TCP connection.
pub async fn round_trip_via(
    cx: &ProbeContext<'_>,
    via: Via<'_>,
    hop: Hop<'_>,
) -> Result<HopResponse, ProbeFailure> {
    let https = hop.url.scheme() == "https";
    let (host, port) = host_port(hop.url);
    let proxy = proxy_for(via.client, https, &host, port);
    let tls = https.then(|| (hop.server_name, http_client::alpn(via.client.enable_http2)));
    let connector = http_client::connector(
        via.client,
        (via.address, cx.targets),
        proxy.as_ref(),
        https,
        tls,
    );
    let endpoint = Endpoint {
        host: &host,
        port,
        address: hop.address,
    };
    // A failed handshake reports this hop's certificates: the final
    // response never came.
    let opened = connect::open(
        cx,
        Some(via.phases),
        &connector,
        endpoint,
        TlsReport::ByCaller,
    )
    .await?;
    let h2 = opened.is_h2();
    let tls = opened.tls;

    let processing = cx.phase(via.phases, "processing");
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
                let mut u = userinfo::without_userinfo(hop.url);
                u.set_fragment(None);
                u.to_string()
            }
            None => path,
        };
        let mut headers = HeaderMap::with_capacity(hop.headers.len() + 3);
        headers.insert(header::HOST, host_header_value(hop.host_header)?);
        headers.extend(hop.headers);
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        if let Some(auth) = via_proxy
            .and_then(|p| p.basic_authorization())
            .and_then(|a| secret_header(&a))
        {
            headers.insert(header::PROXY_AUTHORIZATION, auth);
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
        let (mut sender, h2_conn) = hyper::client::conn::http2::handshake(
            TokioExecutor::new(),
            TokioIo::new(opened.stream),
        )
        .await
        .map_err(|e| ProbeFailure::hyper(&e, "HTTP/2 handshake"))?;
        let connection = ConnectionTask::spawn(h2_conn);
        conn::send(
            sender.send_request(req),
            connection,
            "Error for HTTP request",
        )
        .await?
    } else {
        let (mut sender, connection) = conn::http1(opened.stream, false).await?;
        conn::send(
            sender.send_request(req),
            connection,
            "Error for HTTP request",
        )
        .await?
    };
    processing.finish();
    Ok(HopResponse {
        response: response.map(ResponseBody::Hyper),
        tls,
        connection: Link::Hyper(connection),
    })
}
