//! blackbox's command-line flags beyond the basic set, on the real binary:
//! `--web.external-url` and `--web.route-prefix`, `--web.systemd-socket`,
//! `--config.enable-auto-reload` with `--config.auto-reload-interval`,
//! `--log.prober`; and the command lines of Debian's systemd unit and of the
//! prometheus-community Helm chart, which must start unchanged.

use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::common::eventually;
use crate::common::exporter::{Exporter, HttpResponse, http_request, our_binary, probe_path};
use crate::common::exposition::Exposition;
use crate::common::free_port;
use crate::common::http_server::{TestServer, text};

const CONFIG: &str = "\
modules:
  http_2xx:
    prober: http
    timeout: 5s
";

/// A target answering 200 "ok" on every path.
fn ok_server() -> TestServer {
    TestServer::http(|_req| text(StatusCode::OK, "ok"))
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("flags-test-")
        .tempdir()
        .expect("temp dir")
}

async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_request(addr, Method::GET, path, &[], Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `href="..."` and `action="..."` values of a page, HTML-unescaped.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "action=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').expect("closing quote");
            out.push(
                rest[..end]
                    .replace("&amp;", "&")
                    .replace("&quot;", "\"")
                    .replace("&#39;", "'"),
            );
            rest = &rest[end..];
        }
    }
    out
}

// ---------------------------------------------------------------------------
// --web.external-url and --web.route-prefix
// ---------------------------------------------------------------------------

/// The prefix comes from the external URL's path: every endpoint answers
/// under it and nowhere else, `/` redirects to the external URL, the prefix
/// without its slash to the prefix, and every link of the landing page
/// resolves under the prefix and answers.
#[tokio::test]
async fn external_url_path_prefixes_every_endpoint() {
    let target = ok_server();
    let exporter = Exporter::start_with_args_ready_at(
        CONFIG,
        &["--web.external-url=http://proxy.example:8443/bb/"],
        "/bb/-/healthy",
    )
    .await;
    let addr = exporter.addr();
    let probe = probe_path(&[("target", &target.url("/")), ("module", "http_2xx")]);

    let r = get(addr, &format!("/bb{probe}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        Exposition::parse(&r.body).value("probe_success", &[]),
        Some(1.0)
    );
    let r = get(addr, "/bb/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .contains("handshake_exporter_config_last_reload_successful 1")
    );
    for (path, status) in [
        ("/bb/-/healthy", 200),
        ("/bb/-/ready", 200),
        ("/bb/config", 200),
        ("/bb/logs?id=0", 200),
        ("/bb/-/reload", 405),
        ("/bb/", 200),
        ("/bb/nothing-here", 404),
    ] {
        let r = get(addr, path).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
    }
    let r = exporter.post("/bb/-/reload").await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Outside the prefix: nothing but the redirects.
    for path in [
        "/probe",
        &probe,
        "/metrics",
        "/-/healthy",
        "/-/ready",
        "/config",
        "/logs?id=0",
        "/-/reload",
        "/bbx/metrics",
        "/b",
    ] {
        let r = get(addr, path).await;
        assert_eq!(r.status, 404, "{path} outside the prefix: {}", r.body);
    }
    let r = get(addr, "/").await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://proxy.example:8443/bb"));
    let r = get(addr, "/bb?x=1").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/bb/?x=1"));

    // The landing page's links, resolved as a browser does from /bb/.
    let page = get(addr, "/bb/").await;
    assert!(page.body.contains("<html"), "{}", page.body);
    let base = url::Url::parse(&format!("http://{addr}/bb/")).expect("base");
    let found = links(&page.body);
    assert!(found.len() >= 6, "few links: {found:?}");
    for link in found {
        let resolved = base.join(&link).expect("link resolves");
        if resolved.host_str() != Some("127.0.0.1") {
            continue; // an external link (documentation)
        }
        assert!(
            resolved.path().starts_with("/bb/"),
            "{link} leaves the prefix: {resolved}"
        );
        // Probe links point at prometheus.io: resolving them is the point,
        // not probing the internet.
        if resolved.path() == "/bb/probe" {
            continue;
        }
        let path_and_query = match resolved.query() {
            Some(q) => format!("{}?{q}", resolved.path()),
            None => resolved.path().to_string(),
        };
        let r = get(addr, &path_and_query).await;
        assert_eq!(
            r.status, 200,
            "landing link {link} -> {path_and_query}: {}",
            r.body
        );
    }
}

/// `--web.route-prefix` wins over the external URL's path (a proxy that
/// rewrites paths); `/` still redirects to the external URL.
#[tokio::test]
async fn route_prefix_flag_wins_over_the_external_path() {
    let exporter = Exporter::start_with_args_ready_at(
        CONFIG,
        &[
            "--web.external-url=https://monitoring.example/blackbox",
            "--web.route-prefix=/internal/",
        ],
        "/internal/-/healthy",
    )
    .await;
    let addr = exporter.addr();
    assert_eq!(get(addr, "/internal/metrics").await.status, 200);
    assert_eq!(get(addr, "/blackbox/metrics").await.status, 404);
    assert_eq!(get(addr, "/metrics").await.status, 404);
    let r = get(addr, "/").await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://monitoring.example/blackbox")
    );

    // A prefix alone: `/` goes to the prefix (the inferred external URL has
    // no path, so redirecting there would loop).
    let exporter =
        Exporter::start_with_args_ready_at(CONFIG, &["--web.route-prefix=bb"], "/bb/-/healthy")
            .await;
    let r = get(exporter.addr(), "/").await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/bb/"));

    // An external URL without a path keeps the endpoints at the root.
    let exporter =
        Exporter::start_with_args(CONFIG, &["--web.external-url=http://proxy.example/"]).await;
    assert_eq!(get(exporter.addr(), "/metrics").await.status, 200);
    assert_eq!(get(exporter.addr(), "/").await.status, 200);
}

