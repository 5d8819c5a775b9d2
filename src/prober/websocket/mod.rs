//! `prober: websocket` — the real browser handshake, measured phase by
//! phase, with a reason when it fails.
//!
//! The connector opens the connection (through an HTTP proxy's CONNECT
//! tunnel when one applies, TLS for wss); [`handshake`] performs the upgrade
//! with hyper, so a non-101 answer keeps its status and headers (that is
//! what tells a proxy that dropped `Upgrade` from a backend that is down),
//! and checks the 101 with browser semantics; [`dialog`] runs the message
//! exchange, ping and close over tungstenite.

pub mod config;
pub mod dialog;
pub mod handshake;

use super::address;
use super::client::conn::ConnectionTask;
use super::client::{self as http_client, authority, proxy_for};
use super::connect::{self, TlsReport};
use super::metrics::{GaugeSpec, Presence};
use super::reason::{FailureReason, ProbeFailure};
use super::registry::Prober;
use super::{ProbeContext, tls_metrics};
use crate::config::{ConfigError, Ctx};
use crate::net::address::unbracket;
use crate::net::proxy::ProxyUrl;
use crate::net::tls::Alpn;
use crate::net::{Connection, Endpoint};
pub use config::{WebSocketProbeFile, WebSocketSettings, WsStep};

pub static WS_DURATION: GaugeSpec = GaugeSpec {
    name: "probe_websocket_duration_seconds",
    help: "Duration of the WebSocket probe by phase",
    presence: Presence::Always,
    label_names: &["phase"],
    initial: &[&["connect"], &["processing"], &["tls"], &["transfer"]],
};
pub static STATUS_CODE: GaugeSpec = GaugeSpec::always(
    "probe_websocket_status_code",
    "HTTP status code of the WebSocket handshake response, 0 if none",
);
pub static CONNECTION_UPGRADED: GaugeSpec = GaugeSpec::always(
    "probe_websocket_connection_upgraded",
    "Whether the connection was upgraded to a WebSocket",
);
pub static FAILED_DUE_TO_REGEX: GaugeSpec = GaugeSpec::always(
    "probe_websocket_failed_due_to_regex",
    "Whether a query_response expect failed",
);
pub static SSL: GaugeSpec = GaugeSpec::always(
    "probe_websocket_ssl",
    "Whether the WebSocket connection used TLS (wss)",
);
pub static HTTP_VERSION: GaugeSpec = GaugeSpec::when_set(
    "probe_websocket_http_version",
    "HTTP version of the handshake: 1.1, or 2 for RFC 8441 WebSockets over HTTP/2",
);
pub static SUBPROTOCOL_INFO: GaugeSpec = GaugeSpec::labelled(
    "probe_websocket_subprotocol_info",
    "The subprotocol the server selected",
    &["subprotocol"],
);
pub static PING_RTT: GaugeSpec = GaugeSpec::when_set(
    "probe_websocket_ping_rtt_seconds",
    "Round trip time of a WebSocket ping/pong",
);
pub static CLOSE_CODE: GaugeSpec = GaugeSpec::when_set(
    "probe_websocket_close_code",
    "Close code the server sent, when it sent one",
);

impl Prober for WebSocketSettings {
    type Block = WebSocketProbeFile;
    const METRICS: &'static [&'static [&'static GaugeSpec]] = &[
        address::METRICS,
        tls_metrics::METRICS,
        &[
            &WS_DURATION,
            &STATUS_CODE,
            &CONNECTION_UPGRADED,
            &FAILED_DUE_TO_REGEX,
            &SSL,
            &HTTP_VERSION,
            &SUBPROTOCOL_INFO,
            &PING_RTT,
            &CLOSE_CODE,
        ],
    ];

    fn build(ctx: &Ctx<'_>, block: &WebSocketProbeFile) -> Result<Self, ConfigError> {
        config::build(ctx, block)
    }

    fn shown(block: WebSocketProbeFile, _built: &Self) -> WebSocketProbeFile {
        config::shown(block)
    }

    async fn probe(&self, cx: &ProbeContext<'_>, target: &str) -> Result<(), ProbeFailure> {
        probe(cx, target, self).await
    }
}

fn fail(reason: FailureReason, msg: impl Into<String>) -> ProbeFailure {
    ProbeFailure::new(reason, msg)
}

/// Parse a websocket target; `http(s)://` maps to `ws(s)://`.
pub fn parse_target(target: &str) -> Result<url::Url, ProbeFailure> {
    let url = url::Url::parse(target).map_err(|e| {
        fail(
            FailureReason::InvalidTarget,
            format!("Could not parse target URL {target:?}: {e}"),
        )
    })?;
    let secure = match url.scheme() {
        "ws" | "http" => false,
        "wss" | "https" => true,
        other => {
            return Err(fail(
                FailureReason::InvalidTarget,
                format!("unsupported scheme {other:?}: use ws://, wss://, http:// or https://"),
            ));
        }
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Err(fail(
            FailureReason::InvalidTarget,
            format!("target {target:?} has no host"),
        ));
    }
    // set_scheme refuses special→non-special changes: rebuild instead. The
    // default ports of ws/wss equal those of http/https.
    let rebuilt = format!(
        "{}://{}{}",
        if secure { "wss" } else { "ws" },
        &url[url::Position::BeforeUsername..url::Position::AfterPort],
        &url[url::Position::BeforePath..]
    );
    let url = url::Url::parse(&rebuilt)
        .map_err(|e| fail(FailureReason::InvalidTarget, format!("{e}")))?;
    Ok(url)
}

