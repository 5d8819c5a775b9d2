//! Loading: parse blackbox.yml strictly, validate every module, and build
//! the runtime [`model`](super::model) once, so a bad config fails at load
//! (or reload) rather than on the first probe.
//!
//! Validation follows blackbox_exporter and prometheus/common, including
//! their error wording where users may search for it. Every error names the
//! module and the key. Relative file paths are resolved against the config
//! file's directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::duration::{parse_base2_bytes, parse_duration};
use super::file::{
    AuthorizationFile, BasicAuthFile, ClientConfigFile, ConfigFile, HeaderMatchFile,
    HttpHeaderFile, HttpProbeFile, ModuleFile, OrderedMap, Scalar, TcpProbeFile, TlsConfigFile,
    TlsProbeFile, WebSocketProbeFile, WsHeaderFile,
};
use super::model::{
    AddressPolicy, Authorization, ClientSettings, Compression, Config, ExtraHeader, HeaderMatch,
    HttpSettings, IpProtocol, Module, ProberSettings, ProxySettings, RequestBody, SecretSource,
    TcpSettings, TcpStep, TlsProbeSettings, TlsSettings, TlsVersion, WebSocketSettings, WsStep,
};
use crate::net::tls::{TlsBuildError, TlsClient};

/// The embedded config used when the default `blackbox.yml` does not exist.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("default.yml");

/// How secrets appear in rendered config (prometheus/common's marker).
const SECRET: &str = "<secret>";

/// Headers prometheus/common refuses in `http_headers`.
const RESERVED_HEADERS: &[&str] = &[
    "Authorization",
    "Host",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "User-Agent",
    "Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Www-Authenticate",
    "Accept-Encoding",
    "X-Prometheus-Remote-Write-Version",
    "X-Prometheus-Remote-Read-Version",
    "X-Prometheus-Scrape-Timeout-Seconds",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Content-Sha256",
];

/// Headers the WebSocket handshake sets itself; a module may not override them.
const WS_HANDSHAKE_HEADERS: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-Websocket-Key",
    "Sec-Websocket-Version",
    "Sec-Websocket-Accept",
    "Sec-Websocket-Extensions",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("error reading config file {path:?}: {cause}")]
    Read {
        path: PathBuf,
        /// In the message already, so not an error source (printing the
        /// chain would repeat it).
        cause: std::io::Error,
    },
    /// YAML syntax, unknown keys, duplicate keys and type errors; the message
    /// ends with the line and column.
    #[error("error parsing config file{}: {message}", display_path(path))]
    Parse {
        path: Option<PathBuf>,
        message: String,
    },
    #[error("module {module:?}: {key}: {message}")]
    Invalid {
        module: String,
        key: String,
        message: String,
    },
    #[error("module {module:?}: {key}: cannot read {path:?}: {cause}")]
    ReadFile {
        module: String,
        key: String,
        path: PathBuf,
        /// In the message already, so not an error source (printing the
        /// chain would repeat it).
        cause: std::io::Error,
    },
    /// `cause` already starts with "tls_config: "; `detail` names the file.
    #[error("module {module:?}: {block}: {cause}{detail}")]
    Tls {
        module: String,
        block: String,
        cause: Box<TlsBuildError>,
        detail: String,
    },
    #[error("error rendering config: {0}")]
    Render(String),
}

/// Reads and loads a config file; relative paths inside it are resolved
/// against its directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        cause: source,
    })?;
    let base_dir = path.parent().unwrap_or_else(|| Path::new(""));
    load_str(&text, base_dir).map_err(|e| match e {
        ConfigError::Parse { message, .. } => ConfigError::Parse {
            path: Some(path.to_path_buf()),
            message,
        },
        other => other,
    })
}

fn display_path(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" {:?}", p.display().to_string()))
        .unwrap_or_default()
}

/// Parses and validates a config document.
pub fn load_str(yaml: &str, base_dir: &Path) -> Result<Config, ConfigError> {
    let file = parse(yaml)?;
    let modules_file = file.modules.unwrap_or_default();
    let mut modules = std::collections::BTreeMap::new();
    let mut masked_modules = std::collections::BTreeMap::new();
    for (name, module_file) in modules_file.iter() {
        let ctx = Ctx {
            module: name,
            base_dir,
        };
        let (module, masked) = build_module(&ctx, module_file)?;
        masked_modules.insert(name.to_string(), masked);
        modules.insert(name.to_string(), Arc::new(module));
    }
    let whole = ConfigFile {
        modules: Some(OrderedMap(masked_modules.into_iter().collect())),
    };
    let masked_yaml = render(&whole)?;
    Ok(Config {
        modules,
        masked_yaml,
    })
}

/// The embedded default config (`default.yml`).
pub fn default_config() -> Config {
    // The embedded file is fixed at build time and covered by a unit test.
    load_str(DEFAULT_CONFIG_YAML, Path::new("."))
        .unwrap_or_else(|e| panic!("embedded default config is invalid: {e}"))
}

fn parse(yaml: &str) -> Result<ConfigFile, ConfigError> {
    let mut options = serde_saphyr::Options::default();
    // `!!binary` scalars reach `ByteString` as base64 text plus their tag,
    // so non-UTF-8 payloads (PostgreSQL SSLRequest) decode to raw bytes.
    options.ignore_binary_tag_for_string = true;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    // One-line errors ("line 5 column 7: unknown field ...") suit log lines;
    // the snippet would repeat the message.
    options.with_snippet = false;
    serde_saphyr::from_str_with_options(yaml, options).map_err(|e| ConfigError::Parse {
        path: None,
        // The library's hint is addressed to programmers, not config authors.
        message: e
            .to_string()
            .replace(", set DuplicateKeyPolicy in Options if acceptable", ""),
    })
}

fn render<T: serde::Serialize>(value: &T) -> Result<String, ConfigError> {
    serde_saphyr::to_string(value).map_err(|e| ConfigError::Render(e.to_string()))
}

