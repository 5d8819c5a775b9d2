//! QUIC for HTTP/3 (quinn): the client config built once per module, and
//! one connection per probe over a UDP socket the connector opened (so the
//! target policy holds as for every other socket).
//!
//! Per probe, everything quinn runs in the background — the endpoint's
//! driver and the connection's — is spawned through a [`ProbeRuntime`] that
//! keeps the tasks' handles: dropping the [`QuicConnection`] (the probe
//! finished, or its deadline dropped it) aborts them, which closes the
//! socket at once instead of after QUIC's draining period.
//!
//! The TLS handshake of a QUIC connection runs in quinn's connection task,
//! not the probe's, so the verifier's task-local recorder is put in place
//! around each handshake step by a wrapper session ([`RecordingSession`]);
//! the chain, a refused certificate and the negotiated suite are recorded
//! as for TCP.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncTimer, AsyncUdpSocket, Runtime, TokioRuntime, UdpPoller};
use quinn_proto::transport_parameters::TransportParameters;
use quinn_proto::{ConnectionId, Side, TransportError};

use super::connector::{Connector, Endpoint, Observer, Phase, PhaseTimer};
use super::error::TlsProblem;
use super::tls::{
    ChainRecorder, Session, TlsBuildError, TlsClient, TlsInfo, certificate_problem, recording,
    tls_failure,
};
use super::{NetError, address};

/// The ALPN protocol of HTTP/3.
pub const ALPN_H3: &[u8] = b"h3";

/// A module's QUIC client: the rustls config (TLS 1.3, ALPN `h3`, the
/// module's verifier and client certificate) wrapped for QUIC, and the
/// transport settings. Built at config load.
pub struct QuicClient {
    crypto: Arc<QuicClientConfig>,
    transport: Arc<quinn::TransportConfig>,
}

impl fmt::Debug for QuicClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicClient").finish_non_exhaustive()
    }
}

impl QuicClient {
    pub fn build(tls: &TlsClient) -> Result<Self, TlsBuildError> {
        let crypto = QuicClientConfig::try_from(tls.quic_config()?)
            .map_err(|e| TlsBuildError::Rustls(rustls::Error::General(format!("QUIC: {e}"))))?;
        let mut transport = quinn::TransportConfig::default();
        // One request per connection: no streams for the server to open
        // towards us but HTTP/3's own unidirectional ones.
        transport.max_concurrent_bidi_streams(0u32.into());
        Ok(Self {
            crypto: Arc::new(crypto),
            transport: Arc::new(transport),
        })
    }

    /// The per-connection config: the shared crypto config behind a
    /// recording wrapper (an `Arc` and a recorder, nothing rebuilt).
    fn config(&self, recorder: &ChainRecorder) -> quinn::ClientConfig {
        let mut config = quinn::ClientConfig::new(Arc::new(RecordingCrypto {
            inner: self.crypto.clone(),
            recorder: recorder.clone(),
        }));
        config.transport_config(self.transport.clone());
        config
    }
}

/// An established QUIC connection and what its handshake showed. Dropping
/// it ends quinn's tasks for it and closes the socket.
pub struct QuicConnection {
    pub connection: quinn::Connection,
    pub tls: TlsInfo,
    pub peer: SocketAddr,
    endpoint: quinn::Endpoint,
    runtime: Arc<ProbeRuntime>,
}

impl QuicConnection {
    /// The datagrams sent so far (to tell when a close went out).
    pub fn datagrams_sent(&self) -> u64 {
        self.connection.stats().udp_tx.datagrams
    }

