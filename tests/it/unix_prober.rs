//! `prober: unix`: the tcp dialog over a unix socket (blackbox 0.28),
//! against in-process `UnixListener`s in a temporary directory: a dialog,
//! TLS and STARTTLS with `tls_config.server_name`, refused and missing
//! sockets, a failed `expect`, the target policy's path rules, and what a
//! unix probe does not have (address metrics, a default SNI).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use crate::common::pki::Pki;
use crate::common::probe::run_in;
use crate::common::tls_server::ServerTls;

const TIMEOUT: Duration = Duration::from_secs(5);

/// How a test server talks on each connection.
#[derive(Clone, Copy)]
enum Script {
    /// Answers `PING` with `PONG`, after a greeting line; closes on `QUIT`.
    Pong,
    /// TLS at once, then as `Pong`.
    Tls,
    /// A greeting, `STARTTLS` answered `GO`, TLS, then as `Pong`.
    StartTls,
}

async fn pong<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut lines = BufReader::new(stream);
    if lines.get_mut().write_all(b"HELLO unix\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    while lines.read_line(&mut line).await.is_ok_and(|n| n > 0) {
        match line.trim_end() {
            "PING" => {
                let _ = lines.get_mut().write_all(b"PONG\n").await;
            }
            "QUIT" => return,
            _ => {}
        }
        line.clear();
    }
}

/// Serves `script` on a socket at `path`.
fn serve(path: &Path, script: Script, tls: Option<Arc<ServerConfig>>) {
    let listener = UnixListener::bind(path).expect("bind unix socket");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tls = tls.clone().map(tokio_rustls::TlsAcceptor::from);
            tokio::spawn(async move {
                match (script, tls) {
                    (Script::Pong, _) | (_, None) => pong(stream).await,
                    (Script::Tls, Some(acceptor)) => {
                        if let Ok(s) = acceptor.accept(stream).await {
                            pong(s).await;
                        }
                    }
                    (Script::StartTls, Some(acceptor)) => {
                        let mut lines = BufReader::new(stream);
                        let _ = lines.get_mut().write_all(b"HELLO starttls\n").await;
                        let mut line = String::new();
                        let _ = lines.read_line(&mut line).await;
                        if line.trim_end() != "STARTTLS" {
                            return;
                        }
                        let _ = lines.get_mut().write_all(b"GO\n").await;
                        if let Ok(s) = acceptor.accept(lines.into_inner()).await {
                            pong(s).await;
                        }
                    }
                }
            });
        }
    });
}

fn socket(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Greeting, PING, PONG, as `query_response` items (indented for a
/// module's `unix:` block).
const PING_PONG: &str = concat!(
    "        - expect: ^HELLO\n",
    "        - send: PING\n",
    "        - expect: ^PONG$\n",
);

#[tokio::test]
async fn a_dialog_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket(&dir, "app.sock");
    serve(&path, Script::Pong, None);
    let config =
        format!("modules:\n  u:\n    prober: unix\n    unix:\n      query_response:\n{PING_PONG}");
    let target = path.to_str().unwrap();
    let o = run_in(dir.path(), &config, "u", target, None, TIMEOUT).await;
    o.assert_success();
    assert_eq!(o.value("probe_failed_due_to_regex", &[]), Some(0.0));
    assert_eq!(o.value("probe_failed_due_to_bytes", &[]), Some(0.0));
    // No address to resolve: no address metrics, no TLS family.
    assert_eq!(o.value("probe_ip_protocol", &[]), None);
    assert_eq!(o.value("probe_ip_addr_hash", &[]), None);
    assert_eq!(o.value("probe_ssl_earliest_cert_expiry", &[]), None);
    assert!(o.log.contains(target), "{}", o.log);

    // A line that never comes before the server closes fails the regex.
    let config = "modules:\n  u:\n    prober: unix\n    unix:\n      query_response:\n        - send: QUIT\n        - expect: ^NEVER\n";
    let o = run_in(dir.path(), config, "u", target, None, TIMEOUT).await;
    o.assert_reason("expect_failed");
    assert_eq!(o.value("probe_failed_due_to_regex", &[]), Some(1.0));
}

#[tokio::test]
async fn missing_and_abandoned_sockets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = "modules:\n  u:\n    prober: unix\n";
    // No file at all.
    let missing = socket(&dir, "missing.sock");
    let o = run_in(
        dir.path(),
        config,
        "u",
        missing.to_str().unwrap(),
        None,
        TIMEOUT,
    )
    .await;
    o.assert_reason("connect_refused");
    assert!(o.log.contains("missing.sock"), "{}", o.log);
    // A file whose server is gone.
    let abandoned = socket(&dir, "abandoned.sock");
    drop(std::os::unix::net::UnixListener::bind(&abandoned).unwrap());
    assert!(abandoned.exists());
    let o = run_in(
        dir.path(),
        config,
        "u",
        abandoned.to_str().unwrap(),
        None,
        TIMEOUT,
    )
    .await;
    o.assert_reason("connect_refused");
    // Not a path.
    let o = run_in(dir.path(), config, "u", "app.sock", None, TIMEOUT).await;
    o.assert_reason("invalid_target");
}

