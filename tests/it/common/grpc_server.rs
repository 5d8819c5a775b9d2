//! An in-process gRPC health server for the grpc prober tests: hyper's
//! HTTP/2 server on 127.0.0.1, h2c or TLS (ALPN h2), answering
//! `grpc.health.v1.Health/Check` as the test's handler decides. It records
//! every call (path, headers, the service asked for).
//!
//! ```ignore
//! let server = GrpcServer::start(|call| Reply::Status(1)).await;
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use handshake_exporter::prober::grpc::wire::{CHECK_PATH, HealthCheckRequest, HealthCheckResponse};
use http::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message as _;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One call as received.
#[derive(Clone, Debug)]
pub struct Call {
    pub path: String,
    pub headers: HeaderMap,
    /// The decoded request's service, when the body was one.
    pub service: Option<String>,
}

/// What the handler answers.
pub enum Reply {
    /// 200, one HealthCheckResponse with this status, `grpc-status: 0`.
    Status(i32),
    /// A trailers-only error: `grpc-status` and `grpc-message` in the head.
    Error(u32, &'static str),
    /// 200 with this raw body, then `grpc-status: 0` in the trailers.
    RawBody(Vec<u8>),
    /// A plain HTTP answer with this status and no gRPC at all.
    Http(u16),
}

type Handler = dyn Fn(&Call) -> Reply + Send + Sync;
type Body =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

pub struct GrpcServer {
    pub addr: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
    task: JoinHandle<()>,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The health service of `grpc_health.v1` with per-service statuses (an
/// unknown service is NOT_FOUND, as grpc-go's and grpcio's servers answer
/// Check).
pub fn health(statuses: &'static [(&'static str, i32)]) -> impl Fn(&Call) -> Reply + Send + Sync {
    move |call| {
        if call.path != CHECK_PATH {
            return Reply::Error(12, "unknown method");
        }
        let service = call.service.clone().unwrap_or_default();
        match statuses.iter().find(|(name, _)| *name == service) {
            Some((_, status)) => Reply::Status(*status),
            None => Reply::Error(5, "unknown service"),
        }
    }
}

fn framed(message: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&(message.len() as u32).to_be_bytes());
    v.extend_from_slice(message);
    v
}

fn respond(reply: Reply) -> http::Response<Body> {
    let grpc = |frames: Vec<Frame<Bytes>>| {
        let mut r = http::Response::new(StreamBody::new(futures_util::stream::iter(
            frames.into_iter().map(Ok).collect::<Vec<_>>(),
        )));
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        r
    };
    let ok_trailers = || {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", HeaderValue::from_static("0"));
        Frame::trailers(t)
    };
    match reply {
        Reply::Status(status) => {
            let msg = HealthCheckResponse { status }.encode_to_vec();
            grpc(vec![Frame::data(Bytes::from(framed(&msg))), ok_trailers()])
        }
        Reply::RawBody(body) => grpc(vec![Frame::data(Bytes::from(body)), ok_trailers()]),
        Reply::Error(code, message) => {
            let mut r = grpc(Vec::new());
            r.headers_mut()
                .insert("grpc-status", HeaderValue::from(code));
            r.headers_mut()
                .insert("grpc-message", HeaderValue::from_static(message));
            r
        }
        Reply::Http(status) => {
            let mut r =
                http::Response::new(StreamBody::new(futures_util::stream::iter(Vec::new())));
            *r.status_mut() = http::StatusCode::from_u16(status).expect("status");
            r
        }
    }
}

impl GrpcServer {
    /// h2c (plaintext HTTP/2 with prior knowledge, as gRPC without TLS).
    pub async fn start(handler: impl Fn(&Call) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(Arc::new(handler), None).await
    }

    /// TLS with `config` (its ALPN should offer h2).
    pub async fn start_tls(
        config: Arc<ServerConfig>,
        handler: impl Fn(&Call) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(Arc::new(handler), Some(config)).await
    }

    async fn start_with(handler: Arc<Handler>, tls: Option<Arc<ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                let seen = seen.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: http::Request<Incoming>| {
                            let handler = handler.clone();
                            let seen = seen.clone();
                            async move {
                                let (head, body) = req.into_parts();
                                let bytes = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let service = bytes
                                    .get(5..)
                                    .and_then(|m| HealthCheckRequest::decode(m).ok())
                                    .map(|r| r.service);
                                let call = Call {
                                    path: head.uri.path().to_string(),
                                    headers: head.headers,
                                    service,
                                };
                                let reply = handler(&call);
                                seen.lock().unwrap().push(call);
                                Ok::<_, Infallible>(respond(reply))
                            }
                        });
                    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                    }
                });
            }
        });
        GrpcServer { addr, calls, task }
    }

    pub fn target(&self) -> String {
        self.addr.to_string()
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The one call so far.
    pub fn only_call(&self) -> Call {
        let calls = self.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        calls.into_iter().next().expect("one call")
    }
}

/// The reference health service from PyPI (`grpcio_health.py`) running in
/// python3; stopped (killed) on drop.
pub struct Grpcio {
    child: std::process::Child,
    /// The port with grpc_health.v1's HealthServicer.
    pub health: u16,
    /// A port with no service registered (UNIMPLEMENTED).
    pub bare: u16,
}

impl Drop for Grpcio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Grpcio {
    /// Starts the script; panics (never skips) when grpcio is missing.
    pub fn start() -> Self {
        use std::io::BufRead as _;
        use std::process::{Command, Stdio};

        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/common/grpcio_health.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let ports: Vec<u16> = line
            .strip_prefix("PORTS ")
            .map(|p| {
                p.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let [health, bare] = ports[..] else {
            let _ = child.kill();
            let output = child.wait_with_output().expect("wait python3");
            panic!(
                "grpcio_health.py did not start (run scripts/test: it pip-installs grpcio \
                 grpcio-health-checking): {line:?}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        Grpcio {
            child,
            health,
            bare,
        }
    }
}