    /// Close with `code` and give quinn's task a moment (at most 10 ms) to
    /// send the CONNECTION_CLOSE — a datagram after the `sent` count taken
    /// before — so the server need not keep the connection until its idle
    /// timeout. Dropping it then closes the socket.
    pub async fn close(&self, code: u32, sent: u64) {
        self.connection.close(code.into(), b"");
        for _ in 0..10 {
            if self.datagrams_sent() > sent {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

impl Drop for QuicConnection {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"");
        self.runtime.abort_all();
    }
}

impl Connector<'_> {
    /// Open a QUIC connection to `endpoint` for HTTP/3: a UDP socket
    /// through [`Connector::connect_datagram`] (the target policy's checks;
    /// timed as `connect`), then the QUIC handshake (timed as `tls`: it is
    /// the TLS handshake, carried in QUIC packets). No proxy: QUIC does
    /// not go through an HTTP proxy.
    pub async fn connect_quic(
        &self,
        endpoint: Endpoint<'_>,
        client: &QuicClient,
        server_name: &str,
        observer: &dyn Observer,
    ) -> Result<QuicConnection, NetError> {
        let socket = self.connect_datagram(endpoint, observer).await?;
        let peer = socket.peer_addr().map_err(NetError::Io)?;
        let socket = socket.into_std().map_err(NetError::Io)?;
        let runtime = Arc::new(ProbeRuntime::default());
        let refused = Arc::new(Refused::default());
        let watched = Arc::new(WatchedSocket {
            state: quinn::udp::UdpSocketState::new((&socket).into()).map_err(NetError::Io)?,
            io: tokio::net::UdpSocket::from_std(socket).map_err(NetError::Io)?,
            refused: refused.clone(),
        });
        // A failure below drops the endpoint and the runtime: the driver is
        // aborted and the socket closed.
        let quic = quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            None,
            watched,
            runtime.clone(),
        )
        .map_err(NetError::Io)?;
        let mut guard = AbortOnDrop(Some(runtime.clone()));

        let handshake = PhaseTimer::start(observer, Phase::Tls);
        let recorder = ChainRecorder::default();
        let name = address::unbracket(server_name);
        observer.note(
            "QUIC handshake",
            &[("address", &peer), ("server_name", &name)],
        );
        let connecting = quic
            .connect_with(client.config(&recorder), peer, name)
            .map_err(|e| connect_error(e, name))?;
        let result = tokio::select! {
            r = connecting => Some(r),
            () = refused.notify.notified() => None,
        };
        drop(handshake);
        let chain = recorder.snapshot();
        let connection = match result {
            Some(Ok(c)) => c,
            None => {
                return Err(NetError::Io(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("QUIC handshake with {peer}: port unreachable (ICMP)"),
                )));
            }
            Some(Err(e)) => return Err(handshake_error(e, chain)),
        };
        let alpn = connection
            .handshake_data()
            .and_then(|d| d.downcast::<HandshakeData>().ok())
            .and_then(|d| d.protocol);
        let session = chain.quic_suite.map(|cipher| Session {
            version: rustls::ProtocolVersion::TLSv1_3,
            cipher,
        });
        let tls = TlsInfo {
            chain,
            session,
            alpn,
        };
        observer.note("QUIC handshake done", &[("address", &peer)]);
        guard.0 = None;
        Ok(QuicConnection {
            connection,
            tls,
            peer,
            endpoint: quic,
            runtime,
        })
    }
}

fn connect_error(e: quinn::ConnectError, name: &str) -> NetError {
    match e {
        quinn::ConnectError::InvalidServerName(_) => NetError::ServerName {
            name: name.to_string(),
            reason: "not a valid DNS name or IP address".to_string(),
        },
        other => NetError::Io(io::Error::other(format!("QUIC: {other}"))),
    }
}

