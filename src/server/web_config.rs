//! `--web.config.file`: TLS, HTTP/2, security headers and basic auth for the
//! exporter's own listener, in the Prometheus exporter-toolkit format so a
//! blackbox_exporter web config file works unchanged.
//!
//! Supported subset: `tls_server_config` (cert_file, key_file,
//! client_auth_type, client_ca_file, min_version, max_version,
//! prefer_server_cipher_suites, curve_preferences), `http_server_config`
//! (http2, headers) and `basic_auth_users`. Toolkit keys we know but do not
//! implement (inline `cert`/`key`/`client_ca`, `client_allowed_sans`,
//! `rate_limit`, non-empty `cipher_suites`) are load errors that say so,
//! rather than silently weaker security than the file asks for.
//!
//! Unlike the toolkit, which re-reads the file on every request, the file is
//! read once by [`WebConfig::load`]: the TLS acceptor and validated users are
//! built there, and the caller reloads by loading again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use serde::Deserialize;
use serde::de::IgnoredAny;
use sha2::{Digest, Sha256};

/// Why a web config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("web config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("web config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("web config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Upper bound on cached successful credential checks, so a client cannot
/// grow the cache without bound (it is cleared when full).
const AUTH_CACHE_LIMIT: usize = 1000;

/// Salt and hash part of the exporter-toolkit's dummy hash. Unknown users are
/// verified against it (with the cost of the most expensive configured hash)
/// so that the response time does not reveal which user names exist.
const DUMMY_SALT_AND_HASH: &str = "QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Header names `http_server_config.headers` may set, with the allowed
/// values (compared case-insensitively) where the toolkit restricts them.
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Content-Security-Policy", &[]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-XSS-Protection", &[]),
    ("Strict-Transport-Security", &[]),
];

/// Go curve names the toolkit accepts in `curve_preferences`.
const KNOWN_CURVES: &[&str] = &["CurveP256", "CurveP384", "CurveP521", "X25519"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
    #[serde(default)]
    rate_limit: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    cert_file: Option<String>,
    #[serde(default)]
    key_file: Option<String>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    #[serde(default)]
    cipher_suites: Option<Vec<String>>,
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    curve_preferences: Option<Vec<String>>,
    // Newer toolkit keys, recognised only to reject them with a clear error.
    #[serde(default)]
    cert: Option<IgnoredAny>,
    #[serde(default)]
    key: Option<IgnoredAny>,
    #[serde(default)]
    client_ca: Option<IgnoredAny>,
    #[serde(default)]
    client_allowed_sans: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

/// exporter-toolkit `client_auth_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // "RequireClientCert" is the toolkit's backwards-compatible alias.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            other => {
                return Err(format!(
                    "tls_server_config: invalid client_auth_type {other:?} (expected NoClientCert, \
                     RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or \
                     RequireAndVerifyClientCert)"
                ));
            }
        })
    }
}

/// A loaded, validated web config.
pub struct WebConfig {
    tls: Option<tokio_rustls::TlsAcceptor>,
    client_auth: ClientAuth,
    http2: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// user -> bcrypt hash.
    users: HashMap<String, String>,
    dummy_hash: String,
    /// SHA-256 of (user, hash, password) triples that verified, so that a
    /// scraper sending the same credentials every few seconds costs one
    /// bcrypt run, not one per request. Digests rather than the passwords
    /// themselves, so no plaintext password outlives its request.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// Serialises bcrypt runs (as the toolkit does) so that a flood of bad
    /// credentials uses one core, not all of them.
    bcrypt_lock: tokio::sync::Mutex<()>,
}

impl fmt::Debug for WebConfig {
    /// Hashes are left out: they are secrets an attacker could brute-force.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&str> = self.users.keys().map(String::as_str).collect();
        users.sort_unstable();
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("client_auth", &self.client_auth)
            .field("http2", &self.http2)
            .field("headers", &self.headers)
            .field("basic_auth_users", &users)
            .finish_non_exhaustive()
    }
}

