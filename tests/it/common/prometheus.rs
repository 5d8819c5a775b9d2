//! Real Prometheus and Alertmanager (Debian's `prometheus` and
//! `prometheus-alertmanager` packages) on loopback, and an in-process
//! webhook receiver for Alertmanager's notifications.
//!
//! ```ignore
//! let webhook = WebhookReceiver::start();
//! let am = Alertmanager::start(&am_yaml_with(webhook.url())).await;
//! let prom = Prometheus::start(&prom_yaml, &[("rules.yml", &rules)]).await;
//! let data = prom.query("up == 1").await?;      // the API's "data" object
//! ```
//!
//! Each process runs in its own temp dir (config, storage, output log) on
//! a free port of 127.0.0.1, is ready when `/-/ready` answers 200, and is
//! killed on drop. When a binary is missing the start panics with
//! [`NOT_INSTALLED`]: the tests fail, they never skip.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tempfile::TempDir;

use super::exporter::{HttpResponse, http_request};
use super::http_server::{TestServer, text};
use super::json::array;
use super::{free_port, installed_binary};

/// Where Debian's packages install the binaries.
pub const PROMETHEUS_BINARY: &str = "/usr/bin/prometheus";
pub const ALERTMANAGER_BINARY: &str = "/usr/bin/prometheus-alertmanager";

pub const NOT_INSTALLED: &str = "prometheus is not installed: run scripts/test \
     (it apt-installs prometheus and prometheus-alertmanager)";

/// How long a process gets to answer `/-/ready` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts with a fresh port after "address already in use".
const ATTEMPTS: usize = 3;

/// `path` when it is installed; panics with [`NOT_INSTALLED`].
fn binary(path: &str) -> PathBuf {
    installed_binary(path, &format!("{NOT_INSTALLED} ({path} is missing)"))
}

/// Panics with [`NOT_INSTALLED`] unless both binaries are installed.
pub fn require_installed() {
    binary(PROMETHEUS_BINARY);
    binary(ALERTMANAGER_BINARY);
}

/// A server process on 127.0.0.1 with an HTTP API; killed on drop.
pub struct Daemon {
    name: String,
    child: Child,
    addr: SocketAddr,
    log_path: PathBuf,
    command: String,
}