/// A failed QUIC handshake: a certificate the verifier refused, a TLS
/// alert either way (QUIC's crypto error codes), else the QUIC error
/// itself (classified in the prober's reason table).
fn handshake_error(e: quinn::ConnectionError, chain: super::tls::ChainRecord) -> NetError {
    if let Some(cert_err) = &chain.verify_error {
        let (problem, message) = certificate_problem(cert_err);
        return tls_failure(problem, message, chain);
    }
    let crypto = match &e {
        quinn::ConnectionError::TransportError(t) => is_crypto(t.code),
        quinn::ConnectionError::ConnectionClosed(c) => is_crypto(c.error_code),
        _ => false,
    };
    if crypto {
        return tls_failure(
            TlsProblem::Handshake,
            format!("TLS handshake (QUIC) failed: {e}"),
            chain,
        );
    }
    NetError::Quic(e)
}

/// QUIC carries TLS alerts as transport error codes 0x100-0x1ff.
fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

/// Aborts the runtime's tasks unless disarmed (the handshake's failure
/// paths, and its cancellation by the deadline).
struct AbortOnDrop(Option<Arc<ProbeRuntime>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(runtime) = &self.0 {
            runtime.abort_all();
        }
    }
}

/// quinn's tokio runtime, keeping the handles of what it spawns so one
/// probe's endpoint and connection tasks end with the probe.
#[derive(Debug, Default)]
struct ProbeRuntime {
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    ended: AtomicBool,
}

impl ProbeRuntime {
    fn abort_all(&self) {
        self.ended.store(true, Ordering::Relaxed);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            t.abort();
        }
    }
}

impl Runtime for ProbeRuntime {
    fn new_timer(&self, i: Instant) -> Pin<Box<dyn AsyncTimer>> {
        TokioRuntime.new_timer(i)
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        let handle = tokio::spawn(future).abort_handle();
        if self.ended.load(Ordering::Relaxed) {
            handle.abort();
            return;
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    fn wrap_udp_socket(&self, t: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        TokioRuntime.wrap_udp_socket(t)
    }
}

/// The connected UDP socket (quinn-udp's state over a tokio socket, as
/// quinn's own tokio socket), noting an ICMP port unreachable — reported
/// as "connection refused" on a connected socket, which quinn's own socket
/// swallows — so the probe fails at once with `connect_refused` instead of
/// waiting for its deadline.
#[derive(Debug)]
struct WatchedSocket {
    io: tokio::net::UdpSocket,
    state: quinn::udp::UdpSocketState,
    refused: Arc<Refused>,
}

/// Set (and announced) when the peer's port is unreachable.
#[derive(Debug, Default)]
struct Refused {
    seen: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Refused {
    fn note(&self, e: &io::Error) {
        if e.kind() == io::ErrorKind::ConnectionRefused && !self.seen.swap(true, Ordering::Relaxed)
        {
            self.notify.notify_one();
        }
    }
}

impl AsyncUdpSocket for WatchedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(WritablePoller {
            socket: self,
            fut: None,
        })
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let sent = self.io.try_io(tokio::io::Interest::WRITABLE, || {
            self.state.try_send((&self.io).into(), transmit)
        });
        match sent {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(e),
            // Anything else is a datagram lost (as quinn-udp treats it);
            // a refusal is noted.
            Err(e) => {
                self.refused.note(&e);
                Ok(())
            }
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            if let Err(e) = std::task::ready!(self.io.poll_recv_ready(cx)) {
                return Poll::Ready(Err(e));
            }
            match self.io.try_io(tokio::io::Interest::READABLE, || {
                self.state.recv((&self.io).into(), bufs, meta)
            }) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => self.refused.note(&e),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.state.gro_segments()
    }

    fn may_fragment(&self) -> bool {
        self.state.may_fragment()
    }
}

/// Waits until the socket is writable again after a send would block.
struct WritablePoller {
    socket: Arc<WatchedSocket>,
    fut: Option<Pin<Box<dyn Future<Output = io::Result<()>> + Send + Sync>>>,
}

impl fmt::Debug for WritablePoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WritablePoller").finish_non_exhaustive()
    }
}