// ---------------------------------------------------------------------------
// --web.systemd-socket
// ---------------------------------------------------------------------------

/// Runs the binary to completion (at most 10 s) in `cwd` with `env`;
/// its exit status and stderr.
fn run_to_exit(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let (status, _, stderr) = crate::common::exporter::run_to_exit(cwd, args, env);
    (status, stderr)
}

/// A process killed on drop, its output in a file.
struct Proc {
    child: Child,
    log_path: PathBuf,
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until `GET addr/-/healthy` answers 200; panics with the output
    /// when the process exits or takes over 10 s.
    async fn wait_healthy(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("exporter exited ({status}):\n{}", self.log());
            }
            let attempt = tokio::time::timeout(
                Duration::from_secs(1),
                http_request(addr, Method::GET, "/-/healthy", &[], Bytes::new()),
            )
            .await;
            if let Ok(Ok(r)) = attempt
                && r.status == 200
            {
                assert_eq!(r.body, "Healthy");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no /-/healthy on {addr} within 10s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// As systemd does for a `.socket` unit: a listening socket bound here is
/// passed as fd 3 with `LISTEN_FDS=1` and `LISTEN_PID` = the exporter's pid
/// (a shell sets it to its own `$$`, then execs the exporter, which keeps
/// that pid). The exporter serves probes on it.
#[tokio::test]
async fn systemd_socket_activation_serves_on_the_passed_socket() {
    let target = ok_server();
    let dir = temp_dir();
    let config = dir.path().join("blackbox.yml");
    std::fs::write(&config, CONFIG).expect("write config");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let fd = listener.as_raw_fd();
    let log_path = dir.path().join("output.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(r#"export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" "$@""#)
        .arg(our_binary())
        .arg(format!("--config.file={}", config.display()))
        .arg("--web.systemd-socket")
        .arg("--web.external-url=http://exporter.example:9115/")
        // Ignored with --web.systemd-socket, as in exporter-toolkit.
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .env_remove("LISTEN_FDNAMES")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("dup log")))
        .stderr(Stdio::from(log));
    // SAFETY: between fork and exec the closure only calls dup2 and fcntl,
    // which are async-signal-safe, on descriptors the child inherited.
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                // dup2(3, 3) would keep close-on-exec set.
                let flags = libc::fcntl(3, libc::F_GETFD);
                if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().expect("start exporter");
    // The exporter has its copy; ours would keep accepting into a backlog.
    drop(listener);
    let mut proc = Proc { child, log_path };
    proc.wait_healthy(addr).await;

    let r = get(
        addr,
        &probe_path(&[("target", &target.url("/")), ("module", "http_2xx")]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        Exposition::parse(&r.body).value("probe_success", &[]),
        Some(1.0)
    );
    let log = proc.log();
    assert!(
        log.contains("Listening on") && log.contains(&addr.to_string()),
        "{log}"
    );
}

/// The same through systemd's own tool: `systemd-socket-activate` (Debian's
/// systemd package) listens, and on the first connection execs the exporter
/// with the socket as fd 3 and LISTEN_FDS/LISTEN_PID set; that first
/// connection (our health check) is answered by the exporter. Skipped where
/// the tool is not installed (a container without systemd).
#[tokio::test]
async fn systemd_socket_activate_tool_starts_the_exporter() {
    let tool = Path::new("/usr/bin/systemd-socket-activate");
    if !tool.exists() {
        eprintln!(
            "skipped: {} not installed (Debian package systemd)",
            tool.display()
        );
        return;
    }
    let target = ok_server();
    let dir = temp_dir();
    let config = dir.path().join("blackbox.yml");
    std::fs::write(&config, CONFIG).expect("write config");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log_path = dir.path().join("output.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = Command::new(tool)
        .arg(format!("--listen={addr}"))
        .arg(our_binary())
        .arg(format!("--config.file={}", config.display()))
        .arg("--web.systemd-socket")
        .arg("--web.external-url=http://exporter.example:9115/")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("dup log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start systemd-socket-activate");
    let mut proc = Proc { child, log_path };
    proc.wait_healthy(addr).await;
    let r = get(
        addr,
        &probe_path(&[("target", &target.url("/")), ("module", "http_2xx")]),
    )
    .await;
    assert_eq!(
        Exposition::parse(&r.body).value("probe_success", &[]),
        Some(1.0)
    );
    assert!(proc.log().contains("Execing"), "{}", proc.log());
}

/// What blackbox refuses, and an environment that is not an activation.
#[test]
fn systemd_socket_misuse_is_a_startup_error() {
    let dir = temp_dir();
    let config = dir.path().join("blackbox.yml");
    std::fs::write(&config, CONFIG).expect("write config");
    let config_flag = format!("--config.file={}", config.display());
    let url = "--web.external-url=http://x.example/";

    // blackbox: "Cannot automatically infer external URL with systemd socket
    // listener. Please provide --web.external-url".
    let (status, err) = run_to_exit(
        dir.path(),
        &[&config_flag, "--web.systemd-socket"],
        &[("LISTEN_PID", "1"), ("LISTEN_FDS", "1")],
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("--web.external-url"), "{err}");

    // No activation at all.
    let (status, err) = run_to_exit(
        dir.path(),
        &[&config_flag, "--web.systemd-socket", url],
        &[],
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("LISTEN_PID is not set"), "{err}");

    // --config.check looks at the config only, as in blackbox.
    let (status, err) = run_to_exit(
        dir.path(),
        &[&config_flag, "--web.systemd-socket", "--config.check"],
        &[],
    );
    assert_eq!(status.code(), Some(0), "{err}");

    // Sockets meant for another process (pid 1) are not taken.
    let (status, err) = run_to_exit(
        dir.path(),
        &[&config_flag, "--web.systemd-socket", url],
        &[("LISTEN_PID", "1"), ("LISTEN_FDS", "1")],
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("is not this process"), "{err}");
}

// ---------------------------------------------------------------------------
// --config.enable-auto-reload, --config.auto-reload-interval
// ---------------------------------------------------------------------------

async fn own_metric(exporter: &Exporter, name: &str) -> f64 {
    exporter
        .metrics()
        .await
        .value(name, &[])
        .unwrap_or(f64::NAN)
}

/// Replaces the config file at once (a rename), so no check reads it half
/// written.
fn replace_config(exporter: &Exporter, yaml: &str) {
    let path = exporter.config_path();
    let temp = path.with_extension("new");
    std::fs::write(&temp, yaml).expect("write config");
    std::fs::rename(&temp, path).expect("rename config");
}

const RELOAD_OK: &str = "handshake_exporter_config_last_reload_successful";
const RELOAD_AT: &str = "handshake_exporter_config_last_reload_success_timestamp_seconds";

/// A changed file is loaded within the interval; an unchanged one is not
/// reloaded; a broken one keeps the running modules and sets the gauge to 0
/// (tried once, not at every check); fixing it loads again.
#[tokio::test]
async fn auto_reload_follows_the_file_contents() {
    let target = ok_server();
    let url = target.url("/");
    let exporter = Exporter::start_with_args(
        CONFIG,
        &[
            "--config.enable-auto-reload",
            "--config.auto-reload-interval=1",
        ],
    )
    .await;
    let module_answers = |module: &'static str| {
        let url = url.clone();
        let addr = exporter.addr();
        async move {
            get(addr, &probe_path(&[("target", &url), ("module", module)]))
                .await
                .status
                == 200
        }
    };
    assert!(!module_answers("added").await);

    // Unchanged: no reload (the success timestamp stays).
    let started_at = own_metric(&exporter, RELOAD_AT).await;
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(own_metric(&exporter, RELOAD_AT).await, started_at);

    // A good change is applied within the interval (plus the time to load).
    let changed = format!("{CONFIG}  added:\n    prober: http\n    timeout: 3s\n");
    replace_config(&exporter, &changed);
    let written = Instant::now();
    assert!(
        eventually(Duration::from_secs(4), || module_answers("added")).await,
        "the new module never appeared:\n{}",
        exporter.log()
    );
    let took = written.elapsed();
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert_eq!(own_metric(&exporter, RELOAD_OK).await, 1.0);
    assert!(own_metric(&exporter, RELOAD_AT).await > started_at);

    // A broken change: the running config stays, the gauge says so.
    replace_config(
        &exporter,
        "modules:\n  http_2xx:\n    prober: http\n    timeout: nonsense\n",
    );
    let failed = eventually(Duration::from_secs(4), || async {
        own_metric(&exporter, RELOAD_OK).await == 0.0
    })
    .await;
    assert!(
        failed,
        "the broken file was not noticed:\n{}",
        exporter.log()
    );
    assert!(
        module_answers("added").await,
        "the running config was dropped"
    );
    assert!(module_answers("http_2xx").await);
    let config = get(exporter.addr(), "/config").await;
    assert!(config.body.contains("added"), "{}", config.body);
    // Checked again and again, but tried once while it stays the same.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let log = exporter.log();
    assert_eq!(log.matches("Error reloading config").count(), 1, "{log}");
    assert_eq!(own_metric(&exporter, RELOAD_OK).await, 0.0);

    // Fixed: loaded again.
    replace_config(&exporter, CONFIG);
    assert!(
        eventually(Duration::from_secs(4), || async {
            own_metric(&exporter, RELOAD_OK).await == 1.0
        })
        .await,
        "{}",
        exporter.log()
    );
    assert!(!module_answers("added").await);
}

/// Without the flag the file is not watched.
#[tokio::test]
async fn no_auto_reload_without_the_flag() {
    let exporter = Exporter::start_with_args(CONFIG, &["--config.auto-reload-interval=1"]).await;
    exporter.write_config("modules:\n  only_new:\n    prober: tcp\n");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let config = get(exporter.addr(), "/config").await;
    assert!(!config.body.contains("only_new"), "{}", config.body);
    assert_eq!(own_metric(&exporter, RELOAD_OK).await, 1.0);
}

// ---------------------------------------------------------------------------
// --log.prober
// ---------------------------------------------------------------------------

/// Probe log lines reach the exporter's log from the `--log.prober` level up
/// (default info), whatever `--log.level` says; the debug page keeps every
/// line regardless.
#[tokio::test]
async fn log_prober_sets_the_level_of_probe_lines_in_the_log() {
    async fn probe_and_wait(exporter: &Exporter, target: &str, last_line: &str) {
        let path = probe_path(&[("target", target), ("module", "http_2xx")]);
        assert_eq!(get(exporter.addr(), &path).await.status, 200);
        let seen = eventually(Duration::from_secs(3), || async {
            exporter.log().contains(last_line)
        })
        .await;
        assert!(seen, "no {last_line:?} in the log:\n{}", exporter.log());
    }

    let target = ok_server();
    let url = target.url("/");
    let closed = format!("http://{}/", crate::common::closed_addr());
    // Default (info), with the exporter's own messages at error only.
    let exporter = Exporter::start_with_args(CONFIG, &["--log.level=error"]).await;
    probe_and_wait(&exporter, &url, "Probe succeeded").await;
    let log = exporter.log();
    let line = log
        .lines()
        .find(|l| l.contains("Beginning probe"))
        .unwrap_or_else(|| panic!("no Beginning probe line:\n{log}"));
    assert!(
        line.contains("level=info") && line.contains("module=http_2xx") && line.contains("target="),
        "{line}"
    );
    assert!(
        !log.contains("Successfully dialed"),
        "a debug line at info:\n{log}"
    );
    assert!(
        !log.contains("Listening on"),
        "--log.level=error ignored:\n{log}"
    );
    let debug_page = get(exporter.addr(), "/logs?id=0").await;
    assert!(
        debug_page.body.contains("Successfully dialed"),
        "{}",
        debug_page.body
    );

    // debug: the detail too.
    let exporter = Exporter::start_with_args(CONFIG, &["--log.prober=debug"]).await;
    probe_and_wait(&exporter, &url, "Probe succeeded").await;
    assert!(
        exporter.log().contains("Successfully dialed"),
        "{}",
        exporter.log()
    );

    // warn: a successful probe writes nothing, a failed one its failure.
    let exporter = Exporter::start_with_args(CONFIG, &["--log.prober=warn"]).await;
    assert_eq!(
        get(
            exporter.addr(),
            &probe_path(&[("target", &url), ("module", "http_2xx")])
        )
        .await
        .status,
        200
    );
    probe_and_wait(&exporter, &closed, "Probe failed").await;
    let log = exporter.log();
    assert!(!log.contains("Beginning probe"), "{log}");
    assert!(!log.contains("Probe succeeded"), "{log}");

    // json: the lines are JSON objects.
    let exporter =
        Exporter::start_with_args(CONFIG, &["--log.format=json", "--log.prober=info"]).await;
    probe_and_wait(&exporter, &url, "Probe succeeded").await;
    let log = exporter.log();
    let line = log
        .lines()
        .find(|l| l.contains("Beginning probe"))
        .unwrap_or_else(|| panic!("{log}"));
    let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    assert_eq!(json["msg"], "Beginning probe");
    assert_eq!(json["module"], "http_2xx");
}

// ---------------------------------------------------------------------------
// Command lines from packaging
// ---------------------------------------------------------------------------

/// Starts the binary with `args` plus a free `--web.listen-address` (the
/// packaged command lines listen on :9115, which this machine's tests may
/// not own) and waits for `/-/healthy`.
async fn start_packaged(args: &[String]) -> (Proc, SocketAddr, tempfile::TempDir) {
    let dir = temp_dir();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log_path = dir.path().join("output.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = Command::new(our_binary())
        .current_dir(dir.path())
        .args(args)
        .arg(format!("--web.listen-address={addr}"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("dup log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start exporter");
    let mut proc = Proc { child, log_path };
    proc.wait_healthy(addr).await;
    (proc, addr, dir)
}

/// `ARGS="..."` of a shell-style environment file, split on whitespace as
/// systemd splits an unquoted `$ARGS`.
fn environment_args(file: &str) -> Vec<String> {
    let line = file
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ARGS="))
        .unwrap_or_else(|| panic!("no ARGS= line in:\n{file}"));
    let value = line["ARGS=".len()..].trim_matches('"');
    value.split_whitespace().map(str::to_string).collect()
}

/// Debian's prometheus-blackbox-exporter unit runs
/// `/usr/bin/prometheus-blackbox-exporter $ARGS` with ARGS from
/// /etc/default/prometheus-blackbox-exporter (`--config.file
/// /etc/prometheus/blackbox.yml`): our binary in its place starts with that
/// command line and config and answers the health check.
#[tokio::test]
async fn debian_unit_command_line_starts_unchanged() {
    let unit_path = "/lib/systemd/system/prometheus-blackbox-exporter.service";
    let default_path = "/etc/default/prometheus-blackbox-exporter";
    let read = |path: &str| {
        std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!("{path}: {e}: run scripts/test (it apt-installs prometheus-blackbox-exporter)")
        })
    };
    let unit = read(unit_path);
    let exec = unit
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in {unit_path}"));
    assert_eq!(
        exec, "ExecStart=/usr/bin/prometheus-blackbox-exporter $ARGS",
        "the unit's command line changed: update this test"
    );
    assert!(
        unit.contains(&format!("EnvironmentFile={default_path}")),
        "{unit}"
    );
    let args = environment_args(&read(default_path));
    assert!(!args.is_empty());
    let (proc, addr, _dir) = start_packaged(&args).await;
    let target = ok_server();
    let r = get(
        addr,
        &probe_path(&[("target", &target.url("/")), ("module", "http_2xx")]),
    )
    .await;
    assert_eq!(r.status, 200, "{}\n{}", r.body, proc.log());
    // ExecReload=/bin/kill -HUP $MAINPID
    crate::common::send_signal(proc.child.id(), "HUP");
    assert!(
        eventually(Duration::from_secs(5), || async {
            proc.log().matches("Loaded config file").count() >= 2
        })
        .await,
        "{}",
        proc.log()
    );
}

/// The prometheus-community Helm chart (charts/prometheus-blackbox-exporter,
/// templates/_helpers.tpl podSpec) runs the image with
/// `--config.file=/config/blackbox.yaml` (its `config:` value mounted from a
/// ConfigMap), plus `extraArgs` (values.yaml suggests
/// `--history.limit=1000`), and probes `/-/healthy` for liveness and
/// readiness. Both start unchanged with the chart's default config.
#[tokio::test]
async fn helm_chart_args_start_unchanged() {
    // values.yaml `config:` as rendered into the ConfigMap.
    const CHART_CONFIG: &str = "\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      valid_http_versions: [\"HTTP/1.1\", \"HTTP/2.0\"]
      follow_redirects: true
      preferred_ip_protocol: \"ip4\"
";
    let root = temp_dir();
    let config_dir = root.path().join("config");
    std::fs::create_dir(&config_dir).expect("mkdir");
    std::fs::write(config_dir.join("blackbox.yaml"), CHART_CONFIG).expect("write config");
    let config_flag = format!(
        "--config.file={}",
        config_dir.join("blackbox.yaml").display()
    );
    let target = ok_server();
    for extra in [&[][..], &["--history.limit=1000".to_string()][..]] {
        let mut args = vec![config_flag.clone()];
        args.extend(extra.iter().cloned());
        let (proc, addr, _dir) = start_packaged(&args).await;
        let r = get(
            addr,
            &probe_path(&[("target", &target.url("/")), ("module", "http_2xx")]),
        )
        .await;
        assert_eq!(r.status, 200, "{args:?}: {}\n{}", r.body, proc.log());
        assert_eq!(
            Exposition::parse(&r.body).value("probe_success", &[]),
            Some(1.0),
            "{args:?}: {}",
            r.body
        );
    }
}
