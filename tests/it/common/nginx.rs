//! Real nginx on loopback with a generated config.
//!
//! ```ignore
//! // The short form: server blocks only.
//! let nginx = Nginx::start(r#"
//!     server {
//!         listen 127.0.0.1:@PORT0@;
//!         location /health { return 200 "ok\n"; }
//!     }
//! "#);
//! let url = nginx.url("http", 0, "/health");
//!
//! // The general form: http-level directives, files, TLS sites.
//! let mut conf = NginxConfig::new();
//! conf.http("limit_conn_zone $server_name zone=perserver:1m;");
//! let tls = conf.tls_files("site", &pki.localhost_leaf());
//! conf.server(&format!(
//!     "server {{ listen 127.0.0.1:@PORT1@ ssl; {tls} location / {{ return 200; }} }}",
//!     tls = tls.directives()
//! ));
//! conf.tls_site(2, &["a.test", "b.test"], &leaf, r#"location / { return 200 "a\n"; }"#);
//! let nginx = conf.start();
//! ```
//!
//! Placeholders in the config text: `@PORT0@` ... `@PORT15@` (`@PORT@` is
//! `@PORT0@`) become free loopback ports, chosen at start (and chosen again
//! when nginx cannot bind one of them); `@DIR@` is the instance's temp dir.
//!
//! Everything nginx writes (pid, logs, temp files) stays in that temp dir,
//! so it runs as root or as a user without touching `/var`. It runs in the
//! foreground as a single process (`daemon off; master_process off;`): no
//! worker is left behind when the test dies, and no worker switches to
//! `nobody` (which could not read the 0700 temp dir). It is stopped on drop
//! (SIGTERM, then SIGKILL).
//!
//! When `/usr/sbin/nginx` is missing the start panics with
//! [`NOT_INSTALLED`]: the tests fail, they never skip.

use std::fmt;
use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::pki::Leaf;
use super::{free_port, installed_binary, send_signal};

/// Where Debian's nginx package installs the binary.
pub const BINARY: &str = "/usr/sbin/nginx";

pub const NOT_INSTALLED: &str = "nginx is not installed: run scripts/test (it apt-installs nginx) \
     or apt-get install nginx";

/// How long nginx gets to accept connections on every port.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Starts with fresh ports after "Address already in use".
const ATTEMPTS: usize = 3;
/// Highest `@PORTn@` placeholder + 1.
const MAX_PORTS: usize = 16;

/// The access log format: `$remote_addr "$request" $status
/// upgrade="$http_upgrade" ua="$http_user_agent" host="$host"
/// sni="$ssl_server_name" tls=$ssl_protocol`.
pub const LOG_FORMAT: &str = r#"'$remote_addr "$request" $status upgrade="$http_upgrade" ua="$http_user_agent" host="$host" sni="$ssl_server_name" tls=$ssl_protocol'"#;

/// The binary's path; panics with [`NOT_INSTALLED`] when it is missing.
pub fn binary() -> PathBuf {
    installed_binary(BINARY, NOT_INSTALLED)
}

/// `nginx -v`, e.g. `nginx version: nginx/1.22.1`.
pub fn version() -> String {
    let out = Command::new(binary())
        .arg("-v")
        .output()
        .expect("run nginx -v");
    let text = [out.stdout, out.stderr].concat();
    String::from_utf8_lossy(&text).trim().to_string()
}

/// Certificate chain and key files written for nginx.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The served chain (leaf first), PEM.
    pub cert: PathBuf,
    /// The leaf's private key, PEM.
    pub key: PathBuf,
}

impl TlsFiles {
    /// `ssl_certificate <cert>; ssl_certificate_key <key>;`
    pub fn directives(&self) -> String {
        format!(
            "ssl_certificate {}; ssl_certificate_key {};",
            self.cert.display(),
            self.key.display()
        )
    }
}

impl fmt::Display for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.directives())
    }
}

/// An nginx config under construction, with its temp dir.
pub struct NginxConfig {
    dir: TempDir,
    http: Vec<String>,
    servers: Vec<String>,
}

