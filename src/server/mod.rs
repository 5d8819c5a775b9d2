//! The exporter's HTTP server: endpoints, landing page, history, reload,
//! web config (TLS and basic auth), graceful shutdown.

pub mod conn;
pub mod history;
pub mod landing;
pub mod prefix;
pub mod probe;
pub mod self_metrics;
pub mod state;
pub mod systemd;
pub mod web_config;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::prober::log::LogFormat;
use history::History;
use self_metrics::ExporterMetrics;
use state::ConfigState;
use web_config::WebConfig;

/// Settings of the server that are not in the config file.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen_addresses: Vec<String>,
    pub timeout_offset: f64,
    pub history_limit: usize,
    pub log_format: LogFormat,
    /// `--probe.max-in-flight`.
    pub max_in_flight: usize,
    /// `--probe.max-body-bytes` and the other per-probe bounds.
    pub limits: crate::prober::ProbeLimits,
    /// Bounds of the server's own connections.
    pub connections: conn::ConnLimits,
    /// `--web.route-prefix` and `--web.external-url`.
    pub paths: prefix::WebPaths,
}

/// Shared state of all requests.
pub struct App {
    /// One permit per probe running; a probe holds its permit until it
    /// ends, even when its caller has gone.
    pub probe_slots: Arc<tokio::sync::Semaphore>,
    pub config: ConfigState,
    pub history: History,
    pub metrics: ExporterMetrics,
    pub options: ServerOptions,
    pub web: Option<WebConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid listen address {0:?}")]
    BadAddress(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A response before it becomes a hyper response.
pub struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    extra: Vec<(header::HeaderName, HeaderValue)>,
}

const TEXT: &str = "text/plain; charset=utf-8";
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Reply {
    pub fn text(status: u16, body: String) -> Self {
        Self {
            status,
            content_type: TEXT,
            body,
            extra: Vec::new(),
        }
    }

    pub fn metrics(body: String) -> Self {
        Self {
            status: 200,
            content_type: EXPOSITION,
            body,
            extra: Vec::new(),
        }
    }

    /// A redirect to `location` (a URL or path we built, so valid as a
    /// header; if not, the answer is a 500 rather than a panic).
    fn redirect(status: u16, location: &str) -> Self {
        match HeaderValue::from_str(location) {
            Ok(value) => Self {
                status,
                content_type: TEXT,
                body: String::new(),
                extra: vec![(header::LOCATION, value)],
            },
            Err(_) => Self::text(500, "invalid redirect location\n".into()),
        }
    }

    fn html(body: String) -> Self {
        Self {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body,
            extra: Vec::new(),
        }
    }

    fn into_response(self, web: Option<&WebConfig>) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::from(self.body)));
        *resp.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        for (k, v) in self.extra {
            resp.headers_mut().insert(k, v);
        }
        if let Some(w) = web {
            for (k, v) in w.response_headers() {
                resp.headers_mut().insert(k, v);
            }
        }
        resp
    }
}

