//! In-process WebSocket test servers.
//!
//! Two kinds, both on 127.0.0.1:0, each on its own thread with its own tokio
//! runtime (usable from any test flavour), stopped when dropped:
//!
//! * [`WsServer`]: a real RFC 6455 server (tokio-tungstenite), plain or TLS
//!   (ALPN `http/1.1`), that selects or omits `Sec-WebSocket-Protocol`, may
//!   refuse requests after looking at them, and runs a per-connection
//!   behaviour on the upgraded [`Session`] (echo, greet, script, close with a
//!   code, drop right after the 101, hold without reading so pings go
//!   unanswered ...).
//! * [`RawServer`]: a scripted TCP server for broken handshakes: a canned
//!   HTTP answer (200 page, 426, 5xx ...), a 101 with a wrong
//!   `Sec-WebSocket-Accept` or without `Upgrade`/`Connection`, a 101 that
//!   selects a subprotocol nobody offered, or silence.
//!
//! Both record the requests they saw ([`SeenRequest`]); [`WsServer`] also
//! records the data messages the client sent.
//!
//! ```ignore
//! let server = WsServer::plain(|s| s.echo());
//! let target = server.url("/chat");          // ws://127.0.0.1:PORT/chat
//! // ... probe ...
//! assert_eq!(server.requests()[0].header("origin").as_deref(), Some("https://app"));
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub use super::http_server::Tls;
use super::http_server::{ServerThread, bind_local, join_path};

/// How long a server-side step waits for the client before giving up, so a
/// connection task never outlives a test by much even if the client hangs.
const CLIENT_WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// What the servers saw
// ---------------------------------------------------------------------------

/// One HTTP request a server received (the upgrade request).
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query as sent (`/socket.io/?EIO=4&transport=websocket`).
    pub target: String,
    pub headers: HeaderMap,
}

impl SeenRequest {
    fn from_request(req: &Request) -> Self {
        Self {
            method: req.method().to_string(),
            target: req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_else(|| req.uri().to_string()),
            headers: req.headers().clone(),
        }
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The query string, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// `name=value` pairs of the query.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// Every value of header `name`, in the order sent.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// The subprotocols offered in `Sec-WebSocket-Protocol` (every header
    /// line, comma lists split and trimmed).
    pub fn offered_subprotocols(&self) -> Vec<String> {
        self.header_all("sec-websocket-protocol")
            .iter()
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    }
}

#[derive(Clone, Default)]
struct Records {
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<SeenRequest>>>,
    messages: Arc<Mutex<Vec<Message>>>,
}

impl Records {
    fn push_request(&self, r: SeenRequest) {
        self.requests.lock().unwrap().push(r);
    }
}

// ---------------------------------------------------------------------------
// WsServer: a real WebSocket server
// ---------------------------------------------------------------------------

/// Any byte stream a session can run on (TCP or TLS over TCP).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How the server answers `Sec-WebSocket-Protocol`.
#[derive(Clone, Debug, Default)]
pub enum Subprotocol {
    /// Never select one (the response has no `Sec-WebSocket-Protocol`).
    #[default]
    Omit,
    /// The first offered subprotocol that is in this list (RFC 6455
    /// behaviour); none when nothing offered is supported.
    FirstOf(Vec<String>),
    /// Select this one whatever the client offered.
    Always(String),
}

impl Subprotocol {
    /// `FirstOf` a list of names.
    pub fn first_of(names: &[&str]) -> Self {
        Self::FirstOf(names.iter().map(|n| n.to_string()).collect())
    }