impl WebConfig {
    /// Reads and validates the file: bcrypt hash formats, header names and
    /// values, and the TLS certificate, key and client CA files (relative
    /// paths are resolved against the file's directory).
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_str(&text, path)
    }

    /// Like [`WebConfig::load`] for YAML already in memory; `path` names the
    /// source in errors and anchors relative file paths.
    pub fn from_yaml_str(yaml: &str, path: &Path) -> Result<WebConfig, WebConfigError> {
        // An empty file (or one with only comments) is a valid, empty config
        // in the toolkit.
        let raw: RawWebConfig = if yaml
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            RawWebConfig::default()
        } else {
            serde_saphyr::from_str(yaml).map_err(|e| WebConfigError::Parse {
                path: path.to_path_buf(),
                // Without the source snippet: the file holds password
                // hashes, and errors end up in logs.
                message: e.without_snippet().to_string(),
            })?
        };
        let base_dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        build(raw, &base_dir).map_err(|message| WebConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// The TLS acceptor for the listener; `None` means plain HTTP.
    pub fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.clone()
    }

    /// Whether TLS is configured (for the "TLS is enabled." log line).
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// The configured client certificate policy (NoClientCert without TLS).
    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth
    }

    /// `http_server_config.http2` (default true). With TLS it already decides
    /// the ALPN list of [`WebConfig::tls_acceptor`]; the toolkit never serves
    /// HTTP/2 without TLS.
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// Whether requests need basic auth.
    pub fn auth_enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks an `Authorization` header against `basic_auth_users`. True when
    /// no users are configured. bcrypt runs on the blocking pool, one at a
    /// time; successful checks are cached.
    pub async fn authorize(&self, authorization_header: Option<&HeaderValue>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some((user, password)) = authorization_header.and_then(parse_basic_auth) else {
            return false;
        };
        let known = self.users.get(&user);
        let hash = known.unwrap_or(&self.dummy_hash).clone();
        let key = cache_key(&user, &hash, &password);
        if known.is_some() && self.is_cached(&key) {
            return true;
        }
        let _serialised = self.bcrypt_lock.lock().await;
        // Another request with the same credentials may have verified them
        // while this one waited for the lock.
        if known.is_some() && self.is_cached(&key) {
            return true;
        }
        let matches =
            tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        let ok = matches && known.is_some();
        if ok {
            let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= AUTH_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key);
        }
        ok
    }

    /// The `http_server_config.headers` to add to every response.
    pub fn response_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        self.headers.clone()
    }

    fn is_cached(&self, key: &[u8; 32]) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }
}

