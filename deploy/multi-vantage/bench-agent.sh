#!/usr/bin/env bash
# What one Prometheus agent costs: scrape N probe-like targets every 15 s and
# remote-write them to a central Prometheus, all on 127.0.0.1, then report
# the agent's RSS, its CPU and the remote-write bytes per second.
#
#   deploy/multi-vantage/bench-agent.sh [N ...]        (default: 100 1000)
#   WARMUP=90 WINDOW=120 deploy/multi-vantage/bench-agent.sh 1000
#
# The targets are served by a small Python HTTP server that answers every
# /probe?target=... with the same ~30 probe_* lines an http_2xx probe of
# handshake_exporter returns, so the agent sees what it would see in front of
# a real exporter without the probes' network cost. Needs Debian's
# prometheus (2.x: --enable-feature=agent) and python3. Free ports only,
# loopback only; everything started here is stopped on exit.
set -euo pipefail

WARMUP=${WARMUP:-90}      # seconds before measuring (WAL, first remote-write shards)
WINDOW=${WINDOW:-120}     # measuring window in seconds
INTERVAL=${INTERVAL:-15s}
SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(100 1000)

work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() {
  local url=$1 i
  for i in $(seq 1 100); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "bench-agent: $url did not come up" >&2
  return 1
}

# One metric value from a /metrics page (sum over all series of that name).
metric() {
  curl -fsS "$1" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.0f\n", s }'
}

# utime+stime of a pid, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

cat >"$work/fake_exporter.py" <<'PY'
import sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

LINES = []
def g(name, value, labels=""):
    LINES.append(f"# HELP {name} probe-like metric\n# TYPE {name} gauge\n{name}{labels} {value}")
g("probe_success", 1)
g("probe_duration_seconds", 0.0421)
g("probe_timeout_seconds", 9.5)
g("probe_dns_lookup_time_seconds", 0.0012)
g("probe_ip_protocol", 4)
g("probe_ip_addr_hash", 3371425046)
g("probe_http_status_code", 200)
g("probe_http_content_length", 1234)
g("probe_http_uncompressed_body_length", 1234)
g("probe_http_redirects", 0)
g("probe_http_ssl", 1)
g("probe_http_version", 1.1)
g("probe_http_last_modified_timestamp_seconds", 1.7e9)
phases = ["resolve", "connect", "tls", "processing", "transfer"]
LINES.append("# HELP probe_http_duration_seconds per phase\n# TYPE probe_http_duration_seconds gauge\n" +
             "\n".join(f'probe_http_duration_seconds{{phase="{p}"}} 0.00{i+1}' for i, p in enumerate(phases)))
g("probe_ssl_earliest_cert_expiry", 1.8e9)
g("probe_ssl_last_chain_expiry_timestamp_seconds", 1.8e9)
g("probe_tls_version_info", 1, '{version="TLS 1.3"}')
g("probe_tls_cipher_info", 1, '{cipher="TLS_AES_128_GCM_SHA256"}')
g("probe_ssl_last_chain_info", 1, '{fingerprint_sha256="ab12",issuer="CN=Example CA",serialnumber="01",subject="CN=chat.example.com",subjectalternative="chat.example.com"}')
g("probe_tcp_connect_seconds", 0.0031)
g("probe_tls_handshake_seconds", 0.0112)
g("probe_http_first_byte_seconds", 0.0301)
g("probe_failure_info", 0, '{reason="none"}')
g("probe_websocket_status_code", 101)
g("probe_websocket_upgrade_seconds", 0.0123)
BODY = ("\n".join(LINES) + "\n").encode()

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *a):
        pass

class Server(ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address):
        pass  # the agent being stopped resets its connections: not news

Server(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY

fake_port=$(free_port)
python3 "$work/fake_exporter.py" "$fake_port" &
fake_pid=$!
pids+=("$fake_pid")
wait_http "http://127.0.0.1:$fake_port/probe"
series_per_target=$(curl -fsS "http://127.0.0.1:$fake_port/probe" | grep -vc '^#')

central_port=$(free_port)
cat >"$work/central.yml" <<YML
global:
  scrape_interval: $INTERVAL
scrape_configs: []
YML
prometheus --config.file="$work/central.yml" --storage.tsdb.path="$work/central-data" \
  --web.listen-address="127.0.0.1:$central_port" --web.enable-remote-write-receiver \
  --log.level=warn >"$work/central.log" 2>&1 &
central_pid=$!
pids+=("$central_pid")
wait_http "http://127.0.0.1:$central_port/-/ready"

printf 'fake exporter: %d series per target; scrape interval %s; warm-up %ss, window %ss\n' \
  "$series_per_target" "$INTERVAL" "$WARMUP" "$WINDOW"
printf '%8s %10s %10s %12s %12s %14s %12s\n' targets "series" "agent RSS" "agent CPU%" "samples/s" "RW bytes/s" "bytes/sample"

hz=$(getconf CLK_TCK)
for n in "${SIZES[@]}"; do
  agent_port=$(free_port)
  {
    cat <<YML
global:
  scrape_interval: $INTERVAL
  scrape_timeout: 10s
  external_labels:
    vantage: \${VANTAGE}
scrape_configs:
  - job_name: probe_http
    metrics_path: /probe
    params: {module: [http_2xx]}
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:$fake_port
    static_configs:
      - labels: {service: bench}
        targets:
YML
    for i in $(seq 1 "$n"); do printf '          - https://t%05d.example.com/health\n' "$i"; done
    cat <<YML
remote_write:
  - url: http://127.0.0.1:$central_port/api/v1/write
YML
  } >"$work/agent-$n.yml"
  VANTAGE="bench-$n" prometheus --enable-feature=agent,expand-external-labels \
    --config.file="$work/agent-$n.yml" --storage.agent.path="$work/agent-$n-data" \
    --web.listen-address="127.0.0.1:$agent_port" --log.level=warn >"$work/agent-$n.log" 2>&1 &
  agent_pid=$!
  pids+=("$agent_pid")
  wait_http "http://127.0.0.1:$agent_port/-/ready"
  sleep "$WARMUP"

  m="http://127.0.0.1:$agent_port/metrics"
  t0=$(cpu_ticks "$agent_pid")
  b0=$(metric "$m" prometheus_remote_storage_bytes_total)
  s0=$(metric "$m" prometheus_remote_storage_samples_total)
  sleep "$WINDOW"
  t1=$(cpu_ticks "$agent_pid")
  b1=$(metric "$m" prometheus_remote_storage_bytes_total)
  s1=$(metric "$m" prometheus_remote_storage_samples_total)
  rss=$(rss_kib "$agent_pid")
  failed=$(metric "$m" prometheus_remote_storage_samples_failed_total)
  received=$(curl -fsS "http://127.0.0.1:$central_port/api/v1/query" \
    --data-urlencode "query=count(probe_success{vantage=\"bench-$n\"})" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')

  awk -v n="$n" -v ser="$((n * (series_per_target + 5)))" -v rss="$rss" \
      -v cpu="$(( (t1 - t0) ))" -v hz="$hz" -v w="$WINDOW" \
      -v b="$((b1 - b0))" -v s="$((s1 - s0))" 'BEGIN {
    printf "%8d %10d %8.1f MiB %11.2f%% %12.0f %14.0f %12.2f\n",
      n, ser, rss / 1024, 100 * cpu / hz / w, s / w, b / w, (s ? b / s : 0)
  }'
  printf '         central received probe_success for %s targets of vantage bench-%s; failed samples: %s\n' \
    "$received" "$n" "$failed"

  kill "$agent_pid"
  wait "$agent_pid" 2>/dev/null || true
done
