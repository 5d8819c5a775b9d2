#!/usr/bin/env bash
# Runs the whole handshake_exporter stack on 127.0.0.1, from Debian packages,
# without Docker:
#
#   ws_echo.py        demo HTTP + WebSocket echo backend (Python stdlib)
#   nginx             three server blocks in front of it:
#                       demo-good    correct WebSocket proxy (Upgrade/Connection passed on)
#                       demo-broken  drops the Upgrade headers (the classic misconfiguration)
#                       demo-tls     https/wss with a throwaway self-signed cert (needs openssl)
#   handshake_exporter  target/release/handshake_exporter (built when missing)
#   prometheus        scrape/evaluation every 5s, rules from deploy/prometheus/rules/*.yml
#   alertmanager      no clustering, routes everything to ...
#   webhook_receiver.py  logs every notification it gets
#
# Usage:
#   deploy/local/run-stack.sh                 run until Ctrl-C, print the URLs
#   deploy/local/run-stack.sh --check         start, wait for the diagnosis rules, assert
#                                             demo-good=healthy and demo-broken=websocket_issue,
#                                             run every dashboard query, stop; exit 0/1
#   deploy/local/run-stack.sh --check-alerts  --check, then also wait (up to ~4 min) until
#                                             WebSocketSpecificFailure{service="demo-broken"}
#                                             has reached the webhook through Alertmanager
#   options: --workdir DIR (default: a new mktemp dir), --keep (keep the work dir),
#            --rules-wait SECONDS (wait for deploy/prometheus/rules/*.yml, default 120),
#            --check-timeout SECONDS (default 90)
#
# Ports (environment, all on 127.0.0.1; defaults avoid the standard ones):
#   HS_EXPORTER_PORT=19115 HS_PROMETHEUS_PORT=19090 HS_ALERTMANAGER_PORT=19093
#   HS_WEBHOOK_PORT=19094 HS_GOOD_PORT=18080 HS_BROKEN_PORT=18081
#   HS_ECHO_PORT=18082 HS_TLS_PORT=18443
# Binaries (environment): NGINX=/usr/sbin/nginx PROMETHEUS=/usr/bin/prometheus
#   ALERTMANAGER=/usr/bin/prometheus-alertmanager PROMTOOL=/usr/bin/promtool
#   AMTOOL=/usr/bin/amtool EXPORTER=<repo>/target/release/handshake_exporter
# Debian packages: nginx prometheus prometheus-alertmanager python3 curl (openssl optional).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
HOST=127.0.0.1

mode=run
check_alerts=0
keep=0
workdir=""
rules_wait=120
check_timeout=90

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --check) mode=check ;;
        --check-alerts) mode=check; check_alerts=1 ;;
        --keep) keep=1 ;;
        --workdir) workdir="$2"; shift ;;
        --workdir=*) workdir="${1#*=}" ;;
        --rules-wait) rules_wait="$2"; shift ;;
        --rules-wait=*) rules_wait="${1#*=}" ;;
        --check-timeout) check_timeout="$2"; shift ;;
        --check-timeout=*) check_timeout="${1#*=}" ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run-stack: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

EXPORTER_PORT="${HS_EXPORTER_PORT:-19115}"
PROMETHEUS_PORT="${HS_PROMETHEUS_PORT:-19090}"
ALERTMANAGER_PORT="${HS_ALERTMANAGER_PORT:-19093}"
WEBHOOK_PORT="${HS_WEBHOOK_PORT:-19094}"
GOOD_PORT="${HS_GOOD_PORT:-18080}"
BROKEN_PORT="${HS_BROKEN_PORT:-18081}"
ECHO_PORT="${HS_ECHO_PORT:-18082}"
TLS_PORT="${HS_TLS_PORT:-18443}"

NGINX="${NGINX:-/usr/sbin/nginx}"
PROMETHEUS="${PROMETHEUS:-/usr/bin/prometheus}"
ALERTMANAGER="${ALERTMANAGER:-/usr/bin/prometheus-alertmanager}"
PROMTOOL="${PROMTOOL:-/usr/bin/promtool}"
AMTOOL="${AMTOOL:-/usr/bin/amtool}"
EXPORTER="${EXPORTER:-$REPO/target/release/handshake_exporter}"
RULES_DIR="$REPO/deploy/prometheus/rules"
DASHBOARDS_DIR="$REPO/grafana/dashboards"

