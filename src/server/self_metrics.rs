//! The exporter's own metrics on `/metrics` (README "Exporter metrics").

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};

/// Registered once per server; probes update it.
pub struct ExporterMetrics {
    registry: Registry,
    pub config_last_reload_successful: Gauge,
    pub config_last_reload_success_timestamp: Gauge,
    pub module_unknown_total: IntCounter,
    pub probes_total: IntCounterVec,
    pub probe_duration: HistogramVec,
    pub probes_in_flight: IntGauge,
    /// Long-lived sessions open (`websocket_session`), set when `/metrics`
    /// is read.
    pub websocket_sessions: IntGauge,
    /// `/probe` requests answered without a probe, by why.
    pub probe_requests_refused: IntCounterVec,
}

/// Why a `/probe` request was refused before probing.
#[derive(Debug, Clone, Copy)]
pub enum Refused {
    /// The request came from a probe (it carries the loop mark): 508.
    Loop,
    /// `--probe.max-in-flight` probes were running: 503.
    InFlight,
}

impl Refused {
    pub const ALL: &[Refused] = &[Refused::Loop, Refused::InFlight];

    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Loop => "loop",
            Refused::InFlight => "in_flight",
        }
    }
}

impl ExporterMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let build_info = GaugeVec::new(
            Opts::new(
                "handshake_exporter_build_info",
                "A metric with a constant '1' value labeled by version, revision and rustc from which handshake_exporter was built",
            ),
            &["version", "revision", "rustc"],
        )?;
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("HANDSHAKE_REVISION"),
                env!("HANDSHAKE_RUSTC"),
            ])
            .set(1.0);
        let config_last_reload_successful = Gauge::new(
            "handshake_exporter_config_last_reload_successful",
            "Handshake exporter config loaded successfully",
        )?;
        let config_last_reload_success_timestamp = Gauge::new(
            "handshake_exporter_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload",
        )?;
        let module_unknown_total = IntCounter::new(
            "handshake_exporter_module_unknown_total",
            "Count of unknown modules requested by probes",
        )?;
        let probes_total = IntCounterVec::new(
            Opts::new(
                "handshake_exporter_probes_total",
                "Probes run, by module and result",
            ),
            &["module", "result"],
        )?;
        let probe_duration = HistogramVec::new(
            HistogramOpts::new(
                "handshake_exporter_probe_duration_seconds",
                "Duration of probes, by module",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
            ]),
            &["module"],
        )?;
        let probes_in_flight = IntGauge::new(
            "handshake_exporter_probes_in_flight",
            "Probes currently running",
        )?;
        let websocket_sessions = IntGauge::new(
            "handshake_exporter_websocket_sessions",
            "WebSocket sessions open (prober websocket_session)",
        )?;
        let probe_requests_refused = IntCounterVec::new(
            Opts::new(
                "handshake_exporter_probe_requests_refused_total",
                "Probe requests answered without probing, by reason",
            ),
            &["reason"],
        )?;
        for r in Refused::ALL {
            probe_requests_refused.with_label_values(&[r.as_str()]);
        }
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(probe_requests_refused.clone()))?;
        registry.register(Box::new(config_last_reload_successful.clone()))?;
        registry.register(Box::new(config_last_reload_success_timestamp.clone()))?;
        registry.register(Box::new(module_unknown_total.clone()))?;
        registry.register(Box::new(probes_total.clone()))?;
        registry.register(Box::new(probe_duration.clone()))?;
        registry.register(Box::new(probes_in_flight.clone()))?;
        registry.register(Box::new(websocket_sessions.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            config_last_reload_successful,
            config_last_reload_success_timestamp,
            module_unknown_total,
            probes_total,
            probe_duration,
            probes_in_flight,
            websocket_sessions,
            probe_requests_refused,
        })
    }

    pub fn refused(&self, why: Refused) {
        self.probe_requests_refused
            .with_label_values(&[why.as_str()])
            .inc();
    }

    /// `result`: `success`, `failure` or `cancelled`.
    pub fn observe_probe(&self, module: &str, result: &str, seconds: f64) {
        self.probes_total.with_label_values(&[module, result]).inc();
        let h: Histogram = self.probe_duration.with_label_values(&[module]);
        h.observe(seconds);
    }

    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