/// Which module is being validated and where its relative paths point.
struct Ctx<'a> {
    module: &'a str,
    base_dir: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            module: self.module.to_string(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn unsupported(&self, key: &str) -> ConfigError {
        let name = key.rsplit('.').next().unwrap_or(key);
        self.err(
            key,
            format!("{name} is not supported by handshake_exporter"),
        )
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    fn read(&self, key: &str, path: &str) -> Result<Vec<u8>, ConfigError> {
        let resolved = self.resolve(path);
        std::fs::read(&resolved).map_err(|source| ConfigError::ReadFile {
            module: self.module.to_string(),
            key: key.to_string(),
            path: resolved,
            cause: source,
        })
    }
}

/// A set, non-blank string.
fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn build_module(ctx: &Ctx<'_>, m: &ModuleFile) -> Result<(Module, ModuleFile), ConfigError> {
    let timeout = match &m.timeout {
        None => None,
        Some(t) => {
            let d =
                parse_duration(&t.to_string()).map_err(|e| ctx.err("timeout", e.to_string()))?;
            (d > Duration::ZERO).then_some(d)
        }
    };
    let prober_name = m.prober.as_deref().map(str::trim).unwrap_or("");
    let mut masked = ModuleFile {
        prober: m.prober.clone(),
        timeout: m.timeout.clone(),
        ..ModuleFile::default()
    };
    let prober = match prober_name {
        "http" => {
            let http = m.http.clone().unwrap_or_default();
            let settings = build_http(ctx, &http)?;
            masked.http = Some(masked_http(http, &settings));
            ProberSettings::Http(settings)
        }
        "tcp" => {
            let tcp = m.tcp.clone().unwrap_or_default();
            let settings = build_tcp(ctx, &tcp)?;
            masked.tcp = Some(masked_tcp(tcp));
            ProberSettings::Tcp(settings)
        }
        "tls" => {
            let tls = m.tls.clone().unwrap_or_default();
            let settings = build_tls_probe(ctx, &tls)?;
            masked.tls = Some(masked_tls_probe(tls));
            ProberSettings::Tls(settings)
        }
        "websocket" => {
            let ws = m.websocket.clone().unwrap_or_default();
            let settings = build_websocket(ctx, &ws)?;
            masked.websocket = Some(masked_websocket(ws));
            ProberSettings::WebSocket(settings)
        }
        "" => {
            return Err(ctx.err(
                "prober",
                "prober must be set (one of http, tcp, tls, websocket)",
            ));
        }
        p @ ("icmp" | "dns" | "grpc" | "unix") => {
            // Loads, so a blackbox.yml with such modules works unchanged;
            // probing this module is refused with a clear 400.
            tracing::warn!(
                module = ctx.module,
                prober = p,
                "module uses a blackbox prober handshake_exporter does not implement; probes with it return 400"
            );
            ProberSettings::Unimplemented(p.to_string())
        }
        p => {
            return Err(ctx.err(
                "prober",
                format!("unknown prober {p:?} (expected http, tcp, tls or websocket)"),
            ));
        }
    };
    let masked_yaml = render(&masked)?;
    Ok((
        Module {
            name: ctx.module.to_string(),
            timeout,
            prober,
            masked_yaml,
        },
        masked,
    ))
}

fn address_policy(
    ctx: &Ctx<'_>,
    block: &str,
    preferred: &Option<String>,
    fallback: Option<bool>,
) -> Result<AddressPolicy, ConfigError> {
    let preferred = match preferred.as_deref().map(str::trim) {
        None | Some("") | Some("ip6") => IpProtocol::V6,
        Some("ip4") => IpProtocol::V4,
        Some(other) => {
            return Err(ctx.err(
                format!("{block}.preferred_ip_protocol"),
                format!("must be \"ip4\" or \"ip6\", got {other:?}"),
            ));
        }
    };
    Ok(AddressPolicy {
        preferred,
        fallback: fallback.unwrap_or(true),
    })
}

fn parse_tls_version(ctx: &Ctx<'_>, key: &str, v: &str) -> Result<TlsVersion, ConfigError> {
    match v {
        "TLS12" => Ok(TlsVersion::Tls12),
        "TLS13" => Ok(TlsVersion::Tls13),
        "TLS10" | "TLS11" => Err(ctx.err(
            key,
            format!(
                "{v} is not supported by handshake_exporter: rustls speaks TLS 1.2 and 1.3 only (use TLS12 or TLS13)"
            ),
        )),
        other => Err(ctx.err(key, format!("unknown TLS version: {other}"))),
    }
}

/// Validates a `tls_config` block (prometheus/common rules), reads its files
/// and builds the module's TLS client. `block` is the enclosing key path,
/// e.g. `http` or `websocket.http_config`.
fn build_tls(
    ctx: &Ctx<'_>,
    block: &str,
    cfg: Option<&TlsConfigFile>,
) -> Result<Arc<TlsClient>, ConfigError> {
    let default = TlsConfigFile::default();
    let cfg = cfg.unwrap_or(&default);
    let key = format!("{block}.tls_config");
    let (ca, ca_file) = (non_empty(&cfg.ca), non_empty(&cfg.ca_file));
    let (cert, cert_file) = (non_empty(&cfg.cert), non_empty(&cfg.cert_file));
    let (pkey, key_file) = (non_empty(&cfg.key), non_empty(&cfg.key_file));
    if ca.is_some() && ca_file.is_some() {
        return Err(ctx.err(
            &key,
            "at most one of ca, ca_file & ca_ref must be configured",
        ));
    }
    if cert.is_some() && cert_file.is_some() {
        return Err(ctx.err(
            &key,
            "at most one of cert, cert_file & cert_ref must be configured",
        ));
    }
    if pkey.is_some() && key_file.is_some() {
        return Err(ctx.err(&key, "at most one of key and key_file must be configured"));
    }
    let using_cert = cert.is_some() || cert_file.is_some();
    let using_key = pkey.is_some() || key_file.is_some();
    if using_cert && !using_key {
        return Err(ctx.err(
            &key,
            "exactly one of key or key_file must be configured when a client certificate is configured",
        ));
    }
    if using_key && !using_cert {
        return Err(ctx.err(
            &key,
            "exactly one of cert or cert_file must be configured when a client key is configured",
        ));
    }
    let min_version = non_empty(&cfg.min_version)
        .map(|v| parse_tls_version(ctx, &format!("{key}.min_version"), v))
        .transpose()?;
    let max_version = non_empty(&cfg.max_version)
        .map(|v| parse_tls_version(ctx, &format!("{key}.max_version"), v))
        .transpose()?;

    let ca_pem = match (ca, ca_file) {
        (Some(pem), _) => Some(pem.as_bytes().to_vec()),
        (None, Some(path)) => Some(ctx.read(&format!("{key}.ca_file"), path)?),
        (None, None) => None,
    };
    let cert_pem = match (cert, cert_file) {
        (Some(pem), _) => Some(pem.as_bytes().to_vec()),
        (None, Some(path)) => Some(ctx.read(&format!("{key}.cert_file"), path)?),
        (None, None) => None,
    };
    let key_pem = match (pkey, key_file) {
        (Some(pem), _) => Some(pem.as_bytes().to_vec()),
        (None, Some(path)) => Some(ctx.read(&format!("{key}.key_file"), path)?),
        (None, None) => None,
    };
    let settings = TlsSettings {
        insecure_skip_verify: cfg.insecure_skip_verify,
        ca_pem,
        client_cert_pem: cert_pem.zip(key_pem),
        server_name: non_empty(&cfg.server_name).map(str::to_string),
        min_version,
        max_version,
    };
    TlsClient::build(&settings).map(Arc::new).map_err(|source| {
        let file = |name: &str, path: Option<&str>| match path {
            Some(p) => format!(" ({name} {:?})", ctx.resolve(p)),
            None => format!(" (inline {})", name.trim_end_matches("_file")),
        };
        let detail = match &source {
            TlsBuildError::EmptyCaBundle | TlsBuildError::BadCa(_) => file("ca_file", ca_file),
            TlsBuildError::BadClientCert(_) => file("cert_file", cert_file),
            TlsBuildError::BadClientKey(_) => file("key_file", key_file),
            _ => String::new(),
        };
        ConfigError::Tls {
            module: ctx.module.to_string(),
            block: block.to_string(),
            cause: Box::new(source),
            detail,
        }
    })
}

/// Go's `textproto.CanonicalMIMEHeaderKey` for names made of token chars.
fn canonical_header_key(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

fn header_name(ctx: &Ctx<'_>, key: &str, name: &str) -> Result<http::HeaderName, ConfigError> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ctx.err(key, format!("invalid header name {name:?}")))
}

fn header_value(
    ctx: &Ctx<'_>,
    key: &str,
    name: &str,
    value: &str,
) -> Result<http::HeaderValue, ConfigError> {
    http::HeaderValue::from_str(value)
        .map_err(|_| ctx.err(key, format!("invalid value for header {name:?}")))
}

/// `http_headers` (and websocket structured `headers`): validated names and
/// values, files resolved. `reserved` applies prometheus/common's list.
fn extra_headers(
    ctx: &Ctx<'_>,
    key: &str,
    headers: &[(String, HttpHeaderFile)],
    reserved: bool,
) -> Result<Vec<ExtraHeader>, ConfigError> {
    let mut out = Vec::with_capacity(headers.len());
    for (name, h) in headers {
        let canonical = canonical_header_key(name);
        if reserved
            && RESERVED_HEADERS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
        {
            return Err(ctx.err(key, format!("setting header {canonical:?} is not allowed")));
        }
        let hname = header_name(ctx, key, name)?;
        if out.iter().any(|e: &ExtraHeader| e.name == hname) {
            return Err(ctx.err(key, format!("header {canonical:?} is set twice")));
        }
        for v in h.values.iter().chain(&h.secrets) {
            header_value(ctx, key, name, v)?;
        }
        out.push(ExtraHeader {
            name: hname,
            values: h.values.clone(),
            secrets: h.secrets.clone(),
            files: h.files.iter().map(|f| ctx.resolve(f)).collect(),
        });
    }
    Ok(out)
}

/// prometheus/common `HTTPClientConfig.Validate` plus building the client
/// settings. `block` is the key path of the config (`http`, `websocket`,
/// `websocket.http_config`).
fn build_client(
    ctx: &Ctx<'_>,
    block: &str,
    c: &ClientConfigFile,
) -> Result<ClientSettings, ConfigError> {
    if c.oauth2.is_some() {
        return Err(ctx.unsupported(&format!("{block}.oauth2")));
    }
    let bearer = non_empty(&c.bearer_token);
    let bearer_file = non_empty(&c.bearer_token_file);
    let has_bearer = bearer.is_some() || bearer_file.is_some();
    if bearer.is_some() && bearer_file.is_some() {
        return Err(ctx.err(
            format!("{block}.bearer_token"),
            "at most one of bearer_token & bearer_token_file must be configured",
        ));
    }
    if c.basic_auth.is_some() && has_bearer {
        return Err(ctx.err(
            format!("{block}.bearer_token"),
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
        ));
    }
    let mut authorization = None;
    if let Some(b) = &c.basic_auth {
        let key = format!("{block}.basic_auth");
        if non_empty(&b.username).is_some() && non_empty(&b.username_file).is_some() {
            return Err(ctx.err(
                &key,
                "at most one of basic_auth username, username_file & username_ref must be configured",
            ));
        }
        if non_empty(&b.password).is_some() && non_empty(&b.password_file).is_some() {
            return Err(ctx.err(
                &key,
                "at most one of basic_auth password, password_file & password_ref must be configured",
            ));
        }
        let username = match non_empty(&b.username_file) {
            Some(f) => SecretSource::File(ctx.resolve(f)),
            None => SecretSource::Inline(b.username.clone().unwrap_or_default()),
        };
        let password = match (non_empty(&b.password_file), non_empty(&b.password)) {
            (Some(f), _) => Some(SecretSource::File(ctx.resolve(f))),
            (None, Some(p)) => Some(SecretSource::Inline(p.to_string())),
            (None, None) => None,
        };
        authorization = Some(Authorization::Basic { username, password });
    }
    if let Some(a) = &c.authorization {
        let key = format!("{block}.authorization");
        if has_bearer {
            return Err(ctx.err(
                &key,
                "authorization is not compatible with bearer_token & bearer_token_file",
            ));
        }
        let creds = non_empty(&a.credentials);
        let creds_file = non_empty(&a.credentials_file);
        if creds.is_some() && creds_file.is_some() {
            return Err(ctx.err(
                &key,
                "at most one of authorization credentials & credentials_file must be configured",
            ));
        }
        let scheme = match a.kind.as_deref().map(str::trim) {
            None | Some("") => "Bearer".to_string(),
            Some(t) => t.to_string(),
        };
        if scheme.eq_ignore_ascii_case("basic") {
            return Err(ctx.err(
                &key,
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            ));
        }
        if c.basic_auth.is_some() {
            return Err(ctx.err(
                &key,
                "at most one of basic_auth, oauth2 & authorization must be configured",
            ));
        }
        if http::HeaderValue::from_str(&scheme).is_err() || scheme.contains(' ') {
            return Err(ctx.err(format!("{key}.type"), format!("invalid type {scheme:?}")));
        }
        // Like prometheus/common, no credentials means no header.
        authorization = match (creds_file, creds) {
            (Some(f), _) => Some(Authorization::Scheme {
                scheme,
                credentials: SecretSource::File(ctx.resolve(f)),
            }),
            (None, Some(v)) => Some(Authorization::Scheme {
                scheme,
                credentials: SecretSource::Inline(v.to_string()),
            }),
            (None, None) => None,
        };
    } else if let Some(f) = bearer_file {
        authorization = Some(Authorization::Scheme {
            scheme: "Bearer".into(),
            credentials: SecretSource::File(ctx.resolve(f)),
        });
    } else if let Some(t) = bearer {
        authorization = Some(Authorization::Scheme {
            scheme: "Bearer".into(),
            credentials: SecretSource::Inline(t.to_string()),
        });
    }

    let proxy = build_proxy(ctx, block, c)?;
    let tls = build_tls(ctx, block, c.tls_config.as_ref())?;
    let extra_headers = extra_headers(
        ctx,
        &format!("{block}.http_headers"),
        &c.http_headers.0,
        true,
    )?;
    Ok(ClientSettings {
        authorization,
        tls,
        proxy,
        follow_redirects: c.follow_redirects.unwrap_or(true),
        enable_http2: c.enable_http2.unwrap_or(true),
        extra_headers,
    })
}

/// prometheus/common `ProxyConfig.Validate`, plus: only http/https proxies.
fn build_proxy(
    ctx: &Ctx<'_>,
    block: &str,
    c: &ClientConfigFile,
) -> Result<Option<ProxySettings>, ConfigError> {
    let key = format!("{block}.proxy_url");
    let url = match c
        .proxy_url
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(raw) => {
            let url = url::Url::parse(raw)
                .map_err(|e| ctx.err(&key, format!("invalid proxy URL {raw:?}: {e}")))?;
            match url.scheme() {
                "http" | "https" => {}
                s if s.starts_with("socks") => {
                    return Err(ctx.err(
                        &key,
                        format!(
                            "{s} proxies are not supported by handshake_exporter (use an http:// or https:// proxy)"
                        ),
                    ));
                }
                s => {
                    return Err(ctx.err(
                        &key,
                        format!("unsupported proxy scheme {s:?} (expected http or https)"),
                    ));
                }
            }
            Some(url)
        }
    };
    let no_proxy = non_empty(&c.no_proxy);
    let env = c.proxy_from_environment;
    if !c.proxy_connect_header.is_empty() && !env && url.is_none() {
        return Err(ctx.err(
            format!("{block}.proxy_connect_header"),
            "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured",
        ));
    }
    if env && url.is_some() {
        return Err(ctx.err(
            &key,
            "if proxy_from_environment is configured, proxy_url must not be configured",
        ));
    }
    if env && no_proxy.is_some() {
        return Err(ctx.err(
            format!("{block}.no_proxy"),
            "if proxy_from_environment is configured, no_proxy must not be configured",
        ));
    }
    if url.is_none() && no_proxy.is_some() {
        return Err(ctx.err(
            format!("{block}.no_proxy"),
            "if no_proxy is configured, proxy_url must also be configured",
        ));
    }
    if url.is_none() && !env {
        return Ok(None);
    }
    let hkey = format!("{block}.proxy_connect_header");
    let mut connect_headers = Vec::new();
    for (name, values) in c.proxy_connect_header.iter() {
        let hname = header_name(ctx, &hkey, name)?;
        for v in values {
            header_value(ctx, &hkey, name, v)?;
            connect_headers.push((hname.clone(), v.clone()));
        }
    }
    Ok(Some(ProxySettings {
        url,
        no_proxy: no_proxy
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        from_environment: env,
        connect_headers,
    }))
}

/// regex's syntax errors span several lines (pattern, caret, message);
/// keep the message so the error fits one log line.
fn regex_error(ctx: &Ctx<'_>, key: &str, pattern: &str, e: regex::Error) -> ConfigError {
    let text = e.to_string();
    let reason = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.trim());
    ctx.err(key, format!("invalid regexp {pattern:?}: {reason}"))
}

