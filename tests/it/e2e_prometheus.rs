//! End to end with the real monitoring stack: nginx targets, our exporter,
//! Prometheus running the shipped rules, Alertmanager running the shipped
//! routing and inhibitions, a webhook receiver, and every panel query of
//! the shipped Grafana dashboards.
//!
//! ```text
//!  WS echo backend <- nginx  <- handshake_exporter <- Prometheus -> Alertmanager -> webhook
//!                     good     (/probe, /metrics)    rules copy    config copy     (in-process)
//!                     broken
//!                     down
//!                     app
//!                     secure (TLS)
//! ```
//!
//! | service  | nginx                                              | expected state      |
//! |----------|----------------------------------------------------|---------------------|
//! | `good`   | /health 200, /ws proxied with Upgrade/Connection   | `healthy`           |
//! | `broken` | /health 200, /ws proxied WITHOUT them (426 from    | `websocket_issue`   |
//! |          | the backend, which sees a plain GET)               |                     |
//! | `down`   | /health and /ws proxied to a closed port (502)     | `outage`            |
//! | `app`    | /health 500, /ws proxied correctly                 | `application_issue` |
//! | `secure` | https/wss with a test-PKI certificate (ca_file),   | `healthy`           |
//! |          | plus a `tls` probe and a `tcp` probe               |                     |
//!
//! Long-lived connections, beside the diagnosis:
//!
//! | service   | nginx / prober                                      | expected alerts |
//! |-----------|-----------------------------------------------------|-----------------|
//! | `session` | websocket_session through `good`, pings every 500ms | none            |
//! | `idle`    | websocket_session without pings, `proxy_read_timeout 1s` | `WebSocketIdleCut` (naming 1s), `WebSocketSessionsUnstable` |
//! | `stream`  | sse behind nginx's default buffering                | `EventStreamStalled`, `ProbeFailedFromQuorum` (1 of 1 vantage point, inhibits its `ProbeFailed`) |
//! | `live`    | sse with `proxy_buffering off`                      | none            |
//!
//! The rules and the Alertmanager config are copies of the shipped files in
//! which only the durations are shortened (`for:` → 1s, `group_wait` /
//! `group_interval` → 1s) and the webhook URLs point at the receiver here:
//! the expressions, templates, routes and inhibitions under test are the
//! shipped ones, byte for byte.
//!
//! Prometheus and Alertmanager come from Debian's packages (`scripts/test`
//! installs them); without them this test fails and says what to install.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;
use tokio::net::TcpSocket;

use crate::common;
use crate::common::exporter::Exporter;
use crate::common::json::array;
use crate::common::nginx::{Nginx, NginxConfig};
use crate::common::pki::Pki;
use crate::common::prometheus::{Alertmanager, Prometheus, WebhookReceiver, query_string};
use crate::common::ws_backend::WsBackend;
use crate::sse_prober::{hold, send, sse_server};

/// Until every service shows its expected diagnosis state.
const DIAGNOSIS_TIMEOUT: Duration = Duration::from_secs(40);
/// Until the diagnosis alerts have reached the webhook (after the states).
const ALERT_TIMEOUT: Duration = Duration::from_secs(30);
/// Until Alertmanager reports the inhibited alerts as suppressed.
const INHIBITION_TIMEOUT: Duration = Duration::from_secs(20);

/// What the dashboards' built-in interval variables become. Prometheus has
/// only seconds of data here (scraped every second), so a rate window of a
/// minute covers every sample there is.
const BUILTIN_VARIABLES: &[(&str, &str)] = &[
    ("__rate_interval", "1m"),
    ("__interval", "1m"),
    ("__interval_ms", "60000"),
    ("__range", "1h"),
    ("__range_s", "3600"),
    ("__range_ms", "3600000"),
];

/// The expected `service:probe_diagnosis:state == 1` per service.
const EXPECTED_STATES: &[(&str, &str)] = &[
    ("app", "application_issue"),
    ("broken", "websocket_issue"),
    ("down", "outage"),
    ("good", "healthy"),
    ("secure", "healthy"),
];

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

// ---------------------------------------------------------------------------
// nginx, the exporter, and the generated configs
// ---------------------------------------------------------------------------

/// The proxy directives of a correct WebSocket location.
const WS_PROXY: &str = r#"proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 30s;"#;

/// nginx ports (`@PORTn@`) of the services.
const GOOD: usize = 0;
const BROKEN: usize = 1;
const DOWN: usize = 2;
const APP: usize = 3;
const SECURE: usize = 4;
/// A WebSocket proxy with a 1 s `proxy_read_timeout`: quiet sessions are cut.
const IDLE: usize = 5;
/// An event stream behind nginx's default buffering: no event gets through.
const STREAM: usize = 6;

/// A port that refuses connections for as long as it lives: bound, never
/// listening, so nothing else can take it (unlike a port that was free a
/// moment ago).
fn refusing_port() -> (TcpSocket, SocketAddr) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind 127.0.0.1:0");
    let addr = socket.local_addr().expect("local_addr");
    (socket, addr)
}

