//! TLS client side of every prober: per-module rustls configs built once at
//! load, and a verifier that records what the server presented.
//!
//! The recording happens through a task-local [`ChainRecorder`]: rustls calls
//! the verifier synchronously inside the handshake future's poll, which runs
//! in the probe's task, so one shared `ClientConfig` per module serves every
//! concurrent probe while each probe still gets its own record — including
//! when verification fails (an expired certificate still yields its expiry).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_rustls::client::TlsStream;

use super::error::{CertProblem, IoClass, NetError, TlsProblem, classify_io};
use super::{Secret, address};

/// The `tls_config` block after validation; a [`TlsClient`] is built from it.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub insecure_skip_verify: bool,
    /// PEM bundle from `ca_file`/`ca`; None = system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and key (mTLS).
    pub client_cert: Option<ClientCert>,
    pub server_name: Option<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

/// A client certificate chain and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct ClientCert {
    pub cert_pem: Vec<u8>,
    pub key_pem: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// Which ALPN list a connection offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// No ALPN extension (tcp and tls probers).
    None,
    /// `http/1.1` only (HTTP with enable_http2: false, WebSocket upgrade).
    Http1,
    /// `h2`, `http/1.1`.
    H2AndHttp1,
    /// `h2` only (gRPC: it runs on HTTP/2 alone, and offering http/1.1
    /// would let a server pick a protocol the probe cannot speak).
    H2,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsBuildError {
    #[error("tls_config: no certificate found in the CA bundle")]
    EmptyCaBundle,
    #[error("tls_config: invalid CA certificate: {0}")]
    BadCa(String),
    #[error("tls_config: invalid client certificate: {0}")]
    BadClientCert(String),
    #[error("tls_config: invalid client key: {0}")]
    BadClientKey(String),
    #[error("tls_config: min_version is greater than max_version")]
    VersionRange,
    #[error("tls_config: {0}")]
    Rustls(#[from] rustls::Error),
}

/// What the verifier saw during one handshake.
#[derive(Debug, Default, Clone)]
pub struct ChainRecord {
    /// Certificates in the order the server sent them (leaf first).
    pub presented: Vec<CertificateDer<'static>>,
    /// The chain that verified: leaf, intermediates, trust anchor (full
    /// DER when the anchor came from a certificate we hold). Empty when
    /// verification failed or was skipped.
    pub verified: Vec<CertificateDer<'static>>,
    /// The stapled OCSP response, if any.
    pub ocsp: Option<Vec<u8>>,
    /// Why verification failed, when it did.
    pub verify_error: Option<CertificateError>,
    /// The server asked for a client certificate (CertificateRequest).
    pub client_cert_requested: bool,
    /// QUIC only: the cipher suite whose handshake or 1-RTT keys were
    /// derived (the negotiated one; quinn does not expose the session).
    pub quic_suite: Option<rustls::CipherSuite>,
}

/// Per-handshake sink the verifier writes into (see module docs).
#[derive(Debug, Default, Clone)]
pub struct ChainRecorder(Arc<Mutex<ChainRecord>>);

impl ChainRecorder {
    pub fn snapshot(&self) -> ChainRecord {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut ChainRecord)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

tokio::task_local! {
    static RECORDER: ChainRecorder;
}

/// Run `f` (a synchronous step of a handshake driven outside the probe's
/// task, such as QUIC's) with `recorder` as the one the verifier writes to.
pub(super) fn recording<R>(recorder: &ChainRecorder, f: impl FnOnce() -> R) -> R {
    RECORDER.sync_scope(recorder.clone(), f)
}

/// A root certificate we can map a webpki trust anchor back to, so the
/// verified chain can include the root's own expiry.
#[derive(Debug)]
struct Root {
    der: CertificateDer<'static>,
    subject: Vec<u8>,
    spki: Vec<u8>,
}

#[derive(Debug)]
struct RecordingVerifier {
    provider: Arc<CryptoProvider>,
    trust: Arc<TrustStore>,
    insecure: bool,
}

/// Parsed trust anchors plus the certificates they came from. The system
/// store is parsed once per process and shared by every module without a
/// `ca_file`.
#[derive(Debug)]
struct TrustStore {
    anchors: Vec<rustls::pki_types::TrustAnchor<'static>>,
    roots: Vec<Root>,
}

impl TrustStore {
    /// `strict`: a certificate that is not a usable anchor is an error
    /// (a user's `ca_file`); otherwise it is skipped, as Go does for the
    /// system store.
    fn from_certs(
        certs: Vec<CertificateDer<'static>>,
        strict: bool,
    ) -> Result<Self, TlsBuildError> {
        let mut anchors = Vec::with_capacity(certs.len());
        let mut roots = Vec::with_capacity(certs.len());
        for der in certs {
            let anchor = match webpki::anchor_from_trusted_cert(&der) {
                Ok(a) => a.to_owned(),
                Err(e) if strict => return Err(TlsBuildError::BadCa(format!("{e:?}"))),
                Err(_) => continue,
            };
            roots.push(Root {
                subject: anchor.subject.as_ref().to_vec(),
                spki: anchor.subject_public_key_info.as_ref().to_vec(),
                der,
            });
            anchors.push(anchor);
        }
        Ok(Self { anchors, roots })
    }
}

impl RecordingVerifier {
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(map_webpki_error)?;
        let algs = self.provider.signature_verification_algorithms;
        let path = match cert.verify_for_usage(
            algs.all,
            &self.trust.anchors,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        ) {
            Ok(path) => path,
            Err(webpki::Error::CaUsedAsEndEntity) if self.is_pinned_self_signed(end_entity) => {
                // A self-signed CA:TRUE leaf listed in ca_file: Go accepts it,
                // webpki refuses a CA as end entity. Check time and name only.
                check_validity(end_entity, now)?;
                cert.verify_is_valid_for_subject_name(server_name)
                    .map_err(map_webpki_error)?;
                return Ok(vec![end_entity.clone().into_owned()]);
            }
            Err(e) => return Err(map_webpki_error(e)),
        };
        cert.verify_is_valid_for_subject_name(server_name)
            .map_err(map_webpki_error)?;
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(
            path.intermediate_certificates()
                .map(|c| c.der().clone().into_owned()),
        );
        let anchor = path.anchor();
        if let Some(root) = self.trust.roots.iter().find(|r| {
            r.subject.as_slice() == anchor.subject.as_ref()
                && r.spki.as_slice() == anchor.subject_public_key_info.as_ref()
        }) && chain.last() != Some(&root.der)
        {
            chain.push(root.der.clone());
        }
        Ok(chain)
    }

    fn is_pinned_self_signed(&self, end_entity: &CertificateDer<'_>) -> bool {
        self.trust
            .roots
            .iter()
            .any(|r| r.der.as_ref() == end_entity.as_ref())
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let recorder = RECORDER.try_with(|r| r.clone()).ok();
        if let Some(r) = &recorder {
            r.update(|rec| {
                rec.presented = std::iter::once(end_entity)
                    .chain(intermediates)
                    .map(|c| c.clone().into_owned())
                    .collect();
                rec.ocsp = (!ocsp_response.is_empty()).then(|| ocsp_response.to_vec());
            });
        }
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        match self.verify(end_entity, intermediates, server_name, now) {
            Ok(chain) => {
                if let Some(r) = &recorder {
                    r.update(|rec| rec.verified = chain);
                }
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => {
                if let Some(r) = &recorder {
                    r.update(|rec| rec.verify_error = Some(e.clone()));
                }
                Err(rustls::Error::InvalidCertificate(e))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Sends the module's client certificate (if any) and records that the
/// server asked for one: a TLS 1.3 server rejects a missing or unwanted
/// certificate only after our side of the handshake is done, so the prober
/// then has to wait for that verdict.
#[derive(Debug)]
struct RecordingClientCert(Option<Arc<rustls::sign::CertifiedKey>>);

impl rustls::client::ResolvesClientCert for RecordingClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let _ = RECORDER.try_with(|r| r.update(|rec| rec.client_cert_requested = true));
        self.0.clone()
    }

    fn has_certs(&self) -> bool {
        self.0.is_some()
    }
}

fn check_validity(der: &CertificateDer<'_>, now: UnixTime) -> Result<(), CertificateError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|_| CertificateError::BadEncoding)?;
    let now = now.as_secs() as i64;
    if now < cert.validity().not_before.timestamp() {
        return Err(CertificateError::NotValidYet);
    }
    if now > cert.validity().not_after.timestamp() {
        return Err(CertificateError::Expired);
    }
    Ok(())
}

fn map_webpki_error(e: webpki::Error) -> CertificateError {
    use webpki::Error as W;
    match e {
        W::BadDer | W::BadDerTime | W::TrailingData(_) => CertificateError::BadEncoding,
        W::CertExpired { .. } => CertificateError::Expired,
        W::CertNotValidYet { .. } => CertificateError::NotValidYet,
        W::CertNotValidForName(_) => CertificateError::NotValidForName,
        W::UnknownIssuer | W::CaUsedAsEndEntity | W::EndEntityUsedAsCa => {
            CertificateError::UnknownIssuer
        }
        W::CertRevoked => CertificateError::Revoked,
        W::InvalidSignatureForPublicKey
        | W::UnsupportedSignatureAlgorithmContext(_)
        | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => CertificateError::BadSignature,
        other => CertificateError::Other(rustls::OtherError(Arc::new(other))),
    }
}

/// The system roots, loaded and parsed once per process (a blocking file
/// read; called from config loading, never from a probe).
fn system_trust() -> Arc<TrustStore> {
    static STORE: std::sync::OnceLock<Arc<TrustStore>> = std::sync::OnceLock::new();
    STORE
        .get_or_init(|| {
            let result = rustls_native_certs::load_native_certs();
            for err in &result.errors {
                tracing::warn!(error = %err, "could not load some system root certificates");
            }
            let store = TrustStore::from_certs(result.certs, false).unwrap_or(TrustStore {
                anchors: Vec::new(),
                roots: Vec::new(),
            });
            Arc::new(store)
        })
        .clone()
}

/// A module's TLS client: settings plus one rustls config per ALPN list.
#[derive(Debug)]
pub struct TlsClient {
    pub settings: TlsSettings,
    provider: Arc<CryptoProvider>,
    verifier: Arc<RecordingVerifier>,
    client_cert: Arc<RecordingClientCert>,
    no_alpn: Arc<rustls::ClientConfig>,
    http1: Arc<rustls::ClientConfig>,
    h2: Arc<rustls::ClientConfig>,
    h2_only: Arc<rustls::ClientConfig>,
}

impl TlsClient {
    /// Build at config load: parse the CA bundle and client certificate,
    /// build the verifier and the four ALPN variants.
    pub fn build(settings: &TlsSettings) -> Result<Self, TlsBuildError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let trust = match &settings.ca_pem {
            Some(pem) => {
                let certs = CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| TlsBuildError::BadCa(e.to_string()))?;
                if certs.is_empty() {
                    return Err(TlsBuildError::EmptyCaBundle);
                }
                Arc::new(TrustStore::from_certs(certs, true)?)
            }
            None => system_trust(),
        };
        let verifier = Arc::new(RecordingVerifier {
            provider: provider.clone(),
            trust,
            insecure: settings.insecure_skip_verify,
        });

        let versions: Vec<&'static rustls::SupportedProtocolVersion> = {
            let min = settings.min_version.unwrap_or(TlsVersion::Tls12);
            let max = settings.max_version.unwrap_or(TlsVersion::Tls13);
            if min > max {
                return Err(TlsBuildError::VersionRange);
            }
            let mut v = Vec::new();
            if min <= TlsVersion::Tls12 && max >= TlsVersion::Tls12 {
                v.push(&rustls::version::TLS12);
            }
            if max >= TlsVersion::Tls13 {
                v.push(&rustls::version::TLS13);
            }
            v
        };

        let client_auth = match &settings.client_cert {
            Some(ClientCert { cert_pem, key_pem }) => {
                let certs = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| TlsBuildError::BadClientCert(e.to_string()))?;
                if certs.is_empty() {
                    return Err(TlsBuildError::BadClientCert("no certificate in PEM".into()));
                }
                let key = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
                    .map_err(|e| TlsBuildError::BadClientKey(e.to_string()))?;
                let certified = rustls::sign::CertifiedKey::from_der(certs, key, &provider)
                    .map_err(|e| TlsBuildError::BadClientKey(e.to_string()))?;
                Some(Arc::new(certified))
            }
            None => None,
        };
        let client_cert = Arc::new(RecordingClientCert(client_auth));

        let build = |alpn: Vec<Vec<u8>>| -> Result<Arc<rustls::ClientConfig>, TlsBuildError> {
            let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&versions)?
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone());
            let mut config = builder.with_client_cert_resolver(client_cert.clone());
            // Resumption would skip the certificate message and the verifier,
            // leaving nothing to record.
            config.resumption = rustls::client::Resumption::disabled();
            config.alpn_protocols = alpn;
            Ok(Arc::new(config))
        };
        let (no_alpn, http1, h2, h2_only) = (
            build(Vec::new())?,
            build(vec![b"http/1.1".to_vec()])?,
            build(vec![b"h2".to_vec(), b"http/1.1".to_vec()])?,
            build(vec![b"h2".to_vec()])?,
        );
        Ok(Self {
            settings: settings.clone(),
            provider,
            verifier,
            client_cert,
            no_alpn,
            http1,
            h2,
            h2_only,
        })
    }

    /// The rustls config of HTTP/3 over QUIC (built once per module at
    /// load): the same verifier and client certificate, TLS 1.3 only, ALPN
    /// `h3`, and cipher suites that note which of them the handshake
    /// negotiated (see `quic_suites`). Fails when `max_version` rules out
    /// TLS 1.3.
    pub fn quic_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsBuildError> {
        if self.settings.max_version == Some(TlsVersion::Tls12) {
            return Err(TlsBuildError::Rustls(rustls::Error::General(
                "QUIC needs TLS 1.3 but max_version is TLS12".into(),
            )));
        }
        let provider = Arc::new(CryptoProvider {
            cipher_suites: quic_suites(),
            ..(*self.provider).clone()
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier.clone())
            .with_client_cert_resolver(self.client_cert.clone());
        config.resumption = rustls::client::Resumption::disabled();
        config.alpn_protocols = vec![b"h3".to_vec()];
        Ok(Arc::new(config))
    }

    /// The name to send as SNI and verify: `tls_config.server_name`, else the
    /// name the probe was asked to use (`hostname` parameter, a Host header),
    /// else the target host. An IP literal gets no SNI (see [`server_name`]).
    pub fn server_name_for(&self, requested: Option<&str>, target_host: &str) -> String {
        match (&self.settings.server_name, requested) {
            (Some(configured), _) => configured.clone(),
            (None, Some(name)) => address::host_without_port(name),
            (None, None) => target_host.to_string(),
        }
    }

    fn config(&self, alpn: Alpn) -> Arc<rustls::ClientConfig> {
        match alpn {
            Alpn::None => self.no_alpn.clone(),
            Alpn::Http1 => self.http1.clone(),
            Alpn::H2AndHttp1 => self.h2.clone(),
            Alpn::H2 => self.h2_only.clone(),
        }
    }

    /// Run a handshake over `io`. On failure the error still carries what
    /// the verifier saw (an expired certificate's expiry, say).
    pub async fn handshake<IO>(
        &self,
        io: IO,
        server_name: &str,
        alpn: Alpn,
    ) -> Result<(TlsStream<IO>, TlsInfo), NetError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name = server_name_of(server_name)?;
        let connector = tokio_rustls::TlsConnector::from(self.config(alpn));
        let recorder = ChainRecorder::default();
        let result = RECORDER
            .scope(recorder.clone(), connector.connect(name, io))
            .await;
        let chain = recorder.snapshot();
        match result {
            Ok(stream) => {
                let conn = stream.get_ref().1;
                let info = TlsInfo {
                    session: Session::of(conn),
                    alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                    chain,
                };
                Ok((stream, info))
            }
            Err(e) => Err(handshake_error(&e, chain)),
        }
    }
}

