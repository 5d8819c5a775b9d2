//! The `handshake_exporter` binary: flags, config, signals; everything else
//! lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use handshake_exporter::cli::{Cli, LogFormatArg};
use handshake_exporter::prober::log::LogFormat;
use handshake_exporter::server::prefix::WebPaths;
use handshake_exporter::server::state::{ConfigSource, ConfigState, mark_success};
use handshake_exporter::server::{
    App, Server, ServerOptions, history::History, self_metrics::ExporterMetrics,
};

const DEFAULT_CONFIG_FILE: &str = "blackbox.yml";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = match cli.log_format {
        LogFormatArg::Logfmt => LogFormat::Logfmt,
        LogFormatArg::Json => LogFormat::Json,
    };
    handshake_exporter::logging::init(cli.log_level.as_str(), cli.log_prober.as_str(), log_format);
    match run(cli, log_format) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(err = format!("{e:#}"), "exiting");
            ExitCode::FAILURE
        }
    }
}

fn config_source(cli: &Cli) -> ConfigSource {
    match &cli.config_file {
        Some(path) => ConfigSource::File(path.clone()),
        None if PathBuf::from(DEFAULT_CONFIG_FILE).exists() => {
            ConfigSource::File(DEFAULT_CONFIG_FILE.into())
        }
        None => {
            tracing::info!("No {DEFAULT_CONFIG_FILE} found: using the embedded default config");
            ConfigSource::Embedded
        }
    }
}

fn run(cli: Cli, log_format: LogFormat) -> anyhow::Result<()> {
    if cli.config_check {
        // As blackbox: only the config counts, not the web flags.
        ConfigState::load(config_source(&cli)).context("error loading config")?;
        tracing::info!("Config file is ok, exiting...");
        println!("Config file is ok");
        return Ok(());
    }
    // blackbox checks the external URL before listening. With
    // --web.systemd-socket this reads no file (the URL must be given).
    let paths = web_paths(&cli)?;
    // Then, before this process opens a file of its own (see
    // `take_listeners`), the activated sockets.
    let activated = if cli.systemd_socket {
        Some(
            handshake_exporter::server::systemd::take_listeners()
                .context("--web.systemd-socket")?,
        )
    } else {
        None
    };
    let source = config_source(&cli);
    let config = ConfigState::load(source.clone()).context("error loading config")?;
    tracing::info!(modules = config.get().modules.len(), "Loaded config file");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(cli, config, log_format, paths, activated))
}

/// `--web.external-url` and `--web.route-prefix`.
fn web_paths(cli: &Cli) -> anyhow::Result<WebPaths> {
    if cli.external_url.is_none() && !cli.systemd_socket && cli.listen_addresses.len() > 1 {
        tracing::info!("Inferring external URL from first provided listen address");
    }
    let paths = WebPaths::new(
        cli.external_url.as_deref(),
        cli.route_prefix.as_deref(),
        cli.listen_addresses.first().map(String::as_str),
        cli.systemd_socket,
        handshake_exporter::server::prefix::hostname,
    )
    .context("failed to determine external URL")?;
    tracing::debug!(
        external_url = paths.external_url(),
        route_prefix = paths.prefix(),
        "Web paths"
    );
    Ok(paths)
}

async fn serve(
    cli: Cli,
    config: ConfigState,
    log_format: LogFormat,
    paths: WebPaths,
    activated: Option<Vec<std::net::TcpListener>>,
) -> anyhow::Result<()> {
    config.sessions().set_max(cli.session_max);
    let metrics = ExporterMetrics::new().context("registering exporter metrics")?;
    mark_success(&metrics);
    let web = match &cli.web_config_file {
        Some(path) => Some(
            handshake_exporter::server::web_config::WebConfig::load(path)
                .with_context(|| format!("loading web config {}", path.display()))?,
        ),
        None => None,
    };
    let app = App {
        probe_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(cli.max_in_flight as usize)),
        config,
        history: History::new(cli.history_limit),
        metrics,
        options: ServerOptions {
            listen_addresses: cli.listen_addresses.clone(),
            timeout_offset: cli.timeout_offset,
            history_limit: cli.history_limit,
            log_format,
            max_in_flight: cli.max_in_flight as usize,
            limits: handshake_exporter::prober::ProbeLimits {
                max_body_bytes: cli.max_body_bytes,
            },
            connections: handshake_exporter::server::conn::ConnLimits {
                read_header_timeout: cli.read_header_timeout,
                idle_timeout: cli.idle_timeout,
                max_connections: handshake_exporter::server::conn::effective_max_connections(
                    cli.max_connections as usize,
                ),
            },
            paths,
        },
        web,
    };
    let server = match activated {
        Some(listeners) => Server::from_listeners(app, listeners)?,
        None => Server::bind(app).await?,
    };
    let app = server.app();
    if cli.auto_reload {
        match app.config.source() {
            ConfigSource::Embedded => {
                tracing::warn!(
                    "--config.enable-auto-reload: no config file to watch (the embedded default config is in use)"
                );
            }
            ConfigSource::File(_) if cli.auto_reload_interval.is_zero() => {
                tracing::warn!(
                    "--config.enable-auto-reload: the interval is 0, the config file is never checked"
                );
            }
            ConfigSource::File(path) => {
                tracing::info!(file = %path.display(), interval = ?cli.auto_reload_interval, "Reloading the config file when it changes");
                let app = app.clone();
                let interval = cli.auto_reload_interval;
                tokio::spawn(async move { app.config.auto_reload(&app.metrics, interval).await });
            }
        }
    }
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("Received SIGHUP, reloading config");
            let _ = app.config.reload(&app.metrics).await;
        }
    });
    server.run(shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("Received SIGINT, exiting gracefully..."),
        _ = term => tracing::info!("Received SIGTERM, exiting gracefully..."),
    }
}
