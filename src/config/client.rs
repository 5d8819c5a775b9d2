//! prometheus/common's HTTP client config (`tls_config`, `basic_auth`,
//! `authorization`, `bearer_token`, proxies, `http_headers` ...): the keys
//! as written, their validation, and the settings the http and websocket
//! probers (and every later HTTP-based prober) send requests with.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::file::{OrderedMap, Scalar, Unsupported, is_default};
use super::load::{ConfigError, Ctx, non_empty};
use super::tls::TlsConfigFile;
use super::tls::build_tls;
use crate::net::Secret;
use crate::net::proxy::{ProxySettings, ProxyUrl};
use crate::net::tls::TlsClient;

/// Calls `$then!` with `$args` followed by the client config keys, so the
/// list of keys is written once (here) and spliced wherever it is needed.
macro_rules! client_keys {
    ($($then:ident)::+ ! { $($args:tt)* }) => {
        $($then)::+ ! { $($args)*
            basic_auth: Option<$crate::config::client::BasicAuthFile>,
            authorization: Option<$crate::config::client::AuthorizationFile>,
            oauth2: Option<$crate::config::client::OAuth2File>,
            bearer_token: Option<$crate::net::Secret>,
            bearer_token_file: Option<String>,
            tls_config: Option<$crate::config::tls::TlsConfigFile>,
            proxy_url: Option<$crate::config::client::ProxyUrlText>,
            no_proxy: Option<String>,
            proxy_from_environment: bool,
            proxy_connect_header: $crate::config::file::OrderedMap<Vec<$crate::net::Secret>>,
            follow_redirects: Option<bool>,
            enable_http2: Option<bool>,
            http_headers: $crate::config::file::OrderedMap<$crate::config::client::HttpHeaderFile>,
        }
    };
}

/// Declares a block struct with the HTTP client keys inlined after its own
/// fields (blackbox inlines prometheus/common's `HTTPClientConfig` into its
/// `http:` block). serde cannot combine `flatten` with
/// `deny_unknown_fields`, so the keys are spliced in instead, from the one
/// list in `client_keys!`; [`InlineClientConfig::client_config`] gathers
/// them back into a [`ClientConfigFile`].
macro_rules! client_config_block {
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $crate::config::client::client_keys! {
            $crate::config::client::client_config_block_with_keys! {
                ($(#[$meta])*) $name { $($body)* }
            }
        }
    };
}

macro_rules! client_config_block_with_keys {
    (
        ( $(#[$meta:meta])* ) $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $fty:ty, )*
        }
        $( $key:ident : $kty:ty, )*
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $fty, )*
            $(
                #[serde(skip_serializing_if = "crate::config::file::is_default")]
                pub $key: $kty,
            )*
        }

        impl $crate::config::client::InlineClientConfig for $name {
            fn client_config(&self) -> $crate::config::client::ClientConfigFile {
                $crate::config::client::ClientConfigFile {
                    $( $key: self.$key.clone(), )*
                }
            }
        }
    };
}

pub(crate) use {client_config_block, client_config_block_with_keys, client_keys};

/// A block that carries the client config keys.
pub trait InlineClientConfig {
    fn client_config(&self) -> ClientConfigFile;
}

