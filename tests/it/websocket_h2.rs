//! RFC 8441: WebSockets over HTTP/2 with extended CONNECT, against an
//! in-process hyper h2 server (`enable_connect_protocol`), and the fallback
//! to HTTP/1.1 when a server's h2 does not enable it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::common;
use crate::common::http_server::Tls;
use crate::common::pki::Pki;
use crate::common::probe::run_in;

/// How the test server treats WebSockets over h2.
#[derive(Clone, Copy)]
enum H2Mode {
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL and a 200 to `:protocol websocket`.
    ExtendedConnect,
    /// Extended CONNECT enabled but answered with this status.
    Refuse(u16),
    /// h2 without extended CONNECT (WebSockets only over HTTP/1.1).
    Plain,
}

/// Echo every data message back.
async fn echo<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(msg)) = ws.next().await {
        let data = msg.is_text() || msg.is_binary();
        if msg.is_close() || (data && ws.send(msg).await.is_err()) {
            break;
        }
    }
}

async fn h2_handler(
    mode: H2Mode,
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, std::convert::Infallible> {
    let protocol = req
        .extensions()
        .get::<hyper::ext::Protocol>()
        .map(|p| p.as_str().to_string());
    let mut resp = Response::new(Empty::new());
    if req.method() != Method::CONNECT || protocol.as_deref() != Some("websocket") {
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return Ok(resp);
    }
    if let H2Mode::Refuse(code) = mode {
        *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::FORBIDDEN);
        return Ok(resp);
    }
    if let Some(p) = req.headers().get("sec-websocket-protocol")
        && let Some(first) = p.to_str().unwrap_or_default().split(',').next()
    {
        resp.headers_mut().insert(
            "sec-websocket-protocol",
            first.trim().parse().expect("header value"),
        );
    }
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(&mut req).await {
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            echo(ws).await;
        }
    });
    Ok(resp)
}

/// A TLS server on 127.0.0.1:0 offering h2 and http/1.1.
async fn start(tls: Arc<rustls::ServerConfig>, mode: H2Mode) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(tls);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                if h2 {
                    let mut builder =
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    if !matches!(mode, H2Mode::Plain) {
                        builder.enable_connect_protocol();
                    }
                    let _ = builder
                        .serve_connection(
                            TokioIo::new(stream),
                            service_fn(move |r| h2_handler(mode, r)),
                        )
                        .await;
                } else if let Ok(ws) = tokio_tungstenite::accept_async(stream).await {
                    echo(ws).await;
                }
            });
        }
    });
    addr
}

fn config(ca: &std::path::Path, enable_http2: bool) -> String {
    format!(
        r#"
modules:
  wss_h2:
    prober: websocket
    timeout: 5s
    websocket:
      enable_http2: {enable_http2}
      tls_config:
        ca_file: {ca}
      subprotocols: [echo]
      ping: true
      query_response:
        - send: "hello over h2"
        - expect: "^hello over h2$"
"#,
        ca = ca.display()
    )
}

async fn probe(mode: H2Mode, enable_http2: bool) -> common::probe::Outcome {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let addr = start(Tls::new(&leaf).server_config(), mode).await;
    let target = format!("wss://localhost:{}/chat", addr.port());
    run_in(
        pki.dir(),
        &config(&pki.ca_file(), enable_http2),
        "wss_h2",
        &target,
        None,
        Duration::from_secs(5),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_connect_over_h2() {
    let o = probe(H2Mode::ExtendedConnect, true).await;
    o.assert_success();
    assert_eq!(
        o.value("probe_websocket_http_version", &[]),
        Some(2.0),
        "{}",
        o.log
    );
    assert_eq!(o.value("probe_websocket_status_code", &[]), Some(200.0));
    assert_eq!(
        o.value("probe_websocket_connection_upgraded", &[]),
        Some(1.0)
    );
    assert_eq!(
        o.value(
            "probe_websocket_subprotocol_info",
            &[("subprotocol", "echo")]
        ),
        Some(1.0)
    );
    assert!(
        o.value("probe_websocket_ping_rtt_seconds", &[])
            .unwrap_or(0.0)
            > 0.0
    );
    assert!(o.value("probe_ssl_earliest_cert_expiry", &[]).is_some());
    assert!(o.log.contains("extended CONNECT"), "{}", o.log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_without_extended_connect_falls_back_to_http1() {
    let o = probe(H2Mode::Plain, true).await;
    o.assert_success();
    assert_eq!(o.value("probe_websocket_http_version", &[]), Some(1.1));
    assert_eq!(o.value("probe_websocket_status_code", &[]), Some(101.0));
    assert!(o.log.contains("retrying over HTTP/1.1"), "{}", o.log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_unless_enabled() {
    let o = probe(H2Mode::ExtendedConnect, false).await;
    o.assert_success();
    assert_eq!(o.value("probe_websocket_http_version", &[]), Some(1.1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_extended_connect_is_classified() {
    let o = probe(H2Mode::Refuse(403), true).await;
    o.assert_reason("upgrade_rejected");
    assert_eq!(o.value("probe_websocket_status_code", &[]), Some(403.0));
    assert_eq!(o.value("probe_websocket_http_version", &[]), Some(2.0));
    let o = probe(H2Mode::Refuse(503), true).await;
    o.assert_reason("upstream_unavailable");
}
