//! Validated, ready-to-run module settings (the second stage of loading).
//!
//! The serde structs in `file.rs` mirror blackbox.yml key by key; `load.rs`
//! turns them into these types once, at load time: regexes compiled, durations
//! parsed, files read, TLS client configs built. Probers only ever see these.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::net::tls::TlsClient;

/// The whole loaded configuration. Cheap to share; swapped atomically on reload.
#[derive(Debug)]
pub struct Config {
    pub modules: BTreeMap<String, Arc<Module>>,
    /// The config rendered back as YAML with secrets replaced by `<secret>`
    /// (served on `/config`).
    pub masked_yaml: String,
}

/// One named module.
#[derive(Debug)]
pub struct Module {
    pub name: String,
    /// The module `timeout`, if set (> 0).
    pub timeout: Option<Duration>,
    pub prober: ProberSettings,
    /// This module alone as YAML, 2-space indent, secrets masked (debug page).
    pub masked_yaml: String,
}

#[derive(Debug)]
pub enum ProberSettings {
    Http(HttpSettings),
    Tcp(TcpSettings),
    Tls(TlsProbeSettings),
    WebSocket(WebSocketSettings),
    /// A blackbox prober this exporter does not implement (icmp, dns, grpc,
    /// unix): the module loads, probing it is refused.
    Unimplemented(String),
}

impl ProberSettings {
    pub fn name(&self) -> &str {
        match self {
            ProberSettings::Unimplemented(name) => name,
            ProberSettings::Http(_) => "http",
            ProberSettings::Tcp(_) => "tcp",
            ProberSettings::Tls(_) => "tls",
            ProberSettings::WebSocket(_) => "websocket",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpProtocol {
    V4,
    V6,
}

/// `preferred_ip_protocol` + `ip_protocol_fallback` (defaults ip6 / true).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPolicy {
    pub preferred: IpProtocol,
    pub fallback: bool,
}

impl Default for AddressPolicy {
    fn default() -> Self {
        Self {
            preferred: IpProtocol::V6,
            fallback: true,
        }
    }
}

/// A secret value: inline or read from a file at probe time (prometheus/common
/// re-reads `*_file` on every request so rotated credentials are picked up).
#[derive(Debug, Clone)]
pub enum SecretSource {
    Inline(String),
    File(PathBuf),
}

/// The `Authorization` header a module sends.
#[derive(Debug, Clone)]
pub enum Authorization {
    Basic {
        username: SecretSource,
        /// None = empty password.
        password: Option<SecretSource>,
    },
    /// `<scheme> <credentials>`; scheme defaults to `Bearer`.
    Scheme {
        scheme: String,
        credentials: SecretSource,
    },
}

/// A header added on every request (`http_headers`): values, secrets and
/// files (read per request, trimmed), in that order.
#[derive(Debug, Clone)]
pub struct ExtraHeader {
    pub name: http::HeaderName,
    pub values: Vec<String>,
    pub secrets: Vec<String>,
    pub files: Vec<PathBuf>,
}

/// Proxy settings of the HTTP client config.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// `proxy_url` (http:// or https:// proxies; socks5 is a load error).
    pub url: Option<url::Url>,
    /// `no_proxy` entries: IPs, CIDRs, domains (".example.com" or
    /// "example.com" match subdomains), optional `:port`.
    pub no_proxy: Vec<String>,
    /// `proxy_from_environment`: HTTP_PROXY / HTTPS_PROXY / NO_PROXY.
    pub from_environment: bool,
    /// `proxy_connect_header`: sent on CONNECT.
    pub connect_headers: Vec<(http::HeaderName, String)>,
}

/// The prometheus/common HTTP client config, as far as a probe uses it.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub authorization: Option<Authorization>,
    pub tls: Arc<TlsClient>,
    pub proxy: Option<ProxySettings>,
    pub follow_redirects: bool,
    pub enable_http2: bool,
    pub extra_headers: Vec<ExtraHeader>,
}

/// The `tls_config` block after validation; `TlsClient` is built from it.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub insecure_skip_verify: bool,
    /// PEM bundle from `ca_file`/`ca`; None = system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate chain and key (mTLS).
    pub client_cert_pem: Option<(Vec<u8>, Vec<u8>)>,
    pub server_name: Option<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// `compression:` — the response body is always decoded with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Identity,
    Gzip,
    Deflate,
    Brotli,
}

#[derive(Debug, Clone)]
pub enum RequestBody {
    None,
    Inline(bytes::Bytes),
    /// `body_file`: opened per probe, as blackbox does.
    File(PathBuf),
}

/// A `fail_if_header_(not_)matches` entry.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    pub header: http::HeaderName,
    pub regexp: regex::Regex,
    pub allow_missing: bool,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Empty = any 2xx.
    pub valid_status_codes: Vec<u16>,
    /// Compared exactly with "HTTP/1.0", "HTTP/1.1", "HTTP/2.0"; empty = any.
    pub valid_http_versions: Vec<String>,
    pub method: http::Method,
    /// `headers:` in file order, `Host` excluded (see `host`).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// A `Host` entry of `headers:`: request Host and default SNI.
    pub host: Option<String>,
    pub body: RequestBody,
    pub compression: Option<Compression>,
    /// Bytes; None = unlimited.
    pub body_size_limit: Option<u64>,
    pub fail_if_ssl: bool,
    pub fail_if_not_ssl: bool,
    pub fail_if_body_matches_regexp: Vec<regex::bytes::Regex>,
    pub fail_if_body_not_matches_regexp: Vec<regex::bytes::Regex>,
    pub fail_if_header_matches: Vec<HeaderMatch>,
    pub fail_if_header_not_matches: Vec<HeaderMatch>,
    pub address: AddressPolicy,
    pub skip_resolve_phase_with_proxy: bool,
    pub client: ClientSettings,
}

/// One `query_response` step of the tcp prober.
#[derive(Debug, Clone, Default)]
pub struct TcpStep {
    pub expect: Option<regex::bytes::Regex>,
    pub expect_bytes: Option<Vec<u8>>,
    /// Raw bytes (`!!binary` decoded); `${1}` / `$name` expanded from `expect`.
    pub send: Option<Vec<u8>>,
    pub starttls: bool,
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct TcpSettings {
    pub address: AddressPolicy,
    pub source_ip_address: Option<IpAddr>,
    pub tls: bool,
    pub tls_client: Arc<TlsClient>,
    pub query_response: Vec<TcpStep>,
}

#[derive(Debug, Clone)]
pub struct TlsProbeSettings {
    pub address: AddressPolicy,
    pub tls_client: Arc<TlsClient>,
}

/// One WebSocket `query_response` step.
#[derive(Debug, Clone)]
pub enum WsStep {
    /// A text message; with `expand_captures` (blackbox master's
    /// `{expect, send}` item), `${1}`/`$name` refer to that expect's match.
    SendText {
        text: String,
        expand_captures: bool,
    },
    SendBinary(Vec<u8>),
    /// Scan incoming data messages until one matches.
    Expect(regex::bytes::Regex),
}

#[derive(Debug, Clone)]
pub struct WebSocketSettings {
    pub address: AddressPolicy,
    /// Headers sent with the upgrade request (Origin, User-Agent, ...):
    /// plain values and the structured `{values, secrets, files}` form.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub extra_headers: Vec<ExtraHeader>,
    pub client: ClientSettings,
    pub subprotocols: Vec<String>,
    pub fail_if_subprotocol_not_negotiated: bool,
    pub ping: bool,
    pub query_response: Vec<WsStep>,
}
