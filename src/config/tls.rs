//! `tls_config` (prometheus/common's TLSConfig): validation and building the
//! module's TLS client once, at load.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::file::is_default;
use super::load::{ConfigError, Ctx, non_empty};
use crate::net::Secret;
use crate::net::tls::{ClientCert, TlsBuildError, TlsClient, TlsSettings, TlsVersion};

/// `<tls_config>`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfigFile {
    #[serde(skip_serializing_if = "is_default")]
    pub insecure_skip_verify: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub ca_file: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub ca: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub cert_file: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub cert: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub key_file: Option<String>,
    /// An inline private key.
    #[serde(skip_serializing_if = "is_default")]
    pub key: Option<Secret>,
    #[serde(skip_serializing_if = "is_default")]
    pub server_name: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub min_version: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub max_version: Option<String>,
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
pub fn build_tls(
    ctx: &Ctx<'_>,
    block: &str,
    cfg: Option<&TlsConfigFile>,
) -> Result<Arc<TlsClient>, ConfigError> {
    let default = TlsConfigFile::default();
    let cfg = cfg.unwrap_or(&default);
    let key = format!("{block}.tls_config");
    let (ca, ca_file) = (non_empty(&cfg.ca), non_empty(&cfg.ca_file));
    let (cert, cert_file) = (non_empty(&cfg.cert), non_empty(&cfg.cert_file));
    let pkey = cfg.key.as_ref().filter(|k| !k.is_empty());
    let key_file = non_empty(&cfg.key_file);
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
        (Some(pem), _) => Some(pem.clone()),
        (None, Some(path)) => {
            let bytes = ctx.read(&format!("{key}.key_file"), path)?;
            // PEM is text; a key file that is not is refused by rustls too.
            Some(Secret::new(String::from_utf8_lossy(&bytes).into_owned()))
        }
        (None, None) => None,
    };
    let settings = TlsSettings {
        insecure_skip_verify: cfg.insecure_skip_verify,
        ca_pem,
        client_cert: cert_pem
            .zip(key_pem)
            .map(|(cert_pem, key_pem)| ClientCert { cert_pem, key_pem }),
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
