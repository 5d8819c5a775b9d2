//! The loaded configuration, swapped atomically on reload. A failed reload
//! keeps the running config; in-flight probes keep the module snapshot they
//! started with.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use sha2::{Digest as _, Sha256};

use super::self_metrics::ExporterMetrics;
use crate::config::ConfigError;
use crate::prober::websocket_session::Sessions;
use crate::prober::{self, Config};

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    File(PathBuf),
    /// The embedded default config (no file given and `blackbox.yml` absent).
    Embedded,
}

/// SHA-256 of a config file's bytes.
type Checksum = [u8; 32];

pub struct ConfigState {
    current: ArcSwap<Config>,
    source: ConfigSource,
    /// Serialises reloads (SIGHUP, POST and auto-reload may race) and holds
    /// the checksum of the file as last read, loaded or not.
    reload_lock: tokio::sync::Mutex<Option<Checksum>>,
    /// The `websocket_session` sessions: a reload closes those whose
    /// module changed; the server closes them all at shutdown.
    sessions: Sessions,
}

/// What one reload read.
enum Read {
    /// The file's bytes are those read last time (auto-reload only).
    Unchanged,
    Loaded(Result<Config, ConfigError>, Option<Checksum>),
}

impl ConfigState {
    /// Load once at startup (blocking is fine here: the server is not up).
    pub fn load(source: ConfigSource) -> Result<Self, ConfigError> {
        let (cfg, checksum) = match read(&source, None) {
            Read::Loaded(cfg, checksum) => (cfg?, checksum),
            Read::Unchanged => unreachable!("no checksum to compare with"),
        };
        Ok(Self {
            current: ArcSwap::from_pointee(cfg),
            source,
            reload_lock: tokio::sync::Mutex::new(checksum),
            sessions: Sessions::default(),
        })
    }

    pub fn get(&self) -> Arc<Config> {
        self.current.load_full()
    }

    /// The long-lived sessions (`websocket_session`) of this server.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub fn source(&self) -> &ConfigSource {
        &self.source
    }

    /// Re-read the source off the async runtime; on success swap, on error
    /// keep the old config. Updates the reload gauges either way. (SIGHUP
    /// and `POST /-/reload`.)
    pub async fn reload(&self, metrics: &ExporterMetrics) -> Result<(), String> {
        self.reload_with(metrics, false)
            .await
            .unwrap_or_else(|| Err("reload skipped".into()))
    }

    /// [`ConfigState::reload`] when the file's contents changed since they
    /// were last read (by any reload or at startup); `None` when they did not.
    /// A broken file is tried once, not at every check, until it changes.
    pub async fn reload_if_changed(&self, metrics: &ExporterMetrics) -> Option<Result<(), String>> {
        match self.source {
            ConfigSource::File(_) => self.reload_with(metrics, true).await,
            ConfigSource::Embedded => None,
        }
    }

    /// `--config.enable-auto-reload`: checks the file every `interval`
    /// (the first check one interval after the start) for ever.
    pub async fn auto_reload(&self, metrics: &ExporterMetrics, interval: Duration) {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match self.reload_if_changed(metrics).await {
                None => {}
                Some(Ok(())) => tracing::info!("Config file changed: reloaded"),
                Some(Err(_)) => tracing::warn!(
                    "Config file changed but does not load: the running config stays"
                ),
            }
        }
    }

    async fn reload_with(
        &self,
        metrics: &ExporterMetrics,
        only_if_changed: bool,
    ) -> Option<Result<(), String>> {
        let mut last = self.reload_lock.lock().await;
        let source = self.source.clone();
        let previous = if only_if_changed { *last } else { None };
        let read = tokio::task::spawn_blocking(move || read(&source, previous.as_ref())).await;
        let loaded = match read {
            Ok(Read::Unchanged) => return None,
            Ok(Read::Loaded(result, checksum)) => {
                *last = checksum;
                result.map_err(|e| e.to_string())
            }
            Err(e) => Err(format!("reload task failed: {e}")),
        };
        let result = loaded.and_then(|cfg| {
                // An empty file (or one with only comments) is far more
                // likely a truncated write than a wish to drop every module.
                if cfg.modules_declared {
                    Ok(cfg)
                } else {
                    Err("config file has no modules: section (empty or only comments); keeping the running config".to_string())
                }
            });
        Some(match result {
            Ok(cfg) => {
                self.sessions.retain_config(&cfg);
                self.current.store(Arc::new(cfg));
                mark_success(metrics);
                tracing::info!("Loaded config file");
                Ok(())
            }
            Err(e) => {
                metrics.config_last_reload_successful.set(0.0);
                tracing::error!(err = %e, "Error reloading config");
                Err(e)
            }
        })
    }
}

pub fn mark_success(metrics: &ExporterMetrics) {
    metrics.config_last_reload_successful.set(1.0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    metrics.config_last_reload_success_timestamp.set(now);
}

/// Reads and loads the source (blocking); with `previous`, a file whose
/// bytes hash to it is not loaded again.
fn read(source: &ConfigSource, previous: Option<&Checksum>) -> Read {
    let path = match source {
        ConfigSource::File(path) => path,
        ConfigSource::Embedded => return Read::Loaded(Ok(prober::default_config()), None),
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        // Unreadable (being replaced, say): no checksum, so the next check
        // tries again.
        Err(cause) => {
            return Read::Loaded(
                Err(ConfigError::Read {
                    path: path.clone(),
                    cause,
                }),
                None,
            );
        }
    };
    let checksum: Checksum = Sha256::digest(&bytes).into();
    if previous == Some(&checksum) {
        return Read::Unchanged;
    }
    Read::Loaded(prober::load_bytes(path, &bytes), Some(checksum))
}
