//! In-process TLS and line-protocol servers for the tls and tcp prober
//! tests: the rustls server config builder every test server uses
//! (versions, cipher suites, ALPN, client auth, OCSP staple, certificate by
//! SNI), a listener that runs a script per
//! connection, and a line-based [`Dialog`] that can switch to TLS in the
//! middle (STARTTLS).
//!
//! ```ignore
//! let config = ServerTls::new(&leaf).versions(&[&rustls::version::TLS12]).build();
//! let server = Server::start(move |stream, _peer| {
//!     let config = config.clone();
//!     async move {
//!         let mut d = Dialog::new(stream);
//!         d.send("220 mail.test ESMTP ready\r\n").await;
//!         ...
//!         let mut d = d.starttls(config).await.expect("server handshake");
//!     }
//! }).await;
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::pki::Leaf;

/// How long one scripted connection may live (a stuck test ends anyway).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(15);

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Builder of a rustls [`ServerConfig`].
pub struct ServerTls {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    versions: Vec<&'static SupportedProtocolVersion>,
    suites: Option<Vec<SupportedCipherSuite>>,
    client_roots: Option<Vec<CertificateDer<'static>>>,
    ocsp: Option<Vec<u8>>,
    resolver: Option<Arc<dyn ResolvesServerCert>>,
    alpn: Vec<Vec<u8>>,
}

impl ServerTls {
    /// Serves `leaf.chain` (what the leaf says the server presents), TLS 1.2
    /// and 1.3, every ring cipher suite, no client auth, no staple, no ALPN.
    pub fn new(leaf: &Leaf) -> Self {
        Self::with_chain(leaf.chain.clone(), leaf.key())
    }

    pub fn with_chain(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self {
            chain,
            key,
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            suites: None,
            client_roots: None,
            ocsp: None,
            resolver: None,
            alpn: Vec::new(),
        }
    }

