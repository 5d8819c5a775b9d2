//! prometheus/common's HTTP client config (`tls_config`, `basic_auth`,
//! `authorization`, `bearer_token`, proxies, `http_headers` ...): the keys
//! as written, their validation, and the settings the http and websocket
//! probers (and every later HTTP-based prober) send requests with.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::file::is_default;
use super::load::{ConfigError, Ctx, non_empty};
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
            oauth2: $crate::config::file::Unsupported,
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

/// `proxy_url` as written. Shown (on `/config`, in debug output and in
/// error messages) with its password replaced by `xxxxx`, as
/// prometheus/common's `url.Redacted()` does.
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
    if c.oauth2.is_set() {
        return Err(ctx.unsupported(&format!("{block}.oauth2")));
    }
    let bearer = non_empty_secret(&c.bearer_token);
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
    let url = match c.proxy_url.as_ref().filter(|p| !p.0.trim().is_empty()) {
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