impl UdpPoller for WritablePoller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let socket = this.socket.clone();
        let fut = this
            .fut
            .get_or_insert_with(|| Box::pin(async move { socket.io.writable().await }));
        let ready = fut.as_mut().poll(cx);
        if ready.is_ready() {
            this.fut = None;
        }
        ready
    }
}

/// The module's QUIC crypto config with a probe's recorder.
struct RecordingCrypto {
    inner: Arc<QuicClientConfig>,
    recorder: ChainRecorder,
}

impl quinn::crypto::ClientConfig for RecordingCrypto {
    fn start_session(
        self: Arc<Self>,
        version: u32,
        server_name: &str,
        params: &TransportParameters,
    ) -> Result<Box<dyn quinn::crypto::Session>, quinn::ConnectError> {
        let inner = recording(&self.recorder, || {
            self.inner
                .clone()
                .start_session(version, server_name, params)
        })?;
        Ok(Box::new(RecordingSession {
            inner,
            recorder: self.recorder.clone(),
        }))
    }
}

/// quinn's rustls session, with the probe's recorder in place while it
/// reads and writes handshake messages (where the verifier, the client
/// certificate resolver and the suites' key derivation run).
struct RecordingSession {
    inner: Box<dyn quinn::crypto::Session>,
    recorder: ChainRecorder,
}

impl quinn::crypto::Session for RecordingSession {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> quinn::crypto::Keys {
        self.inner.initial_keys(dst_cid, side)
    }

    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        self.inner.handshake_data()
    }

    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.inner.peer_identity()
    }

    fn early_crypto(
        &self,
    ) -> Option<(
        Box<dyn quinn::crypto::HeaderKey>,
        Box<dyn quinn::crypto::PacketKey>,
    )> {
        self.inner.early_crypto()
    }

    fn early_data_accepted(&self) -> Option<bool> {
        self.inner.early_data_accepted()
    }

    fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        let Self { inner, recorder } = self;
        recording(recorder, || inner.read_handshake(buf))
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        self.inner.transport_parameters()
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<quinn::crypto::Keys> {
        let Self { inner, recorder } = self;
        recording(recorder, || inner.write_handshake(buf))
    }

    fn next_1rtt_keys(
        &mut self,
    ) -> Option<quinn::crypto::KeyPair<Box<dyn quinn::crypto::PacketKey>>> {
        self.inner.next_1rtt_keys()
    }

    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        self.inner.is_valid_retry(orig_dst_cid, header, payload)
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), quinn::crypto::ExportKeyingMaterialError> {
        self.inner.export_keying_material(output, label, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::error::CertProblem;
    use rustls::CertificateError;

    #[test]
    fn handshake_failures_are_told_apart() {
        let close = |code| {
            quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
                error_code: code,
                frame_type: None,
                reason: bytes::Bytes::new(),
            })
        };
        // A certificate the verifier refused decides, whatever QUIC said.
        let chain = crate::net::tls::ChainRecord {
            verify_error: Some(CertificateError::Expired),
            ..Default::default()
        };
        let e = handshake_error(quinn::ConnectionError::TimedOut, chain);
        assert!(matches!(
            e,
            NetError::Tls {
                problem: TlsProblem::Certificate(CertProblem::Expired),
                ..
            }
        ));
        // A TLS alert from the peer (handshake_failure = 40).
        let e = handshake_error(
            close(quinn::TransportErrorCode::crypto(40)),
            Default::default(),
        );
        assert!(matches!(
            e,
            NetError::Tls {
                problem: TlsProblem::Handshake,
                ..
            }
        ));
        // Anything else stays a QUIC error for the reason table.
        let e = handshake_error(quinn::ConnectionError::TimedOut, Default::default());
        assert!(matches!(
            e,
            NetError::Quic(quinn::ConnectionError::TimedOut)
        ));
        let e = handshake_error(
            close(quinn::TransportErrorCode::PROTOCOL_VIOLATION),
            Default::default(),
        );
        assert!(matches!(e, NetError::Quic(_)));
    }
}