fn compile_bytes_regex(
    ctx: &Ctx<'_>,
    key: &str,
    pattern: &str,
) -> Result<regex::bytes::Regex, ConfigError> {
    regex::bytes::RegexBuilder::new(pattern)
        .build()
        .map_err(|e| regex_error(ctx, key, pattern, e))
}

fn compile_regex(ctx: &Ctx<'_>, key: &str, pattern: &str) -> Result<regex::Regex, ConfigError> {
    regex::RegexBuilder::new(pattern)
        .build()
        .map_err(|e| regex_error(ctx, key, pattern, e))
}

/// blackbox's `isCompressionAcceptEncodingValid`: the chosen encoding (or
/// `*`) must be listed with q > 0, looking at the highest q first.
fn compression_accepted(compression: &str, accept_encoding: &str) -> bool {
    if compression.is_empty() || accept_encoding.is_empty() {
        return true;
    }
    let mut encodings: Vec<(String, f64)> = accept_encoding
        .split(',')
        .map(|part| match part.rfind(';') {
            None => (part.trim().to_string(), 1.0),
            Some(idx) => {
                let q = part[idx + 1..].trim();
                let q = q.strip_prefix("q=").unwrap_or(q);
                let q = q
                    .parse::<f64>()
                    .map(|q| (q * 1000.0).round() / 1000.0)
                    .unwrap_or(0.0);
                (part[..idx].trim().to_string(), q)
            }
        })
        .collect();
    encodings.sort_by(|a, b| b.1.total_cmp(&a.1));
    encodings
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(compression) || e == "*")
        .is_some_and(|(_, q)| *q > 0.0)
}

fn header_matches(
    ctx: &Ctx<'_>,
    key: &str,
    specs: &[HeaderMatchFile],
) -> Result<Vec<HeaderMatch>, ConfigError> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let key = format!("{key}[{i}]");
            if s.header.is_empty() {
                return Err(ctx.err(&key, "header name must be set for HTTP header matchers"));
            }
            if s.regexp.is_empty() {
                return Err(ctx.err(&key, "regexp must be set for HTTP header matchers"));
            }
            Ok(HeaderMatch {
                header: header_name(ctx, &key, &s.header)?,
                regexp: compile_regex(ctx, &key, &s.regexp)?,
                allow_missing: s.allow_missing,
            })
        })
        .collect()
}

fn build_http(ctx: &Ctx<'_>, h: &HttpProbeFile) -> Result<HttpSettings, ConfigError> {
    if h.fail_if_body_json_matches_cel.is_some() {
        return Err(ctx.unsupported("http.fail_if_body_json_matches_cel"));
    }
    if h.fail_if_body_json_not_matches_cel.is_some() {
        return Err(ctx.unsupported("http.fail_if_body_json_not_matches_cel"));
    }
    if h.enable_http3 == Some(true) {
        return Err(ctx.unsupported("http.enable_http3"));
    }

    let method = match non_empty(&h.method) {
        None => http::Method::GET,
        Some(m) => http::Method::from_bytes(m.as_bytes())
            .map_err(|_| ctx.err("http.method", format!("invalid method {m:?}")))?,
    };

    let mut headers: Vec<(http::HeaderName, http::HeaderValue)> = Vec::new();
    let mut host = None;
    for (name, value) in h.headers.iter() {
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Err(ctx.err("http.headers", "header \"Host\" is set twice"));
            }
            header_value(ctx, "http.headers", name, value)?;
            host = Some(value.clone());
            continue;
        }
        let hname = header_name(ctx, "http.headers", name)?;
        if headers.iter().any(|(n, _)| *n == hname) {
            return Err(ctx.err(
                "http.headers",
                format!("header {:?} is set twice", canonical_header_key(name)),
            ));
        }
        headers.push((hname, header_value(ctx, "http.headers", name, value)?));
    }

    let body = non_empty_bytes(h.body.as_ref().map(|b| b.as_bytes()));
    let body_file = non_empty(&h.body_file);
    let body = match (body, body_file) {
        (Some(_), Some(_)) => {
            return Err(ctx.err(
                "http.body_file",
                "setting body and body_file both are not allowed",
            ));
        }
        (Some(b), None) => RequestBody::Inline(bytes::Bytes::copy_from_slice(b)),
        (None, Some(f)) => RequestBody::File(ctx.resolve(f)),
        (None, None) => RequestBody::None,
    };

    let compression_raw = h.compression.as_deref().map(str::trim).unwrap_or("");
    let compression = match compression_raw.to_ascii_lowercase().as_str() {
        "" => None,
        "gzip" => Some(Compression::Gzip),
        "deflate" => Some(Compression::Deflate),
        "br" => Some(Compression::Brotli),
        "identity" => Some(Compression::Identity),
        other => {
            return Err(ctx.err(
                "http.compression",
                format!("unknown compression {other:?} (expected gzip, br, deflate or identity)"),
            ));
        }
    };
    for (name, value) in h.headers.iter() {
        if name.eq_ignore_ascii_case("accept-encoding")
            && !compression_accepted(compression_raw, value)
        {
            return Err(ctx.err(
                "http.compression",
                format!(
                    "invalid configuration \"{name}: {value}\", \"compression: {compression_raw}\""
                ),
            ));
        }
    }

    let body_size_limit = match &h.body_size_limit {
        None => None,
        Some(Scalar::Int(n)) => u64::try_from(*n).ok().filter(|n| *n > 0),
        Some(Scalar::Float(_)) => {
            return Err(ctx.err(
                "http.body_size_limit",
                "must be a whole number of bytes or a size like 10MB",
            ));
        }
        Some(Scalar::Text(s)) => {
            let n =
                parse_base2_bytes(s).map_err(|e| ctx.err("http.body_size_limit", e.to_string()))?;
            u64::try_from(n).ok().filter(|n| *n > 0)
        }
    };

    let body_regexes =
        |key: &str, list: &[String]| -> Result<Vec<regex::bytes::Regex>, ConfigError> {
            list.iter()
                .enumerate()
                .map(|(i, p)| compile_bytes_regex(ctx, &format!("{key}[{i}]"), p))
                .collect()
        };

    Ok(HttpSettings {
        valid_status_codes: h.valid_status_codes.clone(),
        valid_http_versions: h.valid_http_versions.clone(),
        method,
        headers,
        host,
        body,
        compression,
        body_size_limit,
        fail_if_ssl: h.fail_if_ssl,
        fail_if_not_ssl: h.fail_if_not_ssl,
        fail_if_body_matches_regexp: body_regexes(
            "http.fail_if_body_matches_regexp",
            &h.fail_if_body_matches_regexp,
        )?,
        fail_if_body_not_matches_regexp: body_regexes(
            "http.fail_if_body_not_matches_regexp",
            &h.fail_if_body_not_matches_regexp,
        )?,
        fail_if_header_matches: header_matches(
            ctx,
            "http.fail_if_header_matches",
            &h.fail_if_header_matches,
        )?,
        fail_if_header_not_matches: header_matches(
            ctx,
            "http.fail_if_header_not_matches",
            &h.fail_if_header_not_matches,
        )?,
        address: address_policy(
            ctx,
            "http",
            &h.preferred_ip_protocol,
            h.ip_protocol_fallback,
        )?,
        skip_resolve_phase_with_proxy: h.skip_resolve_phase_with_proxy,
        client: build_client(ctx, "http", &h.client_config())?,
    })
}