fn start_nginx(backend: SocketAddr, sse: SocketAddr, closed: SocketAddr, pki: &Pki) -> Nginx {
    let leaf = pki.localhost_leaf();
    let mut conf = NginxConfig::new();
    conf.server(&format!(
        r#"
    # good: a correct WebSocket reverse proxy.
    server {{
        listen 127.0.0.1:@PORT{GOOD}@;
        location = /health {{ return 200 "ok\n"; }}
        location = /ws {{
            proxy_pass http://{backend};
            {WS_PROXY}
        }}
    }}

    # broken: the classic mistake. Upgrade and Connection are hop-by-hop
    # headers that nginx does not forward unless told to: the backend sees
    # a plain GET and answers 426.
    server {{
        listen 127.0.0.1:@PORT{BROKEN}@;
        location = /health {{ return 200 "ok\n"; }}
        location = /ws {{
            proxy_pass http://{backend};
            proxy_http_version 1.1;
        }}
    }}

    # down: the proxy is up, everything behind it is not (502).
    server {{
        listen 127.0.0.1:@PORT{DOWN}@;
        location = /health {{
            proxy_pass http://{closed};
        }}
        location = /ws {{
            proxy_pass http://{closed};
            {WS_PROXY}
        }}
    }}

    # app: the health check fails, the WebSocket works.
    server {{
        listen 127.0.0.1:@PORT{APP}@;
        location = /health {{ return 500 "database unavailable\n"; }}
        location = /ws {{
            proxy_pass http://{backend};
            {WS_PROXY}
        }}
    }}

    # idle: a correct WebSocket proxy whose proxy_read_timeout (1s) cuts
    # every connection that stays quiet that long.
    server {{
        listen 127.0.0.1:@PORT{IDLE}@;
        location = /ws {{
            proxy_pass http://{backend};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1s;
        }}
    }}

    # stream: an event stream behind nginx's default proxy_buffering, which
    # holds the events (and, with postpone_output, the head too).
    server {{
        listen 127.0.0.1:@PORT{STREAM}@;
        location = /events {{
            proxy_pass http://{sse};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        # The same stream unbuffered, as an event stream must be proxied.
        location = /live {{
            proxy_pass http://{sse}/events;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
"#
    ));
    conf.tls_site(
        SECURE,
        &["localhost"],
        &leaf,
        &format!(
            r#"location = /health {{ return 200 "ok\n"; }}
        location = /ws {{
            proxy_pass http://{backend};
            {WS_PROXY}
        }}"#
        ),
    );
    conf.start()
}

fn exporter_config(ca_file: &Path) -> String {
    let ca = ca_file.display();
    format!(
        r#"modules:
  http_2xx:
    prober: http
    timeout: 5s
  ws_upgrade:
    prober: websocket
    timeout: 5s
    websocket:
      ping: true
  https_ca:
    prober: http
    timeout: 5s
    http:
      tls_config:
        ca_file: {ca}
  wss_ca_ping:
    prober: websocket
    timeout: 5s
    websocket:
      ping: true
      tls_config:
        ca_file: {ca}
  tls_ca:
    prober: tls
    timeout: 5s
    tls:
      tls_config:
        ca_file: {ca}
  tcp_connect:
    prober: tcp
    timeout: 5s
  ws_session:
    prober: websocket_session
    timeout: 5s
    websocket:
      session:
        ping_interval: 500ms
        max_silence: 5s
        reconnect_min: 100ms
        reconnect_max: 1s
  ws_session_quiet:
    prober: websocket_session
    timeout: 5s
    websocket:
      session:
        ping_interval: 0s
        max_silence: 1m
        reconnect_min: 100ms
        reconnect_max: 200ms
  sse_events:
    prober: sse
    timeout: 5s
"#
    )
}

/// One static target with its labels, YAML flow style.
fn target(address: &str, service: &str, module: Option<&str>) -> String {
    let module = module.map(|m| format!(", module: {m}")).unwrap_or_default();
    format!("      - targets: [\"{address}\"]\n        labels: {{service: {service}{module}}}\n")
}

/// A probe job with the relabelling of deploy/prometheus/prometheus.yml.
fn probe_job(name: &str, module: &str, targets: &[String], exporter: SocketAddr) -> String {
    format!(
        r#"  - job_name: {name}
    metrics_path: /probe
    params:
      module: [{module}]
    static_configs:
{targets}    relabel_configs:
      - source_labels: [module]
        regex: (.+)
        target_label: __param_module
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: {exporter}
"#,
        targets = targets.concat()
    )
}

fn prometheus_config(
    nginx: &Nginx,
    exporter: SocketAddr,
    alertmanager: &str,
    rule_files: &[String],
) -> String {
    let http = |i: usize| nginx.url("http", i, "/health");
    let ws = |i: usize| nginx.url("ws", i, "/ws");
    let mut http_targets = vec![
        target(&http(GOOD), "good", None),
        target(&http(BROKEN), "broken", None),
        target(&http(DOWN), "down", None),
        target(&http(APP), "app", None),
    ];
    http_targets.push(target(
        &nginx.url("https", SECURE, "/health"),
        "secure",
        Some("https_ca"),
    ));
    let mut ws_targets = vec![
        target(&ws(GOOD), "good", None),
        target(&ws(BROKEN), "broken", None),
        target(&ws(DOWN), "down", None),
        target(&ws(APP), "app", None),
    ];
    ws_targets.push(target(
        &nginx.url("wss", SECURE, "/ws"),
        "secure",
        Some("wss_ca_ping"),
    ));
    let secure_addr = nginx.addr(SECURE).to_string();
    let jobs = [
        probe_job("probe_http", "http_2xx", &http_targets, exporter),
        probe_job("probe_websocket", "ws_upgrade", &ws_targets, exporter),
        probe_job(
            "probe_tls",
            "tls_ca",
            &[target(&secure_addr, "secure", None)],
            exporter,
        ),
        probe_job(
            "probe_tcp",
            "tcp_connect",
            &[target(&secure_addr, "secure", None)],
            exporter,
        ),
        // A long-lived session through the good nginx (its own service: a
        // session is not one of the diagnosis's handshake probes).
        probe_job(
            "probe_websocket_session",
            "ws_session",
            &[
                target(&ws(GOOD), "session", None),
                target(&ws(IDLE), "idle", Some("ws_session_quiet")),
            ],
            exporter,
        ),
        probe_job(
            "probe_sse",
            "sse_events",
            &[
                target(&nginx.url("http", STREAM, "/events"), "stream", None),
                target(&nginx.url("http", STREAM, "/live"), "live", None),
            ],
            exporter,
        ),
    ]
    .concat();
    let rule_files: String = rule_files.iter().map(|f| format!("  - {f}\n")).collect();
    format!(
        r#"# Generated by tests/e2e_prometheus.rs
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s

rule_files:
{rule_files}
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{alertmanager}"]

scrape_configs:
{jobs}
  - job_name: handshake_exporter
    static_configs:
      - targets: ["{exporter}"]
"#
    )
}

/// The shipped rules with every `for:` shortened to 1s; returns the text
/// and how many `for:` lines were changed.
fn shorten_for(rules: &str) -> (String, usize) {
    let re = Regex::new(r"(?m)^(\s+)for:[ \t]*\S+[ \t]*$").expect("regex");
    let count = re.find_iter(rules).count();
    (re.replace_all(rules, "${1}for: 1s").into_owned(), count)
}

/// The shipped Alertmanager config with the webhook URLs pointed at
/// `webhook` and group_wait/group_interval shortened to 1s. Panics when a
/// replacement finds nothing (the shipped file changed shape).
fn local_alertmanager_config(shipped: &str, webhook: &str) -> String {
    let mut text = shipped.to_string();
    for (pattern, replacement) in [
        (
            r"(?m)^(\s*-?\s*url:[ \t]*)\S+[ \t]*$",
            format!("${{1}}{webhook}"),
        ),
        (r"(?m)^(\s*group_wait:[ \t]*)\S+", "${1}1s".to_string()),
        (r"(?m)^(\s*group_interval:[ \t]*)\S+", "${1}1s".to_string()),
    ] {
        let re = Regex::new(pattern).expect("regex");
        assert!(
            re.is_match(&text),
            "deploy/alertmanager/alertmanager.yml has no line matching {pattern}:\n{shipped}"
        );
        text = re.replace_all(&text, replacement.as_str()).into_owned();
    }
    text
}

// ---------------------------------------------------------------------------
// Dashboards
// ---------------------------------------------------------------------------

/// One panel query of a dashboard.
#[derive(Debug)]
struct PanelQuery {
    dashboard: String,
    panel: String,
    ref_id: String,
    /// As in the dashboard.
    raw: String,
    /// With the variables substituted.
    expr: String,
}

/// Every panel (nested rows included, and the old `rows[].panels` layout).
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a [Value], out: &mut Vec<&'a Value>) {
        for p in panels {
            out.push(p);
            walk(array(&p["panels"]), out);
        }
    }
    let mut out = Vec::new();
    walk(array(&dashboard["panels"]), &mut out);
    for row in array(&dashboard["rows"]) {
        walk(array(&row["panels"]), &mut out);
    }
    out
}

/// The values the dashboard's template variables take when "All" (or the
/// default) is selected: `.*` for query/custom variables with an All
/// option, the default for the others.
fn variable_values(dashboard: &Value) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = BUILTIN_VARIABLES
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for var in array(&dashboard["templating"]["list"]) {
        let Some(name) = var["name"].as_str() else {
            continue;
        };
        let value = match var["type"].as_str().unwrap_or_default() {
            "query" | "custom" => var["allValue"].as_str().unwrap_or(".*").to_string(),
            "interval" => "1m".to_string(),
            "datasource" => "prometheus".to_string(),
            _ => {
                let current = &var["current"]["value"];
                current
                    .as_str()
                    .or_else(|| array(current).first().and_then(Value::as_str))
                    .or_else(|| var["query"].as_str())
                    .unwrap_or(".*")
                    .to_string()
            }
        };
        values.insert(name.to_string(), value);
    }
    values
}

/// `expr` with `$var`, `${var}`, `${var:format}` and `[[var]]` replaced;
/// `Err` names the variables that have no value.
fn substitute_variables(expr: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let re =
        Regex::new(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)").expect("regex");
    let mut unknown = Vec::new();
    let out = re.replace_all(expr, |c: &regex::Captures<'_>| {
        let name = c
            .get(1)
            .or_else(|| c.get(2))
            .or_else(|| c.get(3))
            .expect("a group")
            .as_str();
        match values.get(name) {
            Some(v) => v.clone(),
            None => {
                unknown.push(name.to_string());
                c[0].to_string()
            }
        }
    });
    if unknown.is_empty() {
        Ok(out.into_owned())
    } else {
        Err(format!("no value for variable(s) {unknown:?}"))
    }
}

/// The Prometheus queries of every panel of every dashboard in
/// grafana/dashboards, and the template variable queries
/// (`label_values(selector, label)`) with their dashboard name.
fn dashboard_queries() -> (Vec<PanelQuery>, Vec<(String, String, String)>) {
    let dir = repo_path("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in {}", dir.display());

    let mut queries = Vec::new();
    let mut variables = Vec::new();
    for file in files {
        let name = file
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&file).expect("read dashboard");
        let dashboard: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
        let values = variable_values(&dashboard);
        let before = queries.len();
        for panel in all_panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or("(untitled)").to_string();
            for t in array(&panel["targets"]) {
                let Some(raw) = t["expr"].as_str() else {
                    continue;
                };
                let expr = substitute_variables(raw, &values)
                    .unwrap_or_else(|e| panic!("{name} / {title:?}: {e} in {raw:?}"));
                queries.push(PanelQuery {
                    dashboard: name.clone(),
                    panel: title.clone(),
                    ref_id: t["refId"].as_str().unwrap_or("?").to_string(),
                    raw: raw.to_string(),
                    expr,
                });
            }
        }
        assert!(queries.len() > before, "{name} has no panel queries");
        for var in array(&dashboard["templating"]["list"]) {
            if var["type"].as_str() != Some("query") {
                continue;
            }
            let definition = var["query"]["query"]
                .as_str()
                .or_else(|| var["query"].as_str())
                .or_else(|| var["definition"].as_str())
                .unwrap_or_default();
            let definition = substitute_variables(definition, &values)
                .unwrap_or_else(|e| panic!("{name} variable {var}: {e}"));
            variables.push((
                name.clone(),
                var["name"].as_str().unwrap_or("?").to_string(),
                definition,
            ));
        }
    }
    (queries, variables)
}

