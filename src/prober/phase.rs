//! Phase timing that survives cancellation.

use std::time::Instant;

use super::metrics::{GaugeSpec, ProbeMetrics};

/// Adds the time since its creation to `spec{phase=…}` when dropped.
pub struct PhaseGuard<'a> {
    metrics: &'a ProbeMetrics,
    spec: &'static GaugeSpec,
    phase: &'static str,
    start: Instant,
}

impl<'a> PhaseGuard<'a> {
    pub fn new(metrics: &'a ProbeMetrics, spec: &'static GaugeSpec, phase: &'static str) -> Self {
        Self {
            metrics,
            spec,
            phase,
            start: Instant::now(),
        }
    }

    /// End the phase now.
    pub fn finish(self) {}
}

impl Drop for PhaseGuard<'_> {
    fn drop(&mut self) {
        self.metrics
            .add_labelled(self.spec, &[self.phase], self.start.elapsed().as_secs_f64());
    }
}
