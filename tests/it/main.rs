//! All integration tests, in one test binary.
//!
//! Each former `tests/<name>.rs` is the module `<name>` here, and the shared
//! support (servers, PKI, exporter and daemon runners, exposition parsing)
//! is the module [`common`]. One binary means `common` and its dependencies
//! compile and link once instead of once per test file.
//!
//! ```text
//! cargo test --test it                      # every integration test
//! cargo test --test it blackbox_compat::    # one group (module)
//! cargo test --test it tls_prober::ocsp     # tests whose path matches
//! scripts/test --test it e2e_prometheus::   # the same, after installing
//!                                           # the Debian packages it needs
//! ```
//!
//! A module refers to the support code as `crate::common::...`; inside
//! `common`, siblings are `super::...` (benches/probe_throughput.rs includes
//! `common` as a module of its own crate, where `crate::common` would not
//! resolve).

// Its mod.rs allows dead code: the bench includes it too and uses little.
mod common;

mod blackbox_compat;
mod debian_blackbox_yml;
mod deploy_files;
mod dns_prober;
mod e2e_nginx_sse;
mod e2e_nginx_tls;
mod e2e_nginx_websocket;
mod e2e_nginx_websocket_session;
mod e2e_prometheus;
mod flags;
mod grpc_prober;
mod hostile;
mod http3_prober;
mod http_oauth2;
mod http_prober;
mod icmp_prober;
mod landing_chromium;
mod server;
mod sse_prober;
mod target_policy;
mod tcp_prober;
mod tls_prober;
mod unix_prober;
mod websocket_apps;
mod websocket_h2;
mod websocket_prober;
mod websocket_session;
