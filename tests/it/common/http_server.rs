//! In-process HTTP(S) servers for probe targets.
//!
//! Each server runs on its own thread with its own tokio runtime, so it can
//! be used from `#[test]` and from `#[tokio::test]` of any flavour, and it
//! keeps serving while the test thread blocks. Dropping the handle stops the
//! accept loop and closes every open connection.
//!
//! ```ignore
//! let server = TestServer::http(|req| match req.uri().path() {
//!     "/ok" => text(StatusCode::OK, "hello"),
//!     _ => text(StatusCode::NOT_FOUND, "not found"),
//! });
//! let target = server.url("/ok"); // http://127.0.0.1:PORT/ok
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use super::pki::Leaf;
use super::tls_server::ServerTls;

pub type Body = Full<Bytes>;
pub type ResponseFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;
type Router = Arc<dyn Fn(Request<Incoming>) -> ResponseFuture + Send + Sync>;

/// A response with a `text/plain` body.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(body.into()))
        .expect("response")
}

/// A redirect (`status` is 301, 302, 303, 307 or 308) to `location`.
pub fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut resp = text(status, "");
    resp.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(location).expect("location header"),
    );
    resp
}

/// Server side TLS settings.
pub struct Tls {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// ALPN protocols offered, in preference order (empty: no ALPN).
    pub alpn: Vec<Vec<u8>>,
}

impl Tls {
    /// Serves `leaf.chain`, ALPN `h2`, `http/1.1`.
    pub fn new(leaf: &Leaf) -> Self {
        Self {
            chain: leaf.chain.clone(),
            key: leaf.key(),
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }

    /// Serves `leaf.chain`, ALPN `http/1.1` only.
    pub fn http1_only(leaf: &Leaf) -> Self {
        Self {
            alpn: vec![b"http/1.1".to_vec()],
            ..Self::new(leaf)
        }
    }

    /// Serves `leaf.chain` without ALPN.
    pub fn no_alpn(leaf: &Leaf) -> Self {
        Self {
            alpn: Vec::new(),
            ..Self::new(leaf)
        }
    }

    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        ServerTls::with_chain(self.chain.clone(), self.key.clone_key())
            .alpn(&self.alpn)
            .build()
    }
}

/// Stops the server thread on drop (also used by [`super::ws_server`]).
pub(super) struct ServerThread {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Runs `serve(listener)` on a new thread until dropped.
    pub(super) fn spawn<F, Fut>(name: &str, listener: std::net::TcpListener, serve: F) -> Self
    where
        F: FnOnce(TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        listener.set_nonblocking(true).expect("set_nonblocking");
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        _ = serve(listener) => {}
                        _ = rx => {}
                    }
                });
                // Dropping the runtime cancels the connection tasks and
                // closes their sockets.
                drop(rt);
            })
            .expect("spawn server thread");
        Self {
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(super) fn bind_local() -> (std::net::TcpListener, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    (listener, addr)
}

pub(super) fn join_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

/// An HTTP or HTTPS server on 127.0.0.1 (HTTP/1.1 and h2; h2 over TLS
/// through ALPN, h2c with prior knowledge on plain connections).
pub struct TestServer {
    addr: SocketAddr,
    tls: bool,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    _thread: ServerThread,
}

impl TestServer {
    /// Plain HTTP with a synchronous router.
    pub fn http<F>(router: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Response<Body> + Send + Sync + 'static,
    {
        Self::start(None, sync_router(router))
    }

    /// Plain HTTP with an async router (e.g. to delay an answer).
    pub fn http_async<F, Fut>(router: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        Self::start(None, async_router(router))
    }

    /// HTTPS with a synchronous router.
    pub fn https<F>(tls: Tls, router: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Response<Body> + Send + Sync + 'static,
    {
        Self::start(Some(tls), sync_router(router))
    }

    /// HTTPS with an async router.
    pub fn https_async<F, Fut>(tls: Tls, router: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        Self::start(Some(tls), async_router(router))
    }

    fn start(tls: Option<Tls>, router: Router) -> Self {
        let (listener, addr) = bind_local();
        let acceptor = tls.as_ref().map(|t| TlsAcceptor::from(t.server_config()));
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (conns, reqs) = (connections.clone(), requests.clone());
        let thread = ServerThread::spawn("test-http-server", listener, move |listener| {
            accept_loop(listener, acceptor, router, conns, reqs)
        });
        Self {
            addr,
            tls: tls.is_some(),
            connections,
            requests,
            _thread: thread,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// `http://127.0.0.1:PORT/path`, or `https://localhost:PORT/path` for TLS
    /// (the test certificates name `localhost`).
    pub fn url(&self, path: &str) -> String {
        let host = if self.tls { "localhost" } else { "127.0.0.1" };
        self.url_with_host(host, path)
    }

    /// The URL with another host name (e.g. `localhost` for plain HTTP, or
    /// `127.0.0.1` for TLS to test the IP SAN).
    pub fn url_with_host(&self, host: &str, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{host}:{}{}", self.port(), join_path(path))
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests routed so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn sync_router<F>(router: F) -> Router
where
    F: Fn(Request<Incoming>) -> Response<Body> + Send + Sync + 'static,
{
    Arc::new(move |req| {
        let resp = router(req);
        Box::pin(async move { resp }) as ResponseFuture
    })
}

fn async_router<F, Fut>(router: F) -> Router
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    Arc::new(move |req| Box::pin(router(req)) as ResponseFuture)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
) {
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        connections.fetch_add(1, Ordering::SeqCst);
        let router = router.clone();
        let acceptor = acceptor.clone();
        let requests = requests.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                requests.fetch_add(1, Ordering::SeqCst);
                let fut = router(req);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            // Errors (client went away, TLS alert, ...) are part of the
            // tests' scenarios, not server failures.
            match acceptor {
                None => {
                    let _ = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                }
                Some(acceptor) => {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let _ = builder
                            .serve_connection_with_upgrades(TokioIo::new(tls), service)
                            .await;
                    }
                }
            }
        });
    }
}

/// A raw TCP server that does not speak HTTP (see [`silent_server`] and
/// [`closing_server`]).
pub struct RawServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    _thread: ServerThread,
}

impl RawServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT/path`
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port(), join_path(path))
    }

    /// `127.0.0.1:PORT`, a target for tcp/tls probes.
    pub fn target(&self) -> String {
        self.addr.to_string()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Accepts TCP connections and never answers; sockets stay open until the
/// server is dropped (probes against it run into their timeout).
pub fn silent_server() -> RawServer {
    raw_server(true)
}

/// Accepts TCP connections and closes them at once.
pub fn closing_server() -> RawServer {
    raw_server(false)
}

fn raw_server(keep_open: bool) -> RawServer {
    let (listener, addr) = bind_local();
    let connections = Arc::new(AtomicUsize::new(0));
    let conns = connections.clone();
    let thread = ServerThread::spawn("test-raw-server", listener, move |listener| async move {
        let mut open = Vec::new();
        loop {
            let Ok((stream, _peer)) = listener.accept().await else {
                continue;
            };
            conns.fetch_add(1, Ordering::SeqCst);
            if keep_open {
                open.push(stream);
            } else {
                drop(stream);
            }
        }
    });
    RawServer {
        addr,
        connections,
        _thread: thread,
    }
}