    fn select(&self, offered: &[String]) -> Option<String> {
        match self {
            Self::Omit => None,
            Self::FirstOf(supported) => offered.iter().find(|o| supported.contains(o)).cloned(),
            Self::Always(p) => Some(p.clone()),
        }
    }
}

/// Decides, from the request, whether to refuse the upgrade (status, body).
pub type Check = Arc<dyn Fn(&SeenRequest) -> Result<(), (StatusCode, String)> + Send + Sync>;

/// Handshake options of a [`WsServer`].
#[derive(Default)]
pub struct Options {
    pub subprotocol: Subprotocol,
    /// Serve wss with this certificate (ALPN as configured in `Tls`; use
    /// [`Tls::http1_only`] for what browsers negotiate for WebSockets).
    pub tls: Option<Tls>,
    /// Serve wss with this rustls config instead (e.g. one built by
    /// `tls_server::ServerTls` with an `SniResolver`); wins over `tls`.
    pub server_config: Option<Arc<ServerConfig>>,
    /// Refuse the upgrade when this returns an error.
    pub check: Option<Check>,
}

impl Options {
    pub fn subprotocol(mut self, s: Subprotocol) -> Self {
        self.subprotocol = s;
        self
    }

    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    pub fn server_config(mut self, config: Arc<ServerConfig>) -> Self {
        self.server_config = Some(config);
        self
    }

    pub fn check<F>(mut self, f: F) -> Self
    where
        F: Fn(&SeenRequest) -> Result<(), (StatusCode, String)> + Send + Sync + 'static,
    {
        self.check = Some(Arc::new(f));
        self
    }
}

type Handler = Arc<dyn Fn(Session) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A WebSocket server on 127.0.0.1 running a behaviour per connection.
pub struct WsServer {
    addr: SocketAddr,
    tls: bool,
    records: Records,
    _thread: ServerThread,
}

impl WsServer {
    /// Plain ws://, no subprotocol, `behaviour` per connection.
    pub fn plain<F, Fut>(behaviour: F) -> Self
    where
        F: Fn(Session) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::start(Options::default(), behaviour)
    }

    /// Plain ws:// echo server.
    pub fn echo() -> Self {
        Self::plain(Session::echo)
    }

    /// A server with `options` running `behaviour` per connection.
    pub fn start<F, Fut>(options: Options, behaviour: F) -> Self
    where
        F: Fn(Session) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (listener, addr) = bind_local();
        let acceptor = options
            .server_config
            .or_else(|| options.tls.as_ref().map(Tls::server_config))
            .map(TlsAcceptor::from);
        let tls = acceptor.is_some();
        let handler: Handler = Arc::new(move |s| Box::pin(behaviour(s)));
        let records = Records::default();
        let rec = records.clone();
        let subprotocol = options.subprotocol;
        let check = options.check;
        let thread = ServerThread::spawn("test-ws-server", listener, move |listener| async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                rec.connections.fetch_add(1, Ordering::SeqCst);
                let (rec, acceptor, handler) = (rec.clone(), acceptor.clone(), handler.clone());
                let (subprotocol, check) = (subprotocol.clone(), check.clone());
                tokio::spawn(async move {
                    let io: Box<dyn Io> = match acceptor {
                        None => Box::new(stream),
                        Some(a) => match a.accept(stream).await {
                            Ok(tls) => Box::new(tls),
                            // a client that rejected our certificate
                            Err(_) => return,
                        },
                    };
                    serve_ws(io, rec, subprotocol, check, handler).await;
                });
            }
        });
        Self {
            addr,
            tls,
            records,
            _thread: thread,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `ws://127.0.0.1:PORT/path`, or `wss://localhost:PORT/path` with TLS
    /// (the test certificates name `localhost`).
    pub fn url(&self, path: &str) -> String {
        let host = if self.tls { "localhost" } else { "127.0.0.1" };
        self.url_with_host(host, path)
    }

    /// The URL with another host (`127.0.0.1` for TLS tests the IP SAN).
    pub fn url_with_host(&self, host: &str, path: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{host}:{}{}", self.port(), join_path(path))
    }

    /// The URL with another scheme (`http`, `https`, `ftp` ...).
    pub fn url_with_scheme(&self, scheme: &str, path: &str) -> String {
        let host = if self.tls { "localhost" } else { "127.0.0.1" };
        format!("{scheme}://{host}:{}{}", self.port(), join_path(path))
    }

    pub fn connections(&self) -> usize {
        self.records.connections.load(Ordering::SeqCst)
    }

    /// The upgrade requests seen so far (also those refused).
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.records.requests.lock().unwrap().clone()
    }

    /// The one upgrade request seen; panics unless exactly one came.
    pub fn request(&self) -> SeenRequest {
        let r = self.requests();
        assert_eq!(r.len(), 1, "expected exactly one upgrade request: {r:?}");
        r.into_iter().next().unwrap()
    }

    /// Data messages (text and binary) the clients sent, in order, as far
    /// as the behaviours read them.
    pub fn messages(&self) -> Vec<Message> {
        self.records.messages.lock().unwrap().clone()
    }

    /// The text messages among [`WsServer::messages`].
    pub fn texts(&self) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter_map(|m| match m {
                Message::Text(t) => Some(t.as_str().to_string()),
                _ => None,
            })
            .collect()
    }
}

