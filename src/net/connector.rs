//! The one connection path of every prober: resolve, dial, tunnel through
//! an HTTP proxy, TLS — each step timed, what TLS showed recorded — and
//! the one path to a connected UDP socket (dns over UDP) and to an ICMP
//! socket (icmp).
//!
//! A prober describes where to go ([`Endpoint`]) and how ([`Connector`]:
//! address policy, source address, proxy, TLS settings and ALPN) and gets a
//! [`Connection`] back. Phase timings and log lines go to an [`Observer`]
//! the prober supplies; they are reported when a phase ends *or is
//! cancelled* (the probe's deadline drops this future), so a timed-out probe
//! still shows where it was.
//!
//! The target policy is enforced here, where every socket is opened: the
//! name before it is resolved, the address right before it is dialled, so
//! no prober, redirect hop or reconnect can reach a forbidden address.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::address::{AddressPolicy, resolve};
use super::fair::Fair;
use super::icmp::{EchoOptions, EchoSocket};
use super::policy::TargetPolicy;
use super::proxy::{ProxyUrl, tunnel};
use super::tls::{Alpn, TlsClient, TlsInfo, handshake_with};
use super::{NetError, Secret, Stream, cert, dial};

/// The timed steps of opening a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Looking up the target's name (when the prober did not resolve it).
    Resolve,
    /// Reaching the target or the proxy, including the proxy's lookup and
    /// the CONNECT tunnel.
    Connect,
    /// The TLS handshake.
    Tls,
}

impl Phase {
    /// The `phase` label blackbox uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
        }
    }
}

/// Where a prober's timings and log lines go.
pub trait Observer: Sync {
    /// A phase ended (or was cancelled) after `elapsed`.
    fn phase(&self, phase: Phase, elapsed: Duration);
    /// A step worth a line in the probe's log.
    fn note(&self, message: &str, fields: &[(&str, &dyn fmt::Display)]);
}

/// Reports the time since its creation to the observer when dropped.
pub(super) struct PhaseTimer<'a> {
    observer: &'a dyn Observer,
    phase: Phase,
    start: Instant,
}

impl<'a> PhaseTimer<'a> {
    pub(super) fn start(observer: &'a dyn Observer, phase: Phase) -> Self {
        Self {
            observer,
            phase,
            start: Instant::now(),
        }
    }
}

impl Drop for PhaseTimer<'_> {
    fn drop(&mut self) {
        self.observer.phase(self.phase, self.start.elapsed());
    }
}

/// The host and port a probe talks to.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// Name or IP literal (brackets allowed).
    pub host: &'a str,
    pub port: u16,
    /// The address of `host` when the prober already resolved it (to report
    /// the address metrics); None: resolved here, timed as [`Phase::Resolve`].
    pub address: Option<IpAddr>,
}

/// An HTTP proxy on the way.
#[derive(Debug, Clone, Copy)]
pub struct ProxyHop<'a> {
    pub url: &'a ProxyUrl,
    /// true: open a CONNECT tunnel to the endpoint; false: the caller talks
    /// to the proxy itself (plain-http requests in absolute form).
    pub tunnel: bool,
    /// `proxy_connect_header`, sent with CONNECT.
    pub connect_headers: &'a [(http::HeaderName, Secret)],
}

/// TLS on top of the TCP (or tunnelled) connection.
#[derive(Debug, Clone, Copy)]
pub struct TlsRequest<'a> {
    pub client: &'a TlsClient,
    /// SNI and the name the certificate must match.
    pub server_name: &'a str,
    pub alpn: Alpn,
    /// For connections nobody reads from: wait for a TLS 1.3 server's
    /// verdict on our client certificate before calling the session good.
    pub confirm: bool,
}

/// How to reach an endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Connector<'a> {
    /// Which address of the endpoint's name to use.
    pub address: AddressPolicy,
    /// Who may be reached: checked on the name before it is resolved and
    /// on the address before it is dialled (a proxy is the operator's own
    /// and is not checked).
    pub targets: &'a TargetPolicy,
    /// `source_ip_address`: bind the socket to it.
    pub source: Option<IpAddr>,
    pub proxy: Option<ProxyHop<'a>>,
    pub tls: Option<TlsRequest<'a>>,
}