fn query_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Route one request: under the route prefix, to its endpoint.
pub async fn route(app: &Arc<App>, req: Request<Incoming>) -> Reply {
    let full_path = req.uri().path().to_string();
    let path = match app.options.paths.route(&full_path) {
        prefix::Routed::Inside(path) => path.to_string(),
        prefix::Routed::RedirectRoot(to) => return Reply::redirect(302, to),
        prefix::Routed::AddSlash(to) => {
            let to = match req.uri().query() {
                Some(q) => format!("{to}?{q}"),
                None => to.to_string(),
            };
            return Reply::redirect(301, &to);
        }
        prefix::Routed::NotFound => return Reply::text(404, "404 page not found\n".into()),
    };
    match path.as_str() {
        "/probe" => {
            if req.headers().contains_key(crate::prober::client::LOOP_MARK) {
                app.metrics.refused(self_metrics::Refused::Loop);
                return Reply::text(
                    508,
                    "Loop detected: this request was sent by a probe of a handshake_exporter\n"
                        .into(),
                );
            }
            let query = query_pairs(&req);
            let header = req
                .headers()
                .get(probe::SCRAPE_TIMEOUT_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            probe::handle(app, &query, header.as_deref()).await
        }
        "/metrics" => {
            app.metrics
                .websocket_sessions
                .set(app.config.sessions().len() as i64);
            Reply::metrics(app.metrics.encode())
        }
        "/-/healthy" => Reply::text(200, "Healthy".into()),
        "/-/ready" => Reply::text(200, "Ready".into()),
        "/-/reload" => {
            if req.method() != Method::POST {
                return Reply::text(405, "This endpoint requires a POST request.\n".into());
            }
            match app.config.reload(&app.metrics).await {
                Ok(()) => Reply::text(200, String::new()),
                Err(e) => Reply::text(500, format!("failed to reload config: {e}\n")),
            }
        }
        "/config" => Reply::text(200, app.config.get().masked_yaml.clone()),
        "/logs" => logs(app, &query_pairs(&req)),
        "/" => Reply::html(landing::render_landing(&landing_info(app))),
        _ => Reply::text(404, "404 page not found\n".into()),
    }
}

fn landing_info(app: &App) -> landing::LandingInfo {
    let config = app.config.get();
    landing::LandingInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        modules: config
            .modules
            .values()
            .map(|m| {
                (
                    m.name.clone(),
                    m.prober.name().to_string(),
                    m.timeout.map(|t| t.as_secs_f64()),
                )
            })
            .collect(),
        recent: app.history.recent(),
        preserved: app.history.preserved_failures(),
        config_reload_ok: app.metrics.config_last_reload_successful.get() > 0.0,
    }
}

/// `/logs?id=N` or `/logs?target=T[&module=M]`.
fn logs(app: &App, query: &[(String, String)]) -> Reply {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (id, target, module) = (param("id"), param("target"), param("module"));
    let entry = match (id, target) {
        (Some(_), Some(_)) => {
            return Reply::text(
                400,
                "Probe id and target can't be defined at the same time\n".into(),
            );
        }
        (None, None) => {
            if module.is_some() {
                return Reply::text(
                    400,
                    "Probe module can only be used together with a target\n".into(),
                );
            }
            return Reply::text(
                400,
                "Probe id or target must be defined as http query parameters\n".into(),
            );
        }
        (Some(id), None) => {
            if module.is_some() {
                return Reply::text(
                    400,
                    "Probe module can only be used together with a target\n".into(),
                );
            }
            let Ok(id) = id.parse::<u64>() else {
                return Reply::text(400, "Invalid probe id\n".into());
            };
            match app.history.by_id(id) {
                Some(e) => e,
                None => return Reply::text(404, "Probe id not found\n".into()),
            }
        }
        (None, Some(t)) => match app
            .history
            .latest_by_target(&crate::net::userinfo::redact(t), module)
        {
            Some(e) => e,
            None => return Reply::text(404, "Probe target not found\n".into()),
        },
    };
    Reply::text(200, entry.debug_output.clone())
}

/// Parse `--web.listen-address` (`:9115`, `127.0.0.1:0`, `[::1]:9115`).
fn listen_addrs(spec: &str) -> Result<Vec<SocketAddr>, ServerError> {
    if let Some(port) = spec.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| ServerError::BadAddress(spec.into()))?;
        // All interfaces: a dual-stack [::] socket, or 0.0.0.0 where IPv6 is off.
        return Ok(vec![
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
        ]);
    }
    spec.parse::<SocketAddr>()
        .map(|a| vec![a])
        .map_err(|_| ServerError::BadAddress(spec.into()))
}

/// A bound, not yet serving, exporter.
pub struct Server {
    app: Arc<App>,
    listeners: Vec<TcpListener>,
}