/// TLS 1.3 suites for QUIC that note, when their packet keys are made
/// inside a recording scope (the handshake and 1-RTT keys: quinn makes the
/// initial keys itself, outside it), which suite the handshake negotiated.
/// Made once per process from the ring provider's suites (the provider
/// every module uses).
fn quic_suites() -> Vec<rustls::SupportedCipherSuite> {
    static SUITES: std::sync::OnceLock<Vec<rustls::SupportedCipherSuite>> =
        std::sync::OnceLock::new();
    SUITES
        .get_or_init(|| {
            rustls::crypto::ring::default_provider()
                .cipher_suites
                .iter()
                .filter_map(|s| {
                    let suite = s.tls13()?;
                    let inner = suite.quic?;
                    let alg: &'static RecordingQuicAlgorithm =
                        Box::leak(Box::new(RecordingQuicAlgorithm {
                            inner,
                            suite: suite.common.suite,
                        }));
                    let wrapped: &'static rustls::Tls13CipherSuite =
                        Box::leak(Box::new(rustls::Tls13CipherSuite {
                            common: rustls::CipherSuiteCommon {
                                suite: suite.common.suite,
                                hash_provider: suite.common.hash_provider,
                                confidentiality_limit: suite.common.confidentiality_limit,
                            },
                            hkdf_provider: suite.hkdf_provider,
                            aead_alg: suite.aead_alg,
                            quic: Some(alg),
                        }));
                    Some(rustls::SupportedCipherSuite::Tls13(wrapped))
                })
                .collect()
        })
        .clone()
}