#[tokio::test]
async fn tls_and_starttls_over_a_unix_socket_verify_the_configured_name() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["app.internal"], &[], Default::default());
    let tls = ServerTls::new(&leaf).build();
    let dir = tempfile::tempdir().unwrap();
    let direct = socket(&dir, "tls.sock");
    let starttls = socket(&dir, "starttls.sock");
    serve(&direct, Script::Tls, Some(tls.clone()));
    serve(&starttls, Script::StartTls, Some(tls));
    let ca = pki.ca_file();
    let config = format!(
        "\
modules:
  tls:
    prober: unix
    unix:
      tls: true
      tls_config: {{ca_file: {ca}, server_name: app.internal}}
      query_response:
{PING_PONG}
  starttls:
    prober: unix
    unix:
      tls_config: {{ca_file: {ca}, server_name: app.internal}}
      query_response:
        - expect: ^HELLO
        - send: STARTTLS
        - expect: ^GO
        - starttls: true
{PING_PONG}
  wrong_name:
    prober: unix
    unix:
      tls: true
      tls_config: {{ca_file: {ca}, server_name: other.internal}}
",
        ca = ca.display()
    );
    for (module, path) in [("tls", &direct), ("starttls", &starttls)] {
        let o = run_in(
            dir.path(),
            &config,
            module,
            path.to_str().unwrap(),
            None,
            TIMEOUT,
        )
        .await;
        o.assert_success();
        assert_eq!(
            o.value("probe_ssl_earliest_cert_expiry", &[]),
            Some(leaf.earliest_expiry() as f64),
            "{module}"
        );
        assert_eq!(
            o.value("probe_tls_version_info", &[("version", "TLS 1.3")]),
            Some(1.0)
        );
    }
    // The `hostname` parameter is no server name for a unix probe.
    let o = run_in(
        dir.path(),
        &config,
        "wrong_name",
        direct.to_str().unwrap(),
        Some("app.internal"),
        TIMEOUT,
    )
    .await;
    o.assert_reason("tls_hostname_mismatch");
}

#[tokio::test]
async fn the_target_policy_decides_by_socket_path() {
    let dir = tempfile::tempdir().unwrap();
    let app = socket(&dir, "app.sock");
    let admin = socket(&dir, "admin.sock");
    serve(&app, Script::Pong, None);
    serve(&admin, Script::Pong, None);
    let base = dir.path().display();
    let config = format!(
        "\
modules:
  only_app:
    prober: unix
    target_policy:
      allow: ['{base}/*.sock']
      deny: ['{base}/admin.sock']
  hosts_only:
    prober: unix
    target_policy:
      allow: ['*.example.com', 10.0.0.0/8]
  open:
    prober: unix
"
    );
    let probe = |module: &'static str, path: PathBuf| {
        let config = config.clone();
        let dir = dir.path().to_path_buf();
        async move { run_in(&dir, &config, module, path.to_str().unwrap(), None, TIMEOUT).await }
    };
    probe("only_app", app.clone()).await.assert_success();
    let o = probe("only_app", admin.clone()).await;
    o.assert_reason("target_forbidden");
    assert!(o.log.contains("admin.sock"), "{}", o.log);
    // An allow list of hosts and addresses admits no socket.
    probe("hosts_only", app.clone())
        .await
        .assert_reason("target_forbidden");
    // The built-in policy (addresses only) leaves sockets to the module.
    probe("open", admin).await.assert_success();
}
