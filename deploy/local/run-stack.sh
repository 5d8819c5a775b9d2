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
# With --vantages N (N >= 1) it runs N vantage points instead of the single
# exporter, as deploy/multi-vantage/ lays them out: per vantage point
# (site-a, site-b, ...) an exporter, a Prometheus in agent mode with
# external_labels {vantage: site-x} remote-writing to the central
# Prometheus (--web.enable-remote-write-receiver, which evaluates the rules),
# and an "edge" nginx: each vantage point reaches demo-good through its own
# edge (its network path; the instance label stays demo-good's URL, as a
# name that resolves to a different edge per location would). demo-broken,
# demo-tls and demo-backend are probed directly from every vantage point.
#
# Usage:
#   deploy/local/run-stack.sh                 run until Ctrl-C, print the URLs
#   deploy/local/run-stack.sh --check         start, wait for the diagnosis rules, assert
#                                             demo-good=healthy and demo-broken=websocket_issue,
#                                             run every dashboard query, stop; exit 0/1
#   deploy/local/run-stack.sh --check-alerts  --check, then also wait (up to ~4 min) until
#                                             WebSocketSpecificFailure{service="demo-broken"}
#                                             has reached the webhook through Alertmanager
#   deploy/local/run-stack.sh --vantages 3 [--check]
#                                             three vantage points; --check (N >= 3) also
#                                             breaks site-a's path to demo-good and asserts
#                                             ProbeFailedFromMinority only (notified, ProbeFailed
#                                             inhibited), then breaks site-b's too and asserts
#                                             ProbeFailedFromQuorum (and the diagnosis: outage),
#                                             then stops the last site's exporter and asserts
#                                             VantagePointMissing goes pending; ~6 minutes
#   options: --workdir DIR (default: a new mktemp dir), --keep (keep the work dir),
#            --rules-wait SECONDS (wait for deploy/prometheus/rules/*.yml, default 120),
#            --check-timeout SECONDS (default 90)
#
# Ports (environment, all on 127.0.0.1; defaults avoid the standard ones):
#   HS_EXPORTER_PORT=19115 HS_PROMETHEUS_PORT=19090 HS_ALERTMANAGER_PORT=19093
#   HS_WEBHOOK_PORT=19094 HS_GOOD_PORT=18080 HS_BROKEN_PORT=18081
#   HS_ECHO_PORT=18082 HS_TLS_PORT=18443
#   With --vantages, the central Prometheus uses HS_PROMETHEUS_PORT and each
#   vantage point's exporter, agent and edge take free ports.
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
vantages=0

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
        --vantages) vantages="$2"; shift ;;
        --vantages=*) vantages="${1#*=}" ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run-stack: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

case "$vantages" in
    ''|*[!0-9]*) echo "run-stack: --vantages needs a number, got '$vantages'" >&2; exit 2 ;;
esac
if [ "$vantages" -gt 26 ]; then
    echo "run-stack: at most 26 vantage points (site-a .. site-z)" >&2; exit 2
fi
if [ "$vantages" -gt 0 ] && [ "$vantages" -lt 3 ] && [ "$mode" = check ]; then
    echo "run-stack: --check with --vantages needs at least 3 (one broken path must be a minority)" >&2
    exit 2
fi

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

# untrack I: forgets the process at index I (reaping it); the cleanup and
# check_alive no longer see it.
untrack() {
    wait "${pids[$1]}" 2>/dev/null || true
    unset "pids[$1]" "names[$1]"
    pids=("${pids[@]}")
    names=("${names[@]}")
}

# stop_process NAME: stops that process on purpose (a broken path, a
# stopped exporter) and stops tracking it.
stop_process() {
    local name="$1" i
    for i in "${!names[@]}"; do
        if [ "${names[$i]}" = "$name" ]; then
            kill -TERM "${pids[$i]}" 2>/dev/null || true
            untrack "$i"
            log "stopped $name"
            return 0
        fi
    done
    die "stop_process: no process named $name"
}