client_config_block! {
    /// prometheus/common `HTTPClientConfig` as a nested block (websocket
    /// `http_config:`), and the form every inlined block is read as.
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct ClientConfigFile {}
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuthFile {
    #[serde(skip_serializing_if = "is_default")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub username_file: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub password: Option<Secret>,
    #[serde(skip_serializing_if = "is_default")]
    pub password_file: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorizationFile {
    #[serde(rename = "type", skip_serializing_if = "is_default")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub credentials: Option<Secret>,
    #[serde(skip_serializing_if = "is_default")]
    pub credentials_file: Option<String>,
}

/// prometheus/common's `oauth2` block as written: the client credentials
/// grant (RFC 6749 §4.4), with its own `tls_config` and proxy keys for the
/// token endpoint. The JWT bearer grant's keys are known so that they are
/// refused by name.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuth2File {
    #[serde(skip_serializing_if = "is_default")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub client_secret: Option<Secret>,
    #[serde(skip_serializing_if = "is_default")]
    pub client_secret_file: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub scopes: Vec<String>,
    /// Shown with its password (if any) redacted, like `proxy_url`.
    #[serde(skip_serializing_if = "is_default")]
    pub token_url: Option<ProxyUrlText>,
    #[serde(skip_serializing_if = "is_default")]
    pub endpoint_params: OrderedMap<Scalar>,
    /// Only `client_credentials` (the default) is implemented.
    #[serde(skip_serializing_if = "is_default")]
    pub grant_type: Option<String>,
    /// JWT bearer grant (not implemented).
    #[serde(skip_serializing_if = "is_default")]
    pub client_certificate_key: Option<Secret>,
    #[serde(skip_serializing_if = "is_default")]
    pub client_certificate_key_file: Unsupported,
    #[serde(skip_serializing_if = "is_default")]
    pub client_certificate_key_id: Unsupported,
    #[serde(skip_serializing_if = "is_default")]
    pub signature_algorithm: Unsupported,
    #[serde(skip_serializing_if = "is_default")]
    pub iss: Unsupported,
    #[serde(skip_serializing_if = "is_default")]
    pub audience: Unsupported,
    #[serde(skip_serializing_if = "is_default")]
    pub claims: Unsupported,
    #[serde(skip_serializing_if = "is_default")]
    pub tls_config: Option<TlsConfigFile>,
    #[serde(skip_serializing_if = "is_default")]
    pub proxy_url: Option<ProxyUrlText>,
    #[serde(skip_serializing_if = "is_default")]
    pub no_proxy: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub proxy_from_environment: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub proxy_connect_header: OrderedMap<Vec<Secret>>,
}

/// One `http_headers` entry: values, secrets and files.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpHeaderFile {
    #[serde(skip_serializing_if = "is_default")]
    pub values: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub secrets: Vec<Secret>,
    #[serde(skip_serializing_if = "is_default")]
    pub files: Vec<String>,
}

/// `proxy_url` (and oauth2's `token_url`) as written. Shown (on `/config`,
/// in debug output and in error messages) with its password replaced by
/// `xxxxx`, as prometheus/common's `url.Redacted()` does.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct ProxyUrlText(pub String);

impl ProxyUrlText {
    pub fn redacted(&self) -> String {
        crate::net::userinfo::redact(&self.0)
    }
}

impl std::fmt::Debug for ProxyUrlText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl Serialize for ProxyUrlText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

// --- the settings a probe uses ----------------------------------------------

/// A secret value: inline or read from a file at probe time (prometheus/common
/// re-reads `*_file` on every request so rotated credentials are picked up).
#[derive(Debug, Clone)]
pub enum SecretSource {
    Inline(Secret),
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
    pub secrets: Vec<Secret>,
    pub files: Vec<PathBuf>,
}

/// A token fetched from an oauth2 token endpoint.
#[derive(Debug, Clone)]
pub struct CachedToken {
    /// The `Authorization` value: `<token_type> <access_token>`.
    pub authorization: Secret,
    /// When to fetch a new one (the token's expiry less 10 s, as
    /// golang.org/x/oauth2 does); None: the token did not say, and is used
    /// until the module is reloaded (clientcredentials' behaviour).
    pub refresh_at: Option<std::time::Instant>,
    /// The client secret it was fetched with: a rotated
    /// `client_secret_file` fetches a new token (as prometheus/common
    /// rebuilds its token source when the secret changes).
    pub fetched_with: Secret,
}