struct RecordingQuicAlgorithm {
    inner: &'static dyn rustls::quic::Algorithm,
    suite: rustls::CipherSuite,
}

impl rustls::quic::Algorithm for RecordingQuicAlgorithm {
    fn packet_key(
        &self,
        key: rustls::crypto::cipher::AeadKey,
        iv: rustls::crypto::cipher::Iv,
    ) -> Box<dyn rustls::quic::PacketKey> {
        let _ = RECORDER.try_with(|r| r.update(|rec| rec.quic_suite = Some(self.suite)));
        self.inner.packet_key(key, iv)
    }

    fn header_protection_key(
        &self,
        key: rustls::crypto::cipher::AeadKey,
    ) -> Box<dyn rustls::quic::HeaderProtectionKey> {
        self.inner.header_protection_key(key)
    }

    fn aead_key_len(&self) -> usize {
        self.inner.aead_key_len()
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

/// The negotiated parameters of a completed handshake.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    pub version: rustls::ProtocolVersion,
    pub cipher: rustls::CipherSuite,
}

impl Session {
    fn of(conn: &rustls::ClientConnection) -> Option<Self> {
        Some(Self {
            version: conn.protocol_version()?,
            cipher: conn.negotiated_cipher_suite()?.suite(),
        })
    }
}

/// What one handshake showed: the verifier's record and, when it
/// completed, the negotiated session and protocol.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    pub chain: ChainRecord,
    pub session: Option<Session>,
    /// The ALPN protocol the server selected.
    pub alpn: Option<Vec<u8>>,
}

