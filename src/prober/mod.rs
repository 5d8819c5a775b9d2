//! Probers: one shape for all — (context with deadline, target, module
//! settings) → `Result<(), ProbeFailure>`, writing gauges into the
//! per-request registry as they go.
//!
//! [`run_probe`] owns everything common: the registry with the declared
//! metric set of the prober, the probe log, the single deadline (enforced
//! here and nowhere else), and the handler metrics (`probe_success`,
//! `probe_duration_seconds`, `probe_timeout_seconds`, `probe_failure_info`).
//!
//! Each prober is a folder (`http/`, `tcp/`, `tls/`, `websocket/`, `dns/`,
//! `sse/` ...) with its config block and validation (`config.rs`) beside
//! its probe, registered
//! with one line in [`registry`]. What several probers share: [`connect`]
//! (their side of the one connector in `net`), [`client`] (the HTTP client
//! config at request time), [`address`] and [`tls_metrics`] (metric
//! families), [`reason`] (the failure reasons and the table that maps
//! network errors to them).

pub mod address;
pub mod client;
pub mod connect;
pub mod dns;
pub mod grpc;
pub mod http;
pub mod icmp;
pub mod log;
pub mod metrics;
pub mod phase;
pub mod reason;
pub mod registry;
pub mod sse;
pub mod tcp;
pub mod tls;
pub mod tls_metrics;
pub mod unix;
pub mod websocket;
pub mod websocket_session;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::net::policy::TargetPolicy;
use log::{LogFormat, ProbeLog};
use metrics::{GaugeSpec, ProbeMetrics};
use reason::{FailureReason, ProbeFailure};
pub use registry::{
    Config, Module, ModuleFile, ProberSettings, default_config, load_bytes, load_file, load_str,
};

pub static PROBE_SUCCESS: GaugeSpec = GaugeSpec::always(
    "probe_success",
    "Displays whether or not the probe was a success",
);
pub static PROBE_DURATION: GaugeSpec = GaugeSpec::always(
    "probe_duration_seconds",
    "Returns how long the probe took to complete in seconds",
);
pub static PROBE_TIMEOUT: GaugeSpec = GaugeSpec::always(
    "probe_timeout_seconds",
    "Returns the timeout of the probe in seconds",
);
pub static PROBE_FAILURE_INFO: GaugeSpec = GaugeSpec::labelled(
    "probe_failure_info",
    "Why the probe failed: exactly one reason when probe_success is 0",
    &["reason"],
);
/// blackbox's regex gauge, shared by the http and tcp probers.
pub static FAILED_DUE_TO_REGEX: GaugeSpec = GaugeSpec::always(
    "probe_failed_due_to_regex",
    "Indicates if probe failed due to regex",
);
static HANDLER_METRICS: &[&GaugeSpec] = &[
    &PROBE_SUCCESS,
    &PROBE_DURATION,
    &PROBE_TIMEOUT,
    &PROBE_FAILURE_INFO,
];

/// What a prober gets besides its target and settings.
pub struct ProbeContext<'a> {
    pub metrics: &'a ProbeMetrics,
    pub log: &'a ProbeLog,
    /// The one deadline of this probe; [`run_probe`] cuts the prober there.
    pub deadline: Instant,
    /// The `hostname` query parameter (Host header and SNI for http,
    /// server_name for tcp/tls).
    pub hostname: Option<&'a str>,
    /// Who this probe may reach (the module's and the top-level policy);
    /// every connector the prober builds carries it.
    pub targets: &'a TargetPolicy,
    pub limits: ProbeLimits,
    /// Where long-lived sessions live (`websocket_session`), when the
    /// caller keeps them (the server does).
    pub session: Option<SessionScope<'a>>,
    on_deadline: Mutex<FailureReason>,
}

/// What a session prober needs beyond one probe: the registry the server
/// keeps its sessions in, and the module the session belongs to (its name
/// keys the session; the session keeps the module until it ends).
#[derive(Clone, Copy)]
pub struct SessionScope<'a> {
    pub sessions: &'a websocket_session::Sessions,
    pub module: &'a Arc<Module>,
}

impl ProbeContext<'_> {
    /// The reason reported if the deadline passes from now on (e.g. a
    /// WebSocket `expect` still waiting is `expect_failed`, not `timeout`).
    pub fn set_deadline_reason(&self, reason: FailureReason) {
        *self.on_deadline.lock().unwrap_or_else(|e| e.into_inner()) = reason;
    }

    fn deadline_reason(&self) -> FailureReason {
        *self.on_deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start timing a phase; the elapsed time is added to `spec{phase}`
    /// when the guard drops, including when the deadline cancels the probe,
    /// so the phase metrics show where a timed-out probe was.
    pub fn phase(&self, spec: &'static GaugeSpec, phase: &'static str) -> phase::PhaseGuard<'_> {
        phase::PhaseGuard::new(self.metrics, spec, phase)
    }
}