/// An open connection.
pub struct Connection {
    pub stream: Box<dyn Stream>,
    /// What the TLS handshake showed, when there was one.
    pub tls: Option<TlsInfo>,
}

impl Connection {
    /// The server selected HTTP/2 by ALPN.
    pub fn is_h2(&self) -> bool {
        self.tls.as_ref().is_some_and(TlsInfo::is_h2)
    }
}

impl Connector<'_> {
    /// Open a connection to `endpoint`.
    pub async fn connect(
        &self,
        endpoint: Endpoint<'_>,
        observer: &dyn Observer,
    ) -> Result<Connection, NetError> {
        self.check_endpoint(endpoint)?;
        let (peer, connecting) = match &self.proxy {
            // Looking up the proxy is part of reaching it.
            Some(hop) => {
                let connecting = PhaseTimer::start(observer, Phase::Connect);
                let ip = resolve(&hop.url.host(), self.address).await?;
                (SocketAddr::new(ip, hop.url.port()), connecting)
            }
            None => self.direct_peer(endpoint, observer).await?,
        };
        observer.note("Dialing TCP", &[("address", &peer)]);
        let tcp = dial::connect(peer, self.source).await?;
        // Everything read from the target, tunnel and TLS included, goes
        // through `Fair`: a target that never pauses cannot hold the probe
        // past its deadline.
        let mut stream: Box<dyn Stream> = Box::new(Fair::new(tcp));
        if let Some(hop) = self.proxy.filter(|hop| hop.tunnel) {
            tunnel(
                stream.as_mut(),
                endpoint.host,
                endpoint.port,
                hop.url,
                hop.connect_headers,
            )
            .await?;
        }
        drop(connecting);
        observer.note("Successfully dialed", &[("address", &peer)]);
        self.secure(stream, observer).await
    }

    /// TLS over the open stream when the connector asks for it.
    async fn secure(
        &self,
        stream: Box<dyn Stream>,
        observer: &dyn Observer,
    ) -> Result<Connection, NetError> {
        let Some(tls) = &self.tls else {
            return Ok(Connection { stream, tls: None });
        };
        let handshake = PhaseTimer::start(observer, Phase::Tls);
        let (stream, info) =
            handshake_with(tls.client, stream, tls.server_name, tls.alpn, tls.confirm).await?;
        drop(handshake);
        note_session(observer, &info);
        Ok(Connection {
            stream: Box::new(stream),
            tls: Some(info),
        })
    }
}

impl Connector<'_> {
    /// Open a unix socket connection to `path` (the unix prober): the
    /// target policy's path rules, then the connect, then TLS when asked
    /// for. `address`, `source` and `proxy` do not apply.
    pub async fn connect_unix(
        &self,
        path: &str,
        observer: &dyn Observer,
    ) -> Result<Connection, NetError> {
        self.targets.check_path(path)?;
        let connecting = PhaseTimer::start(observer, Phase::Connect);
        observer.note("Dialing unix socket", &[("path", &path)]);
        let unix = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|e| NetError::Io(unix_error(path, e)))?;
        drop(connecting);
        observer.note("Successfully dialed", &[("path", &path)]);
        self.secure(Box::new(Fair::new(unix)), observer).await
    }
}

/// A unix connect error naming the socket; a permission error says what
/// is missing (the common mistake, which blackbox also spells out).
/// A missing socket file is a refused connection: nothing listens there,
/// as when the file outlives its server.
fn unix_error(path: &str, e: std::io::Error) -> std::io::Error {
    use std::io::ErrorKind;
    let (kind, hint) = match e.kind() {
        ErrorKind::PermissionDenied => (
            ErrorKind::PermissionDenied,
            " (the exporter's user needs write permission on the socket)",
        ),
        ErrorKind::NotFound => (ErrorKind::ConnectionRefused, ""),
        kind => (kind, ""),
    };
    std::io::Error::new(kind, format!("connect to unix socket {path}: {e}{hint}"))
}