fn non_empty_bytes(b: Option<&[u8]>) -> Option<&[u8]> {
    b.filter(|b| !b.is_empty())
}

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn build_tcp(ctx: &Ctx<'_>, t: &TcpProbeFile) -> Result<TcpSettings, ConfigError> {
    let source_ip_address =
        match t.source_ip_address.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(s.parse().map_err(|_| {
                ctx.err("tcp.source_ip_address", format!("invalid IP address {s:?}"))
            })?),
        };
    let mut query_response = Vec::with_capacity(t.query_response.len());
    for (i, step) in t.query_response.iter().enumerate() {
        let key = format!("tcp.query_response[{i}]");
        let expect_bytes = step
            .expect_bytes
            .clone()
            .map(|b| b.into_bytes())
            .filter(|b| !b.is_empty());
        if step.expect.is_some() && expect_bytes.is_some() {
            return Err(ctx.err(
                &key,
                "expect and expect_bytes are mutually exclusive within one step",
            ));
        }
        let expect = step
            .expect
            .as_deref()
            .map(|p| compile_bytes_regex(ctx, &format!("{key}.expect"), p))
            .transpose()?;
        let mut labels = Vec::with_capacity(step.labels.len());
        for l in &step.labels {
            if !valid_label_name(&l.name) {
                return Err(ctx.err(
                    format!("{key}.labels"),
                    format!("invalid label name {:?}", l.name),
                ));
            }
            labels.push((l.name.clone(), l.value.clone()));
        }
        query_response.push(TcpStep {
            expect,
            expect_bytes,
            // blackbox skips an empty send (no bare newline is written).
            send: step
                .send
                .clone()
                .map(|b| b.into_bytes())
                .filter(|b| !b.is_empty()),
            starttls: step.starttls,
            labels,
        });
    }
    Ok(TcpSettings {
        address: address_policy(ctx, "tcp", &t.preferred_ip_protocol, t.ip_protocol_fallback)?,
        source_ip_address,
        tls: t.tls,
        tls_client: build_tls(ctx, "tcp", t.tls_config.as_ref())?,
        query_response,
    })
}

fn build_tls_probe(ctx: &Ctx<'_>, t: &TlsProbeFile) -> Result<TlsProbeSettings, ConfigError> {
    Ok(TlsProbeSettings {
        address: address_policy(ctx, "tls", &t.preferred_ip_protocol, t.ip_protocol_fallback)?,
        tls_client: build_tls(ctx, "tls", t.tls_config.as_ref())?,
    })
}

/// Plain `headers:` values go to `headers`; blackbox master's structured
/// `{values, secrets, files}` entries go to `extra_headers` (files are read
/// per request, like `http_headers`).
fn build_websocket(
    ctx: &Ctx<'_>,
    w: &WebSocketProbeFile,
) -> Result<WebSocketSettings, ConfigError> {
    let mut headers = Vec::new();
    let mut structured = Vec::new();
    for (name, value) in w.headers.iter() {
        let canonical = canonical_header_key(name);
        if WS_HANDSHAKE_HEADERS
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
        {
            return Err(ctx.err(
                "websocket.headers",
                format!("header {canonical:?} is set by the WebSocket handshake and cannot be configured"),
            ));
        }
        if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            return Err(ctx.err(
                "websocket.headers",
                "set Sec-WebSocket-Protocol with subprotocols, not headers",
            ));
        }
        let hname = header_name(ctx, "websocket.headers", name)?;
        let twice = headers.iter().any(|(n, _)| *n == hname)
            || structured
                .iter()
                .any(|(n, _): &(String, HttpHeaderFile)| n.eq_ignore_ascii_case(name));
        if twice {
            return Err(ctx.err(
                "websocket.headers",
                format!("header {canonical:?} is set twice"),
            ));
        }
        match value {
            WsHeaderFile::Plain(v) => {
                headers.push((hname, header_value(ctx, "websocket.headers", name, v)?));
            }
            WsHeaderFile::Structured(h) => structured.push((name.to_string(), h.clone())),
        }
    }
    let extra_headers = extra_headers(ctx, "websocket.headers", &structured, false)?;

    let mut client = match (w.inline_client_config(), &w.http_config) {
        (Some(_), Some(_)) => {
            return Err(ctx.err(
                "websocket.http_config",
                "set the client config (tls_config, basic_auth, authorization, bearer_token, proxy_url) either inline or under http_config, not both",
            ));
        }
        (Some(inline), None) => build_client(ctx, "websocket", &inline)?,
        (None, Some(nested)) => build_client(ctx, "websocket.http_config", nested)?,
        (None, None) => build_client(ctx, "websocket", &ClientConfigFile::default())?,
    };
    // HTTP/1.1 upgrade unless RFC 8441 is asked for explicitly.
    client.enable_http2 = w
        .enable_http2
        .or_else(|| w.http_config.as_ref().and_then(|c| c.enable_http2))
        .unwrap_or(false);

    for (i, p) in w.subprotocols.iter().enumerate() {
        let is_token = !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !is_token {
            return Err(ctx.err(
                format!("websocket.subprotocols[{i}]"),
                format!("invalid subprotocol {p:?}"),
            ));
        }
    }
    if w.fail_if_subprotocol_not_negotiated && w.subprotocols.is_empty() {
        return Err(ctx.err(
            "websocket.fail_if_subprotocol_not_negotiated",
            "requires subprotocols to be set",
        ));
    }

    let mut query_response = Vec::new();
    for (i, step) in w.query_response.iter().enumerate() {
        let key = format!("websocket.query_response[{i}]");
        if step.expect_bytes.is_some() {
            return Err(ctx.unsupported(&format!("{key}.expect_bytes")));
        }
        if step.labels.is_some() {
            return Err(ctx.unsupported(&format!("{key}.labels")));
        }
        if step.starttls == Some(true) {
            return Err(ctx.unsupported(&format!("{key}.starttls")));
        }
        if step.send.is_some() && step.send_binary.is_some() {
            return Err(ctx.err(
                &key,
                "send and send_binary are mutually exclusive within one step",
            ));
        }
        if let Some(p) = &step.expect {
            query_response.push(WsStep::Expect(compile_bytes_regex(
                ctx,
                &format!("{key}.expect"),
                p,
            )?));
        }
        if let Some(s) = &step.send {
            let text = String::from_utf8(s.as_bytes().to_vec()).map_err(|_| {
                ctx.err(
                    format!("{key}.send"),
                    "payload is not UTF-8 text; use send_binary for binary messages",
                )
            })?;
            query_response.push(WsStep::SendText {
                text,
                expand_captures: step.expect.is_some(),
            });
        }
        if let Some(b) = &step.send_binary {
            query_response.push(WsStep::SendBinary(b.as_bytes().to_vec()));
        }
    }

    Ok(WebSocketSettings {
        address: address_policy(
            ctx,
            "websocket",
            &w.preferred_ip_protocol,
            w.ip_protocol_fallback,
        )?,
        headers,
        extra_headers,
        client,
        subprotocols: w.subprotocols.clone(),
        fail_if_subprotocol_not_negotiated: w.fail_if_subprotocol_not_negotiated,
        ping: w.ping,
        query_response,
    })
}

// --- masked rendering -------------------------------------------------------

fn mask(s: &mut Option<String>) {
    if let Some(v) = s
        && !v.is_empty()
    {
        *v = SECRET.to_string();
    }
}

fn mask_tls(t: &mut Option<TlsConfigFile>) {
    if let Some(t) = t {
        mask(&mut t.key);
    }
}

fn mask_header_files(headers: &mut [(String, HttpHeaderFile)]) {
    for (_, h) in headers {
        for s in &mut h.secrets {
            *s = SECRET.to_string();
        }
    }
}

/// The secret-carrying fields of a client config, wherever they live
/// (nested `http_config:` or inlined under `http:`), masked by one rule.
struct ClientSecrets<'a> {
    basic_auth: &'a mut Option<BasicAuthFile>,
    authorization: &'a mut Option<AuthorizationFile>,
    bearer_token: &'a mut Option<String>,
    tls_config: &'a mut Option<TlsConfigFile>,
    proxy_url: &'a mut Option<String>,
    proxy_connect_header: &'a mut OrderedMap<Vec<String>>,
    http_headers: &'a mut OrderedMap<HttpHeaderFile>,
}

