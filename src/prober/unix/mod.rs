//! `prober: unix` — the tcp prober's dialog (`query_response`, `tls`,
//! STARTTLS) over a unix socket; the target is the socket's path. As in
//! blackbox 0.28: no address metrics, no default SNI (`tls_config.
//! server_name` is required for TLS, checked at load).
//!
//! The socket is opened through the connector, whose target policy checks
//! the path against its path rules (`allow: [/run/app/*.sock]`): without
//! one, a caller may name any socket the exporter's user can open.

pub mod config;

use super::connect::{self, TlsReport};
use super::metrics::GaugeSpec;
use super::reason::{FailureReason, ProbeFailure};
use super::registry::Prober;
use super::tcp::{EXPECT_INFO, FAILED_DUE_TO_BYTES, dialog, tls_request};
use super::{FAILED_DUE_TO_REGEX, ProbeContext, tls_metrics};
use crate::config::{ConfigError, Ctx};
use crate::net::Connector;
pub use config::{UnixProbeFile, UnixSettings};

impl Prober for UnixSettings {
    type Block = UnixProbeFile;
    const METRICS: &'static [&'static [&'static GaugeSpec]] = &[
        tls_metrics::METRICS,
        &[&FAILED_DUE_TO_REGEX, &FAILED_DUE_TO_BYTES, &EXPECT_INFO],
    ];

    fn build(ctx: &Ctx<'_>, block: &UnixProbeFile) -> Result<Self, ConfigError> {
        config::build(ctx, block)
    }

    async fn probe(&self, cx: &ProbeContext<'_>, target: &str) -> Result<(), ProbeFailure> {
        probe(cx, target, self).await
    }
}

pub async fn probe(
    cx: &ProbeContext<'_>,
    path: &str,
    s: &UnixSettings,
) -> Result<(), ProbeFailure> {
    if !path.starts_with('/') {
        return Err(ProbeFailure::new(
            FailureReason::InvalidTarget,
            format!("unix target {path:?} is not an absolute socket path"),
        ));
    }
    let server_name = s.server_name.as_deref().unwrap_or_default();
    let connector = Connector {
        address: s.dialog.address,
        targets: cx.targets,
        source: None,
        proxy: None,
        // With no dialog nothing will read: wait for a TLS 1.3
        // client-certificate verdict.
        tls: s
            .dialog
            .tls
            .then(|| tls_request(&s.dialog, server_name, s.dialog.query_response.is_empty())),
    };
    let conn = connect::open_unix(cx, &connector, path, TlsReport::Now).await?;
    dialog(cx, conn.stream, &s.dialog, server_name).await
}
