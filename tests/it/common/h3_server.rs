//! An in-process HTTP/3 server (quinn + h3, rustls TLS 1.3 with ALPN `h3`)
//! on 127.0.0.1 port 0, answering every request with a handler (a path
//! ending in `/endless` gets a 200 whose body never ends) and recording
//! what it was asked; and `Hypercorn`, the HTTP/3 server from
//! PyPI (hypercorn with aioquic) the end-to-end test probes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes};
use quinn::crypto::rustls::QuicServerConfig;

use super::pki::Leaf;
use super::tls_server::ServerTls;

/// What the server answers.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, body: &[u8]) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_vec(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

pub type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

pub struct H3Server {
    pub addr: SocketAddr,
    endpoint: quinn::Endpoint,
    task: tokio::task::JoinHandle<()>,
    seen: Arc<Mutex<Vec<Seen>>>,
    handshakes: Arc<Mutex<u32>>,
    closes: Arc<Mutex<Vec<String>>>,
}

impl Drop for H3Server {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"");
        self.task.abort();
    }
}

impl H3Server {
    /// Serves `leaf` (its chain) with `handler`.
    pub async fn start(leaf: &Leaf, handler: Handler) -> Self {
        Self::start_tls(Self::tls(leaf).build(), handler).await
    }

    /// The server's TLS as `start` has it (TLS 1.3, ALPN `h3`), to build on.
    pub fn tls(leaf: &Leaf) -> ServerTls {
        ServerTls::new(leaf)
            .versions(&[&rustls::version::TLS13])
            .alpn(&["h3"])
    }

    /// Serves with the rustls config `tls` (which must offer ALPN `h3`).
    pub async fn start_tls(tls: Arc<rustls::ServerConfig>, handler: Handler) -> Self {
        let crypto = QuicServerConfig::try_from(tls).expect("QUIC server config");
        let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let endpoint =
            quinn::Endpoint::server(config, SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let addr = endpoint.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handshakes = Arc::new(Mutex::new(0));
        let closes = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(serve(
            endpoint.clone(),
            handler,
            seen.clone(),
            handshakes.clone(),
            closes.clone(),
        ));
        Self {
            addr,
            endpoint,
            task,
            seen,
            handshakes,
            closes,
        }
    }

    /// The requests answered so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How the connections that ended ended, as h3 told the server
    /// (`Remote(ApplicationClose(H3_NO_ERROR))` for a client that closed
    /// politely).
    pub fn closes(&self) -> Vec<String> {
        self.closes.lock().unwrap().clone()
    }

    /// Connection attempts that reached the server (before TLS).
    pub fn handshakes(&self) -> u32 {
        *self.handshakes.lock().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }
}

async fn serve(
    endpoint: quinn::Endpoint,
    handler: Handler,
    seen: Arc<Mutex<Vec<Seen>>>,
    handshakes: Arc<Mutex<u32>>,
    closes: Arc<Mutex<Vec<String>>>,
) {
    while let Some(incoming) = endpoint.accept().await {
        *handshakes.lock().unwrap() += 1;
        let handler = handler.clone();
        let seen = seen.clone();
        let closes = closes.clone();
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            let Ok(mut h3) =
                h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn)).await
            else {
                return;
            };
            loop {
                let resolver = match h3.accept().await {
                    Ok(Some(r)) => r,
                    other => {
                        let end = match other {
                            Err(e) => format!("{e:?}"),
                            Ok(_) => "end".to_string(),
                        };
                        closes.lock().unwrap().push(end);
                        break;
                    }
                };
                let handler = handler.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Ok((req, mut stream)) = resolver.resolve_request().await else {
                        return;
                    };
                    let mut body = Vec::new();
                    while let Ok(Some(mut chunk)) = stream.recv_data().await {
                        while chunk.has_remaining() {
                            let part = chunk.chunk().to_vec();
                            chunk.advance(part.len());
                            body.extend_from_slice(&part);
                        }
                    }
                    let s = Seen {
                        method: req.method().to_string(),
                        uri: req.uri().to_string(),
                        headers: req.headers().clone(),
                        body,
                    };
                    let endless = s.uri.ends_with("/endless");
                    let reply = handler(&s);
                    seen.lock().unwrap().push(s);
                    let mut resp = http::Response::builder().status(reply.status);
                    for (n, v) in &reply.headers {
                        resp = resp.header(n, v);
                    }
                    let Ok(resp) = resp.body(()) else { return };
                    if stream.send_response(resp).await.is_err() {
                        return;
                    }
                    if endless {
                        // Never ends: 16 KiB pieces until the client goes.
                        let piece = Bytes::from(vec![b'e'; 16 * 1024]);
                        while stream.send_data(piece.clone()).await.is_ok() {}
                        return;
                    }
                    if !reply.body.is_empty() {
                        let _ = stream.send_data(Bytes::from(reply.body)).await;
                    }
                    let _ = stream.finish().await;
                });
            }
        });
    }
}

/// hypercorn (with aioquic) serving a tiny ASGI app over HTTP/3 on
/// 127.0.0.1; killed when dropped, with its whole process group: hypercorn
/// serves from a multiprocessing worker (and a resource tracker) that
/// would outlive a parent killed alone.
pub struct Hypercorn {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Hypercorn {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the process group this test started.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ASGI app: `/` answers 200 "hello from hypercorn over h3" with
/// `x-server: hypercorn`; `/teapot` answers 418; `/moved` redirects to `/`.
const APP: &str = r#"
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/teapot":
        status, headers, body = 418, [], b"short and stout"
    elif path == "/moved":
        status, headers, body = 302, [(b"location", b"/")], b""
    else:
        status, headers, body = 200, [(b"x-server", b"hypercorn")], b"hello from hypercorn over h3"
    headers.append((b"content-type", b"text/plain"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"#;

impl Hypercorn {
    /// Starts hypercorn on a free UDP port with `leaf`'s chain and key and
    /// waits until it answers; panics (never skips) when it cannot.
    pub fn start(leaf: &Leaf) -> Self {
        use std::os::unix::process::CommandExt as _;
        use std::process::{Command, Stdio};

        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("h3app.py"), APP).expect("write app");
        let (cert, key) = leaf.write_to(dir.path(), "server");
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free UDP port")
            .port();
        let tcp = super::free_port();
        let mut child = Command::new("python3")
            .args(["-m", "hypercorn"])
            .arg("--bind")
            .arg(format!("127.0.0.1:{tcp}"))
            .arg("--quic-bind")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--certfile")
            .arg(&cert)
            .arg("--keyfile")
            .arg(&key)
            .arg("h3app:app")
            .current_dir(dir.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3 -m hypercorn");
        // Ready when its TCP side accepts (it binds both at start).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", tcp)).is_ok() {
                break;
            }
            if let Ok(Some(_)) = child.try_wait() {
                let output = child.wait_with_output().expect("wait hypercorn");
                panic!(
                    "hypercorn did not start (run scripts/test: it pip-installs hypercorn \
                     aioquic):\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            if std::time::Instant::now() > deadline {
                if let Ok(pgid) = i32::try_from(child.id()) {
                    // SAFETY: kill(2) on the process group this test started.
                    unsafe {
                        libc::kill(-pgid, libc::SIGKILL);
                    }
                }
                let output = child.wait_with_output().expect("wait hypercorn");
                panic!(
                    "hypercorn did not listen within 20 s:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}
