//! Command-line flags, named as blackbox_exporter's.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Logfmt,
    Json,
}

/// Blackbox-style Prometheus exporter for HTTP, WebSocket, TLS and TCP probes.
#[derive(Debug, Parser)]
#[command(name = "handshake_exporter", version, about)]
pub struct Cli {
    /// Blackbox configuration file [default: blackbox.yml; when that file
    /// does not exist, the embedded default config is used].
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,

    /// If true validate the config file and then exit.
    #[arg(long = "config.check")]
    pub config_check: bool,

    /// Reload the config file when its contents change, checked every
    /// --config.auto-reload-interval (a broken file keeps the running
    /// config, as SIGHUP does).
    #[arg(long = "config.enable-auto-reload")]
    pub auto_reload: bool,

    /// How often --config.enable-auto-reload checks the config file: seconds
    /// (blackbox's form, `30`) or a duration (`30s`, `1m`); 0 never checks.
    #[arg(long = "config.auto-reload-interval", value_name = "SECONDS", default_value = "30", value_parser = parse_interval)]
    pub auto_reload_interval: std::time::Duration,

    /// Address on which to expose metrics and web interface (repeatable).
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9115"
    )]
    pub listen_addresses: Vec<String>,

    /// Listen on the sockets passed by systemd socket activation
    /// (LISTEN_FDS, from fd 3) instead of --web.listen-address; needs
    /// --web.external-url.
    #[arg(long = "web.systemd-socket")]
    pub systemd_socket: bool,

    /// The URL under which the exporter is externally reachable (behind a
    /// reverse proxy, say): `/` redirects there when a route prefix is set,
    /// and its path is the default route prefix [default: http://<hostname>:<port
    /// of the first listen address>/].
    #[arg(long = "web.external-url", value_name = "URL")]
    pub external_url: Option<String>,

    /// Prefix of every endpoint (/probe, /metrics, the landing page ...)
    /// [default: the path of --web.external-url].
    #[arg(long = "web.route-prefix", value_name = "PATH")]
    pub route_prefix: Option<String>,

    /// Time a client has from the first byte of a request head (or of a TLS
    /// handshake) to the end of the head.
    #[arg(long = "web.read-header-timeout", default_value = "10s", value_parser = parse_positive_duration)]
    pub read_header_timeout: std::time::Duration,

    /// Time a keep-alive connection may stay open without a request.
    #[arg(long = "web.idle-timeout", default_value = "2m", value_parser = parse_positive_duration)]
    pub idle_timeout: std::time::Duration,

    /// Connections open at once; the oldest idle one is closed to admit a new
    /// one (lowered to half the open-file limit).
    #[arg(long = "web.max-connections", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Path to a web configuration file (TLS, basic auth), exporter-toolkit format.
    #[arg(long = "web.config.file", value_name = "PATH")]
    pub web_config_file: Option<PathBuf>,

    /// Offset to subtract from the scrape timeout in seconds.
    #[arg(long = "timeout-offset", default_value_t = 0.5)]
    pub timeout_offset: f64,

    /// Probes that may run at once; beyond it /probe answers 503 at once.
    #[arg(long = "probe.max-in-flight", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,

    /// Long-lived sessions (prober: websocket_session) open at most; beyond
    /// it a new session's probe fails with reason session_limit.
    #[arg(long = "session.max", default_value_t = 1000)]
    pub session_max: usize,

    /// Largest response body a probe keeps for regexes or decompresses when
    /// its module sets no body_size_limit (bytes, or 32MiB, 1GB ...).
    #[arg(long = "probe.max-body-bytes", default_value = "32MiB", value_parser = parse_size)]
    pub max_body_bytes: u64,

    /// The maximum amount of items to keep in the history.
    #[arg(long = "history.limit", default_value_t = 100)]
    pub history_limit: usize,

    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", value_enum, default_value = "info")]
    pub log_level: LogLevel,

    /// Level from which each probe's log lines are also written to the
    /// exporter's log, whatever --log.level says (the debug page always
    /// keeps every line).
    #[arg(long = "log.prober", value_enum, default_value = "info")]
    pub log_prober: LogLevel,

    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    pub log_format: LogFormatArg,
}

/// A positive size in bytes, with optional units (`32MiB`, `10MB`).
fn parse_size(text: &str) -> Result<u64, String> {
    match crate::config::duration::parse_base2_bytes(text) {
        Ok(n) if n > 0 => u64::try_from(n).map_err(|e| e.to_string()),
        Ok(_) => Err("must be greater than 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `--config.auto-reload-interval`: whole seconds as blackbox takes them
/// (`30`), or a Go-style duration (`30s`, `1m`).
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(seconds));
    }
    crate::config::duration::parse_duration(text).map_err(|e| e.to_string())
}

/// A positive Go-style duration (`10s`, `2m`, `500ms`).
fn parse_positive_duration(text: &str) -> Result<std::time::Duration, String> {
    match crate::config::duration::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be greater than 0".into()),
        Err(e) => Err(e.to_string()),
    }
}
