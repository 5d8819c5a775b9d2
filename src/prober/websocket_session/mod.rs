//! `prober: websocket_session` — a WebSocket kept open between scrapes,
//! reporting what a handshake cannot see: idle cuts by load balancers,
//! servers that close (and with which code), silence, reconnects.
//!
//! The module's block is `websocket:` (built by the websocket prober's own
//! config code) plus `session:` ([`SessionFile`]). A connection is opened
//! by [`websocket::connect`] and checked by [`dialog::exchange`], the same
//! code a `websocket` probe runs, then held by the session's task
//! ([`session`]).
//!
//! Where sessions live: [`Sessions`], one registry per server, owned by the
//! server's config state (which closes sessions whose module changed on a
//! reload, and all of them at shutdown). A probe reaches it through
//! [`ProbeContext::session`] ([`crate::prober::SessionScope`]: the
//! registry and the probe's `Arc<Module>`), because the [`Prober`] trait
//! gives a probe only its built settings, which are rebuilt on every reload
//! while a session must outlive reloads that leave its module as it was.
//! Without a registry (a probe run outside the server), a session probe
//! fails at once.
//!
//! [`websocket::connect`]: crate::prober::websocket::connect
//! [`dialog::exchange`]: crate::prober::websocket::dialog::exchange

pub mod session;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ProbeContext;
use super::metrics::{GaugeSpec, Presence};
use super::reason::ProbeFailure;
use super::registry::Prober;
use super::websocket::{self, WebSocketProbeFile, WebSocketSettings};
use crate::config::duration::parse_duration;
use crate::config::file::{Scalar, is_default};
use crate::config::{ConfigError, Ctx};
pub use session::Sessions;

/// `websocket.session:` as written (Go durations).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionFile {
    /// Pings while connected (default 15s; 0: none).
    #[serde(skip_serializing_if = "is_default")]
    pub ping_interval: Option<Scalar>,
    /// Close and reconnect when no message or pong arrived this long
    /// (default 60s).
    #[serde(skip_serializing_if = "is_default")]
    pub max_silence: Option<Scalar>,
    /// First wait before a reconnect, doubling up to `reconnect_max`
    /// (default 1s).
    #[serde(skip_serializing_if = "is_default")]
    pub reconnect_min: Option<Scalar>,
    /// Longest wait between reconnect attempts (default 30s).
    #[serde(skip_serializing_if = "is_default")]
    pub reconnect_max: Option<Scalar>,
    /// Close the session when no `/probe` asked for it this long (default
    /// 10m).
    #[serde(skip_serializing_if = "is_default")]
    pub expire_after: Option<Scalar>,
}

/// The validated `session:` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimes {
    /// None: no pings.
    pub ping_interval: Option<Duration>,
    pub max_silence: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub expire_after: Duration,
}

impl Default for SessionTimes {
    fn default() -> Self {
        Self {
            ping_interval: Some(Duration::from_secs(15)),
            max_silence: Duration::from_secs(60),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
            expire_after: Duration::from_secs(600),
        }
    }
}

/// A built `websocket_session` module.
#[derive(Debug)]
pub struct SessionSettings {
    /// The websocket prober's settings, with small socket buffers (an idle
    /// session holds its connection for hours).
    pub ws: std::sync::Arc<WebSocketSettings>,
    pub times: SessionTimes,
}

/// tungstenite allocates its read buffer up front (128 KiB by default):
/// 1,000 idle sessions would hold 128 MB for nothing. Messages larger than
/// this still arrive (the buffer grows up to `max_message_bytes`).
const SESSION_READ_BUFFER: usize = 4096;

pub static CONNECTED: GaugeSpec = GaugeSpec::always(
    "probe_websocket_session_connected",
    "Whether the session's WebSocket is open now",
);
pub static UPTIME: GaugeSpec = GaugeSpec::always(
    "probe_websocket_session_uptime_seconds",
    "Age of the session's current connection (0 when down)",
);
pub static CONNECTS: GaugeSpec = GaugeSpec::always(
    "probe_websocket_session_connects_total",
    "Successful handshakes since the session started",
);
pub static DISCONNECTS: GaugeSpec = GaugeSpec {
    name: "probe_websocket_session_disconnects_total",
    help: "Ended connections since the session started, by reason",
    presence: Presence::Always,
    label_names: &["reason"],
    // The usual ends start at 0, so increase() sees their first one.
    initial: &[
        &["closed_by_server"],
        &["closed_early"],
        &["connection_reset"],
        &["silence"],
        &["timeout"],
    ],
};
pub static LAST_CLOSE_CODE: GaugeSpec = GaugeSpec::when_set(
    "probe_websocket_session_last_close_code",
    "Close code of the last close frame the server sent",
);
pub static LAST_CONNECTION: GaugeSpec = GaugeSpec::when_set(
    "probe_websocket_session_last_connection_seconds",
    "How long the previous connection lasted",
);
pub static LAST_MESSAGE_AGE: GaugeSpec = GaugeSpec::when_set(
    "probe_websocket_session_last_message_age_seconds",
    "Time since the last message or pong arrived",
);
pub static PING_RTT: GaugeSpec = GaugeSpec::when_set(
    "probe_websocket_session_ping_rtt_seconds",
    "Round trip of the session's last ping",
);