/// Where a probe connects, computed once (a fallback to HTTP/1.1 after a
/// failed RFC 8441 attempt connects to the same endpoint again).
pub struct Target {
    pub url: url::Url,
    pub secure: bool,
    pub host: String,
    pub port: u16,
    pub host_header: String,
    pub server_name: String,
    /// The target's address (resolved by the probe for the address metrics).
    pub address: std::net::IpAddr,
    /// An HTTP proxy, always used through a CONNECT tunnel.
    pub proxy: Option<ProxyUrl>,
}

impl Target {
    /// Connect (through the proxy tunnel if any) and, for wss, run TLS with
    /// the given ALPN offer; the TLS family is recorded.
    async fn open(
        &self,
        cx: &ProbeContext<'_>,
        s: &WebSocketSettings,
        alpn: Alpn,
    ) -> Result<Connection, ProbeFailure> {
        let tls = self.secure.then_some((self.server_name.as_str(), alpn));
        let connector = http_client::connector(
            &s.client,
            (s.address, cx.targets),
            self.proxy.as_ref(),
            true,
            tls,
        );
        let endpoint = Endpoint {
            host: &self.host,
            port: self.port,
            address: Some(self.address),
        };
        connect::open(cx, Some(&WS_DURATION), &connector, endpoint, TlsReport::Now).await
    }
}

pub async fn probe(
    cx: &ProbeContext<'_>,
    target: &str,
    s: &WebSocketSettings,
) -> Result<(), ProbeFailure> {
    let (mut ws, _connection) = connect(cx, target, s).await?;
    let transfer = cx.phase(&WS_DURATION, "transfer");
    let result = dialog::exchange(cx, s, &mut ws).await;
    if result.is_ok() {
        dialog::close(cx, &mut ws).await;
    }
    transfer.finish();
    result
}

/// Resolve, connect (proxy, TLS) and upgrade: the open WebSocket, and the
/// HTTP connection task it rides on (keep it as long as the WebSocket; an
/// HTTP/2 stream dies with it). `websocket_session` opens its connections
/// here too.
pub async fn connect(
    cx: &ProbeContext<'_>,
    target: &str,
    s: &WebSocketSettings,
) -> Result<(handshake::Ws, ConnectionTask), ProbeFailure> {
    let url = parse_target(target)?;
    let secure = url.scheme() == "wss";
    let host = unbracket(url.host_str().unwrap_or_default()).to_string();
    let port = url
        .port_or_known_default()
        .unwrap_or(if secure { 443 } else { 80 });
    cx.metrics.set(&SSL, if secure { 1.0 } else { 0.0 });
    let address = address::resolve_target(cx, &host, s.address, Some(&WS_DURATION)).await?;
    let target = Target {
        host_header: cx
            .hostname
            .map(str::to_string)
            .unwrap_or_else(|| authority(&url)),
        server_name: s.client.tls.server_name_for(cx.hostname, &host),
        proxy: proxy_for(&s.client, secure, &host, port),
        url,
        secure,
        host,
        port,
        address,
    };

    let want_h2 = secure && s.client.enable_http2;
    let conn = target
        .open(
            cx,
            s,
            if want_h2 {
                Alpn::H2AndHttp1
            } else {
                Alpn::Http1
            },
        )
        .await?;
    let (ws, connection) = if conn.is_h2() {
        let processing = cx.phase(&WS_DURATION, "processing");
        let attempt = handshake::upgrade_h2(cx, s, &target, conn.stream).await?;
        processing.finish();
        match attempt {
            Some(upgraded) => upgraded,
            None => {
                // As browsers do: a server whose h2 connection cannot carry
                // WebSockets gets an HTTP/1.1 connection of its own.
                cx.log.info(
                    "Server did not enable extended CONNECT (RFC 8441): retrying over HTTP/1.1",
                    &[],
                );
                let conn = target.open(cx, s, Alpn::Http1).await?;
                handshake::upgrade_http1(cx, s, &target, conn.stream).await?
            }
        }
    } else {
        handshake::upgrade_http1(cx, s, &target, conn.stream).await?
    };
    cx.metrics.set(&CONNECTION_UPGRADED, 1.0);
    Ok((ws, connection))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_map_to_ws() {
        assert_eq!(
            parse_target("http://a/x?y=1").unwrap().as_str(),
            "ws://a/x?y=1"
        );
        assert_eq!(
            parse_target("https://a:8443/").unwrap().as_str(),
            "wss://a:8443/"
        );
        assert_eq!(parse_target("wss://a/").unwrap().as_str(), "wss://a/");
        assert_eq!(
            parse_target("ws://127.0.0.1:80/")
                .unwrap()
                .port_or_known_default(),
            Some(80)
        );
        assert!(parse_target("ftp://a/").is_err());
        assert!(parse_target("a:80").is_err());
    }
}
