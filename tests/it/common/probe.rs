//! Run one probe in-process through the library: config text → module →
//! `run_probe` → parsed exposition. Faster than the binary, same code path
//! as `/probe` minus the HTTP layer.

use std::path::Path;
use std::time::Duration;

use handshake_exporter::prober::load_str;
use handshake_exporter::prober::log::LogFormat;
use handshake_exporter::prober::{Config, Module};
use handshake_exporter::prober::{ProbeLimits, ProbeRequest, run_probe};

use super::exposition::Exposition;

/// What a probe produced, parsed.
pub struct Outcome {
    pub success: bool,
    /// `probe_failure_info`'s reason, if the probe failed.
    pub reason: Option<String>,
    pub metrics: Exposition,
    pub text: String,
    pub log: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.metrics.value(name, labels)
    }

    /// Panics with the log unless the probe failed with `reason`.
    pub fn assert_reason(&self, reason: &str) {
        assert!(
            !self.success,
            "probe succeeded, expected {reason}\n{}\n{}",
            self.log, self.text
        );
        assert_eq!(
            self.reason.as_deref(),
            Some(reason),
            "log:\n{}\nmetrics:\n{}",
            self.log,
            self.text
        );
        let reasons: Vec<_> = self.metrics.samples_named("probe_failure_info").collect();
        assert_eq!(
            reasons.len(),
            1,
            "exactly one failure reason:\n{}",
            self.text
        );
    }

    /// Panics with the log unless the probe succeeded.
    pub fn assert_success(&self) {
        assert!(
            self.success,
            "probe failed ({:?})\nlog:\n{}\nmetrics:\n{}",
            self.reason, self.log, self.text
        );
        assert!(!self.metrics.has("probe_failure_info"), "{}", self.text);
    }
}

/// `config_yaml` loaded with paths relative to `base_dir`; panics with the
/// text when it does not load.
pub fn load_config(base_dir: &Path, config_yaml: &str) -> Config {
    load_str(config_yaml, base_dir)
        .unwrap_or_else(|e| panic!("config does not load: {e}\n{config_yaml}"))
}

/// Probe `target` with `module`, with `timeout`.
pub async fn run_module(
    module: &Module,
    target: &str,
    hostname: Option<&str>,
    timeout: Duration,
) -> Outcome {
    let start = std::time::Instant::now();
    let report = run_probe(ProbeRequest {
        module,
        target,
        hostname,
        timeout,
        log_format: LogFormat::Logfmt,
        limits: ProbeLimits::default(),
        sessions: None,
    })
    .await;
    let elapsed = start.elapsed();
    let text = report.metrics.encode_text();
    Outcome {
        success: report.success,
        reason: report
            .failure
            .as_ref()
            .map(|f| f.reason.as_str().to_string()),
        metrics: Exposition::parse(&text),
        text,
        log: report.log.text(),
        elapsed,
    }
}

/// Probe `target` with module `module` of an already loaded `config` (two
/// probes then share the module, as two `/probe` requests do).
pub async fn run_loaded(
    config: &Config,
    module: &str,
    target: &str,
    hostname: Option<&str>,
    timeout: Duration,
) -> Outcome {
    let module = config
        .modules
        .get(module)
        .unwrap_or_else(|| panic!("no module {module}"))
        .clone();
    run_module(&module, target, hostname, timeout).await
}

/// Probe `target` with module `module` of `config_yaml` (paths relative to
/// `base_dir`), with `timeout`.
pub async fn run_in(
    base_dir: &Path,
    config_yaml: &str,
    module: &str,
    target: &str,
    hostname: Option<&str>,
    timeout: Duration,
) -> Outcome {
    let config = load_config(base_dir, config_yaml);
    run_loaded(&config, module, target, hostname, timeout).await
}

/// `run_in` with the current directory and a 5 s timeout.
pub async fn run(config_yaml: &str, module: &str, target: &str) -> Outcome {
    run_in(
        Path::new("."),
        config_yaml,
        module,
        target,
        None,
        Duration::from_secs(5),
    )
    .await
}
