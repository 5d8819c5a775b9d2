//! One HTTP/3 round trip (`enable_http3`): the connector opens the UDP
//! socket under the target policy and runs the QUIC handshake
//! (`net::quic`; phases `connect` = the UDP socket, `tls` = the QUIC
//! handshake, as quic-go's trace reports them to blackbox), then h3 sends
//! the request and `processing` runs until the response head arrives. The
//! body is read by the caller (`transfer`) from [`H3Body`].
//!
//! As on the other versions, every hop has a connection of its own, and
//! the request carries the module's headers, credentials and body.

use bytes::{Buf, Bytes};
use http::header::HeaderMap;

use super::body::ResponseBody;
use super::config::HttpSettings;
use super::hop::{Hop, HopResponse, Link, host_port};
use super::metrics::HTTP_DURATION;
use crate::net::quic::{QuicClient, QuicConnection};
use crate::net::{Connector, Endpoint};
use crate::prober::ProbeContext;
use crate::prober::connect;
use crate::prober::reason::{FailureReason, ProbeFailure, h3_connection_reason, h3_stream_reason};

type Sender = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;
type Stream = h3::client::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// The HTTP/3 connection of a hop, kept until its body is read. Dropping
/// it closes the connection: the request sender (h3 then closes with
/// H3_NO_ERROR), the task driving h3's control streams, then the QUIC
/// connection with quinn's tasks and the socket.
pub struct H3Link {
    sender: Option<Sender>,
    driver: tokio::task::JoinHandle<()>,
    quic: QuicConnection,
}

impl Drop for H3Link {
    fn drop(&mut self) {
        drop(self.sender.take());
        self.driver.abort();
    }
}

/// HTTP/3's "no error" code, for a connection closed when done.
const H3_NO_ERROR: u32 = 0x100;

impl H3Link {
    /// Close the connection politely (H3_NO_ERROR, sent before the socket
    /// goes), then drop it.
    pub async fn close(self) {
        // Before h3 lets go of its streams: the server would take their
        // end for an error of its own.
        let sent = self.quic.datagrams_sent();
        self.quic.close(H3_NO_ERROR, sent).await;
    }
}

/// The body of an HTTP/3 response.
pub struct H3Body(Stream);

impl H3Body {
    pub(super) async fn chunk(&mut self) -> Option<Result<Bytes, ProbeFailure>> {
        // quinn's own task fills the stream: a sender that never pauses
        // could keep this ready forever, so each piece costs runtime
        // budget (and yields when it is spent) and the deadline can cut in,
        // as `net::fair` does for streams.
        tokio::task::coop::consume_budget().await;
        match self.0.recv_data().await {
            Ok(None) => None,
            Ok(Some(mut buf)) => Some(Ok(buf.copy_to_bytes(buf.remaining()))),
            Err(e) => Some(Err(stream_failure(
                &e,
                "Failed to read HTTP/3 response body",
            ))),
        }
    }
}

fn stream_failure(e: &h3::error::StreamError, context: &str) -> ProbeFailure {
    ProbeFailure::new(h3_stream_reason(e), format!("{context}: {e}"))
}

/// Perform one hop over HTTP/3 (the URL is https: `http://` was upgraded
/// by the caller, as blackbox does).
pub async fn round_trip(
    cx: &ProbeContext<'_>,
    s: &HttpSettings,
    client: &QuicClient,
    hop: Hop<'_>,
) -> Result<HopResponse, ProbeFailure> {
    let (host, port) = host_port(hop.url);
    let connector = Connector {
        address: s.address,
        targets: cx.targets,
        source: None,
        proxy: None,
        tls: None,
    };
    let endpoint = Endpoint {
        host: &host,
        port,
        address: hop.address,
    };
    let quic = connect::open_quic(
        cx,
        Some(&HTTP_DURATION),
        &connector,
        endpoint,
        client,
        hop.server_name,
    )
    .await?;
    let tls = quic.tls.clone();

    let processing = cx.phase(&HTTP_DURATION, "processing");
    let (mut driver, mut sender) =
        h3::client::new(h3_quinn::Connection::new(quic.connection.clone()))
            .await
            .map_err(|e| {
                ProbeFailure::new(h3_connection_reason(&e), format!("HTTP/3 connection: {e}"))
            })?;
    let driver = tokio::spawn(async move {
        let _ = std::future::poll_fn(|c| driver.poll_close(c)).await;
    });
    let mut link = H3Link {
        sender: None,
        driver,
        quic,
    };

    let path = match hop.url.query() {
        Some(q) => format!("{}?{q}", hop.url.path()),
        None => hop.url.path().to_string(),
    };
    let mut req = http::Request::builder()
        .method(hop.method)
        .uri(format!("https://{}{}", hop.host_header, path))
        .version(http::Version::HTTP_3)
        .body(())
        .map_err(|e| {
            ProbeFailure::new(
                FailureReason::InvalidTarget,
                format!("invalid request: {e}"),
            )
        })?;
    *req.headers_mut() = without_connection_headers(hop.headers);
    let mut stream = sender
        .send_request(req)
        .await
        .map_err(|e| stream_failure(&e, "Error for HTTP request"))?;
    if !hop.body.is_empty() {
        stream
            .send_data(hop.body)
            .await
            .map_err(|e| stream_failure(&e, "Error sending HTTP/3 request body"))?;
    }
    stream
        .finish()
        .await
        .map_err(|e| stream_failure(&e, "Error for HTTP request"))?;
    let response = stream
        .recv_response()
        .await
        .map_err(|e| stream_failure(&e, "Error for HTTP request"))?;
    processing.finish();
    link.sender = Some(sender);
    Ok(HopResponse {
        response: response.map(|()| ResponseBody::H3(Box::new(H3Body(stream)))),
        tls: Some(tls),
        connection: Link::H3(Box::new(link)),
    })
}

/// HTTP/3 forbids connection-specific header fields (RFC 9114 §4.2); a
/// module's `Connection` or `Keep-Alive` header is left out rather than
/// making the request malformed.
fn without_connection_headers(mut headers: HeaderMap) -> HeaderMap {
    for name in [
        http::header::CONNECTION,
        http::header::TRANSFER_ENCODING,
        http::header::UPGRADE,
        http::HeaderName::from_static("keep-alive"),
        http::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
    headers
}