/// Length-prefixed so that different triples can never collide by shifting
/// bytes between fields.
fn cache_key(user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [user.as_bytes(), hash.as_bytes(), password] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// Parses `Basic base64(user:password)` like Go's `Request.BasicAuth`:
/// case-insensitive scheme, standard padded base64, split at the first ':'.
fn parse_basic_auth(value: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let bytes = value.as_bytes();
    let (scheme, rest) = bytes.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"Basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    let password = decoded[colon + 1..].to_vec();
    Some((user, password))
}

fn build(raw: RawWebConfig, base_dir: &Path) -> Result<WebConfig, String> {
    if raw.rate_limit.is_some() {
        return Err("rate_limit is not supported".to_string());
    }
    let http = raw.http_server_config.unwrap_or_default();
    let http2 = http.http2.unwrap_or(true);
    let headers = build_headers(http.headers.unwrap_or_default())?;

    let users: HashMap<String, String> = raw
        .basic_auth_users
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut max_cost = 0;
    for (user, hash) in &users {
        if user.contains(':') {
            return Err(format!(
                "basic_auth_users: user name {user:?} contains ':' and could never log in"
            ));
        }
        // Never echo the hash itself into logs.
        let parts = bcrypt::HashParts::from_str(hash)
            .map_err(|e| format!("basic_auth_users: invalid bcrypt hash for user {user:?}: {e}"))?;
        let cost = parts.get_cost();
        if !(4..=31).contains(&cost) {
            return Err(format!(
                "basic_auth_users: invalid bcrypt hash for user {user:?}: cost {cost} is outside 4..=31"
            ));
        }
        max_cost = max_cost.max(cost);
    }
    let dummy_hash = format!("$2y${:02}${DUMMY_SALT_AND_HASH}", max_cost.max(4));

    let (tls, client_auth) = match raw.tls_server_config {
        Some(t) => build_tls(t, base_dir, http2)?,
        None => (None, ClientAuth::NoClientCert),
    };

    Ok(WebConfig {
        tls,
        client_auth,
        http2,
        headers,
        users,
        dummy_hash,
        verified: Mutex::new(HashSet::new()),
        bcrypt_lock: tokio::sync::Mutex::new(()),
    })
}

fn build_headers(raw: BTreeMap<String, String>) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| *n == name) else {
            return Err(format!(
                "http_server_config: HTTP header {name:?} can not be configured (allowed: {})",
                ALLOWED_HEADERS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        if !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(&value)) {
            return Err(format!(
                "http_server_config: invalid value for {name}: expected one of {allowed:?}, got {value:?}"
            ));
        }
        let header_name = HeaderName::from_str(&name)
            .map_err(|e| format!("http_server_config: header {name:?}: {e}"))?;
        let header_value = HeaderValue::from_str(&value)
            .map_err(|e| format!("http_server_config: value of header {name}: {e}"))?;
        out.push((header_name, header_value));
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Version {
    Tls12,
    Tls13,
}

fn parse_version(key: &str, value: Option<&str>, default: Version) -> Result<Version, String> {
    match value {
        None | Some("") => Ok(default),
        Some("TLS12") => Ok(Version::Tls12),
        Some("TLS13") => Ok(Version::Tls13),
        Some(v @ ("TLS10" | "TLS11")) => Err(format!(
            "tls_server_config: {key} {v} is not supported (only TLS12 and TLS13 are)"
        )),
        Some(v) => Err(format!(
            "tls_server_config: unknown {key} {v:?} (expected TLS12 or TLS13)"
        )),
    }
}

/// Treats `cert_file: ""` like an absent key, as Go does.
fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

fn build_tls(
    t: RawTls,
    base_dir: &Path,
    http2: bool,
) -> Result<(Option<tokio_rustls::TlsAcceptor>, ClientAuth), String> {
    for (present, key) in [
        (t.cert.is_some(), "cert"),
        (t.key.is_some(), "key"),
        (t.client_ca.is_some(), "client_ca"),
        (t.client_allowed_sans.is_some(), "client_allowed_sans"),
    ] {
        if present {
            return Err(format!("tls_server_config: {key} is not supported"));
        }
    }
    if t.cipher_suites.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err("tls_server_config: cipher_suites is not supported".to_string());
    }
    // Accepted for compatibility and not applied: the crypto provider's own
    // group order (X25519, P-256, P-384) is used.
    for curve in t.curve_preferences.iter().flatten() {
        if !KNOWN_CURVES.contains(&curve.as_str()) {
            return Err(format!(
                "tls_server_config: unknown curve {curve:?} in curve_preferences (expected one of {})",
                KNOWN_CURVES.join(", ")
            ));
        }
    }
    let min = parse_version("min_version", t.min_version.as_deref(), Version::Tls12)?;
    let max = parse_version("max_version", t.max_version.as_deref(), Version::Tls13)?;
    if min > max {
        return Err("tls_server_config: min_version is greater than max_version".to_string());
    }
    let client_auth = ClientAuth::parse(t.client_auth_type.as_deref().unwrap_or(""))?;

    let cert_file = non_empty(t.cert_file);
    let key_file = non_empty(t.key_file);
    let client_ca_file = non_empty(t.client_ca_file);
    let any_set = cert_file.is_some()
        || key_file.is_some()
        || client_ca_file.is_some()
        || t.client_auth_type.is_some()
        || t.min_version.is_some()
        || t.max_version.is_some()
        || t.prefer_server_cipher_suites.is_some()
        || t.curve_preferences.is_some()
        || t.cipher_suites.is_some();
    if !any_set {
        // `tls_server_config: {}` (or null): TLS stays off.
        return Ok((None, ClientAuth::NoClientCert));
    }
    let cert_file = cert_file.ok_or("tls_server_config: missing cert_file")?;
    let key_file = key_file.ok_or("tls_server_config: missing key_file")?;
    if client_ca_file.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(
            "tls_server_config: client_ca_file is set but client_auth_type is NoClientCert \
             (set client_auth_type to RequireAndVerifyClientCert or VerifyClientCertIfGiven)"
                .to_string(),
        );
    }

    let cert_path = resolve(base_dir, &cert_file);
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| format!("tls_server_config: cert_file {}: {e}", cert_path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_server_config: cert_file {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config: cert_file {}: no certificate found",
            cert_path.display()
        ));
    }
    let key_path = resolve(base_dir, &key_file);
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("tls_server_config: key_file {}: {e}", key_path.display()))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &client_ca_file {
        Some(f) => Some(load_roots(&resolve(base_dir, f))?),
        None => None,
    };
    let verifier: Arc<dyn ClientCertVerifier> = match client_auth {
        ClientAuth::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Arc::new(AnyClientCert {
                mandatory: client_auth == ClientAuth::RequireAnyClientCert,
                algorithms: provider.signature_verification_algorithms,
            })
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let roots = roots.ok_or_else(|| {
                format!("tls_server_config: client_auth_type {client_auth:?} needs client_ca_file")
            })?;
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if client_auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder
                .build()
                .map_err(|e| format!("tls_server_config: client_ca_file: {e}"))?
        }
    };

    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (Version::Tls13, &rustls::version::TLS13),
        (Version::Tls12, &rustls::version::TLS12),
    ]
    .into_iter()
    .filter(|(v, _)| (min..=max).contains(v))
    .map(|(_, p)| p)
    .collect();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "tls_server_config: cert_file {} / key_file {}: {e}",
                cert_path.display(),
                key_path.display()
            )
        })?;
    // Go's prefer_server_cipher_suites (default true) is rustls's
    // ignore_client_order.
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok((
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        client_auth,
    ))
}