/// The accepted request and the subprotocol selected for it, handed from
/// the handshake callback to the session.
type Accepted = Arc<Mutex<Option<(SeenRequest, Option<String>)>>>;

// The callback's error type is tungstenite's (an HTTP response).
#[allow(clippy::result_large_err)]
async fn serve_ws(
    io: Box<dyn Io>,
    rec: Records,
    subprotocol: Subprotocol,
    check: Option<Check>,
    handler: Handler,
) {
    let slot: Accepted = Arc::default();
    let callback = {
        let (slot, rec) = (slot.clone(), rec.clone());
        move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
            let seen = SeenRequest::from_request(req);
            rec.push_request(seen.clone());
            if let Some(check) = &check
                && let Err((status, body)) = check(&seen)
            {
                let mut e = ErrorResponse::new(Some(body));
                *e.status_mut() = status;
                return Err(e);
            }
            let selected = subprotocol.select(&seen.offered_subprotocols());
            if let Some(p) = &selected {
                resp.headers_mut().insert(
                    header::SEC_WEBSOCKET_PROTOCOL,
                    HeaderValue::from_str(p).expect("subprotocol header value"),
                );
            }
            *slot.lock().unwrap() = Some((seen, selected));
            Ok(resp)
        }
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(io, callback).await else {
        return;
    };
    let Some((request, subprotocol)) = slot.lock().unwrap().take() else {
        return;
    };
    handler(Session {
        request,
        subprotocol,
        ws,
        messages: rec.messages.clone(),
    })
    .await;
}

/// The server side of one upgraded connection. Dropping it closes the TCP
/// connection without a close frame.
pub struct Session {
    /// The upgrade request.
    pub request: SeenRequest,
    /// The subprotocol the server selected.
    pub subprotocol: Option<String>,
    ws: WebSocketStream<Box<dyn Io>>,
    messages: Arc<Mutex<Vec<Message>>>,
}

/// One step of [`Session::script`].
#[derive(Clone, Debug)]
pub enum Step {
    /// Send this message.
    Send(Message),
    /// Read the next data message; it must match this (bytes) regex, else
    /// the server closes with 1008 and the script stops.
    Expect(String),
    /// Send a close frame with this code, then wait for the client's answer;
    /// ends the script.
    Close(u16),
    /// Wait.
    Sleep(Duration),
    /// Keep the connection open without reading (pings go unanswered); ends
    /// the script.
    Hold,
    /// Drop the TCP connection without a close frame; ends the script.
    Drop,
}

impl Step {
    pub fn text(s: &str) -> Self {
        Self::Send(Message::text(s))
    }

    pub fn binary(b: &[u8]) -> Self {
        Self::Send(Message::binary(b.to_vec()))
    }

    pub fn expect(re: &str) -> Self {
        Self::Expect(re.to_string())
    }
}

fn payload(m: &Message) -> &[u8] {
    match m {
        Message::Text(t) => t.as_bytes(),
        Message::Binary(b) => b.as_ref(),
        _ => &[],
    }
}

