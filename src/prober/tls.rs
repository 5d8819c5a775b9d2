//! `prober: tls` — TCP connect plus TLS handshake, reporting the full
//! certificate metric set (target `host:port`).

use std::net::SocketAddr;

use super::address::{self, split_host_port};
use super::metrics::{GaugeSpec, Presence};
use super::reason::ProbeFailure;
use super::{ProbeContext, tls_metrics};
use crate::config::model::TlsProbeSettings;
use crate::net::{dial, tls::Alpn};

pub static TLS_DURATION: GaugeSpec = GaugeSpec {
    name: "probe_tls_duration_seconds",
    help: "Duration of the TLS probe by phase",
    presence: Presence::Always,
    label_names: &["phase"],
    initial: &[&["connect"], &["tls"]],
};

pub static METRICS: &[&[&GaugeSpec]] = &[address::METRICS, tls_metrics::METRICS, &[&TLS_DURATION]];

pub async fn probe(
    cx: &ProbeContext<'_>,
    target: &str,
    s: &TlsProbeSettings,
) -> Result<(), ProbeFailure> {
    let (host, port) = split_host_port(target)?;
    let ip = address::resolve_target(cx, &host, s.address, Some(&TLS_DURATION)).await?;
    let connect = cx.phase(&TLS_DURATION, "connect");
    let stream = dial::connect(SocketAddr::new(ip, port), None).await?;
    connect.finish();
    let server_name = s.tls_client.server_name_for(cx.hostname, &host);
    let handshake = cx.phase(&TLS_DURATION, "tls");
    let tls = tls_metrics::handshake_confirmed(cx, &s.tls_client, stream, &server_name, Alpn::None)
        .await?;
    handshake.finish();
    drop(tls);
    Ok(())
}