impl Default for NginxConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl NginxConfig {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("nginx-")
            .tempdir()
            .expect("temp dir");
        Self {
            dir,
            http: Vec::new(),
            servers: Vec::new(),
        }
    }

    /// The temp dir (what `@DIR@` stands for).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Adds directives at `http {}` level (zones, maps, upstreams ...).
    pub fn http(&mut self, directives: &str) -> &mut Self {
        self.http.push(directives.to_string());
        self
    }

    /// Adds one or more complete `server { ... }` blocks.
    pub fn server(&mut self, blocks: &str) -> &mut Self {
        self.servers.push(blocks.to_string());
        self
    }

    /// Writes `<dir>/<name>` and returns its path.
    pub fn write_file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// Writes `<stem>.crt` (the leaf's served chain: leaf, then its
    /// intermediates, as [`Leaf::chain_pem`] has it) and `<stem>.key`.
    pub fn tls_files(&self, stem: &str, leaf: &Leaf) -> TlsFiles {
        let (cert, key) = leaf.write_to(self.dir.path(), stem);
        TlsFiles { cert, key }
    }

    /// Adds a TLS server on `127.0.0.1:@PORT<port>@` for `server_names`
    /// (the first one names the cert files), serving `leaf`, with
    /// `body` (locations and other server directives) inside. Several
    /// calls with the same port give several SNI names on one port; the
    /// first server of a port is its default (`default_server`).
    pub fn tls_site(
        &mut self,
        port: usize,
        server_names: &[&str],
        leaf: &Leaf,
        body: &str,
    ) -> &mut Self {
        let placeholder = format!("@PORT{port}@");
        let default = if self
            .servers
            .iter()
            .any(|s| s.contains(&format!("127.0.0.1:{placeholder}")))
        {
            ""
        } else {
            " default_server"
        };
        let stem = format!(
            "site-{port}-{}",
            server_names
                .first()
                .copied()
                .unwrap_or("default")
                .replace(['*', '/'], "_")
        );
        let tls = self.tls_files(&stem, leaf);
        let names = if server_names.is_empty() {
            "\"\"".to_string()
        } else {
            server_names.join(" ")
        };
        self.server(&format!(
            "server {{\n    listen 127.0.0.1:{placeholder} ssl{default};\n    server_name {names};\n    {tls}\n    {body}\n}}\n"
        ))
    }

    /// The complete nginx.conf for `ports` (placeholders replaced).
    fn render(&self, ports: &[u16]) -> String {
        let dir = self.dir.path().display().to_string();
        let http = self.http.join("\n    ");
        let servers = self.servers.join("\n");
        let text = format!(
            r#"# Generated by tests/common/nginx.rs
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
lock_file {dir}/nginx.lock;
error_log {dir}/error.log info;

events {{
    worker_connections 256;
}}

http {{
    log_format combined_ws {LOG_FORMAT};
    access_log {dir}/access.log combined_ws;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type text/plain;
    server_tokens on;
    {http}

{servers}
}}
"#
        );
        substitute(&text, &dir, ports)
    }

    /// Starts nginx; see [`Nginx`].
    pub fn start(self) -> Nginx {
        let binary = binary();
        let template = self.render(&[]);
        let count = port_count(&template);
        assert!(
            count > 0,
            "the nginx config listens on no @PORTn@ placeholder:\n{template}"
        );
        let dir = self.dir.path().to_path_buf();
        let conf_path = dir.join("nginx.conf");
        let error_log = dir.join("error.log");
        let access_log = dir.join("access.log");
        let output_log = dir.join("output.log");
        let pid_file = dir.join("nginx.pid");

        for attempt in 1..=ATTEMPTS {
            let ports: Vec<u16> = distinct_free_ports(count);
            let conf = self.render(&ports);
            std::fs::write(&conf_path, &conf).expect("write nginx.conf");
            // A retry starts from clean logs, so a panic shows this attempt.
            let _ = std::fs::remove_file(&error_log);
            let _ = std::fs::remove_file(&pid_file);
            let output = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&output_log)
                .expect("output log");
            let mut child = Command::new(&binary)
                .arg("-c")
                .arg(&conf_path)
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(&error_log)
                .stdin(Stdio::null())
                .stdout(Stdio::from(output.try_clone().expect("dup output log")))
                .stderr(Stdio::from(output))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));

            let addrs: Vec<SocketAddr> = ports
                .iter()
                .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
                .collect();
            let logs = || {
                format!(
                    "--- nginx.conf ---\n{conf}\n--- error.log ---\n{}\n--- stdout/stderr ---\n{}",
                    std::fs::read_to_string(&error_log).unwrap_or_default(),
                    std::fs::read_to_string(&output_log).unwrap_or_default()
                )
            };
            match wait_ready(&mut child, &pid_file, &addrs) {
                Ok(()) => {
                    return Nginx {
                        child: Some(child),
                        ports,
                        conf_path,
                        error_log,
                        access_log,
                        conf,
                        dir: self.dir,
                    };
                }
                Err(Ready::Exited(status)) => {
                    let logs = logs();
                    if logs.contains("Address already in use") && attempt < ATTEMPTS {
                        continue;
                    }
                    panic!("nginx exited ({status}) before accepting on {addrs:?}\n{logs}");
                }
                Err(Ready::NotReady(why)) => {
                    stop(&mut child);
                    panic!(
                        "nginx not ready within {READY_TIMEOUT:?}: {why}\n{}",
                        logs()
                    );
                }
            }
        }
        unreachable!("the loop returns or panics")
    }
}