impl Session {
    /// The next data message (text or binary), recorded; pings are answered
    /// on the way. None when the client closed or the connection is gone
    /// (a close from the client is answered by tungstenite).
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            let msg = match tokio::time::timeout(CLIENT_WAIT, self.ws.next()).await {
                Ok(Some(Ok(m))) => m,
                _ => return None,
            };
            match msg {
                m @ (Message::Text(_) | Message::Binary(_)) => {
                    self.messages.lock().unwrap().push(m.clone());
                    return Some(m);
                }
                Message::Close(_) => {
                    // flush tungstenite's close reply
                    let _ = self.ws.flush().await;
                    return None;
                }
                _ => {}
            }
        }
    }

    /// The next data message as text (binary is decoded lossily).
    pub async fn recv_text(&mut self) -> Option<String> {
        self.recv()
            .await
            .map(|m| String::from_utf8_lossy(payload(&m)).into_owned())
    }

    /// The next data message's bytes.
    pub async fn recv_bytes(&mut self) -> Option<Vec<u8>> {
        self.recv().await.map(|m| payload(&m).to_vec())
    }

    /// Send a message; errors (client gone) are ignored.
    pub async fn send(&mut self, msg: Message) {
        let _ = self.ws.send(msg).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send(Message::text(text)).await;
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.send(Message::binary(bytes.to_vec())).await;
    }

    /// Write bytes straight to the connection, bypassing the framing (for
    /// frames tungstenite would not send).
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        let io = self.ws.get_mut();
        let _ = io.write_all(bytes).await;
        let _ = io.flush().await;
    }

    /// Read until the client closes (pings and the close are answered).
    pub async fn drain(mut self) {
        while self.recv().await.is_some() {}
    }

    /// Echo every data message until the client closes.
    pub async fn echo(mut self) {
        while let Some(m) = self.recv().await {
            self.send(m).await;
        }
    }

    /// Send `messages`, then echo.
    pub async fn greet_then_echo(mut self, messages: &[&str]) {
        for m in messages {
            self.send_text(m).await;
        }
        self.echo().await;
    }

    /// Send a close frame with `code`, then wait for the client's close.
    pub async fn close_with(mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = self.ws.close(Some(frame)).await;
        let _ = tokio::time::timeout(CLIENT_WAIT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// Keep the connection open without reading or writing: pings are
    /// never answered, expects never matched. Ends when the server stops.
    pub async fn hold(self) {
        std::future::pending::<()>().await;
        drop(self);
    }

    /// Drop the connection right away (no close frame).
    pub async fn drop_now(self) {
        drop(self);
    }

    /// Read until the client's close frame, then answer it with a close
    /// frame carrying `code` instead of the echo, and drop the connection.
    pub async fn answer_close_with(mut self, code: u16) {
        loop {
            match tokio::time::timeout(CLIENT_WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(_)))) => break,
                Ok(Some(Ok(m))) => {
                    if matches!(m, Message::Text(_) | Message::Binary(_)) {
                        self.messages.lock().unwrap().push(m);
                    }
                }
                _ => return,
            }
        }
        let [hi, lo] = code.to_be_bytes();
        // FIN + close opcode, unmasked, 2-byte payload: the code.
        self.write_raw(&[0x88, 0x02, hi, lo]).await;
    }

    /// Run `steps`; when they end without closing, drain until the client
    /// closes.
    pub async fn script(mut self, steps: Vec<Step>) {
        for step in steps {
            match step {
                Step::Send(m) => self.send(m).await,
                Step::Expect(re) => {
                    let re = regex::bytes::Regex::new(&re).expect("script regex");
                    match self.recv().await {
                        Some(m) if re.is_match(payload(&m)) => {}
                        Some(_) => return self.close_with(1008, "unexpected message").await,
                        None => return,
                    }
                }
                Step::Close(code) => return self.close_with(code, "").await,
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::Hold => return self.hold().await,
                Step::Drop => return,
            }
        }
        self.drain().await;
    }
}

// ---------------------------------------------------------------------------
// RawServer: scripted TCP for broken handshakes
// ---------------------------------------------------------------------------

/// What a [`RawServer`] answers to every connection.
#[derive(Clone, Debug)]
pub enum RawReply {
    /// Read the request head, write these bytes verbatim, close when the
    /// client does.
    Canned(String),
    /// A correct 101 (the raw server's sanity check), then hold.
    Valid101,
    /// A 101 whose `Sec-WebSocket-Accept` is computed from another key.
    BadAccept,
    /// A 101 without the `Upgrade` header.
    NoUpgradeHeader,
    /// A 101 without the `Connection` header.
    NoConnectionHeader,
    /// A correct 101 that selects this subprotocol, whatever was offered.
    Subprotocol(String),
    /// Accept the TCP connection and never answer (nor read).
    Silent,
}

