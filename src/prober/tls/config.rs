//! `tls:` — our TLS prober's block (target `host:port`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::file::is_default;
use crate::config::load::show_address;
use crate::config::tls::{TlsConfigFile, build_tls};
use crate::config::{ConfigError, Ctx};
use crate::net::address::AddressPolicy;
use crate::net::tls::TlsClient;

/// `tls:` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsProbeFile {
    #[serde(skip_serializing_if = "is_default")]
    pub preferred_ip_protocol: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub ip_protocol_fallback: Option<bool>,
    #[serde(skip_serializing_if = "is_default")]
    pub tls_config: Option<TlsConfigFile>,
}

/// A validated `tls:` block.
#[derive(Debug, Clone)]
pub struct TlsProbeSettings {
    pub address: AddressPolicy,
    pub tls_client: Arc<TlsClient>,
}

pub fn build(ctx: &Ctx<'_>, t: &TlsProbeFile) -> Result<TlsProbeSettings, ConfigError> {
    Ok(TlsProbeSettings {
        address: ctx.address_policy("tls", &t.preferred_ip_protocol, t.ip_protocol_fallback)?,
        tls_client: build_tls(ctx, "tls", t.tls_config.as_ref())?,
    })
}

/// The block as shown: the address defaults filled in.
pub fn shown(mut t: TlsProbeFile) -> TlsProbeFile {
    show_address(&mut t.preferred_ip_protocol, &mut t.ip_protocol_fallback);
    t
}
