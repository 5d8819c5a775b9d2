//! Debian's prometheus-blackbox-exporter (0.23), run like our binary.
//!
//! The compatibility tests need it; when it is missing they fail (never
//! skip) and say what to install.

use std::path::PathBuf;

use super::exporter::Exporter;
use super::installed_binary;

/// Where the Debian package installs the binary.
pub const BINARY: &str = "/usr/bin/prometheus-blackbox-exporter";

pub const NOT_INSTALLED: &str = "prometheus-blackbox-exporter is not installed: run scripts/test \
     (which apt-installs it) or `apt-get install prometheus-blackbox-exporter`";

/// The binary's path; panics with [`NOT_INSTALLED`] when it is missing.
pub fn binary() -> PathBuf {
    installed_binary(BINARY, NOT_INSTALLED)
}

/// `prometheus-blackbox-exporter --version`, first line.
pub fn version() -> String {
    let out = std::process::Command::new(binary())
        .arg("--version")
        .output()
        .expect("run prometheus-blackbox-exporter --version");
    let text = [out.stdout, out.stderr].concat();
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Starts blackbox_exporter with `config_yaml` on a free local port.
pub async fn start(config_yaml: &str) -> Exporter {
    start_with_args(config_yaml, &[]).await
}

pub async fn start_with_args(config_yaml: &str, args: &[&str]) -> Exporter {
    Exporter::spawn("blackbox_exporter", &binary(), config_yaml, args).await
}

/// Starts blackbox_exporter with extra environment variables (Go reads
/// `SSL_CERT_FILE` for its system roots, as rustls-native-certs does).
pub async fn start_with_env(config_yaml: &str, env: &[(&str, &str)]) -> Exporter {
    Exporter::spawn_with_env("blackbox_exporter", &binary(), config_yaml, env).await
}