impl TlsInfo {
    pub fn is_h2(&self) -> bool {
        self.alpn.as_deref() == Some(b"h2")
    }
}

/// A failed handshake: certificate problems come from what the verifier
/// recorded; everything else is a handshake failure, or a failure of the
/// socket underneath.
fn handshake_error(err: &std::io::Error, chain: ChainRecord) -> NetError {
    let (problem, message) = match &chain.verify_error {
        Some(cert_err) => certificate_problem(cert_err),
        None => {
            // A peer that closes mid-handshake does not speak TLS (or refused
            // us): a handshake failure, not a reset.
            let problem = match classify_io(err) {
                IoClass::Tls => TlsProblem::Handshake,
                _ if err.kind() == std::io::ErrorKind::UnexpectedEof => TlsProblem::Handshake,
                other => TlsProblem::Transport(other),
            };
            (problem, format!("TLS handshake failed: {err}"))
        }
    };
    tls_failure(problem, message, chain)
}

/// A failed handshake as a [`NetError`], with what the verifier saw.
pub(super) fn tls_failure(problem: TlsProblem, message: String, chain: ChainRecord) -> NetError {
    NetError::Tls {
        problem,
        message,
        info: Box::new(TlsInfo {
            chain,
            session: None,
            alpn: None,
        }),
    }
}

