//! A tiny forwarding HTTP proxy on the test's runtime: absolute-form
//! requests are forwarded to the origin (request line rewritten to origin
//! form), CONNECT opens a tunnel (`200 Connection established`, then bytes
//! both ways). Every request head it receives is recorded.
//!
//! ```ignore
//! let proxy = Proxy::start().await;
//! // ... probe with `proxy_url: {proxy.url()}` ...
//! assert!(proxy.heads()[0].starts_with("CONNECT localhost:8443 HTTP/1.1\r\n"));
//! ```

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads one request head (up to the blank line), byte by byte so nothing
/// after it is consumed.
pub async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 {
            return None;
        }
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// A forwarding HTTP proxy on 127.0.0.1; see the module documentation. It
/// is spawned on the current tokio runtime and lives as long as it does.
pub struct Proxy {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local_addr").port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let h = heads.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(proxy_connection(client, h.clone()));
            }
        });
        Self { port, heads }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request head received so far (request line and headers,
    /// through the blank line), in order.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// Asserts the proxy received exactly one request, whose request line
    /// is `request_line` (`GET http://... HTTP/1.1`, `CONNECT host:port
    /// HTTP/1.1`) and which carried the credentials `u:p` in
    /// `Proxy-Authorization`.
    pub fn assert_one_head_as_u_p(&self, request_line: &str) {
        let heads = self.heads();
        assert_eq!(heads.len(), 1, "{heads:?}");
        assert!(
            heads[0].starts_with(&format!("{request_line}\r\n")),
            "expected {request_line:?}: {heads:?}"
        );
        assert!(
            heads[0].contains("Proxy-Authorization: Basic dTpw\r\n"),
            "{heads:?}"
        );
    }
}

async fn proxy_connection(mut client: TcpStream, heads: Arc<Mutex<Vec<String>>>) {
    let Some(head) = read_head(&mut client).await else {
        return;
    };
    heads.lock().unwrap().push(head.clone());
    let (line, rest) = head.split_once("\r\n").unwrap_or((&head, ""));
    let mut fields = line.split(' ');
    let (method, target, version) = (
        fields.next().unwrap_or_default(),
        fields.next().unwrap_or_default(),
        fields.next().unwrap_or_default(),
    );
    if method == "CONNECT" {
        let Ok(mut upstream) = TcpStream::connect(target).await else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return;
        };
        let _ = client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await;
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return;
    }
    let Ok(url) = url::Url::parse(target) else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        return;
    };
    let authority = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(80)
    );
    let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let Ok(mut upstream) = TcpStream::connect(authority).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    let forwarded = format!("{method} {path} {version}\r\n{rest}");
    if upstream.write_all(forwarded.as_bytes()).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
