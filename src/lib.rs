//! handshake_exporter: a blackbox-style Prometheus exporter for real-time
//! services (HTTP, WebSocket, TLS and TCP probes) with a failure reason on
//! every failed probe.
//!
//! Layers, each importing only the ones before it (checked in CI by
//! `scripts/check-layers`; see `docs/architecture.md`):
//! `net` (sockets, proxies, TLS) ← `config` (blackbox.yml, shared blocks)
//! ← `prober` (one folder per prober, the probe run) ← `server` (HTTP
//! endpoints, history, reload). `cli` and `logging` are the binary's edge.

pub mod cli;
pub mod config;
pub mod logging;
pub mod net;
pub mod prober;
pub mod server;