impl RawReply {
    /// A complete response with `status` and its reason phrase, a small
    /// body and `Connection: close`. A 426 carries `Upgrade: websocket` and
    /// `Sec-WebSocket-Version: 13` as RFC 6455 servers send it.
    pub fn status(status: u16) -> Self {
        let code = StatusCode::from_u16(status).expect("status code");
        let reason = code.canonical_reason().unwrap_or("Unknown");
        let (ctype, body) = if status == 200 {
            (
                "text/html; charset=utf-8",
                "<!doctype html><html><body>Welcome to the app</body></html>".to_string(),
            )
        } else {
            ("text/plain", format!("{status} {reason}\n"))
        };
        let extra = if status == 426 {
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        } else {
            ""
        };
        Self::Canned(format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        ))
    }
}

/// A scripted TCP server; see [`RawReply`].
pub struct RawServer {
    addr: SocketAddr,
    records: Records,
    _thread: ServerThread,
}

impl RawServer {
    pub fn start(reply: RawReply) -> Self {
        let (listener, addr) = bind_local();
        let records = Records::default();
        let rec = records.clone();
        let thread =
            ServerThread::spawn("test-raw-ws-server", listener, move |listener| async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    rec.connections.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(raw_connection(stream, reply.clone(), rec.clone()));
                }
            });
        Self {
            addr,
            records,
            _thread: thread,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `ws://127.0.0.1:PORT/path`
    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{}", self.port(), join_path(path))
    }

    pub fn connections(&self) -> usize {
        self.records.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.records.requests.lock().unwrap().clone()
    }
}

/// Reads an HTTP request head (up to the blank line); None on EOF first.
async fn read_head(stream: &mut TcpStream) -> Option<SeenRequest> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(CLIENT_WAIT, stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let target = request_line.next()?.to_string();
    let mut headers = HeaderMap::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        if let Some((name, value)) = line.split_once(':')
            && let (Ok(n), Ok(v)) = (
                header::HeaderName::from_bytes(name.trim().as_bytes()),
                HeaderValue::from_str(value.trim()),
            )
        {
            headers.append(n, v);
        }
    }
    Some(SeenRequest {
        method,
        target,
        headers,
    })
}

async fn raw_connection(mut stream: TcpStream, reply: RawReply, rec: Records) {
    if matches!(reply, RawReply::Silent) {
        return hold_stream(stream).await;
    }
    let Some(seen) = read_head(&mut stream).await else {
        return;
    };
    let key = seen.header("sec-websocket-key").unwrap_or_default();
    rec.push_request(seen);
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = "Upgrade: websocket\r\n";
    let connection = "Connection: Upgrade\r\n";
    let response = match reply {
        RawReply::Canned(text) => {
            let _ = stream.write_all(text.as_bytes()).await;
            let _ = stream.flush().await;
            // Let the client read and close first, so it sees the answer
            // and not a reset.
            let mut sink = [0u8; 1024];
            let _ = tokio::time::timeout(CLIENT_WAIT, async {
                while let Ok(n) = stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
            return;
        }
        RawReply::Silent => unreachable!(),
        RawReply::Valid101 => switching(upgrade, connection, &accept, ""),
        RawReply::BadAccept => switching(
            upgrade,
            connection,
            &derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "",
        ),
        RawReply::NoUpgradeHeader => switching("", connection, &accept, ""),
        RawReply::NoConnectionHeader => switching(upgrade, "", &accept, ""),
        RawReply::Subprotocol(p) => switching(
            upgrade,
            connection,
            &accept,
            &format!("Sec-WebSocket-Protocol: {p}\r\n"),
        ),
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.flush().await;
    hold_stream(stream).await;
}

fn switching(upgrade: &str, connection: &str, accept: &str, extra: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\n{upgrade}{connection}Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
    )
}

/// Keeps a connection open (unread) until the server stops.
async fn hold_stream(stream: TcpStream) {
    std::future::pending::<()>().await;
    drop(stream);
}
