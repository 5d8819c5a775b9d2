//! The loaded configuration, swapped atomically on reload. A failed reload
//! keeps the running config; in-flight probes keep the module snapshot they
//! started with.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use super::self_metrics::ExporterMetrics;
use crate::config::ConfigError;
use crate::prober::{self, Config};

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    File(PathBuf),
    /// The embedded default config (no file given and `blackbox.yml` absent).
    Embedded,
}

pub struct ConfigState {
    current: ArcSwap<Config>,
    source: ConfigSource,
    /// Serialises reloads (SIGHUP and POST may race).
    reload_lock: tokio::sync::Mutex<()>,
}

impl ConfigState {
    /// Load once at startup (blocking is fine here: the server is not up).
    pub fn load(source: ConfigSource) -> Result<Self, ConfigError> {
        let cfg = read(&source)?;
        Ok(Self {
            current: ArcSwap::from_pointee(cfg),
            source,
            reload_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn get(&self) -> Arc<Config> {
        self.current.load_full()
    }

    pub fn source(&self) -> &ConfigSource {
        &self.source
    }

    /// Re-read the source off the async runtime; on success swap, on error
    /// keep the old config. Updates the reload gauges either way.
    pub async fn reload(&self, metrics: &ExporterMetrics) -> Result<(), String> {
        let _guard = self.reload_lock.lock().await;
        let source = self.source.clone();
        let result = tokio::task::spawn_blocking(move || read(&source))
            .await
            .map_err(|e| format!("reload task failed: {e}"))
            .and_then(|r| r.map_err(|e| e.to_string()))
            .and_then(|cfg| {
                // An empty file (or one with only comments) is far more
                // likely a truncated write than a wish to drop every module.
                if cfg.modules_declared {
                    Ok(cfg)
                } else {
                    Err("config file has no modules: section (empty or only comments); keeping the running config".to_string())
                }
            });
        match result {
            Ok(cfg) => {
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
        }
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

fn read(source: &ConfigSource) -> Result<Config, ConfigError> {
    match source {
        ConfigSource::File(path) => prober::load_file(path),
        ConfigSource::Embedded => Ok(prober::default_config()),
    }
}
