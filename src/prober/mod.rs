//! Probers: one shape for all, (deadline, target, module) → result + metrics.

pub mod metrics;
pub mod reason;
