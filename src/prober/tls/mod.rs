//! `prober: tls` — TCP connect plus TLS handshake, reporting the full
//! certificate metric set (target `host:port`).

pub mod config;

use super::address::{self, split_host_port};
use super::connect::{self, TlsReport};
use super::metrics::{GaugeSpec, Presence};
use super::reason::ProbeFailure;
use super::registry::Prober;
use super::{ProbeContext, tls_metrics};
use crate::config::{ConfigError, Ctx};
use crate::net::tls::Alpn;
use crate::net::{Connector, Endpoint, TlsRequest};
pub use config::{TlsProbeFile, TlsProbeSettings};

pub static TLS_DURATION: GaugeSpec = GaugeSpec {
    name: "probe_tls_duration_seconds",
    help: "Duration of the TLS probe by phase",
    presence: Presence::Always,
    label_names: &["phase"],
    initial: &[&["connect"], &["tls"]],
};

impl Prober for TlsProbeSettings {
    type Block = TlsProbeFile;
    const METRICS: &'static [&'static [&'static GaugeSpec]] =
        &[address::METRICS, tls_metrics::METRICS, &[&TLS_DURATION]];

    fn build(ctx: &Ctx<'_>, block: &TlsProbeFile) -> Result<Self, ConfigError> {
        config::build(ctx, block)
    }

    fn shown(block: TlsProbeFile, _built: &Self) -> TlsProbeFile {
        config::shown(block)
    }

    async fn probe(&self, cx: &ProbeContext<'_>, target: &str) -> Result<(), ProbeFailure> {
        let (host, port) = split_host_port(target)?;
        let ip = address::resolve_target(cx, &host, self.address, Some(&TLS_DURATION)).await?;
        let server_name = self.tls_client.server_name_for(cx.hostname, &host);
        let connector = Connector {
            address: self.address,
            targets: cx.targets,
            source: None,
            proxy: None,
            tls: Some(TlsRequest {
                client: &self.tls_client,
                server_name: &server_name,
                alpn: Alpn::None,
                // Nothing will read: wait for a TLS 1.3 client-certificate verdict.
                confirm: true,
            }),
        };
        let endpoint = Endpoint {
            host: &host,
            port,
            address: Some(ip),
        };
        connect::open(
            cx,
            Some(&TLS_DURATION),
            &connector,
            endpoint,
            TlsReport::Now,
        )
        .await?;
        Ok(())
    }
}