impl Server {
    pub async fn bind(app: App) -> Result<Self, ServerError> {
        let mut listeners = Vec::new();
        for spec in &app.options.listen_addresses {
            let candidates = listen_addrs(spec)?;
            let mut last_err = None;
            let mut bound = false;
            for addr in candidates {
                match TcpListener::bind(addr).await {
                    Ok(l) => {
                        listeners.push(l);
                        bound = true;
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            if !bound {
                return Err(ServerError::Bind {
                    addr: spec.clone(),
                    source: last_err.unwrap_or_else(|| std::io::Error::other("no address")),
                });
            }
        }
        Ok(Self {
            app: Arc::new(app),
            listeners,
        })
    }

    /// Serve on listeners made elsewhere (systemd socket activation).
    pub fn from_listeners(
        app: App,
        listeners: Vec<std::net::TcpListener>,
    ) -> Result<Self, ServerError> {
        let listeners = listeners
            .into_iter()
            .map(|l| {
                let addr = l
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| "systemd socket".into());
                l.set_nonblocking(true)
                    .and_then(|()| TcpListener::from_std(l))
                    .map_err(|source| ServerError::Bind { addr, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            app: Arc::new(app),
            listeners,
        })
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    pub fn app(&self) -> Arc<App> {
        self.app.clone()
    }

    /// Serve until `shutdown` resolves, then stop accepting and let open
    /// connections (and their probes, bounded by their deadlines) finish.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut accept_tasks = Vec::new();
        let (conn_tx, mut conn_rx) = tokio::sync::mpsc::unbounded_channel();
        for listener in self.listeners {
            let tls_state = self.app.web.as_ref().and_then(|w| w.tls_acceptor());
            let mut stop = stop_rx.clone();
            let conn_tx = conn_tx.clone();
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(address = %addr, tls = tls_state.is_some(), "Listening on");
            }
            accept_tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.changed() => break,
                        accepted = listener.accept() => {
                            match accepted {
                                Ok((stream, _)) => { let _ = conn_tx.send((stream, tls_state.clone())); }
                                Err(e) => {
                                    tracing::warn!(err = %e, "accept failed");
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                            }
                        }
                    }
                }
            }));
        }
        drop(conn_tx);
        let limits = self.app.options.connections;
        let tracker = conn::Tracker::new(limits);
        tracing::info!(
            max_connections = limits.max_connections,
            read_header_timeout = ?limits.read_header_timeout,
            idle_timeout = ?limits.idle_timeout,
            "Serving connections"
        );
        let mut refused_warned = false;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                next = conn_rx.recv() => {
                    let Some((stream, tls)) = next else { break };
                    let Some(state) = tracker.admit() else {
                        // Every connection is busy: refuse this one rather
                        // than queue it.
                        if !refused_warned {
                            tracing::warn!(max_connections = limits.max_connections, "connection limit reached with every connection busy: refusing connections");
                            refused_warned = true;
                        }
                        drop(stream);
                        continue;
                    };
                    refused_warned = false;
                    let _ = stream.set_nodelay(true);
                    let io = conn::TimedIo::new(stream, state.clone(), limits);
                    let app = self.app.clone();
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(io), service(app, state)).into_owned();
                            let fut = graceful.watch(conn);
                            tokio::spawn(async move { let _ = fut.await; });
                        }
                        Some(acceptor) => {
                            // The TLS handshake runs in its own task so a slow
                            // client cannot stall the accept loop; the header
                            // timeout bounds it (it is the head of the
                            // connection's first request).
                            let watcher = graceful.watcher();
                            tokio::spawn(async move {
                                let Ok(tls) = acceptor.accept(io).await else {
                                    return;
                                };
                                let conn = builder.serve_connection(TokioIo::new(tls), service(app, state)).into_owned();
                                let _ = watcher.watch(conn).await;
                            });
                        }
                    }
                }
            }
        }
        let _ = stop_tx.send(true);
        for t in accept_tasks {
            let _ = t.await;
        }
        tracing::info!("Shutting down: waiting for in-flight requests");
        if tokio::time::timeout(Duration::from_secs(125), graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("Timed out waiting for connections to close");
        }
        let sessions = self.app.config.sessions();
        if !sessions.is_empty() {
            tracing::info!(sessions = sessions.len(), "Closing WebSocket sessions");
            sessions.close_all(Duration::from_secs(2)).await;
        }
    }
}

fn service(
    app: Arc<App>,
    state: Arc<conn::ConnState>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Clone {
    service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        // The connection is busy until the answer is made.
        let busy = state.request();
        async move {
            let _busy = busy;
            if let Some(web) = &app.web
                && !web
                    .authorize(req.headers().get(header::AUTHORIZATION))
                    .await
            {
                let mut reply = Reply::text(401, "Unauthorized\n".into());
                reply
                    .extra
                    .push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic")));
                return Ok::<_, Infallible>(reply.into_response(Some(web)));
            }
            let reply = route(&app, req).await;
            Ok(reply.into_response(app.web.as_ref()))
        }
    })
}