impl ClientSecrets<'_> {
    fn mask(self) {
        if let Some(b) = self.basic_auth {
            mask(&mut b.password);
        }
        if let Some(a) = self.authorization {
            mask(&mut a.credentials);
        }
        mask(self.bearer_token);
        mask_tls(self.tls_config);
        redact_proxy_url(self.proxy_url);
        for (_, values) in &mut self.proxy_connect_header.0 {
            for v in values {
                *v = SECRET.to_string();
            }
        }
        mask_header_files(&mut self.http_headers.0);
    }
}

fn mask_client(c: &mut ClientConfigFile) {
    ClientSecrets {
        basic_auth: &mut c.basic_auth,
        authorization: &mut c.authorization,
        bearer_token: &mut c.bearer_token,
        tls_config: &mut c.tls_config,
        proxy_url: &mut c.proxy_url,
        proxy_connect_header: &mut c.proxy_connect_header,
        http_headers: &mut c.http_headers,
    }
    .mask();
}

/// Plain `headers:` values that carry credentials in practice; blackbox
/// shows them verbatim, we would rather not.
const SENSITIVE_PLAIN_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie"];

fn mask_plain_header(name: &str, value: &mut String) {
    if SENSITIVE_PLAIN_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
        && !value.is_empty()
    {
        *value = SECRET.to_string();
    }
}

/// prometheus/common renders proxy URLs with `url.Redacted()`.
fn redact_proxy_url(u: &mut Option<String>) {
    if let Some(raw) = u
        && let Ok(mut url) = url::Url::parse(raw)
        && url.password().is_some()
        && url.set_password(Some("xxxxx")).is_ok()
    {
        *raw = url.to_string();
    }
}

fn materialise_address(preferred: &mut Option<String>, fallback: &mut Option<bool>) {
    if non_empty(preferred).is_none() {
        *preferred = Some("ip6".into());
    }
    fallback.get_or_insert(true);
}

/// The http block as shown: secrets masked, defaults filled in, the
/// deprecated `no_follow_redirects` folded into `follow_redirects`.
fn masked_http(mut h: HttpProbeFile, s: &HttpSettings) -> HttpProbeFile {
    h.method = Some(s.method.to_string());
    h.follow_redirects = Some(s.client.follow_redirects);
    h.no_follow_redirects = None;
    h.enable_http2 = Some(s.client.enable_http2);
    materialise_address(&mut h.preferred_ip_protocol, &mut h.ip_protocol_fallback);
    ClientSecrets {
        basic_auth: &mut h.basic_auth,
        authorization: &mut h.authorization,
        bearer_token: &mut h.bearer_token,
        tls_config: &mut h.tls_config,
        proxy_url: &mut h.proxy_url,
        proxy_connect_header: &mut h.proxy_connect_header,
        http_headers: &mut h.http_headers,
    }
    .mask();
    for (name, value) in &mut h.headers.0 {
        mask_plain_header(name, value);
    }
    h
}

fn masked_tcp(mut t: TcpProbeFile) -> TcpProbeFile {
    materialise_address(&mut t.preferred_ip_protocol, &mut t.ip_protocol_fallback);
    mask_tls(&mut t.tls_config);
    t
}

fn masked_tls_probe(mut t: TlsProbeFile) -> TlsProbeFile {
    materialise_address(&mut t.preferred_ip_protocol, &mut t.ip_protocol_fallback);
    mask_tls(&mut t.tls_config);
    t
}