impl Connector<'_> {
    /// Open a UDP socket connected to `endpoint` (the dns prober's
    /// datagrams), under the same target policy as every stream: the name
    /// is checked before it is resolved, the address before the socket is
    /// connected to it. A datagram goes neither through a proxy nor TLS;
    /// a connector asking for either is refused rather than half-honoured.
    pub async fn connect_datagram(
        &self,
        endpoint: Endpoint<'_>,
        observer: &dyn Observer,
    ) -> Result<UdpSocket, NetError> {
        if self.proxy.is_some() || self.tls.is_some() {
            return Err(NetError::Io(io::Error::new(
                io::ErrorKind::Unsupported,
                "a datagram socket goes through neither a proxy nor TLS",
            )));
        }
        self.check_endpoint(endpoint)?;
        let (peer, connecting) = self.direct_peer(endpoint, observer).await?;
        observer.note("Dialing UDP", &[("address", &peer)]);
        let socket = dial::connect_udp(peer, self.source).await?;
        drop(connecting);
        observer.note("Successfully dialed", &[("address", &peer)]);
        Ok(socket)
    }

    /// Open an ICMP socket aimed at `endpoint` (the icmp prober; its port
    /// is not used), under the same target policy: the name before it is
    /// resolved, the address before anything is sent to it. No proxy, no
    /// TLS, as for datagrams.
    pub async fn open_icmp(
        &self,
        endpoint: Endpoint<'_>,
        options: &EchoOptions,
        observer: &dyn Observer,
    ) -> Result<EchoSocket, NetError> {
        if self.proxy.is_some() || self.tls.is_some() {
            return Err(NetError::Io(io::Error::new(
                io::ErrorKind::Unsupported,
                "an ICMP socket goes through neither a proxy nor TLS",
            )));
        }
        self.check_endpoint(endpoint)?;
        let (peer, setup) = self.direct_peer(endpoint, observer).await?;
        let options = EchoOptions {
            source: options.source.or(self.source),
            ..*options
        };
        let socket = EchoSocket::open(peer.ip(), &options)?;
        drop(setup);
        observer.note(
            "Opened ICMP socket",
            &[("address", &peer.ip()), ("socket", &socket.kind().as_str())],
        );
        Ok(socket)
    }

    /// The target policy on what the prober named: the name, and the
    /// address it resolved itself.
    fn check_endpoint(&self, endpoint: Endpoint<'_>) -> Result<(), NetError> {
        self.targets.check_name(endpoint.host)?;
        if let Some(ip) = endpoint.address {
            self.targets.check_address(endpoint.host, ip)?;
        }
        Ok(())
    }

    /// The address to dial when no proxy is on the way (resolved here,
    /// timed as [`Phase::Resolve`], unless the prober resolved it), and the
    /// connect phase's timer, started.
    async fn direct_peer<'o>(
        &self,
        endpoint: Endpoint<'_>,
        observer: &'o dyn Observer,
    ) -> Result<(SocketAddr, PhaseTimer<'o>), NetError> {
        let ip = match endpoint.address {
            Some(ip) => ip,
            None => {
                let _lookup = PhaseTimer::start(observer, Phase::Resolve);
                let ip = resolve(endpoint.host, self.address).await?;
                // Every hop's address, not only the first one's:
                // a redirect cannot lead around the policy.
                self.targets.check_address(endpoint.host, ip)?;
                ip
            }
        };
        let peer = SocketAddr::new(ip, endpoint.port);
        Ok((peer, PhaseTimer::start(observer, Phase::Connect)))
    }
}

/// TLS over a connection that is already open (STARTTLS).
pub async fn upgrade(
    tls: &TlsRequest<'_>,
    stream: Box<dyn Stream>,
    observer: &dyn Observer,
) -> Result<(Box<dyn Stream>, TlsInfo), NetError> {
    let (stream, info) =
        handshake_with(tls.client, stream, tls.server_name, tls.alpn, tls.confirm).await?;
    note_session(observer, &info);
    Ok((Box::new(stream), info))
}

fn note_session(observer: &dyn Observer, info: &TlsInfo) {
    if let Some(s) = info.session {
        observer.note(
            "TLS handshake done",
            &[
                ("version", &cert::tls_version_label(s.version)),
                ("cipher", &cert::cipher_suite_name(s.cipher)),
            ],
        );
    }
}
