//! The prober's side of the connector (`net::connector`): phase timings go
//! into the prober's duration gauge, notes into the probe log, a failed
//! handshake still reports the certificates it saw, and a failure becomes a
//! reason through the one table in [`super::reason`].

use std::fmt;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::metrics::GaugeSpec;
use super::reason::ProbeFailure;
use super::{ProbeContext, tls_metrics};
use crate::net::connector::{self, Connection, Connector, Endpoint, Observer, Phase, TlsRequest};
use crate::net::quic::{QuicClient, QuicConnection};
use crate::net::tls::TlsInfo;
use crate::net::{NetError, Stream};

/// A probe watching its connections.
pub struct Watch<'a, 'c> {
    cx: &'a ProbeContext<'c>,
    /// The prober's `…_duration_seconds{phase}` gauge, if it has one.
    phases: Option<&'static GaugeSpec>,
    /// The `phase` label a connector phase is added to.
    label: fn(Phase) -> &'static str,
}

impl<'a, 'c> Watch<'a, 'c> {
    pub fn new(cx: &'a ProbeContext<'c>, phases: Option<&'static GaugeSpec>) -> Self {
        Self {
            cx,
            phases,
            label: Phase::as_str,
        }
    }

    /// Report the connector's phases under the prober's own labels (dns
    /// counts the TLS handshake of DoT in `connect`, as blackbox does:
    /// its `connect` is everything before the request).
    pub fn labelled(mut self, label: fn(Phase) -> &'static str) -> Self {
        self.label = label;
        self
    }
}

impl Observer for Watch<'_, '_> {
    fn phase(&self, phase: Phase, elapsed: Duration) {
        if let Some(spec) = self.phases {
            self.cx
                .metrics
                .add_labelled(spec, &[(self.label)(phase)], elapsed.as_secs_f64());
        }
    }

    fn note(&self, message: &str, fields: &[(&str, &dyn fmt::Display)]) {
        self.cx.log.debug(message, fields);
    }
}

/// A failed connection: the certificates a failed handshake showed are
/// reported (an expired certificate still yields its expiry), then the
/// error becomes the probe's failure.
fn failed(cx: &ProbeContext<'_>, e: NetError) -> ProbeFailure {
    if let Some(info) = e.tls_info() {
        tls_metrics::record(cx, info);
    }
    ProbeFailure::from(e)
}

/// Who reports the TLS family of a successful handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsReport {
    /// Record it now (tcp, tls, websocket, dns over TLS).
    Now,
    /// The caller decides (the http prober reports only the final
    /// response's, after redirects).
    ByCaller,
}

/// Open a connection through the connector. On failure the certificates a
/// failed handshake showed are recorded whatever `report` says.
pub async fn open(
    cx: &ProbeContext<'_>,
    phases: Option<&'static GaugeSpec>,
    connector: &Connector<'_>,
    endpoint: Endpoint<'_>,
    report: TlsReport,
) -> Result<Connection, ProbeFailure> {
    open_watched(cx, &Watch::new(cx, phases), connector, endpoint, report).await
}

/// [`open`] with the prober's own [`Watch`] (relabelled phases).
pub async fn open_watched(
    cx: &ProbeContext<'_>,
    watch: &Watch<'_, '_>,
    connector: &Connector<'_>,
    endpoint: Endpoint<'_>,
    report: TlsReport,
) -> Result<Connection, ProbeFailure> {
    let conn = connector
        .connect(endpoint, watch)
        .await
        .map_err(|e| failed(cx, e))?;
    Ok(opened(cx, conn, report))
}

/// Open a connection that is not to the probe's target (the oauth2 token
/// endpoint of an http module): the same connector, target policy and
/// reason table, but its phases and certificates are not the target's, so
/// neither is recorded (the connector's notes still go to the probe log).
pub async fn open_aside(
    cx: &ProbeContext<'_>,
    connector: &Connector<'_>,
    endpoint: Endpoint<'_>,
) -> Result<Connection, ProbeFailure> {
    connector
        .connect(endpoint, &Watch::new(cx, None))
        .await
        .map_err(ProbeFailure::from)
}

/// [`open`] for a unix socket path.
pub async fn open_unix(
    cx: &ProbeContext<'_>,
    connector: &Connector<'_>,
    path: &str,
    report: TlsReport,
) -> Result<Connection, ProbeFailure> {
    let conn = connector
        .connect_unix(path, &Watch::new(cx, None))
        .await
        .map_err(|e| failed(cx, e))?;
    Ok(opened(cx, conn, report))
}

fn opened(cx: &ProbeContext<'_>, conn: Connection, report: TlsReport) -> Connection {
    if let (TlsReport::Now, Some(info)) = (report, &conn.tls) {
        tls_metrics::record(cx, info);
    }
    conn
}

/// A UDP socket connected to the endpoint through the connector (the
/// target policy holds as for streams).
pub async fn open_datagram(
    cx: &ProbeContext<'_>,
    watch: &Watch<'_, '_>,
    connector: &Connector<'_>,
    endpoint: Endpoint<'_>,
) -> Result<UdpSocket, ProbeFailure> {
    connector
        .connect_datagram(endpoint, watch)
        .await
        .map_err(|e| failed(cx, e))
}

/// A QUIC connection (HTTP/3) through the connector: the UDP socket under
/// the target policy, then the QUIC handshake. Its TLS family is left to
/// the caller (the http prober reports the final response's); the
/// certificates of a failed handshake are recorded.
pub async fn open_quic(
    cx: &ProbeContext<'_>,
    phases: Option<&'static GaugeSpec>,
    connector: &Connector<'_>,
    endpoint: Endpoint<'_>,
    client: &QuicClient,
    server_name: &str,
) -> Result<QuicConnection, ProbeFailure> {
    connector
        .connect_quic(endpoint, client, server_name, &Watch::new(cx, phases))
        .await
        .map_err(|e| failed(cx, e))
}

/// TLS over an open connection (STARTTLS), its TLS family recorded.
pub async fn starttls(
    cx: &ProbeContext<'_>,
    tls: &TlsRequest<'_>,
    stream: Box<dyn Stream>,
) -> Result<(Box<dyn Stream>, TlsInfo), ProbeFailure> {
    let (stream, info) = connector::upgrade(tls, stream, &Watch::new(cx, None))
        .await
        .map_err(|e| failed(cx, e))?;
    tls_metrics::record(cx, &info);
    Ok((stream, info))
}
