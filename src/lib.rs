//! handshake_exporter: a blackbox-style Prometheus exporter for real-time
//! services (HTTP, WebSocket, TLS and TCP probes) with a failure reason on
//! every failed probe.

pub mod civil_time;
pub mod cli;
pub mod config;
pub mod logging;
pub mod net;
pub mod probe_log;
pub mod prober;
pub mod server;