impl Prober for SessionSettings {
    type Block = WebSocketProbeFile;
    const METRICS: &'static [&'static [&'static GaugeSpec]] = &[&[
        &CONNECTED,
        &UPTIME,
        &CONNECTS,
        &DISCONNECTS,
        &LAST_CLOSE_CODE,
        &LAST_CONNECTION,
        &LAST_MESSAGE_AGE,
        &PING_RTT,
    ]];

    fn build(ctx: &Ctx<'_>, block: &WebSocketProbeFile) -> Result<Self, ConfigError> {
        let mut ws_block = block.clone();
        let session = ws_block.session.take().unwrap_or_default();
        let mut ws = websocket::config::build(ctx, &ws_block)?;
        ws.limits = ws
            .limits
            .read_buffer_size(SESSION_READ_BUFFER)
            .write_buffer_size(0);
        Ok(Self {
            ws: std::sync::Arc::new(ws),
            times: build_times(ctx, &session)?,
        })
    }

    fn shown(block: WebSocketProbeFile, _built: &Self) -> WebSocketProbeFile {
        websocket::config::shown(block)
    }

    async fn probe(&self, cx: &ProbeContext<'_>, target: &str) -> Result<(), ProbeFailure> {
        session::probe(cx, target, self).await
    }
}

fn duration(
    ctx: &Ctx<'_>,
    key: &str,
    value: &Option<Scalar>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => parse_duration(&v.to_string())
            .map_err(|e| ctx.err(format!("websocket.session.{key}"), e.to_string())),
    }
}

/// Validate `session:`; errors name the key.
pub fn build_times(ctx: &Ctx<'_>, f: &SessionFile) -> Result<SessionTimes, ConfigError> {
    let d = SessionTimes::default();
    let ping = duration(
        ctx,
        "ping_interval",
        &f.ping_interval,
        Duration::from_secs(15),
    )?;
    let t = SessionTimes {
        ping_interval: (!ping.is_zero()).then_some(ping),
        max_silence: duration(ctx, "max_silence", &f.max_silence, d.max_silence)?,
        reconnect_min: duration(ctx, "reconnect_min", &f.reconnect_min, d.reconnect_min)?,
        reconnect_max: duration(ctx, "reconnect_max", &f.reconnect_max, d.reconnect_max)?,
        expire_after: duration(ctx, "expire_after", &f.expire_after, d.expire_after)?,
    };
    for (key, v) in [
        ("max_silence", t.max_silence),
        ("reconnect_min", t.reconnect_min),
        ("expire_after", t.expire_after),
    ] {
        if v.is_zero() {
            return Err(ctx.err(format!("websocket.session.{key}"), "must be above 0"));
        }
    }
    if t.reconnect_max < t.reconnect_min {
        return Err(ctx.err(
            "websocket.session.reconnect_max",
            format!(
                "reconnect_max ({:?}) is shorter than reconnect_min ({:?})",
                t.reconnect_max, t.reconnect_min
            ),
        ));
    }
    if let Some(p) = t.ping_interval
        && p >= t.max_silence
    {
        return Err(ctx.err(
            "websocket.session.ping_interval",
            format!(
                "ping_interval ({p:?}) must be shorter than max_silence ({:?}), or a quiet server's pongs cannot keep the session up",
                t.max_silence
            ),
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::prober::ProberSettings;
    use crate::prober::registry::test_support::*;

    fn session_module(body: &str) -> String {
        let mut s = String::from("modules:\n  s:\n    prober: websocket_session\n    websocket:\n");
        for line in body.lines() {
            s.push_str("      ");
            s.push_str(line);
            s.push('\n');
        }
        s
    }

    #[test]
    fn defaults_and_keys() {
        let c = load(&session_module("ping: true\nsession: {}")).expect("loads");
        let ProberSettings::WebSocketSession(s) = &module(&c, "s").prober else {
            panic!("not a session")
        };
        assert_eq!(s.times, super::SessionTimes::default());
        assert!(s.ws.ping);
        assert_eq!(s.ws.limits.read_buffer_size, super::SESSION_READ_BUFFER);
        let c = load(&session_module(
            "session:\n  ping_interval: 0\n  max_silence: 2s\n  reconnect_min: 100ms\n  reconnect_max: 1s\n  expire_after: 1m",
        ))
        .expect("loads");
        let ProberSettings::WebSocketSession(s) = &module(&c, "s").prober else {
            panic!("not a session")
        };
        assert_eq!(s.times.ping_interval, None);
        assert_eq!(s.times.max_silence, Duration::from_secs(2));
        assert_eq!(s.times.reconnect_min, Duration::from_millis(100));
        assert_eq!(s.times.expire_after, Duration::from_secs(60));
        // No block at all: every default.
        let c = load("modules:\n  s:\n    prober: websocket_session\n").expect("loads");
        assert_eq!(module(&c, "s").prober.name(), "websocket_session");
    }

    #[test]
    fn errors_name_the_key() {
        for (body, key) in [
            (
                "session:\n  max_silence: 0",
                "websocket.session.max_silence",
            ),
            (
                "session:\n  reconnect_min: 5x",
                "websocket.session.reconnect_min",
            ),
            (
                "session:\n  reconnect_min: 10s\n  reconnect_max: 1s",
                "websocket.session.reconnect_max",
            ),
            (
                "session:\n  ping_interval: 1m\n  max_silence: 30s",
                "websocket.session.ping_interval",
            ),
            (
                "session:\n  expire_after: 0s",
                "websocket.session.expire_after",
            ),
            (
                "query_response:\n  - expect: '('",
                "websocket.query_response[0].expect",
            ),
        ] {
            let e = load_err(&session_module(body));
            assert_contains(&e, &["module \"s\"", key]);
        }
        let e = load_err(&session_module("session:\n  pingg: 1s"));
        assert_contains(&e, &["pingg"]);
        // session: belongs to websocket_session only.
        let e = load_err(&ws_module("session:\n  ping_interval: 1s"));
        assert_contains(
            &e,
            &["module \"w\"", "websocket.session", "websocket_session"],
        );
    }
}
