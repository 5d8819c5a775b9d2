//! Runs an exporter process (ours, or blackbox_exporter through
//! [`super::blackbox`]) on a fresh local port and talks HTTP/1.1 to it.
//!
//! ```ignore
//! let exporter = Exporter::start(CONFIG_YAML).await;
//! let text = exporter.probe(&server.url("/ok"), "http_2xx").await;
//! ```
//!
//! The process gets `--config.file=<temp file>` and
//! `--web.listen-address=127.0.0.1:<port>`; stdout and stderr go to a log
//! file that is shown when something goes wrong. It is killed on drop.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::exposition::Exposition;
use super::{free_port, send_signal};

/// How long a process may take to answer `/-/healthy`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for one request to the exporter (probes time out earlier).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of our binary, built by cargo for integration tests;
/// `HS_EXPORTER_BINARY` runs the tests against another build (a release
/// build, say, to see how long CPU-bound steps take there).
/// Runs our binary to completion (at most 10 s) in `cwd` with extra
/// environment variables (and without an inherited systemd socket);
/// returns its exit status, stdout and stderr.
pub fn run_to_exit(
    cwd: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (ExitStatus, String, String) {
    let out_path = cwd.join("stdout.txt");
    let err_path = cwd.join("stderr.txt");
    let mut child = Command::new(our_binary())
        .current_dir(cwd)
        .args(args)
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("start exporter");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{args:?} did not exit within 10s:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status,
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

pub fn our_binary() -> PathBuf {
    std::env::var_os("HS_EXPORTER_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_handshake_exporter")))
}