/// Whether an API `data` object holds at least one value.
fn has_data(data: &Value) -> bool {
    match data["resultType"].as_str() {
        Some("vector" | "matrix") => !array(&data["result"]).is_empty(),
        Some("scalar" | "string") => !data["result"].is_null(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Helpers on API answers
// ---------------------------------------------------------------------------

fn label<'a>(series_or_alert: &'a Value, name: &str) -> &'a str {
    series_or_alert["labels"][name]
        .as_str()
        .or_else(|| series_or_alert["metric"][name].as_str())
        .unwrap_or_default()
}

fn annotation<'a>(alert: &'a Value, name: &str) -> &'a str {
    alert["annotations"][name].as_str().unwrap_or_default()
}

/// The current diagnosis: service -> states (normally exactly one).
async fn diagnosis(prom: &Prometheus) -> BTreeMap<String, Vec<String>> {
    let mut states: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in prom.vector("service:probe_diagnosis:state == 1").await {
        states
            .entry(label(&s, "service").to_string())
            .or_default()
            .push(label(&s, "state").to_string());
    }
    for v in states.values_mut() {
        v.sort();
    }
    states
}

/// Failure reasons of the probes of `service` in `job`, sorted.
async fn reasons(prom: &Prometheus, service: &str, job: Option<&str>) -> Vec<String> {
    let job = job.map(|j| format!(", job=\"{j}\"")).unwrap_or_default();
    let mut reasons: Vec<String> = prom
        .vector(&format!(
            "probe_failure_info{{service=\"{service}\"{job}}} == 1"
        ))
        .await
        .iter()
        .map(|s| label(s, "reason").to_string())
        .collect();
    reasons.sort();
    reasons.dedup();
    reasons
}