fn masked_websocket(mut w: WebSocketProbeFile) -> WebSocketProbeFile {
    materialise_address(&mut w.preferred_ip_protocol, &mut w.ip_protocol_fallback);
    mask(&mut w.bearer_token);
    if let Some(b) = &mut w.basic_auth {
        mask(&mut b.password);
    }
    if let Some(a) = &mut w.authorization {
        mask(&mut a.credentials);
    }
    mask_tls(&mut w.tls_config);
    redact_proxy_url(&mut w.proxy_url);
    if let Some(c) = &mut w.http_config {
        mask_client(c);
    }
    for (name, v) in &mut w.headers.0 {
        match v {
            WsHeaderFile::Plain(value) => mask_plain_header(name, value),
            WsHeaderFile::Structured(h) => {
                for s in &mut h.secrets {
                    *s = SECRET.to_string();
                }
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "/nonexistent-config-dir";

    fn load(yaml: &str) -> Result<Config, ConfigError> {
        load_str(yaml, Path::new(BASE))
    }

    fn load_err(yaml: &str) -> String {
        match load(yaml) {
            Ok(_) => panic!("config unexpectedly loaded:\n{yaml}"),
            Err(e) => e.to_string(),
        }
    }

    fn module<'a>(c: &'a Config, name: &str) -> &'a Module {
        c.modules
            .get(name)
            .map(|m| m.as_ref())
            .expect("module present")
    }

    fn http(c: &Config, name: &str) -> HttpSettings {
        match &module(c, name).prober {
            ProberSettings::Http(h) => h.clone(),
            other => panic!("not http: {}", other.name()),
        }
    }

    fn tcp(c: &Config, name: &str) -> TcpSettings {
        match &module(c, name).prober {
            ProberSettings::Tcp(t) => t.clone(),
            other => panic!("not tcp: {}", other.name()),
        }
    }

    fn ws(c: &Config, name: &str) -> WebSocketSettings {
        match &module(c, name).prober {
            ProberSettings::WebSocket(w) => w.clone(),
            other => panic!("not websocket: {}", other.name()),
        }
    }

    /// One http module named `m` with `body` indented under `http:`.
    fn http_module(body: &str) -> String {
        let mut s = String::from("modules:\n  m:\n    prober: http\n    http:\n");
        for line in body.lines() {
            s.push_str("      ");
            s.push_str(line);
            s.push('\n');
        }
        s
    }

    fn ws_module(body: &str) -> String {
        let mut s = String::from("modules:\n  w:\n    prober: websocket\n    websocket:\n");
        for line in body.lines() {
            s.push_str("      ");
            s.push_str(line);
            s.push('\n');
        }
        s
    }

    fn assert_contains(haystack: &str, needles: &[&str]) {
        for n in needles {
            assert!(haystack.contains(n), "{n:?} not in:\n{haystack}");
        }
    }

    #[test]
    fn default_config_loads() {
        let c = default_config();
        let names: Vec<&str> = c.modules.keys().map(String::as_str).collect();
        for want in [
            "http_2xx",
            "http_post_2xx",
            "tcp_connect",
            "tls_connect",
            "ws_upgrade",
            "wss_upgrade_ping",
        ] {
            assert!(names.contains(&want), "{want} missing");
            assert_eq!(module(&c, want).timeout, Some(Duration::from_secs(5)));
        }
        assert_eq!(http(&c, "http_post_2xx").method, http::Method::POST);
        assert_eq!(http(&c, "http_2xx").method, http::Method::GET);
        assert!(ws(&c, "wss_upgrade_ping").ping);
        assert!(!ws(&c, "ws_upgrade").ping);
        assert!(matches!(
            module(&c, "tls_connect").prober,
            ProberSettings::Tls(_)
        ));
        assert!(c.masked_yaml.contains("wss_upgrade_ping"));
    }

    #[test]
    fn empty_and_null_modules() {
        assert!(load("").map(|c| c.modules.is_empty()).unwrap_or(false));
        assert!(
            load("modules:\n")
                .map(|c| c.modules.is_empty())
                .unwrap_or(false)
        );
        assert!(
            load("modules: {}\n")
                .map(|c| c.modules.is_empty())
                .unwrap_or(false)
        );
    }

    #[test]
    fn blackbox_http_example_module() {
        let yaml = r#"
modules:
  http_2xx_example:
    prober: http
    timeout: 5s
    http:
      valid_http_versions: ["HTTP/1.1", "HTTP/2.0"]
      valid_status_codes: [200, 204]
      method: GET
      headers:
        Host: vhost.example.com
        Accept-Language: en-US
        Origin: example.com
      no_follow_redirects: false
      fail_if_ssl: false
      fail_if_not_ssl: false
      fail_if_body_matches_regexp:
        - "Could not connect to database"
      fail_if_body_not_matches_regexp:
        - "Download the latest version here"
      fail_if_header_matches:
        - header: Set-Cookie
          allow_missing: true
          regexp: '.*'
      fail_if_header_not_matches:
        - header: Access-Control-Allow-Origin
          regexp: '(\*|example\.com)'
      tls_config:
        insecure_skip_verify: false
        server_name: vhost.example.com
        min_version: TLS12
      preferred_ip_protocol: "ip4"
      ip_protocol_fallback: false
      basic_auth:
        username: "username"
        password: "mysecret"
      body_size_limit: 1MB
      compression: gzip
"#;
        let c = load(yaml).expect("loads");
        let m = module(&c, "http_2xx_example");
        assert_eq!(m.timeout, Some(Duration::from_secs(5)));
        let h = http(&c, "http_2xx_example");
        assert_eq!(h.valid_status_codes, vec![200, 204]);
        assert_eq!(h.valid_http_versions, vec!["HTTP/1.1", "HTTP/2.0"]);
        assert_eq!(h.method, http::Method::GET);
        assert_eq!(h.host.as_deref(), Some("vhost.example.com"));
        let names: Vec<&str> = h.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["accept-language", "origin"]);
        assert!(h.client.follow_redirects);
        assert_eq!(h.fail_if_body_matches_regexp.len(), 1);
        assert!(h.fail_if_body_matches_regexp[0].is_match(b"xx Could not connect to database"));
        assert_eq!(h.fail_if_header_matches[0].header.as_str(), "set-cookie");
        assert!(h.fail_if_header_matches[0].allow_missing);
        assert!(!h.fail_if_header_not_matches[0].allow_missing);
        assert_eq!(h.address.preferred, IpProtocol::V4);
        assert!(!h.address.fallback);
        assert_eq!(h.body_size_limit, Some(1 << 20));
        assert_eq!(h.compression, Some(Compression::Gzip));
        let tls = &h.client.tls.settings;
        assert_eq!(tls.server_name.as_deref(), Some("vhost.example.com"));
        assert_eq!(tls.min_version, Some(TlsVersion::Tls12));
        match &h.client.authorization {
            Some(Authorization::Basic {
                username: SecretSource::Inline(u),
                password: Some(SecretSource::Inline(p)),
            }) => assert_eq!((u.as_str(), p.as_str()), ("username", "mysecret")),
            other => panic!("unexpected authorization {other:?}"),
        }
        assert!(!m.masked_yaml.contains("mysecret"));
        assert!(m.masked_yaml.contains("password: <secret>"));
    }

    #[test]
    fn http_defaults() {
        let c = load("modules:\n  m:\n    prober: http\n").expect("loads");
        let h = http(&c, "m");
        assert_eq!(h.method, http::Method::GET);
        assert_eq!(h.address, AddressPolicy::default());
        assert!(h.client.follow_redirects);
        assert!(h.client.enable_http2);
        assert!(h.client.authorization.is_none());
        assert!(h.client.proxy.is_none());
        assert!(matches!(h.body, RequestBody::None));
        assert_eq!(h.body_size_limit, None);
        assert_eq!(module(&c, "m").timeout, None);
        let masked = &module(&c, "m").masked_yaml;
        assert_contains(
            masked,
            &[
                "prober: http",
                "method: GET",
                "follow_redirects: true",
                "enable_http2: true",
                "preferred_ip_protocol: ip6",
                "ip_protocol_fallback: true",
            ],
        );
    }

    #[test]
    fn no_follow_redirects_takes_precedence() {
        let c = load(&http_module(
            "follow_redirects: true\nno_follow_redirects: true",
        ))
        .expect("loads");
        assert!(!http(&c, "m").client.follow_redirects);
        let c = load(&http_module("follow_redirects: false")).expect("loads");
        assert!(!http(&c, "m").client.follow_redirects);
    }

    #[test]
    fn unknown_key_names_the_line() {
        let e = load_err("modules:\n  m:\n    prober: http\n    http:\n      methd: GET\n");
        assert_contains(&e, &["line 5", "methd"]);
        let e = load_err("modules:\n  m:\n    prober: http\n    labels: x\n");
        assert_contains(&e, &["line 4", "labels"]);
        let e = load_err("modulez:\n  m:\n    prober: http\n");
        assert_contains(&e, &["line 1", "modulez"]);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = load_err("modules:\n  m:\n    prober: http\n    prober: tcp\n");
        assert_contains(&e, &["line 4", "duplicate"]);
        let e = load_err("modules:\n  m:\n    prober: http\n  m:\n    prober: tcp\n");
        assert_contains(&e, &["line 4", "duplicate"]);
        let e = load_err(&http_module("headers:\n  X-A: a\n  X-A: b"));
        assert_contains(&e, &["duplicate"]);
    }

    #[test]
    fn type_errors_name_the_line() {
        let e = load_err(&http_module("valid_status_codes: 200"));
        assert_contains(&e, &["line 5"]);
    }

    #[test]
    fn prober_validation() {
        let e = load_err("modules:\n  bad:\n    prober: htp\n");
        assert_contains(&e, &["module \"bad\"", "prober", "unknown prober \"htp\""]);
        let e = load_err("modules:\n  bad:\n    timeout: 5s\n");
        assert_contains(&e, &["module \"bad\"", "prober must be set"]);
        // blackbox's other probers load (their blocks unchecked) and are
        // refused when probed.
        let c = load(
            "modules:\n  d:\n    prober: dns\n    dns:\n      query_name: example.com\n  i:\n    prober: icmp\n    timeout: 5s\n    icmp:\n      ttl: 5\n",
        )
        .expect("loads");
        assert!(matches!(&module(&c, "d").prober, ProberSettings::Unimplemented(p) if p == "dns"));
        assert_eq!(module(&c, "i").prober.name(), "icmp");
        assert!(!module(&c, "i").masked_yaml.contains("ttl"));
    }

    #[test]
    fn timeout_validation() {
        for (t, needle) in [
            ("1d", "unknown unit \"d\""),
            ("5", "missing unit"),
            ("-5s", "negative"),
        ] {
            let e = load_err(&format!(
                "modules:\n  m:\n    prober: tcp\n    timeout: {t}\n"
            ));
            assert_contains(&e, &["module \"m\"", "timeout", needle]);
        }
        let c = load("modules:\n  m:\n    prober: tcp\n    timeout: 1m30s\n").expect("loads");
        assert_eq!(module(&c, "m").timeout, Some(Duration::from_secs(90)));
        let c = load("modules:\n  m:\n    prober: tcp\n    timeout: 0\n").expect("loads");
        assert_eq!(module(&c, "m").timeout, None);
    }

    #[test]
    fn invalid_regexes_name_module_and_key() {
        let e = load_err(&http_module(
            "fail_if_body_matches_regexp: ['ok', '(unclosed']",
        ));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                "http.fail_if_body_matches_regexp[1]",
                "(unclosed",
            ],
        );
        let e = load_err(&http_module(
            "fail_if_header_not_matches:\n  - header: X\n    regexp: '['",
        ));
        assert_contains(
            &e,
            &["http.fail_if_header_not_matches[0]", "invalid regexp"],
        );
        let e = load_err(&http_module("fail_if_header_matches:\n  - regexp: 'x'"));
        assert_contains(&e, &["header name must be set for HTTP header matchers"]);
        let e = load_err(&http_module("fail_if_header_matches:\n  - header: X"));
        assert_contains(&e, &["regexp must be set for HTTP header matchers"]);
        let e = load_err(
            "modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: '+'\n",
        );
        assert_contains(&e, &["module \"t\"", "tcp.query_response[0].expect"]);
        let e = load_err(&ws_module("query_response:\n  - expect: '(?P<'"));
        assert_contains(&e, &["module \"w\"", "websocket.query_response[0].expect"]);
    }

    #[test]
    fn body_and_body_file_are_exclusive() {
        let e = load_err(&http_module("body: x\nbody_file: /tmp/x"));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                "setting body and body_file both are not allowed",
            ],
        );
        let c = load(&http_module("body_file: req.json")).expect("loads");
        match http(&c, "m").body {
            RequestBody::File(p) => assert_eq!(p, Path::new(BASE).join("req.json")),
            other => panic!("unexpected body {other:?}"),
        }
        let c = load(&http_module("method: POST\nbody: '{\"a\": 1}'")).expect("loads");
        match http(&c, "m").body {
            RequestBody::Inline(b) => assert_eq!(&b[..], b"{\"a\": 1}"),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[test]
    fn compression_checks() {
        let e = load_err(&http_module(
            "compression: gzip\nheaders:\n  Accept-Encoding: br",
        ));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                r#"invalid configuration "Accept-Encoding: br", "compression: gzip""#,
            ],
        );
        let e = load_err(&http_module(
            "compression: gzip\nheaders:\n  Accept-Encoding: 'gzip;q=0, br'",
        ));
        assert_contains(&e, &["invalid configuration"]);
        for ok in ["gzip", "br, gzip;q=0.5", "*", "identity;q=1, *;q=0.1"] {
            load(&http_module(&format!(
                "compression: gzip\nheaders:\n  Accept-Encoding: '{ok}'"
            )))
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let e = load_err(&http_module("compression: zstd"));
        assert_contains(&e, &["http.compression", "zstd"]);
        let c = load(&http_module("compression: BR")).expect("loads");
        assert_eq!(http(&c, "m").compression, Some(Compression::Brotli));
    }

    #[test]
    fn header_validation_and_host() {
        let c = load(&http_module(
            "headers:\n  host: example.org\n  User-Agent: probe\n",
        ))
        .expect("loads");
        let h = http(&c, "m");
        assert_eq!(h.host.as_deref(), Some("example.org"));
        assert_eq!(h.headers.len(), 1);
        let e = load_err(&http_module("headers:\n  'Bad Name': x"));
        assert_contains(&e, &["module \"m\"", "http.headers", "invalid header name"]);
        let e = load_err(&http_module("headers:\n  X-A: \"a\\nb\""));
        assert_contains(&e, &["http.headers", "invalid value for header"]);
        let e = load_err(&http_module("headers:\n  X-A: a\n  x-a: b"));
        assert_contains(&e, &["set twice"]);
        let e = load_err(&http_module("method: 'GE T'"));
        assert_contains(&e, &["http.method"]);
    }

    #[test]
    fn auth_rules_follow_prometheus_common() {
        let e = load_err(&http_module(
            "basic_auth:\n  username: u\nauthorization:\n  credentials: c",
        ));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                "http.authorization",
                "at most one of basic_auth, oauth2 & authorization must be configured",
            ],
        );
        let e = load_err(&http_module(
            "authorization:\n  type: Basic\n  credentials: c",
        ));
        assert_contains(
            &e,
            &[r#"authorization type cannot be set to "basic", use "basic_auth" instead"#],
        );
        let e = load_err(&http_module("bearer_token: a\nbearer_token_file: b"));
        assert_contains(
            &e,
            &["at most one of bearer_token & bearer_token_file must be configured"],
        );
        let e = load_err(&http_module("basic_auth:\n  username: u\nbearer_token: a"));
        assert_contains(
            &e,
            &[
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
            ],
        );
        let e = load_err(&http_module(
            "authorization:\n  credentials: c\nbearer_token: a",
        ));
        assert_contains(
            &e,
            &["authorization is not compatible with bearer_token & bearer_token_file"],
        );
        let e = load_err(&http_module(
            "basic_auth:\n  password: p\n  password_file: f",
        ));
        assert_contains(&e, &["http.basic_auth", "password_file"]);

        let c = load(&http_module("bearer_token: tok")).expect("loads");
        match http(&c, "m").client.authorization {
            Some(Authorization::Scheme {
                scheme,
                credentials: SecretSource::Inline(t),
            }) => assert_eq!((scheme.as_str(), t.as_str()), ("Bearer", "tok")),
            other => panic!("unexpected {other:?}"),
        }
        let c = load(&http_module("bearer_token_file: tok.txt")).expect("loads");
        match http(&c, "m").client.authorization {
            Some(Authorization::Scheme {
                scheme,
                credentials: SecretSource::File(p),
            }) => {
                assert_eq!(scheme, "Bearer");
                assert_eq!(p, Path::new(BASE).join("tok.txt"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let c = load(&http_module(
            "authorization:\n  type: Token\n  credentials_file: /abs/creds",
        ))
        .expect("loads");
        match http(&c, "m").client.authorization {
            Some(Authorization::Scheme {
                scheme,
                credentials: SecretSource::File(p),
            }) => {
                assert_eq!(scheme, "Token");
                assert_eq!(p, PathBuf::from("/abs/creds"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let c = load(&http_module("basic_auth:\n  username: u")).expect("loads");
        assert!(matches!(
            http(&c, "m").client.authorization,
            Some(Authorization::Basic { password: None, .. })
        ));
    }

    #[test]
    fn http_headers_reserved_names() {
        let e = load_err(&http_module(
            "http_headers:\n  authorization:\n    values: [x]",
        ));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                "http.http_headers",
                r#"setting header "Authorization" is not allowed"#,
            ],
        );
        let e = load_err(&http_module(
            "http_headers:\n  X-Prometheus-Scrape-Timeout-Seconds:\n    values: ['1']",
        ));
        assert_contains(&e, &["is not allowed"]);
        let c = load(&http_module(
            "http_headers:\n  X-Token:\n    values: [a]\n    secrets: [s]\n    files: [tok]",
        ))
        .expect("loads");
        let eh = &http(&c, "m").client.extra_headers;
        assert_eq!(eh.len(), 1);
        assert_eq!(eh[0].name.as_str(), "x-token");
        assert_eq!(eh[0].values, vec!["a"]);
        assert_eq!(eh[0].secrets, vec!["s"]);
        assert_eq!(eh[0].files, vec![Path::new(BASE).join("tok")]);
    }

    #[test]
    fn proxy_rules() {
        let e = load_err(&http_module("proxy_url: socks5://127.0.0.1:1080"));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                "http.proxy_url",
                "socks5",
                "not supported by handshake_exporter",
            ],
        );
        let e = load_err(&http_module("proxy_url: ftp://proxy:21"));
        assert_contains(&e, &["http.proxy_url", "ftp"]);
        let e = load_err(&http_module("no_proxy: example.com"));
        assert_contains(
            &e,
            &["if no_proxy is configured, proxy_url must also be configured"],
        );
        let e = load_err(&http_module(
            "proxy_connect_header:\n  Proxy-Authorization: [x]",
        ));
        assert_contains(
            &e,
            &[
                "proxy_connect_header",
                "proxy_url or proxy_from_environment",
            ],
        );
        let e = load_err(&http_module(
            "proxy_from_environment: true\nproxy_url: http://p:3128",
        ));
        assert_contains(
            &e,
            &["if proxy_from_environment is configured, proxy_url must not be configured"],
        );
        let c = load(&http_module(
            "proxy_url: http://proxy:3128\nno_proxy: 'localhost, .internal,10.0.0.0/8'\nproxy_connect_header:\n  Proxy-Authorization: ['Basic abc', 'x']\nskip_resolve_phase_with_proxy: true",
        ))
        .expect("loads");
        let h = http(&c, "m");
        assert!(h.skip_resolve_phase_with_proxy);
        let p = h.client.proxy.expect("proxy");
        assert_eq!(
            p.url.map(|u| u.to_string()).as_deref(),
            Some("http://proxy:3128/")
        );
        assert_eq!(p.no_proxy, vec!["localhost", ".internal", "10.0.0.0/8"]);
        assert_eq!(p.connect_headers.len(), 2);
        assert!(!p.from_environment);
        let c = load(&http_module("proxy_from_environment: true")).expect("loads");
        assert!(
            http(&c, "m")
                .client
                .proxy
                .is_some_and(|p| p.from_environment && p.url.is_none())
        );
    }

    #[test]
    fn unsupported_keys_say_so() {
        for (body, key) in [
            ("enable_http3: true", "enable_http3"),
            ("oauth2:\n  client_id: x\n  token_url: http://t", "oauth2"),
            (
                "fail_if_body_json_matches_cel: 'body.ok == false'",
                "fail_if_body_json_matches_cel",
            ),
            (
                "fail_if_body_json_not_matches_cel: 'body.ok'",
                "fail_if_body_json_not_matches_cel",
            ),
        ] {
            let e = load_err(&http_module(body));
            assert_contains(
                &e,
                &[
                    "module \"m\"",
                    &format!("{key} is not supported by handshake_exporter"),
                ],
            );
        }
        load(&http_module("enable_http3: false")).expect("false is fine");
    }

    #[test]
    fn ip_protocol_validation() {
        let e = load_err(&http_module("preferred_ip_protocol: ipv4"));
        assert_contains(&e, &["http.preferred_ip_protocol", "ipv4"]);
    }

    #[test]
    fn body_size_limit_forms() {
        for (v, want) in [
            ("10MB", Some(10 << 20)),
            ("1KiB", Some(1024)),
            ("512", Some(512)),
            ("'512'", Some(512)),
            ("1GB", Some(1 << 30)),
            ("0", None),
            ("-1", None),
        ] {
            let c = load(&http_module(&format!("body_size_limit: {v}"))).expect("loads");
            assert_eq!(http(&c, "m").body_size_limit, want, "{v}");
        }
        let e = load_err(&http_module("body_size_limit: 10XB"));
        assert_contains(&e, &["http.body_size_limit", "XB"]);
    }

    #[test]
    fn tls_config_rules() {
        let e = load_err(&http_module("tls_config:\n  min_version: TLS10"));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                "http.tls_config.min_version",
                "TLS10 is not supported by handshake_exporter",
            ],
        );
        let e = load_err(&http_module("tls_config:\n  max_version: TLS11"));
        assert_contains(&e, &["max_version", "TLS11 is not supported"]);
        let e = load_err(&http_module("tls_config:\n  min_version: SSL3"));
        assert_contains(&e, &["unknown TLS version: SSL3"]);
        let e = load_err(&http_module("tls_config:\n  ca: x\n  ca_file: y"));
        assert_contains(
            &e,
            &["at most one of ca, ca_file & ca_ref must be configured"],
        );
        let e = load_err(&http_module("tls_config:\n  cert_file: c.pem"));
        assert_contains(
            &e,
            &[
                "exactly one of key or key_file must be configured when a client certificate is configured",
            ],
        );
        let e = load_err(&http_module("tls_config:\n  key_file: k.pem"));
        assert_contains(&e, &["exactly one of cert or cert_file"]);
        let e = load_err(&http_module(
            "tls_config:\n  min_version: TLS13\n  max_version: TLS12",
        ));
        assert_contains(
            &e,
            &["module \"m\"", "min_version is greater than max_version"],
        );
        let e = load_err(&http_module("tls_config:\n  ca_file: missing-ca.pem"));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                "http.tls_config.ca_file",
                "missing-ca.pem",
                BASE,
            ],
        );
        let e = load_err(
            "modules:\n  t:\n    prober: tls\n    tls:\n      tls_config:\n        ca: 'not a pem'\n",
        );
        assert_contains(&e, &["module \"t\"", "tls: tls_config:"]);
    }

    #[test]
    fn tls_files_are_read_relative_to_the_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
        std::fs::write(dir.path().join("ca.pem"), ck.cert.pem()).expect("write");
        std::fs::write(dir.path().join("client.pem"), ck.cert.pem()).expect("write");
        std::fs::write(
            dir.path().join("client.key"),
            ck.signing_key.serialize_pem(),
        )
        .expect("write");
        std::fs::write(
            dir.path().join("bad.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
        )
        .expect("write");
        let yaml = "modules:\n  t:\n    prober: tcp\n    tcp:\n      tls: true\n      tls_config:\n        ca_file: ca.pem\n        cert_file: client.pem\n        key_file: client.key\n        server_name: localhost\n";
        let path = dir.path().join("blackbox.yml");
        std::fs::write(&path, yaml).expect("write");
        let c = load_file(&path).expect("loads");
        let t = tcp(&c, "t");
        assert!(t.tls);
        assert!(t.tls_client.settings.ca_pem.is_some());
        assert!(t.tls_client.settings.client_cert_pem.is_some());

        std::fs::write(&path, yaml.replace("ca.pem", "bad.pem")).expect("write");
        let e = match load_file(&path) {
            Ok(_) => panic!("bad CA loaded"),
            Err(e) => e.to_string(),
        };
        assert_contains(&e, &["module \"t\"", "tls_config", "bad.pem"]);

        let inline = format!(
            "modules:\n  t:\n    prober: tls\n    tls:\n      tls_config:\n        cert: |\n{}        key: |\n{}",
            indent(&ck.cert.pem(), 10),
            indent(&ck.signing_key.serialize_pem(), 10)
        );
        let c = load(&inline).expect("inline cert/key load");
        let masked = &module(&c, "t").masked_yaml;
        assert!(masked.contains("key: <secret>"), "{masked}");
        assert!(!masked.contains("PRIVATE KEY"), "{masked}");
        assert!(masked.contains("BEGIN CERTIFICATE"), "{masked}");
    }

    fn indent(text: &str, n: usize) -> String {
        text.lines()
            .map(|l| format!("{}{l}\n", " ".repeat(n)))
            .collect()
    }

    #[test]
    fn missing_config_file_is_a_read_error() {
        let e = load_file(Path::new("/nonexistent/blackbox.yml"));
        assert!(matches!(e, Err(ConfigError::Read { .. })));
    }

    #[test]
    fn tcp_query_response() {
        let yaml = r#"
modules:
  pg:
    prober: tcp
    tcp:
      preferred_ip_protocol: ip4
      source_ip_address: 127.0.0.1
      query_response:
        - send: !!binary AAAACATSFi8=
        - expect_bytes: S
          starttls: true
  irc:
    prober: tcp
    tcp:
      query_response:
        - send: "NICK prober"
        - expect: "^:[^ ]+ 001"
        - expect: "^PING :(?P<token>.+)"
          send: "PONG ${token}"
          labels:
            - name: token
              value: "${token}"
"#;
        let c = load(yaml).expect("loads");
        let pg = tcp(&c, "pg");
        assert_eq!(pg.address.preferred, IpProtocol::V4);
        assert_eq!(pg.source_ip_address, Some("127.0.0.1".parse().expect("ip")));
        assert_eq!(
            pg.query_response[0].send.as_deref(),
            Some(&[0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f][..])
        );
        assert_eq!(
            pg.query_response[1].expect_bytes.as_deref(),
            Some(&b"S"[..])
        );
        assert!(pg.query_response[1].starttls);
        // The masked config keeps the payload as !!binary.
        assert!(
            module(&c, "pg").masked_yaml.contains("AAAACATSFi8="),
            "{}",
            module(&c, "pg").masked_yaml
        );
        let c2 = load("modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n        - send: ''\n")
            .expect("loads");
        assert_eq!(tcp(&c2, "t").query_response[0].send, None);
        let irc = tcp(&c, "irc");
        assert_eq!(
            irc.query_response[2].send.as_deref(),
            Some(&b"PONG ${token}"[..])
        );
        assert_eq!(
            irc.query_response[2].labels,
            vec![("token".to_string(), "${token}".to_string())]
        );

        let e = load_err(
            "modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: a\n          expect_bytes: b\n",
        );
        assert_contains(
            &e,
            &[
                "module \"t\"",
                "tcp.query_response[0]",
                "mutually exclusive",
            ],
        );
        let e = load_err(
            "modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: a\n          labels: [{name: 'bad-name', value: x}]\n",
        );
        assert_contains(&e, &["tcp.query_response[0].labels", "bad-name"]);
        let e =
            load_err("modules:\n  t:\n    prober: tcp\n    tcp:\n      source_ip_address: nope\n");
        assert_contains(&e, &["tcp.source_ip_address", "nope"]);
        let e = load_err(
            "modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n        - send: !!binary '***'\n",
        );
        assert_contains(&e, &["!!binary"]);
    }

    #[test]
    fn websocket_blackbox_master_module() {
        let yaml = r#"
modules:
  websocket_example:
    prober: websocket
    timeout: 10s
    websocket:
      http_config:
        tls_config:
          insecure_skip_verify: true
        basic_auth:
          username: user
          password_file: pass.txt
        follow_redirects: false
        enable_http2: false
      headers:
        Origin:
          values: ["https://example.com"]
        X-Api-Key:
          secrets: ["s3cr3t"]
        X-Plain: "my_header"
      query_response:
        - expect: "^hello (.+)"
          send: "hi ${1}"
        - send: "ping"
"#;
        let c = load(yaml).expect("loads");
        let w = ws(&c, "websocket_example");
        assert!(w.client.tls.settings.insecure_skip_verify);
        assert!(!w.client.follow_redirects);
        assert!(!w.client.enable_http2);
        match &w.client.authorization {
            Some(Authorization::Basic {
                username: SecretSource::Inline(u),
                password: Some(SecretSource::File(p)),
            }) => {
                assert_eq!(u, "user");
                assert_eq!(p, &Path::new(BASE).join("pass.txt"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(w.headers.len(), 1);
        assert_eq!(w.headers[0].0.as_str(), "x-plain");
        let names: Vec<&str> = w.extra_headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, vec!["origin", "x-api-key"]);
        assert_eq!(w.query_response.len(), 3);
        assert!(matches!(&w.query_response[0], WsStep::Expect(r) if r.is_match(b"hello bob")));
        assert!(
            matches!(&w.query_response[1], WsStep::SendText { text, expand_captures: true } if text == "hi ${1}")
        );
        assert!(
            matches!(&w.query_response[2], WsStep::SendText { text, expand_captures: false } if text == "ping")
        );
        let masked = &module(&c, "websocket_example").masked_yaml;
        assert!(!masked.contains("s3cr3t"), "{masked}");
        assert!(masked.contains("<secret>"), "{masked}");
    }

    #[test]
    fn websocket_inline_form_and_rules() {
        let c = load(&ws_module(
            "headers:\n  Origin: https://example.com\nbearer_token: tok\nsubprotocols: [graphql-ws, v2.json]\nfail_if_subprotocol_not_negotiated: true\nping: true\nquery_response:\n  - send_binary: !!binary AAECAw==\n  - expect: pong",
        ))
        .expect("loads");
        let w = ws(&c, "w");
        assert!(w.ping);
        assert_eq!(w.subprotocols, vec!["graphql-ws", "v2.json"]);
        assert!(matches!(&w.query_response[0], WsStep::SendBinary(b) if b == &[0, 1, 2, 3]));
        assert!(matches!(
            w.client.authorization,
            Some(Authorization::Scheme { ref scheme, .. }) if scheme == "Bearer"
        ));
        assert_eq!(w.address, AddressPolicy::default());

        let e = load_err(&ws_module(
            "tls_config:\n  insecure_skip_verify: true\nhttp_config:\n  follow_redirects: false",
        ));
        assert_contains(&e, &["module \"w\"", "websocket.http_config", "not both"]);
        let e = load_err(&ws_module("fail_if_subprotocol_not_negotiated: true"));
        assert_contains(&e, &["fail_if_subprotocol_not_negotiated", "subprotocols"]);
        let e = load_err(&ws_module("headers:\n  Upgrade: h2c"));
        assert_contains(&e, &["websocket.headers", "Upgrade"]);
        let e = load_err(&ws_module("headers:\n  Sec-WebSocket-Protocol: x"));
        assert_contains(&e, &["subprotocols"]);
        let e = load_err(&ws_module("subprotocols: ['a b']"));
        assert_contains(&e, &["websocket.subprotocols[0]"]);
        let e = load_err(&ws_module(
            "query_response:\n  - send: a\n    send_binary: b",
        ));
        assert_contains(&e, &["websocket.query_response[0]", "mutually exclusive"]);
        let e = load_err(&ws_module("query_response:\n  - expect_bytes: a"));
        assert_contains(&e, &["expect_bytes is not supported by handshake_exporter"]);
        let e = load_err(&ws_module("http_config:\n  oauth2:\n    client_id: x"));
        assert_contains(
            &e,
            &["websocket.http_config.oauth2", "oauth2 is not supported"],
        );
        let e = load_err(&ws_module("proxy_url: socks5h://p:1080"));
        assert_contains(&e, &["websocket.proxy_url", "not supported"]);
        let c = load(&ws_module("query_response:\n  - send: !!binary aGk=")).expect("loads");
        assert!(
            matches!(&ws(&c, "w").query_response[0], WsStep::SendText { text, .. } if text == "hi")
        );
        let e = load_err(&ws_module(
            "query_response:\n  - send: !!binary AAAACATSFi8=",
        ));
        assert_contains(&e, &["websocket.query_response[0].send", "send_binary"]);
        let e = load_err(&ws_module("pingg: true"));
        assert_contains(&e, &["line 5", "pingg"]);
    }

    #[test]
    fn masked_yaml_hides_every_secret() {
        let yaml = r#"
modules:
  a:
    prober: http
    http:
      basic_auth:
        username: alice
        password: pw-basic-SECRET
      proxy_url: http://proxy:3128
      proxy_connect_header:
        Proxy-Authorization: ["Basic proxy-SECRET"]
      http_headers:
        X-Token:
          values: [visible-value]
          secrets: [hdr-SECRET]
  b:
    prober: http
    http:
      authorization:
        credentials: authz-SECRET
  c:
    prober: http
    http:
      bearer_token: bearer-SECRET
      proxy_url: http://user:proxypw-SECRET@proxy:3128
      headers:
        Authorization: Bearer plain-hdr-SECRET
  d:
    prober: websocket
    websocket:
      http_config:
        bearer_token: ws-bearer-SECRET
        http_headers:
          X-K:
            secrets: [ws-hdr-SECRET]
      headers:
        X-Api-Key:
          secrets: [ws-structured-SECRET]
  e:
    prober: websocket
    websocket:
      authorization:
        type: Token
        credentials: ws-inline-SECRET
"#;
        let c = load(yaml).expect("loads");
        let mut all = c.masked_yaml.clone();
        for m in c.modules.values() {
            all.push_str(&m.masked_yaml);
        }
        assert!(!all.contains("SECRET"), "{all}");
        assert_contains(&all, &["<secret>", "alice", "visible-value", "type: Token"]);
        // The masked whole config is still a valid config document.
        let reparsed = parse(&c.masked_yaml).expect("masked yaml parses");
        assert_eq!(reparsed.modules.map(|m| m.0.len()), Some(5));
        assert!(c.masked_yaml.starts_with("modules:\n"));
    }
}