/// How the client authenticates to the token endpoint, found out on the
/// first fetch as golang.org/x/oauth2 does (HTTP basic auth first, then
/// the credentials in the form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthStyle {
    #[default]
    Unknown,
    InHeader,
    InParams,
}

/// The cache of one module's oauth2 token. It is built with the module at
/// load, so a reload (which builds every module anew) never reuses a token
/// fetched for an older config. The lock is held only while a token is
/// fetched: concurrent probes share one fetch.
#[derive(Debug, Default)]
pub struct TokenCache {
    pub token: tokio::sync::Mutex<Option<CachedToken>>,
    pub auth_style: std::sync::Mutex<AuthStyle>,
}

/// A validated `oauth2` block: the client credentials grant.
#[derive(Debug)]
pub struct OAuth2Settings {
    pub client_id: String,
    /// None: no secret (an empty one).
    pub client_secret: Option<SecretSource>,
    pub scopes: Vec<String>,
    /// http or https, without user info.
    pub token_url: url::Url,
    /// `endpoint_params`, in file order.
    pub endpoint_params: Vec<(String, String)>,
    /// The token endpoint's own `tls_config`, built at load.
    pub tls: Arc<TlsClient>,
    /// The token endpoint's own proxy keys.
    pub proxy: Option<ProxySettings>,
    pub cache: TokenCache,
}

/// The prometheus/common HTTP client config, as far as a probe uses it.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub authorization: Option<Authorization>,
    /// `oauth2`: a token fetched per module (exclusive with
    /// `authorization`).
    pub oauth2: Option<Arc<OAuth2Settings>>,
    pub tls: Arc<TlsClient>,
    pub proxy: Option<ProxySettings>,
    pub follow_redirects: bool,
    pub enable_http2: bool,
    pub extra_headers: Vec<ExtraHeader>,
}

// --- validation -------------------------------------------------------------

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

