//! The WebSocket backend the end-to-end tests put behind nginx: an echo
//! server that answers a request without `Upgrade: websocket` with
//! `426 Upgrade Required`, and counts both kinds of request.
//!
//! tungstenite's `accept_async` answers a GET without the upgrade headers
//! with nothing at all: the handshake fails and the connection is dropped,
//! which nginx would turn into a 502. Real WebSocket servers answer such a
//! request with 426 (or 400), so requests without `Upgrade: websocket` are
//! routed to an explicit 426 here. (That is why this is not a
//! [`super::ws_server::WsServer`], which is tungstenite's handshake through
//! and through.)
//!
//! Upgraded connections echo every data message; tungstenite answers pings
//! and echoes the client's close frame (so a probe records a close code).
//!
//! The server runs on the caller's tokio runtime and stops when dropped.
//!
//! ```ignore
//! let backend = WsBackend::start().await;
//! // ... nginx proxying to backend.addr() ...
//! assert_eq!(backend.plain_requests(), 1);
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::{WebSocketStream, accept_async};

/// How long one connection may live (a stuck test ends anyway).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// An echo WebSocket server on 127.0.0.1 that answers plain requests with
/// 426; see the module documentation.
pub struct WsBackend {
    addr: SocketAddr,
    /// Requests that were upgraded.
    upgrades: Arc<AtomicUsize>,
    /// Requests answered with 426.
    plain_requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for WsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WsBackend {
    /// Listens on 127.0.0.1:0, serving on the current tokio runtime.
    pub async fn start() -> WsBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend addr");
        let upgrades = Arc::new(AtomicUsize::new(0));
        let plain_requests = Arc::new(AtomicUsize::new(0));
        let (u, p) = (upgrades.clone(), plain_requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (u, p) = (u.clone(), p.clone());
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(CONNECTION_LIFETIME, serve_connection(stream, u, p))
                            .await;
                });
            }
        });
        WsBackend {
            addr,
            upgrades,
            plain_requests,
            task,
        }
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests were upgraded so far.
    pub fn upgrades(&self) -> usize {
        self.upgrades.load(Ordering::SeqCst)
    }

    /// How many requests without `Upgrade: websocket` got the 426 so far.
    pub fn plain_requests(&self) -> usize {
        self.plain_requests.load(Ordering::SeqCst)
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    upgrades: Arc<AtomicUsize>,
    plain_requests: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let head_len = peek_request_head(&stream).await?;
    let mut head = vec![0; head_len];
    stream.peek(&mut head).await?;
    if wants_websocket(&String::from_utf8_lossy(&head)) {
        // The request is still unread: tungstenite reads it.
        let Ok(ws) = accept_async(stream).await else {
            return Ok(());
        };
        upgrades.fetch_add(1, Ordering::SeqCst);
        echo(ws).await;
    } else {
        plain_requests.fetch_add(1, Ordering::SeqCst);
        stream.read_exact(&mut head).await?;
        let body = "this is a WebSocket endpoint: send Upgrade: websocket\n";
        let response = format!(
            "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nConnection: close\r\n\
             Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
    }
    Ok(())
}

/// Peeks until the request head (through the blank line) is buffered;
/// returns its length.
async fn peek_request_head(stream: &TcpStream) -> std::io::Result<usize> {
    let mut buf = vec![0; 16 * 1024];
    let mut seen = 0;
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(end + 4);
        }
        if n == buf.len() {
            return Err(std::io::Error::other("request head too large"));
        }
        if n == seen {
            // Nothing new yet: peek would return the same bytes at once.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        seen = n;
    }
}

fn wants_websocket(head: &str) -> bool {
    head.lines().skip(1).any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("upgrade")
                && value.trim().eq_ignore_ascii_case("websocket")
        })
    })
}

/// Echoes every data message of an accepted WebSocket until the client
/// closes or the connection fails (also for servers that accept on their
/// own, e.g. a bare `accept_async`).
pub async fn echo<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // Pings are answered by tungstenite, and a close is echoed by it.
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            break;
        }
    }
}