impl Daemon {
    /// Runs `program` with `args(listen_addr)` in `dir` until `/-/ready`
    /// answers 200; retries with another port when the port was taken.
    async fn start(
        name: &str,
        program: &Path,
        dir: &Path,
        args: &dyn Fn(SocketAddr) -> Vec<String>,
    ) -> Daemon {
        for attempt in 1..=ATTEMPTS {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let log_path = dir.join(format!("{name}-{attempt}.log"));
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .expect("log file");
            let args = args(addr);
            let command = format!("{} {}", program.display(), args.join(" "));
            let child = Command::new(program)
                .args(&args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("dup log file")))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
            let mut daemon = Daemon {
                name: name.to_string(),
                child,
                addr,
                log_path,
                command,
            };
            match daemon.wait_ready().await {
                Ok(()) => return daemon,
                Err(why) => {
                    let log = daemon.log();
                    if log.to_ascii_lowercase().contains("address already in use")
                        && attempt < ATTEMPTS
                    {
                        continue;
                    }
                    panic!(
                        "{name} is not ready on {addr}: {why}\ncommand: {}\n--- output ---\n{log}",
                        daemon.command
                    );
                }
            }
        }
        unreachable!("the loop returns or panics")
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no answer yet");
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("exited ({status})"));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no 200 from /-/ready within {READY_TIMEOUT:?} (last: {last})"
                ));
            }
            let attempt = tokio::time::timeout(
                Duration::from_secs(2),
                http_request(self.addr, Method::GET, "/-/ready", &[], Bytes::new()),
            )
            .await;
            match attempt {
                Ok(Ok(resp)) if resp.status == 200 => return Ok(()),
                Ok(Ok(resp)) => last = format!("status {}: {}", resp.status, resp.body.trim()),
                Ok(Err(e)) => last = e,
                Err(_) => last = "no answer within 2s".into(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `n` lines of [`Daemon::log`].
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Panics (with the log) when the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "{} exited ({status})\ncommand: {}\n--- output ---\n{}",
                self.name,
                self.command,
                self.log()
            );
        }
    }

    /// `GET path_and_query`; panics (with the log) when there is no answer.
    pub async fn get(&self, path_and_query: &str) -> HttpResponse {
        match http_request(self.addr, Method::GET, path_and_query, &[], Bytes::new()).await {
            Ok(resp) => resp,
            Err(e) => panic!("{}: {e}\n--- output ---\n{}", self.name, self.log_tail(50)),
        }
    }

    /// `GET path_and_query`, the body parsed as JSON.
    pub async fn get_json(&self, path_and_query: &str) -> Value {
        let resp = self.get(path_and_query).await;
        serde_json::from_str(&resp.body).unwrap_or_else(|e| {
            panic!(
                "{}: {path_and_query} answered {} with no JSON ({e}): {}",
                self.name, resp.status, resp.body
            )
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=value&...`, URL-encoded.
pub fn query_string(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// Prometheus with a generated config.
pub struct Prometheus {
    // Dropped (killed) before the temp dir is removed.
    daemon: Daemon,
    dir: TempDir,
}

impl Prometheus {
    /// Writes `files` (name, contents) and `prometheus.yml` (`config_yaml`,
    /// with `@DIR@` replaced by the temp dir) into a temp dir and starts
    /// Prometheus with storage in `<dir>/data`. Relative `rule_files` are
    /// relative to the config file, i.e. to the temp dir.
    pub async fn start(config_yaml: &str, files: &[(&str, &str)]) -> Prometheus {
        let program = binary(PROMETHEUS_BINARY);
        let dir = tempfile::Builder::new()
            .prefix("prometheus-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().to_path_buf();
        for (name, contents) in files {
            std::fs::write(root.join(name), contents).expect("write file");
        }
        let config = root.join("prometheus.yml");
        let config_text = config_yaml.replace("@DIR@", &root.display().to_string());
        std::fs::write(&config, config_text).expect("write prometheus.yml");
        let data = root.join("data");
        let daemon = Daemon::start("prometheus", &program, &root, &|addr| {
            vec![
                format!("--config.file={}", config.display()),
                format!("--storage.tsdb.path={}", data.display()),
                format!("--web.listen-address={addr}"),
                // Only matters when an alert's resend is due; new alerts are
                // sent at once.
                "--rules.alert.resend-delay=1s".to_string(),
                "--log.level=info".to_string(),
            ]
        })
        .await;
        Prometheus { daemon, dir }
    }

    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    pub fn daemon_mut(&mut self) -> &mut Daemon {
        &mut self.daemon
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn base_url(&self) -> String {
        self.daemon.base_url()
    }

    /// An instant query; `Ok(data)` (the API's `data` object, with
    /// `resultType` and `result`) or `Err` with the API's error.
    pub async fn query(&self, expr: &str) -> Result<Value, String> {
        let path = format!("/api/v1/query?{}", query_string(&[("query", expr)]));
        let resp = self.daemon.get(&path).await;
        let doc: Value = serde_json::from_str(&resp.body)
            .map_err(|e| format!("status {}, no JSON ({e}): {}", resp.status, resp.body))?;
        if doc["status"].as_str() != Some("success") {
            return Err(format!(
                "status {}: {} {}",
                resp.status,
                doc["errorType"].as_str().unwrap_or("?"),
                doc["error"].as_str().unwrap_or(&resp.body)
            ));
        }
        Ok(doc["data"].clone())
    }

    /// The `result` of an instant vector query (`[]` for other types);
    /// panics on an API error.
    pub async fn vector(&self, expr: &str) -> Vec<Value> {
        match self.query(expr).await {
            Ok(data) => array(&data["result"]).to_vec(),
            Err(e) => panic!("query {expr:?} failed: {e}"),
        }
    }

    /// One line per series of `expr`: `{labels} value`, sorted.
    pub async fn dump(&self, expr: &str) -> String {
        match self.query(expr).await {
            Ok(data) => {
                let mut lines: Vec<String> = array(&data["result"])
                    .iter()
                    .map(|s| {
                        let labels: Vec<String> = s["metric"]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or_default()))
                            .collect();
                        let value = array(&s["value"]).get(1).cloned();
                        format!(
                            "  {{{}}} {}",
                            labels.join(", "),
                            value.as_ref().and_then(Value::as_str).unwrap_or("?")
                        )
                    })
                    .collect();
                lines.sort();
                if lines.is_empty() {
                    format!("{expr}: (no series)")
                } else {
                    format!("{expr}:\n{}", lines.join("\n"))
                }
            }
            Err(e) => format!("{expr}: query failed: {e}"),
        }
    }
}

/// Alertmanager with a given config, clustering off.
pub struct Alertmanager {
    daemon: Daemon,
    dir: TempDir,
}

impl Alertmanager {
    /// Writes `alertmanager.yml` into a temp dir and starts Alertmanager
    /// with storage in `<dir>/data` and `--cluster.listen-address=` (no
    /// gossip port).
    pub async fn start(config_yaml: &str) -> Alertmanager {
        let program = binary(ALERTMANAGER_BINARY);
        let dir = tempfile::Builder::new()
            .prefix("alertmanager-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().to_path_buf();
        let config = root.join("alertmanager.yml");
        std::fs::write(&config, config_yaml).expect("write alertmanager.yml");
        let data = root.join("data");
        let daemon = Daemon::start("alertmanager", &program, &root, &|addr| {
            vec![
                format!("--config.file={}", config.display()),
                format!("--storage.path={}", data.display()),
                format!("--web.listen-address={addr}"),
                "--cluster.listen-address=".to_string(),
                "--log.level=info".to_string(),
            ]
        })
        .await;
        Alertmanager { daemon, dir }
    }

    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    pub fn daemon_mut(&mut self) -> &mut Daemon {
        &mut self.daemon
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `host:port`, for Prometheus' `alerting.alertmanagers` targets.
    pub fn target(&self) -> String {
        self.daemon.addr().to_string()
    }

    /// Every alert Alertmanager holds (`GET /api/v2/alerts`), active,
    /// silenced and inhibited.
    pub async fn alerts(&self) -> Vec<Value> {
        let doc = self.daemon.get_json("/api/v2/alerts").await;
        array(&doc).to_vec()
    }
}

/// An HTTP server on 127.0.0.1 that records every request body (Alertmanager
/// webhook notifications) and answers 200.
pub struct WebhookReceiver {
    server: TestServer,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Default for WebhookReceiver {
    fn default() -> Self {
        Self::start()
    }
}

impl WebhookReceiver {
    pub fn start() -> WebhookReceiver {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let sink = bodies.clone();
        let server = TestServer::http_async(move |req| {
            let sink = sink.clone();
            async move {
                match req.into_body().collect().await {
                    Ok(body) => {
                        let body = String::from_utf8_lossy(&body.to_bytes()).into_owned();
                        sink.lock().expect("webhook lock").push(body);
                        text(StatusCode::OK, "ok\n")
                    }
                    Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
                }
            }
        });
        WebhookReceiver { server, bodies }
    }

    /// `http://127.0.0.1:PORT/alerts`
    pub fn url(&self) -> String {
        self.server.url("/alerts")
    }

    /// The raw bodies received so far.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().expect("webhook lock").clone()
    }

    /// The notifications received so far, parsed (bodies that are not JSON
    /// are left out).
    pub fn notifications(&self) -> Vec<Value> {
        self.bodies()
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect()
    }

    /// Every alert of every notification, each with the notification's
    /// `receiver`: `(receiver, alert)`.
    pub fn alerts(&self) -> Vec<(String, Value)> {
        self.notifications()
            .iter()
            .flat_map(|n| {
                let receiver = n["receiver"].as_str().unwrap_or_default().to_string();
                array(&n["alerts"])
                    .iter()
                    .map(move |a| (receiver.clone(), a.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}