/// Go's `textproto.CanonicalMIMEHeaderKey` for names made of token chars.
pub fn canonical_header_key(name: &str) -> String {
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

pub fn header_name(ctx: &Ctx<'_>, key: &str, name: &str) -> Result<http::HeaderName, ConfigError> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ctx.err(key, format!("invalid header name {name:?}")))
}

pub fn header_value(
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
pub fn extra_headers(
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
        for v in &h.values {
            header_value(ctx, key, name, v)?;
        }
        for v in &h.secrets {
            header_value(ctx, key, name, v.expose())?;
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

fn non_empty_secret(s: &Option<Secret>) -> Option<&Secret> {
    s.as_ref().filter(|s| !s.is_empty())
}

/// prometheus/common `HTTPClientConfig.Validate` plus building the client
/// settings. `block` is the key path of the config (`http`, `websocket`,
/// `websocket.http_config`).
pub fn build_client(
    ctx: &Ctx<'_>,
    block: &str,
    c: &ClientConfigFile,
) -> Result<ClientSettings, ConfigError> {
    let bearer = non_empty_secret(&c.bearer_token);
    let bearer_file = non_empty(&c.bearer_token_file);
    let has_bearer = bearer.is_some() || bearer_file.is_some();
    if bearer.is_some() && bearer_file.is_some() {
        return Err(ctx.err(
            format!("{block}.bearer_token"),
            "at most one of bearer_token & bearer_token_file must be configured",
        ));
    }
    if (c.basic_auth.is_some() || c.oauth2.is_some()) && has_bearer {
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
        if non_empty_secret(&b.password).is_some() && non_empty(&b.password_file).is_some() {
            return Err(ctx.err(
                &key,
                "at most one of basic_auth password, password_file & password_ref must be configured",
            ));
        }
        let username = match non_empty(&b.username_file) {
            Some(f) => SecretSource::File(ctx.resolve(f)),
            None => SecretSource::Inline(Secret::new(b.username.clone().unwrap_or_default())),
        };
        let password = match (non_empty(&b.password_file), non_empty_secret(&b.password)) {
            (Some(f), _) => Some(SecretSource::File(ctx.resolve(f))),
            (None, Some(p)) => Some(SecretSource::Inline(p.clone())),
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
        let creds = non_empty_secret(&a.credentials);
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
        if c.basic_auth.is_some() || c.oauth2.is_some() {
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
                credentials: SecretSource::Inline(v.clone()),
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
            credentials: SecretSource::Inline(t.clone()),
        });
    }

    if c.basic_auth.is_some() && c.oauth2.is_some() {
        return Err(ctx.err(
            format!("{block}.oauth2"),
            "at most one of basic_auth, oauth2 & authorization must be configured",
        ));
    }
    let oauth2 = c
        .oauth2
        .as_ref()
        .map(|o| build_oauth2(ctx, &format!("{block}.oauth2"), o))
        .transpose()?
        .map(Arc::new);

    let proxy = build_proxy(
        ctx,
        block,
        ProxyKeys {
            url: &c.proxy_url,
            no_proxy: &c.no_proxy,
            from_environment: c.proxy_from_environment,
            connect_header: &c.proxy_connect_header,
        },
    )?;
    let tls = build_tls(ctx, block, c.tls_config.as_ref())?;
    let extra_headers = extra_headers(
        ctx,
        &format!("{block}.http_headers"),
        &c.http_headers.0,
        true,
    )?;
    Ok(ClientSettings {
        authorization,
        oauth2,
        tls,
        proxy,
        follow_redirects: c.follow_redirects.unwrap_or(true),
        enable_http2: c.enable_http2.unwrap_or(true),
        extra_headers,
    })
}

/// The grant types of prometheus/common; only the first is implemented.
const CLIENT_CREDENTIALS: &str = "client_credentials";

/// prometheus/common's `oauth2` checks (`HTTPClientConfig.Validate` and the
/// block's own proxy validation), plus what Go would only find out at
/// request time: the token URL parses as http(s), `endpoint_params` do not
/// overwrite `scope`.
fn build_oauth2(ctx: &Ctx<'_>, key: &str, o: &OAuth2File) -> Result<OAuth2Settings, ConfigError> {
    match o.grant_type.as_deref().map(str::trim) {
        None | Some("") | Some(CLIENT_CREDENTIALS) => {}
        Some(other) => {
            return Err(ctx.err(
                format!("{key}.grant_type"),
                format!(
                    "grant_type {other:?} is not supported by handshake_exporter (only {CLIENT_CREDENTIALS})"
                ),
            ));
        }
    }
    if o.client_certificate_key
        .as_ref()
        .is_some_and(|k| !k.is_empty())
    {
        return Err(ctx.unsupported(&format!("{key}.client_certificate_key")));
    }
    for (name, set) in [
        ("client_certificate_key_file", o.client_certificate_key_file),
        ("client_certificate_key_id", o.client_certificate_key_id),
        ("signature_algorithm", o.signature_algorithm),
        ("iss", o.iss),
        ("audience", o.audience),
        ("claims", o.claims),
    ] {
        if set.is_set() {
            return Err(ctx.unsupported(&format!("{key}.{name}")));
        }
    }
    let Some(client_id) = non_empty(&o.client_id) else {
        return Err(ctx.err(
            format!("{key}.client_id"),
            "oauth2 client_id must be configured",
        ));
    };
    let Some(token_url) = o.token_url.as_ref().filter(|u| !u.0.is_empty()) else {
        return Err(ctx.err(
            format!("{key}.token_url"),
            "oauth2 token_url must be configured",
        ));
    };
    let secret = non_empty_secret(&o.client_secret);
    let secret_file = non_empty(&o.client_secret_file);
    if secret.is_some() && secret_file.is_some() {
        return Err(ctx.err(
            format!("{key}.client_secret"),
            "at most one of oauth2 client_secret, client_secret_file & client_secret_ref must be configured",
        ));
    }
    let url_key = format!("{key}.token_url");
    let shown = token_url.redacted();
    let mut token_url = url::Url::parse(token_url.0.trim())
        .map_err(|e| ctx.err(&url_key, format!("invalid token_url {shown:?}: {e}")))?;
    if !matches!(token_url.scheme(), "http" | "https")
        || token_url.host_str().is_none_or(str::is_empty)
    {
        return Err(ctx.err(
            &url_key,
            format!("token_url {shown:?} must be an http:// or https:// URL with a host"),
        ));
    }
    token_url = crate::net::userinfo::without_userinfo(&token_url);
    token_url.set_fragment(None);

    let mut endpoint_params = Vec::with_capacity(o.endpoint_params.0.len());
    for (name, value) in o.endpoint_params.iter() {
        // golang.org/x/oauth2's clientcredentials refuses this at request
        // time; grant_type may be overridden.
        if name == "scope" && !o.scopes.is_empty() {
            return Err(ctx.err(
                format!("{key}.endpoint_params"),
                "oauth2: cannot overwrite parameter \"scope\" (it is set by scopes)",
            ));
        }
        endpoint_params.push((name.to_string(), value.to_string()));
    }

    let client_secret = match (secret_file, secret) {
        (Some(f), _) => Some(SecretSource::File(ctx.resolve(f))),
        (None, Some(s)) => Some(SecretSource::Inline(s.clone())),
        (None, None) => None,
    };
    let proxy = build_proxy(
        ctx,
        key,
        ProxyKeys {
            url: &o.proxy_url,
            no_proxy: &o.no_proxy,
            from_environment: o.proxy_from_environment,
            connect_header: &o.proxy_connect_header,
        },
    )?;
    let tls = build_tls(ctx, key, o.tls_config.as_ref())?;
    Ok(OAuth2Settings {
        client_id: client_id.to_string(),
        client_secret,
        scopes: o.scopes.clone(),
        token_url,
        endpoint_params,
        tls,
        proxy,
        cache: TokenCache::default(),
    })
}

/// The proxy keys of a client config or of its `oauth2` block.
struct ProxyKeys<'a> {
    url: &'a Option<ProxyUrlText>,
    no_proxy: &'a Option<String>,
    from_environment: bool,
    connect_header: &'a OrderedMap<Vec<Secret>>,
}

/// prometheus/common `ProxyConfig.Validate`, plus: only http/https proxies.
fn build_proxy(
    ctx: &Ctx<'_>,
    block: &str,
    c: ProxyKeys<'_>,
) -> Result<Option<ProxySettings>, ConfigError> {
    let key = format!("{block}.proxy_url");
    let url = match c.url.as_ref().filter(|p| !p.0.trim().is_empty()) {
        None => None,
        Some(raw) => {
            let url = url::Url::parse(raw.0.trim()).map_err(|e| {
                ctx.err(&key, format!("invalid proxy URL {:?}: {e}", raw.redacted()))
            })?;
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
            Some(ProxyUrl::new(url))
        }
    };
    let no_proxy = non_empty(c.no_proxy);
    let env = c.from_environment;
    if !c.connect_header.is_empty() && !env && url.is_none() {
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
    for (name, values) in c.connect_header.iter() {
        let hname = header_name(ctx, &hkey, name)?;
        for v in values {
            header_value(ctx, &hkey, name, v.expose())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_are_redacted_even_when_broken() {
        let t = |s: &str| ProxyUrlText(s.to_string()).redacted();
        assert_eq!(t("http://u:pw@proxy:3128"), "http://u:xxxxx@proxy:3128/");
        assert_eq!(
            t("http://u:pw@proxy:99999999"),
            "http://u:xxxxx@proxy:99999999"
        );
        assert_eq!(
            format!("{:?}", ProxyUrlText("http://u:pw@p:1".into())),
            "\"http://u:xxxxx@p:1/\""
        );
    }
}