log() { printf '[run-stack] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- prerequisites ---------------------------------------------------------
for bin in "$NGINX" "$PROMETHEUS" "$ALERTMANAGER"; do
    [ -x "$bin" ] || die "$bin not found (apt-get install nginx prometheus prometheus-alertmanager)"
done
command -v python3 >/dev/null || die "python3 not found"
command -v curl >/dev/null || die "curl not found"
have_openssl=0
command -v openssl >/dev/null && have_openssl=1

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for p in "$EXPORTER_PORT" "$PROMETHEUS_PORT" "$ALERTMANAGER_PORT" "$WEBHOOK_PORT" \
         "$GOOD_PORT" "$BROKEN_PORT" "$ECHO_PORT" "$TLS_PORT"; do
    if port_busy "$p"; then
        die "$HOST:$p is already in use (another stack running? change it with the HS_*_PORT variables)"
    fi
done

if [ ! -x "$EXPORTER" ]; then
    log "building the exporter (cargo build --release) ..."
    (cd "$REPO" && cargo build --release --bin handshake_exporter) >&2 \
        || die "cargo build --release failed"
    [ -x "$EXPORTER" ] || die "$EXPORTER still missing after the build"
fi

# The rules are shipped separately; give a concurrent writer time to finish.
waited=0
while ! compgen -G "$RULES_DIR/*.yml" >/dev/null; do
    [ "$waited" -ge "$rules_wait" ] && die "no rules in $RULES_DIR/*.yml after ${rules_wait}s"
    [ "$waited" -eq 0 ] && log "waiting for $RULES_DIR/*.yml ..."
    sleep 2; waited=$((waited + 2))
done

# --- work dir and cleanup --------------------------------------------------
created_workdir=0
if [ -z "$workdir" ]; then
    workdir="$(mktemp -d "${TMPDIR:-/tmp}/handshake-stack.XXXXXX")"
    created_workdir=1
else
    mkdir -p "$workdir"
    workdir="$(cd "$workdir" && pwd)"
fi
mkdir -p "$workdir"/{nginx,exporter,prometheus/data,alertmanager/data,tls,logs}

pids=()
names=()
result=1

cleanup() {
    local i pid
    trap - EXIT INT TERM
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid="${pids[$i]}"
        kill -TERM "$pid" 2>/dev/null || true
    done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$result" -ne 0 ] && [ "$mode" = check ]; then
        log "logs kept in $workdir/logs"
    elif [ "$created_workdir" -eq 1 ] && [ "$keep" -eq 0 ]; then
        rm -rf "$workdir"
    else
        log "work dir kept: $workdir"
    fi
}
trap cleanup EXIT
trap 'log "stopping ..."; exit 130' INT
trap 'log "stopping ..."; exit 143' TERM

# start NAME CMD...: runs CMD in the background, output in logs/NAME.log.
# setsid puts it in its own session, so a Ctrl-C in the terminal reaches only
# this script, whose trap then stops everything in order, by PID.
start() {
    local name="$1"; shift
    if command -v setsid >/dev/null; then
        setsid "$@" >"$workdir/logs/$name.log" 2>&1 </dev/null &
    else
        "$@" >"$workdir/logs/$name.log" 2>&1 </dev/null &
    fi
    pids+=("$!")
    names+=("$name")
}

# wait_http NAME URL: until URL answers (any HTTP status), or 30 s.
wait_http() {
    local name="$1" url="$2" i
    for i in $(seq 150); do
        if curl -s -o /dev/null --max-time 1 "$url"; then
            log "$name is up: $url"
            return 0
        fi
        check_alive
        sleep 0.2
    done
    tail -n 30 "$workdir/logs/$name.log" >&2 || true
    die "$name did not come up at $url"
}

check_alive() {
    local i
    for i in "${!pids[@]}"; do
        if ! kill -0 "${pids[$i]}" 2>/dev/null; then
            log "${names[$i]} exited; its log:"
            tail -n 30 "$workdir/logs/${names[$i]}.log" >&2 || true
            die "${names[$i]} is not running"
        fi
    done
}

# --- TLS material for demo-tls ---------------------------------------------
tls_servers=""
if [ "$have_openssl" -eq 1 ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=handshake-demo" \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$workdir/tls/demo.key" -out "$workdir/tls/demo.crt" \
        >"$workdir/logs/openssl.log" 2>&1 || die "openssl req failed (see $workdir/logs/openssl.log)"
    tls_servers="
    # demo-tls: https and wss with a self-signed certificate (30 days).
    server {
        listen $HOST:$TLS_PORT ssl;
        ssl_certificate $workdir/tls/demo.crt;
        ssl_certificate_key $workdir/tls/demo.key;
        location / {
            proxy_pass http://echo_backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
        }
    }"
else
    log "openssl not found: demo-tls (https/wss/tls probes) is left out"
fi

# --- nginx -------------------------------------------------------------------
cat >"$workdir/nginx/nginx.conf" <<EOF
# Generated by deploy/local/run-stack.sh
daemon off;
master_process off;
worker_processes 1;
pid $workdir/nginx/nginx.pid;
lock_file $workdir/nginx/nginx.lock;
error_log $workdir/logs/nginx-error.log info;

events { worker_connections 256; }

http {
    log_format ws '\$remote_addr "\$request" \$status upgrade="\$http_upgrade" server=\$server_port';
    access_log $workdir/logs/nginx-access.log ws;
    client_body_temp_path $workdir/nginx/client_body;
    proxy_temp_path $workdir/nginx/proxy;
    fastcgi_temp_path $workdir/nginx/fastcgi;
    uwsgi_temp_path $workdir/nginx/uwsgi;
    scgi_temp_path $workdir/nginx/scgi;
    default_type text/plain;

    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      close;
    }

    upstream echo_backend {
        server $HOST:$ECHO_PORT;
    }

    # demo-good: a correct WebSocket reverse proxy.
    server {
        listen $HOST:$GOOD_PORT;
        location / {
            proxy_pass http://echo_backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
            proxy_read_timeout 1h;
        }
    }

    # demo-broken: the usual misconfiguration. Upgrade and Connection are
    # hop-by-hop headers that nginx does not pass on unless told to (and it
    # speaks HTTP/1.0 to the upstream by default), so the backend sees a
    # plain GET and answers 200: HTTP checks stay green, WebSockets fail
    # (probe_failure_info{reason="upgrade_ignored"}).
    server {
        listen $HOST:$BROKEN_PORT;
        location / {
            proxy_pass http://echo_backend;
            proxy_set_header Host \$host;
        }
    }
$tls_servers
}
EOF
"$NGINX" -t -q -p "$workdir/nginx" -e "$workdir/logs/nginx-error.log" -c "$workdir/nginx/nginx.conf" \
    || die "nginx -t failed for $workdir/nginx/nginx.conf"

# --- exporter config ---------------------------------------------------------
tls_modules=""
if [ "$have_openssl" -eq 1 ]; then
    tls_modules="
  # demo-tls: the self-signed demo certificate is trusted through ca_file.
  https_demo_ca:
    prober: http
    timeout: 4s
    http:
      tls_config:
        ca_file: $workdir/tls/demo.crt
  wss_demo_ca_ping:
    prober: websocket
    timeout: 4s
    websocket:
      ping: true
      tls_config:
        ca_file: $workdir/tls/demo.crt
  tls_demo_ca:
    prober: tls
    timeout: 4s
    tls:
      tls_config:
        ca_file: $workdir/tls/demo.crt"
fi
cat >"$workdir/exporter/blackbox.yml" <<EOF
# Generated by deploy/local/run-stack.sh
modules:
  http_2xx:
    prober: http
    timeout: 4s
  ws_upgrade:
    prober: websocket
    timeout: 4s
  ws_upgrade_ping:
    prober: websocket
    timeout: 4s
    websocket:
      ping: true
  tcp_connect:
    prober: tcp
    timeout: 4s
$tls_modules
EOF
"$EXPORTER" --config.check --config.file="$workdir/exporter/blackbox.yml" >"$workdir/logs/config-check.log" 2>&1 \
    || { cat "$workdir/logs/config-check.log" >&2; die "the exporter rejects $workdir/exporter/blackbox.yml"; }

# --- prometheus config -------------------------------------------------------
relabel="    relabel_configs:
      - source_labels: [module]
        regex: (.+)
        target_label: __param_module
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: $HOST:$EXPORTER_PORT"
http_tls_targets="" ws_tls_targets="" tls_job=""
if [ "$have_openssl" -eq 1 ]; then
    http_tls_targets="
      - targets: [\"https://$HOST:$TLS_PORT/health\"]
        labels: {service: demo-tls, module: https_demo_ca}"
    ws_tls_targets="
      - targets: [\"wss://$HOST:$TLS_PORT/ws\"]
        labels: {service: demo-tls, module: wss_demo_ca_ping}"
    tls_job="
  - job_name: probe_tls
    metrics_path: /probe
    params:
      module: [tls_demo_ca]
    static_configs:
      - targets: [\"$HOST:$TLS_PORT\"]
        labels: {service: demo-tls}
$relabel
"
fi
cat >"$workdir/prometheus/prometheus.yml" <<EOF
# Generated by deploy/local/run-stack.sh
global:
  scrape_interval: 5s
  scrape_timeout: 4s
  evaluation_interval: 5s

rule_files:
  - $RULES_DIR/*.yml

alerting:
  alertmanagers:
    - static_configs:
        - targets: ["$HOST:$ALERTMANAGER_PORT"]

scrape_configs:
  - job_name: probe_http
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets: ["http://$HOST:$GOOD_PORT/health"]
        labels: {service: demo-good}
      - targets: ["http://$HOST:$BROKEN_PORT/health"]
        labels: {service: demo-broken}$http_tls_targets
$relabel

  - job_name: probe_websocket
    metrics_path: /probe
    params:
      module: [ws_upgrade_ping]
    static_configs:
      - targets: ["ws://$HOST:$GOOD_PORT/ws"]
        labels: {service: demo-good}
      - targets: ["ws://$HOST:$BROKEN_PORT/ws"]
        labels: {service: demo-broken}$ws_tls_targets
$relabel

  - job_name: probe_tcp
    metrics_path: /probe
    params:
      module: [tcp_connect]
    static_configs:
      - targets: ["$HOST:$ECHO_PORT"]
        labels: {service: demo-backend}
$relabel
$tls_job
  - job_name: handshake_exporter
    static_configs:
      - targets: ["$HOST:$EXPORTER_PORT"]

  - job_name: prometheus
    static_configs:
      - targets: ["$HOST:$PROMETHEUS_PORT"]
EOF
if [ -x "$PROMTOOL" ]; then
    "$PROMTOOL" check config "$workdir/prometheus/prometheus.yml" >"$workdir/logs/promtool.log" 2>&1 \
        || { cat "$workdir/logs/promtool.log" >&2; die "promtool check config failed"; }
fi

# --- alertmanager config -----------------------------------------------------
# The shipped deploy/alertmanager/alertmanager.yml (routing, inhibitions) with
# every webhook URL pointed at the local receiver; a minimal config if absent.
AM_SHIPPED="$REPO/deploy/alertmanager/alertmanager.yml"
if [ -f "$AM_SHIPPED" ]; then
    sed -E "s#^([[:space:]]*-?[[:space:]]*url:[[:space:]]*)['\"]?https?://[^/'\" ]+(/[^'\" ]*)?['\"]?#\\1http://$HOST:$WEBHOOK_PORT\\2#" \
        "$AM_SHIPPED" >"$workdir/alertmanager/alertmanager.yml"
else
    log "no $AM_SHIPPED: using a minimal Alertmanager config"
    cat >"$workdir/alertmanager/alertmanager.yml" <<EOF
# Generated by deploy/local/run-stack.sh
route:
  receiver: webhook
  group_by: [alertname, service]
  group_wait: 10s
  group_interval: 30s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: http://$HOST:$WEBHOOK_PORT/alerts
        send_resolved: true
EOF
fi
if [ -x "$AMTOOL" ]; then
    "$AMTOOL" check-config "$workdir/alertmanager/alertmanager.yml" >"$workdir/logs/amtool.log" 2>&1 \
        || { cat "$workdir/logs/amtool.log" >&2; die "amtool check-config failed"; }
fi

# --- start ---------------------------------------------------------------------
log "work dir: $workdir"
start ws_echo python3 "$HERE/ws_echo.py" --listen "$HOST" --port "$ECHO_PORT"
wait_http ws_echo "http://$HOST:$ECHO_PORT/"

start nginx "$NGINX" -p "$workdir/nginx" -e "$workdir/logs/nginx-error.log" -c "$workdir/nginx/nginx.conf"
wait_http nginx "http://$HOST:$GOOD_PORT/"
wait_http nginx "http://$HOST:$BROKEN_PORT/"

start webhook python3 -u "$HERE/webhook_receiver.py" --listen "$HOST" --port "$WEBHOOK_PORT" --raw
wait_http webhook "http://$HOST:$WEBHOOK_PORT/"

start exporter "$EXPORTER" --config.file="$workdir/exporter/blackbox.yml" \
    --web.listen-address="$HOST:$EXPORTER_PORT"
wait_http exporter "http://$HOST:$EXPORTER_PORT/-/ready"

start alertmanager "$ALERTMANAGER" \
    --config.file="$workdir/alertmanager/alertmanager.yml" \
    --storage.path="$workdir/alertmanager/data" \
    --web.listen-address="$HOST:$ALERTMANAGER_PORT" \
    --cluster.listen-address=
wait_http alertmanager "http://$HOST:$ALERTMANAGER_PORT/-/ready"

start prometheus "$PROMETHEUS" \
    --config.file="$workdir/prometheus/prometheus.yml" \
    --storage.tsdb.path="$workdir/prometheus/data" \
    --web.listen-address="$HOST:$PROMETHEUS_PORT" \
    --web.enable-lifecycle
wait_http prometheus "http://$HOST:$PROMETHEUS_PORT/-/ready"

PROM="http://$HOST:$PROMETHEUS_PORT"

# query EXPR: the instant query's JSON on stdout.
query() { curl -s --max-time 5 -G "$PROM/api/v1/query" --data-urlencode "query=$1"; }

# show_diagnosis: "service state" lines from service:probe_diagnosis:state == 1.
show_diagnosis() {
    query 'service:probe_diagnosis:state == 1' | python3 -c '
import json, sys
doc = json.load(sys.stdin)
for r in sorted(doc.get("data", {}).get("result", []), key=lambda r: r["metric"].get("service", "")):
    print(r["metric"].get("service", "?"), r["metric"].get("state", "?"))
'
}

show_probes() {
    query 'probe_success' | python3 -c '
import json, sys
rows = json.load(sys.stdin).get("data", {}).get("result", [])
for r in sorted(rows, key=lambda r: (r["metric"].get("service", ""), r["metric"].get("job", ""))):
    m = r["metric"]
    print("  %-13s %-16s %-40s success=%s" % (m.get("service", "-"), m.get("job", ""), m.get("instance", ""), r["value"][1]))
'
    query 'probe_failure_info == 1' | python3 -c '
import json, sys
rows = json.load(sys.stdin).get("data", {}).get("result", [])
for r in rows:
    m = r["metric"]
    print("  failure: %s %s reason=%s" % (m.get("job", ""), m.get("instance", ""), m.get("reason", "")))
'
}

print_urls() {
    cat <<EOF

handshake_exporter stack on $HOST (work dir $workdir, logs in $workdir/logs):
  exporter       http://$HOST:$EXPORTER_PORT/            (recent probes, /metrics, /config)
  prometheus     $PROM/graph?g0.expr=service%3Aprobe_diagnosis%3Astate%20%3D%3D%201&g0.tab=1
                 $PROM/alerts
  alertmanager   http://$HOST:$ALERTMANAGER_PORT/
  webhook log    $workdir/logs/webhook.log
  demo-good      http://$HOST:$GOOD_PORT/  ws://$HOST:$GOOD_PORT/ws     (correct WebSocket proxy)
  demo-broken    http://$HOST:$BROKEN_PORT/  ws://$HOST:$BROKEN_PORT/ws     (drops Upgrade: websocket_issue)
EOF
    if [ "$have_openssl" -eq 1 ]; then
        echo "  demo-tls       https://$HOST:$TLS_PORT/  wss://$HOST:$TLS_PORT/ws    (self-signed, trusted via ca_file)"
    fi
    cat <<EOF
  try:  curl 'http://$HOST:$EXPORTER_PORT/probe?module=ws_upgrade&target=ws://$HOST:$BROKEN_PORT/ws&debug=true'
  Grafana is not started; point a Grafana at $PROM and import grafana/dashboards/*.json.
  WebSocketSpecificFailure for demo-broken fires after its 'for: 2m' and reaches the webhook.
EOF
}

# check_dashboards: runs every panel query of grafana/dashboards/*.json
# (variables replaced by match-all values) against this Prometheus.
check_dashboards() {
    compgen -G "$DASHBOARDS_DIR/*.json" >/dev/null || { log "no dashboards in $DASHBOARDS_DIR"; return 0; }
    python3 - "$PROM" "$DASHBOARDS_DIR"/*.json <<'EOF'
import json, sys, urllib.parse, urllib.request
prom, files = sys.argv[1], sys.argv[2:]
subst = [("$__rate_interval", "5m"), ("${__rate_interval}", "5m"), ("$__interval", "1m"),
         ("${__interval}", "1m"), ("$__range", "1h"), ("${__range}", "1h"),
         ("${job}", ".*"), ("$job", ".*"), ("${service}", ".*"), ("$service", ".*"),
         ("${instance}", ".*"), ("$instance", ".*")]
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
bad = total = with_data = 0
for f in files:
    dash = json.load(open(f))
    for p in panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            expr = t.get("expr")
            if not expr:
                continue
            for a, b in subst:
                expr = expr.replace(a, b)
            total += 1
            url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            try:
                doc = json.load(urllib.request.urlopen(url, timeout=10))
                n = len(doc["data"]["result"]) if doc["data"]["resultType"] in ("vector", "matrix") else 1
                with_data += n > 0
            except urllib.error.HTTPError as e:
                bad += 1
                print("  INVALID %s / %s: %s\n    %s" % (f.rsplit("/", 1)[-1], p.get("title"), json.load(e).get("error"), expr))
print("dashboards: %d queries, %d invalid, %d returned data now" % (total, bad, with_data))
sys.exit(1 if bad else 0)
EOF
}

if [ "$mode" = run ]; then
    print_urls
    log "running; Ctrl-C stops everything"
    while true; do
        check_alive
        sleep 2
    done
fi

# --- check mode -------------------------------------------------------------------
log "waiting up to ${check_timeout}s for the diagnosis rules ..."
deadline=$((SECONDS + check_timeout))
ok=0
while [ "$SECONDS" -lt "$deadline" ]; do
    check_alive
    states="$(show_diagnosis 2>/dev/null || true)"
    if grep -qx 'demo-good healthy' <<<"$states" && grep -qx 'demo-broken websocket_issue' <<<"$states"; then
        ok=1
        break
    fi
    sleep 2
done

echo "service:probe_diagnosis:state == 1 (after $((SECONDS))s):"
show_diagnosis | sed 's/^/  /'
echo "probes:"
show_probes
if [ "$ok" -ne 1 ]; then
    echo "CHECK FAILED: expected demo-good=healthy and demo-broken=websocket_issue"
    exit 1
fi
echo "diagnosis OK: demo-good=healthy, demo-broken=websocket_issue"

check_dashboards || { echo "CHECK FAILED: dashboard queries"; exit 1; }

if [ "$check_alerts" -eq 1 ]; then
    log "waiting up to 240s for WebSocketSpecificFailure{service=demo-broken} at the webhook ..."
    deadline=$((SECONDS + 240))
    got=0
    while [ "$SECONDS" -lt "$deadline" ]; do
        check_alive
        if grep -q 'WebSocketSpecificFailure\[firing\]{.*service=demo-broken' "$workdir/logs/webhook.log"; then
            got=1
            break
        fi
        sleep 5
    done
    echo "webhook notifications:"
    grep -E 'receiver=|^    summary:' "$workdir/logs/webhook.log" | sed 's/^/  /' || true
    if [ "$got" -ne 1 ]; then
        echo "CHECK FAILED: no WebSocketSpecificFailure for demo-broken at the webhook"
        exit 1
    fi
    echo "alert OK: WebSocketSpecificFailure{service=demo-broken} reached the webhook"
fi

result=0
echo "CHECK PASSED"
exit 0