fn resolve(base_dir: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}

fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let err =
        |e: &dyn fmt::Display| format!("tls_server_config: client_ca_file {}: {e}", path.display());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| err(&e))? {
        roots.add(cert.map_err(|e| err(&e))?).map_err(|e| err(&e))?;
    }
    if roots.is_empty() {
        return Err(err(&"no certificate found"));
    }
    Ok(roots)
}

/// Go's `RequestClientCert` / `RequireAnyClientCert`: ask for (or require) a
/// client certificate without checking who issued it. The handshake
/// signature is still verified, so the client must hold the key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn basic(user: &str, password: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).expect("header value")
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write file");
        p
    }

    fn load_str(dir: &Path, yaml: &str) -> Result<WebConfig, WebConfigError> {
        WebConfig::load(&write(dir, "web.yml", yaml))
    }

    fn err_str(dir: &Path, yaml: &str) -> String {
        match load_str(dir, yaml) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// Writes a self-signed localhost cert and key; returns the cert DER.
    fn write_server_cert(dir: &Path) -> CertificateDer<'static> {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("generate cert");
        write(dir, "server.crt", &ck.cert.pem());
        write(dir, "server.key", &ck.signing_key.serialize_pem());
        ck.cert.der().clone()
    }

    #[test]
    fn empty_file_means_no_tls_no_auth() {
        let dir = tempfile::tempdir().expect("tempdir");
        for yaml in ["", "# only a comment\n", "tls_server_config: {}\n"] {
            let c = load_str(dir.path(), yaml).expect("load");
            assert!(c.tls_acceptor().is_none());
            assert!(!c.auth_enabled());
            assert!(c.http2());
            assert!(c.response_headers().is_empty());
        }
    }

    #[tokio::test]
    async fn no_users_authorizes_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = load_str(dir.path(), "http_server_config:\n  http2: false\n").expect("load");
        assert!(!c.http2());
        assert!(c.authorize(None).await);
    }

    #[tokio::test]
    async fn basic_auth_right_wrong_missing_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let alice = bcrypt::hash("pw", 4).expect("hash");
        let bob = bcrypt::hash("other", 4).expect("hash");
        let yaml = format!("basic_auth_users:\n  alice: '{alice}'\n  bob: {bob}\n");
        let c = load_str(dir.path(), &yaml).expect("load");
        assert!(c.auth_enabled());
        assert!(
            !format!("{c:?}").contains(&alice),
            "Debug must not show hashes"
        );

        assert!(c.authorize(Some(&basic("alice", "pw"))).await);
        // Second time from the cache.
        assert!(c.authorize(Some(&basic("alice", "pw"))).await);
        assert!(c.authorize(Some(&basic("bob", "other"))).await);
        // Scheme is case-insensitive, as in Go.
        let lower = HeaderValue::from_str(
            &basic("alice", "pw")
                .to_str()
                .expect("ascii")
                .replace("Basic", "basic"),
        )
        .expect("header");
        assert!(c.authorize(Some(&lower)).await);

        assert!(!c.authorize(Some(&basic("alice", "wrong"))).await);
        assert!(!c.authorize(Some(&basic("alice", "other"))).await);
        assert!(!c.authorize(Some(&basic("bob", "pw"))).await);
        assert!(!c.authorize(Some(&basic("mallory", "pw"))).await);
        assert!(!c.authorize(Some(&basic("alice", ""))).await);
        // The hash itself is not a password (CVE-2022-46146).
        assert!(!c.authorize(Some(&basic("alice", &alice))).await);
        assert!(!c.authorize(None).await);
        for garbage in [
            "",
            "Basic",
            "Basic ",
            "Basic !!!notbase64",
            "Bearer abc",
            "Basic YWxpY2U=", // "alice", no colon
        ] {
            let v = HeaderValue::from_str(garbage).expect("header");
            assert!(!c.authorize(Some(&v)).await, "{garbage:?}");
        }
        let binary = HeaderValue::from_bytes(b"Basic \xff\xfe").expect("header");
        assert!(!c.authorize(Some(&binary)).await);
    }

    #[test]
    fn parse_basic_auth_splits_at_first_colon() {
        let (u, p) = parse_basic_auth(&basic("alice", "a:b")).expect("parsed");
        assert_eq!(u, "alice");
        assert_eq!(p, b"a:b");
    }

    #[test]
    fn bad_hashes_and_users_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = err_str(dir.path(), "basic_auth_users:\n  alice: plaintext\n");
        assert!(e.contains("invalid bcrypt hash for user \"alice\""), "{e}");
        assert!(!e.contains("plaintext"), "{e}");
        let hash = bcrypt::hash("pw", 4).expect("hash");
        let e = err_str(
            dir.path(),
            &format!("basic_auth_users:\n  'a:b': '{hash}'\n"),
        );
        assert!(e.contains("contains ':'"), "{e}");
        let low_cost = format!("$2y$03${}", &hash[7..]);
        let e = err_str(
            dir.path(),
            &format!("basic_auth_users:\n  alice: '{low_cost}'\n"),
        );
        assert!(e.contains("cost 3"), "{e}");
    }

    #[test]
    fn unknown_keys_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        for yaml in [
            "tls_server_confg: {}\n",
            "http_server_config:\n  http3: true\n",
            "tls_server_config:\n  certfile: a.crt\n",
        ] {
            let e = load_str(dir.path(), yaml).expect_err(yaml);
            assert!(matches!(e, WebConfigError::Parse { .. }), "{yaml}: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains("line ") && msg.contains("unknown field"),
                "{msg}"
            );
            assert!(!msg.contains('\n'), "one line: {msg}");
        }
        let e = err_str(dir.path(), "rate_limit:\n  interval: 1s\n  burst: 10\n");
        assert!(e.contains("rate_limit is not supported"), "{e}");
        let e = err_str(
            dir.path(),
            "tls_server_config:\n  client_allowed_sans: [a]\n",
        );
        assert!(e.contains("client_allowed_sans is not supported"), "{e}");
    }

    #[test]
    fn headers_validated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = load_str(
            dir.path(),
            "http_server_config:\n  headers:\n    X-Frame-Options: DENY\n    \
             X-Content-Type-Options: nosniff\n    Strict-Transport-Security: max-age=31536000\n",
        )
        .expect("load");
        let h = c.response_headers();
        assert_eq!(h.len(), 3);
        assert!(h.iter().any(|(n, v)| n == "x-frame-options" && v == "DENY"));
        let e = err_str(
            dir.path(),
            "http_server_config:\n  headers:\n    Server: x\n",
        );
        assert!(e.contains("\"Server\" can not be configured"), "{e}");
        let e = err_str(
            dir.path(),
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
        );
        assert!(e.contains("invalid value for X-Frame-Options"), "{e}");
        let e = err_str(
            dir.path(),
            "http_server_config:\n  headers:\n    Content-Security-Policy: \"a\\nb\"\n",
        );
        assert!(e.contains("Content-Security-Policy"), "{e}");
    }

    #[tokio::test]
    async fn tls_acceptor_handshakes_with_relative_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let der = write_server_cert(dir.path());
        let c = load_str(
            dir.path(),
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
             min_version: TLS12\n  max_version: TLS13\n  prefer_server_cipher_suites: false\n  \
             curve_preferences: [X25519, CurveP256]\n  cipher_suites: []\n",
        )
        .expect("load");
        assert!(c.tls_enabled());
        assert_eq!(c.client_auth(), ClientAuth::NoClientCert);
        let acceptor = c.tls_acceptor().expect("acceptor");

        let mut roots = RootCertStore::empty();
        roots.add(der).expect("root");
        let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));

        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = async move {
            let mut s = acceptor.accept(b).await.expect("server handshake");
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.expect("read");
            assert_eq!(&buf, b"ping");
        };
        let client = async move {
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            let mut s = connector.connect(name, a).await.expect("client handshake");
            assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            s.write_all(b"ping").await.expect("write");
            s.flush().await.expect("flush");
            // Keep the stream open until the server has read (it may still
            // be writing session tickets).
            let mut buf = [0u8; 1];
            let _ = s.read(&mut buf).await;
        };
        tokio::join!(server, client);
    }

    #[test]
    fn tls_config_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_server_cert(dir.path());
        write(dir.path(), "empty.pem", "");
        let cases = [
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 client_ca_file: server.crt\n",
                "client_ca_file is set but client_auth_type is NoClientCert",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 client_ca_file: server.crt\n  client_auth_type: NoClientCert\n",
                "client_ca_file is set but client_auth_type is NoClientCert",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n",
                "missing key_file",
            ),
            (
                "tls_server_config:\n  key_file: server.key\n",
                "missing cert_file",
            ),
            (
                "tls_server_config:\n  min_version: TLS13\n",
                "missing cert_file",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 min_version: TLS10\n",
                "min_version TLS10 is not supported",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 max_version: TLS11\n",
                "max_version TLS11 is not supported",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 min_version: TLS13\n  max_version: TLS12\n",
                "min_version is greater than max_version",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n",
                "cipher_suites is not supported",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 curve_preferences: [P256]\n",
                "unknown curve",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 client_auth_type: Sometimes\n",
                "invalid client_auth_type",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 client_auth_type: RequireAndVerifyClientCert\n",
                "needs client_ca_file",
            ),
            (
                "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n",
                "missing.crt",
            ),
            (
                "tls_server_config:\n  cert_file: empty.pem\n  key_file: server.key\n",
                "no certificate found",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n",
                "key_file",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: empty.pem\n",
                "no certificate found",
            ),
        ];
        for (yaml, want) in cases {
            let e = err_str(dir.path(), yaml);
            assert!(e.contains(want), "{yaml}\n=> {e}\n(wanted {want:?})");
        }
    }

    #[test]
    fn client_auth_types_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_server_cert(dir.path());
        for (name, want) in [
            ("NoClientCert", ClientAuth::NoClientCert),
            ("RequestClientCert", ClientAuth::RequestClientCert),
            ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
            (
                "VerifyClientCertIfGiven",
                ClientAuth::VerifyClientCertIfGiven,
            ),
            (
                "RequireAndVerifyClientCert",
                ClientAuth::RequireAndVerifyClientCert,
            ),
        ] {
            let ca = if name == "NoClientCert" {
                ""
            } else {
                "\n  client_ca_file: server.crt"
            };
            let c = load_str(
                dir.path(),
                &format!(
                    "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                     client_auth_type: {name}{ca}\n"
                ),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c.client_auth(), want);
            assert!(c.tls_acceptor().is_some());
        }
    }

    /// RequireAndVerifyClientCert: a client without a certificate is
    /// refused, one with a certificate from the client CA gets through.
    #[tokio::test]
    async fn mutual_tls_requires_client_cert() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server_der = write_server_cert(dir.path());

        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        write(dir.path(), "ca.crt", &ca_cert.pem());
        let issuer = Issuer::new(ca_params, &ca_key);
        let client_key = KeyPair::generate().expect("client key");
        let mut client_params =
            CertificateParams::new(vec!["client.example".to_string()]).expect("client params");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params
            .signed_by(&client_key, &issuer)
            .expect("client cert");

        let c = load_str(
            dir.path(),
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
        )
        .expect("load");
        let acceptor = c.tls_acceptor().expect("acceptor");

        let mut roots = RootCertStore::empty();
        roots.add(server_der).expect("root");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
        let anonymous = Arc::new(builder.clone().with_no_client_auth());
        let key = PrivateKeyDer::try_from(client_key.serialize_der()).expect("key der");
        let with_cert = Arc::new(
            builder
                .with_client_auth_cert(vec![client_cert.der().clone()], key)
                .expect("client auth"),
        );

        for (client, should_pass) in [(anonymous, false), (with_cert, true)] {
            let acceptor = acceptor.clone();
            let (a, b) = tokio::io::duplex(64 * 1024);
            let server = async move {
                let mut s = acceptor.accept(b).await.ok()?;
                let mut buf = [0u8; 4];
                s.read_exact(&mut buf).await.ok()?;
                Some(buf)
            };
            let client = async move {
                let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
                let connector = tokio_rustls::TlsConnector::from(client);
                if let Ok(mut s) = connector.connect(name, a).await {
                    let _ = s.write_all(b"ping").await;
                    let _ = s.flush().await;
                    // Keep the stream open until the server has read.
                    let mut buf = [0u8; 1];
                    let _ = s.read(&mut buf).await;
                }
            };
            let (got, ()) = tokio::join!(server, client);
            assert_eq!(got.is_some(), should_pass, "client cert: {should_pass}");
        }
    }
}