/// What a certificate the verifier refused amounts to, and the sentence.
pub(super) fn certificate_problem(cert_err: &CertificateError) -> (TlsProblem, String) {
    let problem = match cert_err {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => CertProblem::Expired,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            CertProblem::NotYetValid
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            CertProblem::HostnameMismatch
        }
        _ => CertProblem::Untrusted,
    };
    (
        TlsProblem::Certificate(problem),
        format!("TLS certificate verification failed: {cert_err:?}"),
    )
}

/// For connections nobody will read from: when a TLS 1.3 server asked for a
/// client certificate, its verdict (an alert if it rejects ours, or the lack
/// of one) comes after our side of the handshake completed, so wait for it
/// briefly — about one round trip, judged from the handshake's own duration —
/// before calling the session good.
pub async fn await_client_auth_verdict<IO>(
    stream: &mut TlsStream<IO>,
    info: &TlsInfo,
    handshake_took: Duration,
) -> Result<(), NetError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let tls13 = stream.get_ref().1.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
    if !(tls13 && info.chain.client_cert_requested) {
        return Ok(());
    }
    let grace = (handshake_took * 2 + Duration::from_millis(20)).min(Duration::from_millis(500));
    let mut byte = [0u8; 1];
    if let Ok(Err(e)) = tokio::time::timeout(grace, stream.read(&mut byte)).await {
        let problem = match classify_io(&e) {
            IoClass::Tls => TlsProblem::Handshake,
            other => TlsProblem::Transport(other),
        };
        return Err(NetError::Tls {
            problem,
            message: format!("server rejected the TLS session after the handshake: {e}"),
            info: Box::new(info.clone()),
        });
    }
    Ok(())
}

/// Run a handshake and, with `confirm`, wait for a TLS 1.3 server's verdict
/// on our client certificate (see [`await_client_auth_verdict`]).
pub async fn handshake_with<IO>(
    client: &TlsClient,
    io: IO,
    server_name: &str,
    alpn: Alpn,
    confirm: bool,
) -> Result<(TlsStream<IO>, TlsInfo), NetError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let (mut stream, info) = client.handshake(io, server_name, alpn).await?;
    if confirm {
        await_client_auth_verdict(&mut stream, &info, started.elapsed()).await?;
    }
    Ok((stream, info))
}

/// The name to verify and send as SNI: an IP literal gets no SNI and is
/// checked against IP SANs.
fn server_name_of(name: &str) -> Result<ServerName<'static>, NetError> {
    let name = address::unbracket(name);
    ServerName::try_from(name.to_string()).map_err(|e| NetError::ServerName {
        name: name.to_string(),
        reason: e.to_string(),
    })
}
