//! `unix:` — blackbox's unix socket prober block (blackbox 0.28): the tcp
//! prober's `query_response`, `tls` and `tls_config`, over a socket path.

use serde::{Deserialize, Serialize};

use crate::config::file::is_default;
use crate::config::tls::{TlsConfigFile, build_tls};
use crate::config::{ConfigError, Ctx};
use crate::net::address::AddressPolicy;
use crate::prober::tcp::TcpSettings;
use crate::prober::tcp::config::{TcpQueryResponseFile, build_steps};

/// `unix:` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnixProbeFile {
    #[serde(skip_serializing_if = "is_default")]
    pub tls: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub tls_config: Option<TlsConfigFile>,
    #[serde(skip_serializing_if = "is_default")]
    pub query_response: Vec<TcpQueryResponseFile>,
}

/// A validated `unix:` block: the tcp prober's dialog settings (no
/// address to choose, no source address).
#[derive(Debug, Clone)]
pub struct UnixSettings {
    pub dialog: TcpSettings,
    /// `tls_config.server_name`: a socket path has no host name to take
    /// SNI and the certificate's name from.
    pub server_name: Option<String>,
}

pub fn build(ctx: &Ctx<'_>, u: &UnixProbeFile) -> Result<UnixSettings, ConfigError> {
    let query_response = build_steps(ctx, "unix", &u.query_response)?;
    let tls_client = build_tls(ctx, "unix", u.tls_config.as_ref())?;
    let server_name = tls_client.settings.server_name.clone();
    let speaks_tls = u.tls || query_response.iter().any(|s| s.starttls);
    if speaks_tls && server_name.is_none() {
        return Err(ctx.err(
            "unix.tls_config.server_name",
            "must be set for TLS over a unix socket (a socket path has no host name to verify)",
        ));
    }
    Ok(UnixSettings {
        dialog: TcpSettings {
            address: AddressPolicy::default(),
            source_ip_address: None,
            tls: u.tls,
            tls_client,
            query_response,
        },
        server_name,
    })
}

#[cfg(test)]
mod tests {
    use crate::prober::registry::test_support::*;

    #[test]
    fn unix_blocks_are_checked_like_tcp_ones() {
        let err = |block: &str| {
            load(&format!(
                "modules:\n  u:\n    prober: unix\n    unix:\n{block}"
            ))
            .unwrap_err()
            .to_string()
        };
        assert!(err("      bogus: 1\n").contains("bogus"));
        // No addresses on a unix socket.
        assert!(err("      preferred_ip_protocol: ip4\n").contains("preferred_ip_protocol"));
        assert!(
            err("      query_response:\n        - expect: '('\n")
                .contains("unix.query_response[0].expect")
        );
        assert!(err("      tls: true\n").contains("unix.tls_config.server_name"));
        assert!(
            err("      query_response:\n        - starttls: true\n")
                .contains("unix.tls_config.server_name")
        );
        let ok = load(
            "modules:\n  u:\n    prober: unix\n    unix:\n      tls: true\n      tls_config:\n        server_name: app.internal\n      query_response:\n        - send: PING\n        - expect: PONG\n",
        );
        assert!(ok.is_ok(), "{ok:?}");
    }
}