/// What the stack looks like, for failure messages.
async fn stack_dump(prom: &Prometheus, exporter: &Exporter, nginx: &Nginx) -> String {
    let mut out = Vec::new();
    for expr in [
        "service:probe_diagnosis:state == 1",
        "service:probe_http_success:min",
        "service:probe_websocket_success:min",
        "probe_success",
        "probe_failure_info == 1",
        "probe_http_status_code",
        "probe_websocket_status_code",
        "up",
        "ALERTS",
    ] {
        out.push(prom.dump(expr).await);
    }
    out.push(format!(
        "--- prometheus log (tail) ---\n{}",
        prom.daemon().log_tail(30)
    ));
    out.push(format!(
        "--- exporter log (tail) ---\n{}",
        tail(&exporter.log(), 30)
    ));
    out.push(format!(
        "--- nginx access.log (tail) ---\n{}\n--- nginx error.log (tail) ---\n{}",
        tail(&nginx.access_log(), 30),
        tail(&nginx.error_log(), 30)
    ));
    out.join("\n")
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn webhook_dump(webhook: &WebhookReceiver) -> String {
    let lines: Vec<String> = webhook
        .alerts()
        .iter()
        .map(|(receiver, a)| {
            format!(
                "  receiver={receiver} {}[{}] service={} summary={:?}",
                label(a, "alertname"),
                a["status"].as_str().unwrap_or("?"),
                label(a, "service"),
                annotation(a, "summary")
            )
        })
        .collect();
    format!("webhook received:\n{}", lines.join("\n"))
}

fn am_dump(alerts: &[Value]) -> String {
    let lines: Vec<String> = alerts
        .iter()
        .map(|a| {
            format!(
                "  {} service={} job={} state={} inhibitedBy={} fingerprint={}",
                label(a, "alertname"),
                label(a, "service"),
                label(a, "job"),
                a["status"]["state"].as_str().unwrap_or("?"),
                a["status"]["inhibitedBy"],
                a["fingerprint"].as_str().unwrap_or("?")
            )
        })
        .collect();
    format!("alertmanager /api/v2/alerts:\n{}", lines.join("\n"))
}

/// The firing alert `alertname` of `service` at the webhook, if any.
fn delivered(webhook: &WebhookReceiver, alertname: &str, service: &str) -> Option<(String, Value)> {
    webhook.alerts().into_iter().find(|(_, a)| {
        label(a, "alertname") == alertname
            && label(a, "service") == service
            && a["status"].as_str() == Some("firing")
    })
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_rules_alertmanager_and_dashboards_on_real_targets() {
    common::prometheus::require_installed();
    let started = Instant::now();

    // Targets.
    let backend = WsBackend::start().await;
    // One event, then quiet: nginx's buffering holds it.
    let (sse_backend, _) = sse_server(vec![send("data: tick\n\n"), hold()]).await;
    let (_refusing, closed) = refusing_port();
    let pki = Pki::new();
    let nginx = start_nginx(backend.addr(), sse_backend.addr(), closed, &pki);
    let exporter = Exporter::start(&exporter_config(&pki.ca_file())).await;

    // Alerting: webhook <- Alertmanager (shipped config, shortened waits).
    let webhook = WebhookReceiver::start();
    let shipped_am = std::fs::read_to_string(repo_path("deploy/alertmanager/alertmanager.yml"))
        .expect("read deploy/alertmanager/alertmanager.yml");
    let mut alertmanager =
        Alertmanager::start(&local_alertmanager_config(&shipped_am, &webhook.url())).await;

    // Prometheus with copies of the shipped rules (only `for:` shortened).
    let rules_dir = repo_path("deploy/prometheus/rules");
    let mut rule_files: Vec<(String, String)> = Vec::new();
    let mut rule_paths: Vec<PathBuf> = std::fs::read_dir(&rules_dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", rules_dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    rule_paths.sort();
    assert!(
        !rule_paths.is_empty(),
        "no rule files in {}",
        rules_dir.display()
    );
    for path in &rule_paths {
        let shipped = std::fs::read_to_string(path).expect("read rules");
        let (shortened, changed) = shorten_for(&shipped);
        let alerts = shipped.matches("- alert:").count();
        assert_eq!(
            changed,
            alerts,
            "{}: expected one `for:` per alert",
            path.display()
        );
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        rule_files.push((name, shortened));
    }
    let rule_names: Vec<String> = rule_files.iter().map(|(n, _)| n.clone()).collect();
    let config = prometheus_config(&nginx, exporter.addr(), &alertmanager.target(), &rule_names);
    let files: Vec<(&str, &str)> = rule_files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let mut prom = Prometheus::start(&config, &files).await;
    eprintln!(
        "stack up after {:?}: prometheus {}, alertmanager {}, exporter {}, webhook {}",
        started.elapsed(),
        prom.base_url(),
        alertmanager.daemon().base_url(),
        exporter.base_url(),
        webhook.url()
    );

    // Every rule group loaded, none failing.
    let groups = prom.daemon().get_json("/api/v1/rules").await;
    let groups = array(&groups["data"]["groups"]).to_vec();
    assert!(
        !groups.is_empty(),
        "Prometheus loaded no rule groups\n{}",
        prom.daemon().log()
    );

    // 1. Diagnosis states.
    let expected: BTreeMap<String, Vec<String>> = EXPECTED_STATES
        .iter()
        .map(|(s, st)| (s.to_string(), vec![st.to_string()]))
        .collect();
    let deadline = Instant::now() + DIAGNOSIS_TIMEOUT;
    loop {
        prom.daemon_mut().assert_running();
        alertmanager.daemon_mut().assert_running();
        let states = diagnosis(&prom).await;
        if states == expected {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "diagnosis after {DIAGNOSIS_TIMEOUT:?}: {states:?}, expected {expected:?}\n{}",
                stack_dump(&prom, &exporter, &nginx).await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("diagnosis as expected after {:?}", started.elapsed());

    // The probes fail for the reasons the setup produces.
    let broken_ws = reasons(&prom, "broken", Some("probe_websocket")).await;
    assert_eq!(
        broken_ws,
        ["upgrade_rejected"],
        "broken /ws (backend answers 426 to the plain GET nginx sends)\n{}",
        stack_dump(&prom, &exporter, &nginx).await
    );
    assert_eq!(
        reasons(&prom, "down", Some("probe_websocket")).await,
        ["upstream_unavailable"],
        "down /ws: nginx answers 502"
    );
    let down_http = reasons(&prom, "down", Some("probe_http")).await;
    assert_eq!(
        down_http,
        ["http_status"],
        "down /health: nginx answers 502"
    );
    let app_http = reasons(&prom, "app", Some("probe_http")).await;
    assert_eq!(app_http, ["http_status"], "app /health: 500");
    for service in ["good", "secure"] {
        assert_eq!(
            reasons(&prom, service, None).await,
            Vec::<String>::new(),
            "{service} has failing probes"
        );
    }
    // The in-process backend saw both kinds of request.
    assert!(backend.upgrades() > 0);
    assert!(backend.plain_requests() > 0);

    // 2. The diagnosis alerts reach the webhook through Alertmanager.
    let wanted = [
        ("WebSocketSpecificFailure", "broken"),
        ("ServiceOutage", "down"),
        ("HttpApplicationIssue", "app"),
        // Long-lived connections: nginx cuts the quiet session every
        // second, and holds the event stream back.
        ("WebSocketIdleCut", "idle"),
        ("WebSocketSessionsUnstable", "idle"),
        ("EventStreamStalled", "stream"),
        // One exporter, no `vantage` label: a failing probe is 1 of 1
        // vantage points, a quorum failure, notified instead of ProbeFailed.
        ("ProbeFailedFromQuorum", "stream"),
    ];
    let deadline = Instant::now() + ALERT_TIMEOUT;
    loop {
        prom.daemon_mut().assert_running();
        alertmanager.daemon_mut().assert_running();
        if wanted
            .iter()
            .all(|(name, service)| delivered(&webhook, name, service).is_some())
        {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "not every alert of {wanted:?} reached the webhook within {ALERT_TIMEOUT:?}\n{}\n{}\n{}\n--- alertmanager log (tail) ---\n{}",
                webhook_dump(&webhook),
                am_dump(&alertmanager.alerts().await),
                stack_dump(&prom, &exporter, &nginx).await,
                alertmanager.daemon().log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("diagnosis alerts delivered after {:?}", started.elapsed());

    // WebSocketSpecificFailure for `broken`: routed as critical, and its
    // summary names the failure reason and the likely causes.
    let (receiver, wsf) =
        delivered(&webhook, "WebSocketSpecificFailure", "broken").expect("delivered");
    let context = webhook_dump(&webhook);
    assert_eq!(receiver, "critical", "{context}");
    assert_eq!(label(&wsf, "severity"), "critical", "{context}");
    assert_eq!(label(&wsf, "state"), "websocket_issue", "{context}");
    let summary = annotation(&wsf, "summary");
    assert!(
        summary.starts_with("broken: HTTP is up but the WebSocket probe fails (upgrade_rejected):"),
        "WebSocketSpecificFailure summary: {summary:?}"
    );
    for cause in [
        "proxy or load balancer not configured for WebSocket upgrades",
        "Upgrade header stripped",
    ] {
        assert!(
            summary.contains(cause),
            "WebSocketSpecificFailure summary does not name {cause:?}: {summary:?}"
        );
    }
    let description = annotation(&wsf, "description");
    let probe = format!(
        "{} reason=upgrade_rejected upgrade_status=426",
        nginx.url("ws", BROKEN, "/ws")
    );
    assert!(
        description.contains(&probe),
        "WebSocketSpecificFailure description does not list {probe:?}: {description:?}"
    );

    // ServiceOutage for `down` names both probes' reasons.
    let (receiver, outage) = delivered(&webhook, "ServiceOutage", "down").expect("delivered");
    assert_eq!(receiver, "critical", "{context}");
    let summary = annotation(&outage, "summary");
    assert!(
        summary.starts_with(
            "down: both HTTP and WebSocket probes fail (http_status, upstream_unavailable):"
        ),
        "ServiceOutage summary: {summary:?}"
    );
    assert!(
        summary.contains("likely"),
        "ServiceOutage summary: {summary:?}"
    );

    // HttpApplicationIssue for `app` names the HTTP probe's reason.
    let (receiver, app) = delivered(&webhook, "HttpApplicationIssue", "app").expect("delivered");
    assert_eq!(receiver, "critical", "{context}");
    let summary = annotation(&app, "summary");
    assert!(
        summary.starts_with("app: HTTP probe fails while WebSocket still works (http_status):"),
        "HttpApplicationIssue summary: {summary:?}"
    );

    // WebSocketIdleCut names nginx's proxy_read_timeout (1s); the
    // stalled stream is routed as a warning.
    let (_, idle) = delivered(&webhook, "WebSocketIdleCut", "idle").expect("delivered");
    let summary = annotation(&idle, "summary");
    assert!(
        summary.contains("an idle timeout of about 1s on the way"),
        "WebSocketIdleCut summary: {summary:?}\n{context}"
    );
    let (_, stalled) = delivered(&webhook, "EventStreamStalled", "stream").expect("delivered");
    assert_eq!(label(&stalled, "severity"), "warning", "{context}");
    let description = annotation(&stalled, "description");
    assert!(
        description.contains("not even the response head arrived"),
        "EventStreamStalled description: {description:?}"
    );

    // No diagnosis alert for the healthy services, and none but
    // ServiceOutage for `down`.
    for (receiver, a) in webhook.alerts() {
        let name = label(&a, "alertname");
        let service = label(&a, "service");
        let diagnosis_alert = matches!(
            name,
            "WebSocketSpecificFailure" | "ServiceOutage" | "HttpApplicationIssue"
        );
        assert!(
            !(matches!(name, "WebSocketIdleCut" | "WebSocketSessionsUnstable")
                && service == "session"),
            "{name} for the pinged session, which nginx never cuts\n{}",
            webhook_dump(&webhook)
        );
        assert!(
            name != "ProbeFailedFromMinority" && name != "VantagePointMissing",
            "{name} with a single exporter, which has no vantage points to disagree\n{}",
            webhook_dump(&webhook)
        );
        assert!(
            !(name == "EventStreamStalled" && service == "live"),
            "EventStreamStalled for the unbuffered stream\n{}",
            webhook_dump(&webhook)
        );
        assert!(
            !(diagnosis_alert && matches!(service, "good" | "secure")),
            "{name} for healthy service {service} (receiver {receiver})\n{}",
            webhook_dump(&webhook)
        );
        assert!(
            !(service == "down"
                && matches!(name, "WebSocketSpecificFailure" | "HttpApplicationIssue")),
            "{name} for service down was delivered although ServiceOutage inhibits it\n{}",
            webhook_dump(&webhook)
        );
    }

    // 3. Inhibitions, as Alertmanager reports them: the ProbeFailed alerts
    // of `down` are suppressed by ServiceOutage, those of `broken` and
    // `app` by their diagnosis alert, that of `stream` (no diagnosis: one
    // probe) by its target's quorum alert.
    let inhibitors = [
        ("down", "ServiceOutage"),
        ("broken", "WebSocketSpecificFailure"),
        ("app", "HttpApplicationIssue"),
        ("stream", "ProbeFailedFromQuorum"),
    ];
    let deadline = Instant::now() + INHIBITION_TIMEOUT;
    loop {
        let alerts = alertmanager.alerts().await;
        let fingerprint = |name: &str, service: &str| {
            alerts
                .iter()
                .find(|a| label(a, "alertname") == name && label(a, "service") == service)
                .and_then(|a| a["fingerprint"].as_str())
                .map(str::to_string)
        };
        let mut problems = Vec::new();
        for (service, source) in inhibitors {
            let Some(source_fp) = fingerprint(source, service) else {
                problems.push(format!("no {source} for {service}"));
                continue;
            };
            let targets: Vec<&Value> = alerts
                .iter()
                .filter(|a| {
                    label(a, "alertname") == "ProbeFailed" && label(a, "service") == service
                })
                .collect();
            // One ProbeFailed per failing probe of the service.
            let failing = if service == "down" { 2 } else { 1 };
            if targets.len() != failing {
                problems.push(format!(
                    "{} ProbeFailed alerts for {service}, expected {failing}",
                    targets.len()
                ));
            }
            for t in targets {
                let state = t["status"]["state"].as_str().unwrap_or("?");
                let by: Vec<&str> = array(&t["status"]["inhibitedBy"])
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                if state != "suppressed" || !by.contains(&source_fp.as_str()) {
                    problems.push(format!(
                        "ProbeFailed {service} {} is {state}, inhibitedBy {by:?}, expected {source} ({source_fp})",
                        label(t, "instance")
                    ));
                }
            }
        }
        if problems.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "inhibitions not in effect after {INHIBITION_TIMEOUT:?}:\n  {}\n{}\n{}",
                problems.join("\n  "),
                am_dump(&alerts),
                webhook_dump(&webhook)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("inhibitions in effect after {:?}", started.elapsed());

    // 4. Dashboards: every panel query returns data from this Prometheus.
    let (queries, variables) = dashboard_queries();
    let mut failures = Vec::new();
    for q in &queries {
        match prom.query(&q.expr).await {
            Ok(data) if has_data(&data) => {}
            Ok(_) => failures.push(format!(
                "{} / {:?} ({}): no data\n      {}",
                q.dashboard,
                q.panel,
                q.ref_id,
                q.expr.replace('\n', "\n      ")
            )),
            Err(e) => failures.push(format!(
                "{} / {:?} ({}): {e}\n      {}\n      (as shipped: {:?})",
                q.dashboard,
                q.panel,
                q.ref_id,
                q.expr.replace('\n', "\n      "),
                q.raw
            )),
        }
    }
    let label_values = Regex::new(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$").expect("regex");
    let mut exempt = 0;
    for (dashboard, name, definition) in &variables {
        // This stack is a single exporter scraped directly, so no series has
        // a `vantage` label and the vantage variable legitimately has no
        // values (its All, `.*`, still matches everything). The
        // multi-vantage stack (deploy/local/run-stack.sh --vantages 3)
        // checks that it has values.
        if name == "vantage" {
            exempt += 1;
            continue;
        }
        let Some(c) = label_values.captures(definition) else {
            failures.push(format!(
                "{dashboard} variable {name}: not label_values(selector, label): {definition:?}"
            ));
            continue;
        };
        let path = format!(
            "/api/v1/label/{}/values?{}",
            &c[2],
            query_string(&[("match[]", &c[1])])
        );
        let doc = prom.daemon().get_json(&path).await;
        if doc["status"].as_str() != Some("success") || array(&doc["data"]).is_empty() {
            failures.push(format!(
                "{dashboard} variable {name}: {definition} has no values: {doc}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} dashboard queries and {} variables failed against Prometheus:\n  {}\n{}",
        failures.len(),
        queries.len(),
        variables.len(),
        failures.join("\n  "),
        stack_dump(&prom, &exporter, &nginx).await
    );
    eprintln!(
        "{} panel queries and {} variables of the dashboards returned data ({exempt} vantage variables exempt); total {:?}",
        queries.len(),
        variables.len() - exempt,
        started.elapsed()
    );
}

/// The pieces that need no processes.
#[test]
fn config_rewrites_and_variable_substitution() {
    let (rules, n) = shorten_for("  - alert: A\n    expr: x\n    for: 2m\n    labels: {}\n");
    assert_eq!(n, 1);
    assert_eq!(
        rules,
        "  - alert: A\n    expr: x\n    for: 1s\n    labels: {}\n"
    );

    let am = local_alertmanager_config(
        "route:\n  group_wait: 30s\n  group_interval: 5m\n  repeat_interval: 4h\nreceivers:\n  - name: r\n    webhook_configs:\n      - url: http://127.0.0.1:9099/alerts\n",
        "http://127.0.0.1:1234/alerts",
    );
    assert_eq!(
        am,
        "route:\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 4h\nreceivers:\n  - name: r\n    webhook_configs:\n      - url: http://127.0.0.1:1234/alerts\n"
    );

    let values: BTreeMap<String, String> = [("job", ".*"), ("__rate_interval", "1m")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        substitute_variables(
            r#"rate(x{job=~"$job", a=~"${job}", b=~"${job:regex}", c=~"[[job]]"}[$__rate_interval])"#,
            &values
        )
        .unwrap(),
        r#"rate(x{job=~".*", a=~".*", b=~".*", c=~".*"}[1m])"#
    );
    assert!(substitute_variables("x{a=~\"$nope\"}", &values).is_err());

    // What the JSON reading above relies on: escapes decoded, numbers read
    // as f64, a missing key reads as null, malformed documents refused.
    let doc: Value = serde_json::from_str(
        r#" {"a": [1, -2.5e1, true, null, "x\u003ey\n\ud83d\ude00"], "b": {}} "#,
    )
    .expect("valid JSON");
    assert_eq!(array(&doc["a"]).len(), 5);
    assert_eq!(array(&doc["a"])[1].as_f64(), Some(-25.0));
    assert_eq!(array(&doc["a"])[4].as_str(), Some("x>y\n😀"));
    assert!(doc["b"]["c"].is_null());
    assert_eq!(
        serde_json::from_str::<Value>(&doc.to_string()).expect("round trip"),
        doc
    );
    assert!(serde_json::from_str::<Value>("[1,]").is_err());
    assert!(serde_json::from_str::<Value>("{} x").is_err());
}