check_alive() {
    local i
    for i in "${!pids[@]}"; do
        if ! kill -0 "${pids[$i]}" 2>/dev/null; then
            # A vantage point's edge is its network path: stopping it is how
            # a path is broken by hand, not a failure of the stack.
            if [[ "${names[$i]}" == edge-* ]]; then
                log "${names[$i]} stopped: ${names[$i]#edge-}'s path to demo-good is broken"
                untrack "$i"
                check_alive
                return
            fi
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
# nginx_head DIR ERROR_LOG: the start of a foreground, single-process nginx
# config whose state lives in DIR, into the `http {` block's common part
# (temp paths, the Upgrade -> Connection map).
nginx_head() {
    cat <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $1/nginx.pid;
lock_file $1/nginx.lock;
error_log $2 info;

events { worker_connections 256; }

http {
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    default_type text/plain;

    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      close;
    }
EOF
}

{
    echo "# Generated by deploy/local/run-stack.sh"
    nginx_head "$workdir/nginx" "$workdir/logs/nginx-error.log"
    cat <<EOF
    log_format ws '\$remote_addr "\$request" \$status upgrade="\$http_upgrade" server=\$server_port';
    access_log $workdir/logs/nginx-access.log ws;

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
} >"$workdir/nginx/nginx.conf"
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
# probe_jobs EXPORTER_ADDR [EDGE_PORT]: the scrape_configs entries (blackbox
# relabelling, the scrape goes to EXPORTER_ADDR). With EDGE_PORT, demo-good
# is probed through that edge: ?target= gets the edge's port, while the
# instance label keeps demo-good's URL, so every vantage point reports the
# same target.
probe_jobs() {
    local exporter="$1" edge="${2:-}" relabel edge_relabel="" http_tls_targets="" ws_tls_targets="" tls_job=""
    if [ -n "$edge" ]; then
        edge_relabel="
      - source_labels: [__param_target]
        regex: (.*)://${HOST//./\\.}:$GOOD_PORT(/.*)
        target_label: __param_target
        replacement: \${1}://$HOST:$edge\${2}"
    fi
    relabel="    relabel_configs:
      - source_labels: [module]
        regex: (.+)
        target_label: __param_module
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance$edge_relabel
      - target_label: __address__
        replacement: $exporter"
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
    cat <<EOF
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
      - targets: ["$exporter"]
EOF
}

promtool_check() {
    if [ -x "$PROMTOOL" ]; then
        "$PROMTOOL" check config "$@" >"$workdir/logs/promtool.log" 2>&1 \
            || { cat "$workdir/logs/promtool.log" >&2; die "promtool check config $* failed"; }
    fi
}

# The Prometheus that evaluates the rules and alerts: with one exporter it
# scrapes it; with vantage points it receives their agents' remote writes.
{
    cat <<EOF
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
EOF
    if [ "$vantages" -eq 0 ]; then
        probe_jobs "$HOST:$EXPORTER_PORT"
        echo
    fi
    cat <<EOF
  - job_name: prometheus
    static_configs:
      - targets: ["$HOST:$PROMETHEUS_PORT"]
EOF
} >"$workdir/prometheus/prometheus.yml"
promtool_check "$workdir/prometheus/prometheus.yml"

# --- vantage points ------------------------------------------------------------
# Per vantage point: its name, and free ports for its exporter, agent and edge.
vantage_names=() vantage_exporter=() vantage_agent=() vantage_edge=()
if [ "$vantages" -gt 0 ]; then
    read -r -a vantage_ports <<<"$("$REPO/scripts/free-ports" $((3 * vantages)) "$EXPORTER_PORT" "$PROMETHEUS_PORT" \
        "$ALERTMANAGER_PORT" "$WEBHOOK_PORT" "$GOOD_PORT" "$BROKEN_PORT" "$ECHO_PORT" "$TLS_PORT")"
    [ "${#vantage_ports[@]}" -eq $((3 * vantages)) ] || die "scripts/free-ports did not print $((3 * vantages)) free ports"
fi
for ((v = 0; v < vantages; v++)); do
    name="site-$(printf "\\$(printf '%03o' $((97 + v)))")"
    vantage_names+=("$name")
    vantage_exporter+=("${vantage_ports[$((3 * v))]}")
    vantage_agent+=("${vantage_ports[$((3 * v + 1))]}")
    vantage_edge+=("${vantage_ports[$((3 * v + 2))]}")
    dir="$workdir/vantage/$name"
    mkdir -p "$dir/agent-data" "$dir/edge"

    # The edge: a correct WebSocket proxy to the backend, like demo-good.
    {
        echo "# Generated by deploy/local/run-stack.sh: $name's path to demo-good"
        nginx_head "$dir/edge" "$workdir/logs/edge-$name.log"
        cat <<EOF
    access_log off;
    server {
        listen $HOST:${vantage_edge[$v]};
        location / {
            proxy_pass http://$HOST:$ECHO_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
        }
    }
}
EOF
    } >"$dir/edge/nginx.conf"
    "$NGINX" -t -q -p "$dir/edge" -e "$workdir/logs/edge-$name.log" -c "$dir/edge/nginx.conf" \
        || die "nginx -t failed for $dir/edge/nginx.conf"

    # The agent: scrapes this vantage point's exporter, labels everything
    # with the vantage point, remote-writes to the central Prometheus.
    {
        cat <<EOF
# Generated by deploy/local/run-stack.sh: the Prometheus agent of $name
global:
  scrape_interval: 5s
  scrape_timeout: 4s
  external_labels:
    vantage: $name

remote_write:
  - url: http://$HOST:$PROMETHEUS_PORT/api/v1/write
    queue_config:
      batch_send_deadline: 1s

scrape_configs:
EOF
        probe_jobs "$HOST:${vantage_exporter[$v]}" "${vantage_edge[$v]}"
    } >"$dir/agent.yml"
    promtool_check --agent "$dir/agent.yml"
