//! The hyper side of an HTTP-based probe: a client connection over the
//! stream the connector opened, driven in its own task, with no pool and no
//! hidden retries, so every phase is visible.

use std::error::Error as StdError;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::net::Stream;
use crate::prober::reason::ProbeFailure;

/// Drives a connection in its own task and aborts it when dropped, so a
/// cancelled or finished probe never leaves a socket behind. Keeps the
/// connection's own error: when a request fails only because the connection
/// went away, that error says why (e.g. a TLS 1.3 server refusing our
/// client certificate after the handshake).
pub struct ConnectionTask(Option<tokio::task::JoinHandle<Option<hyper::Error>>>);

impl ConnectionTask {
    pub fn spawn<F>(conn: F) -> Self
    where
        F: std::future::Future<Output = Result<(), hyper::Error>> + Send + 'static,
    {
        Self(Some(tokio::spawn(async move { conn.await.err() })))
    }

    /// The error the connection ended with, if it has ended (or ends within
    /// a moment: it races the request's own cancellation error).
    async fn ended_with(&mut self) -> Option<hyper::Error> {
        let handle = self.0.as_mut()?;
        let result = tokio::time::timeout(Duration::from_millis(100), handle).await;
        match result {
            Ok(joined) => {
                self.0 = None;
                joined.ok().flatten()
            }
            Err(_) => None,
        }
    }

    /// The failure of a request on this connection: the connection's own
    /// error when the request was merely cancelled by its end.
    pub async fn request_failure(&mut self, e: &hyper::Error, context: &str) -> ProbeFailure {
        if (e.is_canceled() || e.is_closed() || e.is_incomplete_message())
            && let Some(conn_err) = self.ended_with().await
        {
            return ProbeFailure::hyper(&conn_err, context);
        }
        ProbeFailure::hyper(e, context)
    }
}

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

/// An HTTP/1.1 client connection over `stream` (header names in Title-Case,
/// as Go writes them); `upgrades` keeps it usable for a 101.
pub async fn http1<B>(
    stream: Box<dyn Stream>,
    upgrades: bool,
) -> Result<(http1::SendRequest<B>, ConnectionTask), ProbeFailure>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (sender, conn) = http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProbeFailure::hyper(&e, "HTTP handshake"))?;
    let task = if upgrades {
        ConnectionTask::spawn(conn.with_upgrades())
    } else {
        ConnectionTask::spawn(conn)
    };
    Ok((sender, task))
}

/// Send a request on a connection; a failure caused by the connection
/// ending is reported with the connection's own error.
pub async fn send<F>(
    request: F,
    mut connection: ConnectionTask,
    context: &str,
) -> Result<(http::Response<Incoming>, ConnectionTask), ProbeFailure>
where
    F: std::future::Future<Output = Result<http::Response<Incoming>, hyper::Error>>,
{
    match request.await {
        Ok(response) => Ok((response, connection)),
        Err(e) => Err(connection.request_failure(&e, context).await),
    }
}