/// What one probe may hold whatever the target sends (the exporter's
/// flags).
#[derive(Debug, Clone, Copy)]
pub struct ProbeLimits {
    /// A response body kept for regexes, or decompressed, when the module
    /// sets no `body_size_limit` (`--probe.max-body-bytes`).
    pub max_body_bytes: u64,
}

impl Default for ProbeLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
        }
    }
}

/// One probe request, as the `/probe` handler hands it over.
pub struct ProbeRequest<'a> {
    pub module: &'a Module,
    pub target: &'a str,
    pub hostname: Option<&'a str>,
    pub timeout: Duration,
    pub log_format: LogFormat,
    pub limits: ProbeLimits,
    /// The session registry (None: a session probe fails).
    pub sessions: Option<SessionScope<'a>>,
}

/// Everything a finished probe produced.
pub struct ProbeReport {
    pub success: bool,
    pub failure: Option<ProbeFailure>,
    /// The caller went away and the probe was stopped (neither a success
    /// nor a failure of the target).
    pub cancelled: bool,
    pub duration: Duration,
    pub metrics: ProbeMetrics,
    pub log: ProbeLog,
}

/// Run one probe under its deadline.
pub async fn run_probe(req: ProbeRequest<'_>) -> ProbeReport {
    run_probe_until(req, std::future::pending()).await
}

/// [`run_probe`], stopped early when `caller_gone` resolves: the probe's
/// sockets close at once, and the report says it was cancelled (with the
/// log and metrics up to then).
pub async fn run_probe_until(
    req: ProbeRequest<'_>,
    caller_gone: impl std::future::Future<Output = ()>,
) -> ProbeReport {
    let mut declared: Vec<&'static [&'static GaugeSpec]> = vec![HANDLER_METRICS];
    declared.extend_from_slice(req.module.prober.declared_metrics());
    let metrics = ProbeMetrics::new(&declared);
    let log = ProbeLog::new(&req.module.name, req.target, req.log_format);
    let timeout_s = req.timeout.as_secs_f64();
    log.info(
        "Beginning probe",
        &[
            ("probe", &req.module.prober.name()),
            ("timeout_seconds", &timeout_s),
        ],
    );
    let start = Instant::now();
    let cx = ProbeContext {
        metrics: &metrics,
        log: &log,
        deadline: start + req.timeout,
        hostname: req.hostname,
        targets: &req.module.target_policy,
        limits: req.limits,
        session: req.sessions,
        on_deadline: Mutex::new(FailureReason::Timeout),
    };
    let probe = tokio::time::timeout_at(cx.deadline, req.module.prober.probe(&cx, req.target));
    let result = tokio::select! {
        biased;
        finished = probe => match finished {
            Ok(result) => result,
            Err(_) => Err(ProbeFailure::new(
                cx.deadline_reason(),
                format!("probe deadline of {timeout_s}s exceeded"),
            )),
        },
        () = caller_gone => {
            let duration = start.elapsed();
            metrics.set(&PROBE_DURATION, duration.as_secs_f64());
            metrics.set(&PROBE_TIMEOUT, timeout_s);
            metrics.set(&PROBE_SUCCESS, 0.0);
            log.warn(
                "Probe cancelled: the caller went away",
                &[("duration_seconds", &duration.as_secs_f64())],
            );
            return ProbeReport {
                success: false,
                failure: None,
                cancelled: true,
                duration,
                metrics,
                log,
            };
        }
    };
    let duration = start.elapsed();
    metrics.set(&PROBE_DURATION, duration.as_secs_f64());
    metrics.set(&PROBE_TIMEOUT, timeout_s);
    let failure = result.err();
    match &failure {
        None => {
            metrics.set(&PROBE_SUCCESS, 1.0);
            log.info(
                "Probe succeeded",
                &[("duration_seconds", &duration.as_secs_f64())],
            );
        }
        Some(f) => {
            metrics.set(&PROBE_SUCCESS, 0.0);
            metrics.set_labelled(&PROBE_FAILURE_INFO, &[f.reason.as_str()], 1.0);
            log.error(
                "Probe failed",
                &[
                    ("reason", &f.reason),
                    ("err", &f.message),
                    ("duration_seconds", &duration.as_secs_f64()),
                ],
            );
        }
    }
    ProbeReport {
        success: failure.is_none(),
        failure,
        cancelled: false,
        duration,
        metrics,
        log,
    }
}
