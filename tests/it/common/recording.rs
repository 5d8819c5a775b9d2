//! A `TestServer` that records every request it answers (`Seen` in a
//! `Log`), for tests that assert what a prober sent: method, path, headers,
//! body, Host, HTTP version, and for hand-built TLS servers SNI and client
//! certificates.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::http_server::{Body, TestServer, Tls, text};

/// One request as a server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub version: http::Version,
    /// `Host`, or the URI authority (HTTP/2).
    pub host: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// TLS SNI (custom TLS servers only).
    pub sni: Option<String>,
    /// A client certificate was presented (custom TLS servers only).
    pub client_cert: bool,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_string())
    }

    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ascii header").to_string())
            .collect()
    }

    /// The body as text (lossy UTF-8).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The requests a recording server saw, in order.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    pub fn push(&self, seen: Seen) {
        self.0.lock().unwrap().push(seen);
    }

    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The only request seen.
    pub fn one(&self) -> Seen {
        let all = self.all();
        assert_eq!(all.len(), 1, "expected one request, got {all:#?}");
        all.into_iter().next().unwrap()
    }

    pub fn paths(&self) -> Vec<String> {
        self.all().into_iter().map(|s| s.path).collect()
    }

    /// The first request for `path` (path and query); panics when none.
    pub fn at(&self, path: &str) -> Seen {
        self.all()
            .into_iter()
            .find(|s| s.path == path)
            .unwrap_or_else(|| panic!("no request for {path}: {:?}", self.paths()))
    }

    /// Every request for `path` (path and query).
    pub fn all_at(&self, path: &str) -> Vec<Seen> {
        self.all().into_iter().filter(|s| s.path == path).collect()
    }
}

/// Reads `req` (body included) into a `Seen`.
pub async fn seen_of(req: Request<Incoming>, sni: Option<String>, client_cert: bool) -> Seen {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    Seen {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        version: parts.version,
        host,
        headers: parts.headers,
        body,
        sni,
        client_cert,
    }
}

pub type Respond = Arc<dyn Fn(&Seen) -> Response<Body> + Send + Sync>;

/// A `TestServer` (plain, or TLS with `tls`) that records every request in
/// `log` and answers with `respond`.
pub fn recording_server(
    tls: Option<Tls>,
    log: &Log,
    respond: impl Fn(&Seen) -> Response<Body> + Send + Sync + 'static,
) -> TestServer {
    slow_recording_server(tls, log, Duration::ZERO, respond)
}

/// As `recording_server`, answering `delay` after the request is recorded
/// (so a client that gives up first is still seen).
pub fn slow_recording_server(
    tls: Option<Tls>,
    log: &Log,
    delay: Duration,
    respond: impl Fn(&Seen) -> Response<Body> + Send + Sync + 'static,
) -> TestServer {
    let log = log.clone();
    let respond: Respond = Arc::new(respond);
    let router = move |req: Request<Incoming>| {
        let (log, respond) = (log.clone(), respond.clone());
        async move {
            let seen = seen_of(req, None, false).await;
            log.push(seen.clone());
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            respond(&seen)
        }
    };
    match tls {
        None => TestServer::http_async(router),
        Some(tls) => TestServer::https_async(tls, router),
    }
}

/// 200 "ok".
pub fn ok(_: &Seen) -> Response<Body> {
    text(StatusCode::OK, "ok")
}