done

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

if [ "$vantages" -eq 0 ]; then
    start exporter "$EXPORTER" --config.file="$workdir/exporter/blackbox.yml" \
        --web.listen-address="$HOST:$EXPORTER_PORT"
    wait_http exporter "http://$HOST:$EXPORTER_PORT/-/ready"
fi

start alertmanager "$ALERTMANAGER" \
    --config.file="$workdir/alertmanager/alertmanager.yml" \
    --storage.path="$workdir/alertmanager/data" \
    --web.listen-address="$HOST:$ALERTMANAGER_PORT" \
    --cluster.listen-address=
wait_http alertmanager "http://$HOST:$ALERTMANAGER_PORT/-/ready"

central_flags=()
if [ "$vantages" -gt 0 ]; then
    central_flags+=(--web.enable-remote-write-receiver)
fi
start prometheus "$PROMETHEUS" \
    --config.file="$workdir/prometheus/prometheus.yml" \
    --storage.tsdb.path="$workdir/prometheus/data" \
    --web.listen-address="$HOST:$PROMETHEUS_PORT" \
    --web.enable-lifecycle "${central_flags[@]}"
wait_http prometheus "http://$HOST:$PROMETHEUS_PORT/-/ready"

# The vantage points, once the central Prometheus takes their writes.
for ((v = 0; v < vantages; v++)); do
    name="${vantage_names[$v]}"
    dir="$workdir/vantage/$name"
    start "edge-$name" "$NGINX" -p "$dir/edge" -e "$workdir/logs/edge-$name.log" -c "$dir/edge/nginx.conf"
    wait_http "edge-$name" "http://$HOST:${vantage_edge[$v]}/"
    start "exporter-$name" "$EXPORTER" --config.file="$workdir/exporter/blackbox.yml" \
        --web.listen-address="$HOST:${vantage_exporter[$v]}"
    wait_http "exporter-$name" "http://$HOST:${vantage_exporter[$v]}/-/ready"
    start "agent-$name" "$PROMETHEUS" --enable-feature=agent \
        --config.file="$dir/agent.yml" \
        --storage.agent.path="$dir/agent-data" \
        --web.listen-address="$HOST:${vantage_agent[$v]}"
    wait_http "agent-$name" "http://$HOST:${vantage_agent[$v]}/-/ready"
done

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
for r in sorted(rows, key=lambda r: tuple(r["metric"].get(k, "") for k in ("service", "job", "instance", "vantage"))):
    m = r["metric"]
    print("  %-13s %-16s %-40s %ssuccess=%s" % (m.get("service", "-"), m.get("job", ""), m.get("instance", ""),
          "vantage=%s " % m["vantage"] if "vantage" in m else "", r["value"][1]))
'
    query 'probe_failure_info == 1' | python3 -c '
import json, sys
rows = json.load(sys.stdin).get("data", {}).get("result", [])
for r in rows:
    m = r["metric"]
    print("  failure: %s %s %sreason=%s" % (m.get("job", ""), m.get("instance", ""),
          "vantage=%s " % m["vantage"] if "vantage" in m else "", m.get("reason", "")))
