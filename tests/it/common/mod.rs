//! Shared support for the integration tests (`tests/it`, one test binary)
//! and the bench (`benches/probe_throughput.rs`, which includes this module
//! by path).
//!
//! The test modules refer to it as `crate::common::...`; the files here
//! refer to each other as `super::...`, which also resolves inside the
//! bench. Each crate that includes it uses only part of it.
#![allow(dead_code)]

pub mod blackbox;
pub mod dns_server;
pub mod exporter;
pub mod exposition;
pub mod grpc_server;
pub mod h3_server;
pub mod http_server;
pub mod json;
pub mod nginx;
pub mod ocsp;
pub mod pki;
pub mod probe;
pub mod prometheus;
pub mod proxy;
pub mod recording;
pub mod tls_server;
pub mod ws_backend;
pub mod ws_server;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A port on 127.0.0.1 that was free a moment ago: bind port 0, read the
/// port, drop the listener. Another process may take it in between; callers
/// that start a process on it retry on "address in use".
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// `127.0.0.1:<port>` of a port nobody listens on (connection refused).
pub fn closed_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// `path` when it is an installed file; else panics with `not_installed`
/// (what to install): the tests that need it fail, they never skip.
pub fn installed_binary(path: &str, not_installed: &str) -> PathBuf {
    let path = Path::new(path);
    if !path.is_file() {
        panic!("{not_installed}");
    }
    path.to_path_buf()
}

/// Sends a signal by name (`HUP`, `TERM`, `INT` ...) to `pid` with kill(1);
/// panics unless kill succeeds.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