    /// Only these protocol versions.
    pub fn versions(mut self, versions: &[&'static SupportedProtocolVersion]) -> Self {
        self.versions = versions.to_vec();
        self
    }

    /// Only these cipher suites.
    pub fn suites(mut self, suites: &[SupportedCipherSuite]) -> Self {
        self.suites = Some(suites.to_vec());
        self
    }

    /// Require a client certificate issued under one of `roots`.
    pub fn require_client_cert(mut self, roots: &[CertificateDer<'static>]) -> Self {
        self.client_roots = Some(roots.to_vec());
        self
    }

    /// Staple `der` (an OCSPResponse) to the certificate.
    pub fn ocsp(mut self, der: Vec<u8>) -> Self {
        self.ocsp = Some(der);
        self
    }

    /// Offer these ALPN protocols, in preference order.
    pub fn alpn<P: AsRef<[u8]>>(mut self, protocols: &[P]) -> Self {
        self.alpn = protocols.iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Pick the certificate with `resolver` (the chain given to `new` is
    /// then unused).
    pub fn resolver(mut self, resolver: Arc<dyn ResolvesServerCert>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    pub fn build(self) -> Arc<ServerConfig> {
        let mut provider = provider();
        if let Some(suites) = self.suites {
            provider.cipher_suites = suites;
        }
        let provider = Arc::new(provider);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions)
            .expect("protocol versions match the cipher suites");
        let builder = match self.client_roots {
            Some(roots) => {
                let mut store = RootCertStore::empty();
                for root in roots {
                    store.add(root).expect("client CA");
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone())
                        .build()
                        .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = match (self.resolver, self.ocsp) {
            (Some(resolver), _) => builder.with_cert_resolver(resolver),
            (None, Some(ocsp)) => builder
                .with_single_cert_with_ocsp(self.chain, self.key, ocsp)
                .expect("certificate, key and staple"),
            (None, None) => builder
                .with_single_cert(self.chain, self.key)
                .expect("certificate and key"),
        };
        config.alpn_protocols = self.alpn;
        Arc::new(config)
    }
}

/// A [`CertifiedKey`] for `leaf` (its served chain).
pub fn certified_key(leaf: &Leaf) -> Arc<CertifiedKey> {
    Arc::new(CertifiedKey::from_der(leaf.chain.clone(), leaf.key(), &provider()).expect("key"))
}

/// Chooses the certificate by SNI and records the SNI of every ClientHello
/// (`None` when the client sent none).
#[derive(Debug)]
pub struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
    seen: Mutex<Vec<Option<String>>>,
}

impl SniResolver {
    pub fn new(default: &Leaf) -> Self {
        Self {
            by_name: HashMap::new(),
            default: certified_key(default),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Serve `leaf` to clients asking for `name`.
    pub fn name(mut self, name: &str, leaf: &Leaf) -> Self {
        self.by_name.insert(name.to_string(), certified_key(leaf));
        self
    }

    /// The SNI of every ClientHello so far, in order.
    pub fn seen(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name().map(str::to_string);
        self.seen.lock().unwrap().push(sni.clone());
        Some(
            sni.and_then(|n| self.by_name.get(&n).cloned())
                .unwrap_or_else(|| self.default.clone()),
        )
    }
}

/// A loopback listener running a script per connection; stops on drop.
pub struct Server {
    addr: SocketAddr,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Listens on 127.0.0.1:0; every accepted connection runs
    /// `script(stream, peer)` in its own task (cut after 15 s).
    pub async fn start<F, Fut>(script: F) -> Server
    where
        F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let peers = Arc::new(Mutex::new(Vec::new()));
        let seen = peers.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                seen.lock().unwrap().push(peer);
                let fut = script(stream, peer);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(CONNECTION_LIFETIME, fut).await;
                });
            }
        });
        Server { addr, peers, task }
    }

    /// A TLS server: handshake with `config`, then read until the client
    /// closes (so alerts and close_notify are exchanged normally).
    pub async fn tls(config: Arc<ServerConfig>) -> Server {
        Server::start(move |stream, _| {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
            async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let mut sink = Vec::new();
                    let _ = tls.read_to_end(&mut sink).await;
                }
            }
        })
        .await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:<port>`
    pub fn target(&self) -> String {
        self.addr.to_string()
    }

    /// `localhost:<port>`
    pub fn localhost_target(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }

    /// The peer address of every accepted connection.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.peers.lock().unwrap().clone()
    }
}

/// Plain or TLS server side of a connection.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Line-based server side of a dialog; `starttls` switches to TLS.
pub struct Dialog {
    inner: BufReader<Box<dyn Io>>,
}

impl Dialog {
    pub fn new(stream: TcpStream) -> Self {
        Self::from_io(Box::new(stream))
    }

    pub fn from_io(io: Box<dyn Io>) -> Self {
        Self {
            inner: BufReader::new(io),
        }
    }

    /// Accept TLS right away (a `tls: true` dialog).
    pub async fn accept_tls(stream: TcpStream, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let tls = tokio_rustls::TlsAcceptor::from(config)
            .accept(stream)
            .await?;
        Ok(Self::from_io(Box::new(tls)))
    }

    /// Writes `text` as is (include the line ending) and flushes.
    pub async fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes()).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let io = self.inner.get_mut();
        let _ = io.write_all(bytes).await;
        let _ = io.flush().await;
    }

    /// The next line without its `\n` / `\r\n`; `None` at EOF or on error.
    pub async fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.inner.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                Some(String::from_utf8_lossy(&buf).into_owned())
            }
        }
    }

    /// Exactly `n` bytes; `None` at EOF.
    pub async fn bytes(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0; n];
        self.inner.read_exact(&mut buf).await.ok()?;
        Some(buf)
    }

    /// Shuts the connection down (TLS: close_notify, then FIN).
    pub async fn close(mut self) {
        let _ = self.inner.get_mut().shutdown().await;
    }

    /// Reads until the client closes.
    pub async fn drain(&mut self) {
        let mut sink = Vec::new();
        let _ = self.inner.read_to_end(&mut sink).await;
    }

    /// The TLS handshake over this connection (the client must not have
    /// sent anything past the STARTTLS command yet).
    pub async fn starttls(self, config: Arc<ServerConfig>) -> std::io::Result<Dialog> {
        assert!(
            self.inner.buffer().is_empty(),
            "client sent {:?} before the TLS handshake",
            String::from_utf8_lossy(self.inner.buffer())
        );
        let io = self.inner.into_inner();
        let tls = tokio_rustls::TlsAcceptor::from(config).accept(io).await?;
        Ok(Self::from_io(Box::new(tls)))
    }
}