'
}

print_urls() {
    cat <<EOF

handshake_exporter stack on $HOST (work dir $workdir, logs in $workdir/logs):
EOF
    if [ "$vantages" -eq 0 ]; then
        echo "  exporter       http://$HOST:$EXPORTER_PORT/            (recent probes, /metrics, /config)"
    fi
    for ((v = 0; v < vantages; v++)); do
        printf '  %-14s exporter http://%s:%s/  agent http://%s:%s/  edge (its path to demo-good) http://%s:%s/\n' \
            "${vantage_names[$v]}" "$HOST" "${vantage_exporter[$v]}" "$HOST" "${vantage_agent[$v]}" "$HOST" "${vantage_edge[$v]}"
    done
    if [ "$vantages" -gt 0 ]; then
        echo "  break a path:  kill \$(cat $workdir/vantage/${vantage_names[0]}/edge/nginx.pid)   (${vantage_names[0]}'s edge; ProbeFailedFromMinority after 2m)"
    fi
    cat <<EOF
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
  try:  curl 'http://$HOST:${vantage_exporter[0]:-$EXPORTER_PORT}/probe?module=ws_upgrade&target=ws://$HOST:$BROKEN_PORT/ws&debug=true'
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
         ("${instance}", ".*"), ("$instance", ".*"), ("${vantage}", ".*"), ("$vantage", ".*")]
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