/// An HTTP response from the exporter.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to `addr` on a new connection.
pub async fn http_request(
    addr: SocketAddr,
    method: Method,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<HttpResponse, String> {
    request(addr, None, method, path_and_query, headers, body).await
}

/// One HTTP/1.1 request over TLS to `addr` on a new connection, verifying
/// `server_name` (also sent as SNI and in `Host`) with `connector`.
pub async fn https_request(
    connector: &TlsConnector,
    server_name: &str,
    addr: SocketAddr,
    method: Method,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<HttpResponse, String> {
    let tls = Some((connector, server_name));
    request(addr, tls, method, path_and_query, headers, body).await
}

async fn request(
    addr: SocketAddr,
    tls: Option<(&TlsConnector, &str)>,
    method: Method,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<HttpResponse, String> {
    let body = body.into();
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        match tls {
            None => {
                let host = addr.to_string();
                exchange(stream, addr, host, method, path_and_query, headers, body).await
            }
            Some((connector, name)) => {
                let server_name = ServerName::try_from(name.to_string())
                    .map_err(|e| format!("server name {name}: {e}"))?;
                let stream = connector
                    .connect(server_name, stream)
                    .await
                    .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
                let host = format!("{name}:{}", addr.port());
                exchange(stream, addr, host, method, path_and_query, headers, body).await
            }
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer to {path_and_query} from {addr} within {REQUEST_TIMEOUT:?}"
        )),
    }
}

/// The HTTP/1.1 exchange on a stream connected to `addr`, `Host: host`.
async fn exchange<S>(
    stream: S,
    addr: SocketAddr,
    host: String,
    method: Method,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<HttpResponse, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake with {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(header::HOST, host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| format!("build request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request {path_and_query}: {e}"))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("read body of {path_and_query}: {e}"))?
        .to_bytes();
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// `/probe?target=..&module=..` with the values URL-encoded.
pub fn probe_path(params: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("/probe?{query}")
}

/// A running exporter process.
pub struct Exporter {
    name: String,
    child: Child,
    addr: SocketAddr,
    config_path: PathBuf,
    log_path: PathBuf,
    _dir: TempDir,
}

impl Exporter {
    /// Starts our binary with `config_yaml`.
    pub async fn start(config_yaml: &str) -> Self {
        Self::start_with_args(config_yaml, &[]).await
    }

    /// Starts our binary with `config_yaml` and extra flags.
    pub async fn start_with_args(config_yaml: &str, args: &[&str]) -> Self {
        Self::spawn("handshake_exporter", &our_binary(), config_yaml, args).await
    }

    /// Starts our binary with `config_yaml` and extra flags that move the
    /// endpoints (a route prefix): ready when `health_path` answers 200.
    pub async fn start_with_args_ready_at(
        config_yaml: &str,
        args: &[&str],
        health_path: &str,
    ) -> Self {
        let name = "handshake_exporter";
        Self::spawn_ready_at(name, &our_binary(), config_yaml, args, &[], health_path).await
    }

    /// Starts `program` (blackbox-compatible flags) and waits until
    /// `/-/healthy` answers 200. Panics with the process output when it
    /// exits or is not ready within [`READY_TIMEOUT`].
    pub async fn spawn(name: &str, program: &Path, config_yaml: &str, args: &[&str]) -> Self {
        Self::spawn_ready_at(name, program, config_yaml, args, &[], "/-/healthy").await
    }

    /// Starts our binary with `config_yaml` and extra environment variables
    /// (`SSL_CERT_FILE` to make a test CA the system's roots).
    pub async fn start_with_env(config_yaml: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn_with_env("handshake_exporter", &our_binary(), config_yaml, env).await
    }

    /// [`Exporter::spawn`] with extra environment variables.
    pub async fn spawn_with_env(
        name: &str,
        program: &Path,
        config_yaml: &str,
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn_ready_at(name, program, config_yaml, &[], env, "/-/healthy").await
    }

    async fn spawn_ready_at(
        name: &str,
        program: &Path,
        config_yaml: &str,
        args: &[&str],
        env: &[(&str, &str)],
        health_path: &str,
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir()
            .expect("temp dir");
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config_yaml).expect("write config");

        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let log_path = dir.path().join(format!("output-{attempt}.log"));
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .expect("log file");
            let mut child = Command::new(program)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--web.listen-address={addr}"))
                .args(args)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("dup log file")))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
            let outcome = wait_ready(&mut child, addr, health_path).await;
            let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
            match outcome {
                Ok(()) => {
                    return Exporter {
                        name: name.to_string(),
                        child,
                        addr,
                        config_path,
                        log_path,
                        _dir: dir,
                    };
                }
                Err(Exit(status)) => {
                    let log = log();
                    let in_use = log.to_ascii_lowercase().contains("address already in use");
                    if in_use && attempt < ATTEMPTS {
                        continue;
                    }
                    panic!(
                        "{name} exited ({status}) before answering {health_path} on {addr}\n\
                         command: {} --config.file={} --web.listen-address={addr} {}\n\
                         --- config ---\n{config_yaml}\n--- output ---\n{log}",
                        program.display(),
                        config_path.display(),
                        args.join(" "),
                    );
                }
                Err(NotReady(last_error)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{name} did not answer {health_path} on {addr} within {READY_TIMEOUT:?} \
                         (last error: {last_error})\n--- output ---\n{}",
                        log()
                    );
                }
            }
        }
        unreachable!("the loop returns or panics")
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

    /// File descriptors the process has open now.
    pub fn open_fds(&self) -> usize {
        let pid = self.pid();
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
    }

    /// Starts `n` `GET path_and_query` requests at once, each on its own
    /// connection, without waiting for them.
    pub fn spawn_gets(
        &self,
        path_and_query: &str,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<Result<HttpResponse, String>>> {
        let addr = self.addr;
        (0..n)
            .map(|_| {
                let path = path_and_query.to_string();
                tokio::spawn(async move {
                    http_request(addr, Method::GET, &path, &[], Bytes::new()).await
                })
            })
            .collect()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Replaces the config file (then reload with SIGHUP or `/-/reload`).
    pub fn write_config(&self, config_yaml: &str) {
        std::fs::write(&self.config_path, config_yaml).expect("write config");
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends a signal by name (`HUP`, `TERM`, `INT` ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Any request; panics (with the process output) when there is no
    /// HTTP answer.
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> HttpResponse {
        match http_request(self.addr, method, path_and_query, headers, body).await {
            Ok(resp) => resp,
            Err(e) => panic!("{}: {e}\n--- output ---\n{}", self.name, self.log()),
        }
    }

    /// `GET path_and_query`.
    pub async fn get(&self, path_and_query: &str) -> HttpResponse {
        self.request(Method::GET, path_and_query, &[], Bytes::new())
            .await
    }

    /// `POST path_and_query` without a body.
    pub async fn post(&self, path_and_query: &str) -> HttpResponse {
        self.request(Method::POST, path_and_query, &[], Bytes::new())
            .await
    }

    /// `GET /probe` with arbitrary query parameters and request headers.
    pub async fn probe_with(
        &self,
        params: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> HttpResponse {
        self.request(Method::GET, &probe_path(params), headers, Bytes::new())
            .await
    }

    /// `GET /probe?target=..&module=..`; panics unless the answer is 200.
    /// Returns the body (exposition text).
    pub async fn probe(&self, target: &str, module: &str) -> String {
        let resp = self
            .probe_with(&[("target", target), ("module", module)], &[])
            .await;
        assert_eq!(
            resp.status,
            200,
            "{}: /probe target={target} module={module} answered {}: {}\n--- output ---\n{}",
            self.name,
            resp.status,
            resp.body,
            self.log()
        );
        resp.body
    }

    /// [`Exporter::probe`], parsed.
    pub async fn probe_metrics(&self, target: &str, module: &str) -> Exposition {
        Exposition::parse(&self.probe(target, module).await)
    }

    /// `GET /metrics`, parsed.
    pub async fn metrics(&self) -> Exposition {
        let resp = self.get("/metrics").await;
        assert_eq!(resp.status, 200, "{}: /metrics: {}", self.name, resp.body);
        Exposition::parse(&resp.body)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum ReadyError {
    Exit(ExitStatus),
    NotReady(String),
}
use ReadyError::{Exit, NotReady};

async fn wait_ready(
    child: &mut Child,
    addr: SocketAddr,
    health_path: &str,
) -> Result<(), ReadyError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last_error = String::from("none");
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Err(Exit(status));
        }
        if Instant::now() > deadline {
            return Err(NotReady(last_error));
        }
        let attempt = tokio::time::timeout(
            Duration::from_secs(1),
            http_request(addr, Method::GET, health_path, &[], Bytes::new()),
        )
        .await;
        match attempt {
            Ok(Ok(resp)) if resp.status == 200 => return Ok(()),
            Ok(Ok(resp)) => last_error = format!("status {}: {}", resp.status, resp.body),
            Ok(Err(e)) => last_error = e,
            Err(_) => last_error = "no answer within 1s".into(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