/// A running nginx. Stopped (SIGTERM, then SIGKILL) on drop.
pub struct Nginx {
    child: Option<Child>,
    ports: Vec<u16>,
    conf_path: PathBuf,
    error_log: PathBuf,
    access_log: PathBuf,
    conf: String,
    dir: TempDir,
}

impl Nginx {
    /// nginx with only `server_blocks` in its `http {}` (placeholders as
    /// described in the module docs).
    pub fn start(server_blocks: &str) -> Nginx {
        let mut conf = NginxConfig::new();
        conf.server(server_blocks);
        conf.start()
    }

    /// A config to add to, then [`NginxConfig::start`].
    pub fn builder() -> NginxConfig {
        NginxConfig::new()
    }

    /// The port `@PORT<index>@` stood for.
    pub fn port(&self, index: usize) -> u16 {
        *self
            .ports
            .get(index)
            .unwrap_or_else(|| panic!("no @PORT{index}@ in the config (ports: {:?})", self.ports))
    }

    /// `127.0.0.1:<port(index)>`
    pub fn addr(&self, index: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(index)))
    }

    /// `<scheme>://127.0.0.1:<port(index)><path>`
    pub fn url(&self, scheme: &str, index: usize, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr(index))
    }

    /// Every port, in placeholder order.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// The temp dir (`@DIR@`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn conf_path(&self) -> &Path {
        &self.conf_path
    }

    /// The config nginx runs with.
    pub fn conf(&self) -> &str {
        &self.conf
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// The access log ([`LOG_FORMAT`]). nginx writes a line when a request
    /// ends: for an upgraded WebSocket, when the connection closes.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(&self.access_log).unwrap_or_default()
    }

    /// Waits up to `timeout` for an access log line containing every one
    /// of `needles`; returns it, or panics with both logs.
    pub async fn wait_access_log(&self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.access_log();
            if let Some(line) = log
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)))
            {
                return line.to_string();
            }
            if Instant::now() > deadline {
                panic!(
                    "no access log line with {needles:?} within {timeout:?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Access and error log, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "--- nginx access.log ---\n{}--- nginx error.log ---\n{}",
            self.access_log(),
            self.error_log()
        )
    }

    /// Sends a signal by name (`HUP` reloads the config file, which
    /// [`Nginx::conf_path`] names) with kill(1).
    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }
}

/// SIGTERM (nginx's fast shutdown), then SIGKILL after 2 s.
fn stop(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

enum Ready {
    Exited(std::process::ExitStatus),
    NotReady(String),
}

/// Until nginx has written its pid file (it does so after binding every
/// listening socket: a port that another process took in between makes
/// nginx retry the bind and then exit, not write the pid file) and every
/// address accepts a TCP connection.
fn wait_ready(child: &mut Child, pid_file: &Path, addrs: &[SocketAddr]) -> Result<(), Ready> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let pid = child.id().to_string();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Err(Ready::Exited(status));
        }
        let written = std::fs::read_to_string(pid_file).unwrap_or_default();
        if written.trim() == pid {
            break;
        }
        if Instant::now() > deadline {
            return Err(Ready::NotReady(format!(
                "no pid file {} with pid {pid} (content: {written:?})",
                pid_file.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for addr in addrs {
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Err(Ready::Exited(status));
            }
            if TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(Ready::NotReady(format!(
                    "{addr} does not accept connections"
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}

/// `n` free ports, all different.
fn distinct_free_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

/// 1 + the highest `n` of the `@PORTn@` placeholders (`@PORT@` is 0).
fn port_count(text: &str) -> usize {
    let mut count = usize::from(text.contains("@PORT@"));
    for n in 0..MAX_PORTS {
        if text.contains(&format!("@PORT{n}@")) {
            count = count.max(n + 1);
        }
    }
    count
}

/// Replaces `@DIR@` and `@PORTn@` (left alone when `ports` is short).
fn substitute(text: &str, dir: &str, ports: &[u16]) -> String {
    let mut out = text.replace("@DIR@", dir);
    if let Some(p) = ports.first() {
        out = out.replace("@PORT@", &p.to_string());
    }
    for (n, p) in ports.iter().enumerate() {
        out = out.replace(&format!("@PORT{n}@"), &p.to_string());
    }
    out
}