if [ "$vantages" -gt 0 ]; then
    # --- many vantage points: break paths, watch the quorum ----------------------
    # series_count EXPR: how many series the instant query returns.
    series_count() {
        query "$1" | python3 -c '
import json, sys
try:
    print(len(json.load(sys.stdin)["data"]["result"]))
except Exception:
    print(-1)
'
    }
    # wait_count WHAT EXPR N TIMEOUT: until EXPR returns exactly N series.
    wait_count() {
        local what="$1" expr="$2" want="$3" timeout="$4" n=-1 until=$((SECONDS + $4))
        while [ "$SECONDS" -lt "$until" ]; do
            check_alive
            n="$(series_count "$expr")"
            if [ "$n" = "$want" ]; then
                log "$what (after ${SECONDS}s)"
                return 0
            fi
            sleep 2
        done
        echo "CHECK FAILED: $what: $expr returned $n series, expected $want, for ${timeout}s"
        show_alerts
        exit 1
    }
    # expect_count WHAT EXPR N: EXPR returns exactly N series now.
    expect_count() {
        local n
        n="$(series_count "$2")"
        if [ "$n" != "$3" ]; then
            echo "CHECK FAILED: $1: $2 returned $n series, expected $3"
            show_alerts
            exit 1
        fi
        log "$1"
    }
    show_alerts() {
        echo "ALERTS:"
        query 'ALERTS' | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("data", {}).get("result", []):
    m = r["metric"]
    print("  %-26s %-8s %s" % (m.get("alertname"), m.get("alertstate"),
          " ".join("%s=%s" % kv for kv in sorted(m.items()) if kv[0] not in ("__name__", "alertname", "alertstate"))))
'
        echo "webhook notifications:"
        grep -E 'receiver=' "$workdir/logs/webhook.log" | sed 's/^/  /' || true
    }
    # wait_webhook PATTERN TIMEOUT: until the webhook log has a line matching PATTERN.
    wait_webhook() {
        local until=$((SECONDS + $2))
        while [ "$SECONDS" -lt "$until" ]; do
            check_alive
            if grep -qE "$1" "$workdir/logs/webhook.log"; then
                log "webhook got: $1 (after ${SECONDS}s)"
                return 0
            fi
            sleep 2
        done
        echo "CHECK FAILED: no notification matching $1 at the webhook within $2s"
        show_alerts
        exit 1
    }
    # am_all_suppressed ALERTNAME SERVICE: Alertmanager holds such alerts, all suppressed.
    am_all_suppressed() {
        curl -s --max-time 5 -G "http://$HOST:$ALERTMANAGER_PORT/api/v2/alerts" \
            --data-urlencode "filter=alertname=\"$1\"" --data-urlencode "filter=service=\"$2\"" \
            | python3 -c '
import json, sys
alerts = json.load(sys.stdin)
states = [a["status"]["state"] for a in alerts]
print(" ".join(states) or "none")
sys.exit(0 if states and all(s == "suppressed" for s in states) else 1)
'
    }
    wait_suppressed() {
        local until=$((SECONDS + $3)) states=""
        while [ "$SECONDS" -lt "$until" ]; do
            check_alive
            if states="$(am_all_suppressed "$1" "$2")"; then
                log "Alertmanager: every $1{service=$2} is suppressed ($states)"
                return 0
            fi
            sleep 2
        done
        echo "CHECK FAILED: $1{service=$2} in Alertmanager: $states, expected all suppressed"
        show_alerts
        exit 1
    }

    good='service="demo-good"'
    # Both demo-good targets (HTTP and WebSocket), reported by every vantage point.
    wait_count "every vantage point reports demo-good" \
        "target:probe_vantage:count{$good} == $vantages" 2 "$check_timeout"
    got="$(curl -s --max-time 5 "$PROM/api/v1/label/vantage/values" | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["data"]))')"
    [ "$got" = "${vantage_names[*]}" ] \
        || { echo "CHECK FAILED: vantage label values '$got', expected '${vantage_names[*]}'"; exit 1; }
    log "vantage label values: $got"

    # 1. One path of N breaks: a minority. Only ProbeFailedFromMinority fires
    #    (for the two demo-good targets); its ProbeFailed is inhibited; the
    #    diagnosis stays healthy.
    stop_process "edge-${vantage_names[0]}"
    wait_count "one broken path: ProbeFailedFromMinority fires for both demo-good targets" \
        "ALERTS{alertname=\"ProbeFailedFromMinority\",alertstate=\"firing\",$good}" 2 200
    expect_count "  and no quorum alert" "ALERTS{alertname=\"ProbeFailedFromQuorum\",$good}" 0
    expect_count "  and the diagnosis of demo-good stays healthy" \
        "service:probe_diagnosis:state{$good,state=\"healthy\"} == 1" 1
    expect_count "  and no diagnosis alert for demo-good" \
        "ALERTS{alertname=~\"ServiceOutage|WebSocketSpecificFailure|HttpApplicationIssue\",$good}" 0
    wait_webhook "ProbeFailedFromMinority\\[firing\\]\\{[^}]*service=demo-good" 90
    wait_suppressed ProbeFailed demo-good 60

    # 2. Half or more break: the quorum. ProbeFailedFromQuorum replaces the
    #    minority alert; with both HTTP and WebSocket down on the quorum the
    #    diagnosis is an outage (ServiceOutage, which Alertmanager notifies
    #    instead of the narrower alerts of the service).
    for ((v = 1; v < (vantages + 1) / 2; v++)); do
        stop_process "edge-${vantage_names[$v]}"
    done
    wait_count "half or more broken: ProbeFailedFromQuorum fires for both demo-good targets" \
        "ALERTS{alertname=\"ProbeFailedFromQuorum\",alertstate=\"firing\",$good}" 2 200
    expect_count "  and the minority alert is gone" "ALERTS{alertname=\"ProbeFailedFromMinority\",$good}" 0
    expect_count "  and the diagnosis of demo-good is outage" \
        "service:probe_diagnosis:state{$good,state=\"outage\"} == 1" 1
    wait_webhook "ServiceOutage\\[firing\\]\\{[^}]*service=demo-good" 90
    wait_suppressed ProbeFailedFromQuorum demo-good 60
    wait_suppressed ProbeFailed demo-good 60

    # 3. The last vantage point's exporter stops: its agent marks the series
    #    stale, so the targets count one vantage point fewer (unknown, not
    #    failed) and VantagePointMissing names it.
    last="${vantage_names[$((vantages - 1))]}"
    stop_process "exporter-$last"
    wait_count "$last stops reporting: demo-good is reported by $((vantages - 1))" \
        "target:probe_vantage:count{$good} == $((vantages - 1))" 2 60
    wait_count "  and VantagePointMissing{vantage=$last} is raised" \
        "ALERTS{alertname=\"VantagePointMissing\",vantage=\"$last\"}" 1 60

    show_alerts
    echo "vantage points OK: one broken path = minority, $(((vantages + 1) / 2)) = quorum, a silent one = missing"
fi

result=0
echo "CHECK PASSED"
exit 0
