#!/usr/bin/env bash
# The limits-decision benchmark (issue 12): how many "may this customer
# make another LLM call?" answers GET /api/users/{id}/limits gives.
#
#   bench/limits.sh <build-dir>
#
# A collector runs customer -> cost -> usage with respan_api, pinned to
# one CPU (BENCH_CPU, default 0). BENCH_CUSTOMERS customers (default 1000)
# are created through the API with a monthly period budget, a total budget
# and a rate limit, so every answer walks the whole decision. h2load
# (HTTP/1.1, keep-alive, BENCH_CONNS connections, default 8) on another
# CPU (BENCH_CLIENT_CPU, default 1) then asks BENCH_REQUESTS times (default
# 300000) across all customers, BENCH_ROUNDS times (default 3). Reported
# per round: requests/s of wall time, and decisions per second of the
# collector's own CPU time (user + system, from /proc), the figure that
# does not depend on the load generator sharing the machine.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 <build-dir>" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
customers=${BENCH_CUSTOMERS:-1000}
requests=${BENCH_REQUESTS:-300000}
conns=${BENCH_CONNS:-8}
rounds=${BENCH_ROUNDS:-3}
cpu=${BENCH_CPU:-0}
client_cpu=${BENCH_CLIENT_CPU:-1}
work=$(mktemp -d /tmp/respan-bench-limits.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
otlp=$(free_port)
api=$(free_port)
metrics=$(free_port)
cat >"$work/config.yaml" <<EOF
receivers:
  otlp:
    protocols:
      http: { endpoint: "127.0.0.1:$otlp" }
processors:
  customer: {}
  cost: {}
exporters:
  usage: { directory: "$work/data" }
extensions:
  respan_api: { endpoint: "127.0.0.1:$api", directory: "$work/data" }
service:
  extensions: [respan_api]
  telemetry: { metrics: { endpoint: "127.0.0.1:$metrics" }, logs: { level: warn } }
  pipelines:
    traces: { receivers: [otlp], processors: [customer, cost], exporters: [usage] }
EOF
taskset -c "$cpu" "$build/respan-collector" --config "$work/config.yaml" 2>"$work/stderr" &
pid=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$api/api/users/list/" && break
  sleep 0.1
done

python3 - "$api" "$customers" "$work/uris" <<'EOF'
import http.client, json, sys
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", port)
with open(out, "w") as f:
    for i in range(n):
        body = json.dumps({"customer_identifier": "bench-%d" % i, "period_budget": 100,
                           "budget_duration": "monthly", "total_budget": 1000,
                           "rate_limit": 600})
        conn.request("POST", "/api/users/create/", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        assert r.status == 201, r.status
        f.write("http://127.0.0.1:%d/api/users/bench-%d/limits\n" % (port, i))
EOF

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
echo "| round | requests | wall s | requests/s | collector CPU s | decisions/s per core |"
echo "|---|---|---|---|---|---|"
for r in $(seq "$rounds"); do
  before=$(cpu_ticks)
  out=$(taskset -c "$client_cpu" h2load --h1 -n "$requests" -c "$conns" -t 1 -i "$work/uris")
  after=$(cpu_ticks)
  echo "$out" | grep -q "$requests succeeded" || {
    echo "$out" >&2
    exit 1
  }
  wall=$(echo "$out" | sed -n 's/^finished in \([0-9.]*\)s.*/\1/p')
  awk -v r="$r" -v n="$requests" -v w="$wall" -v t=$((after - before)) -v hz="$hz" 'BEGIN {
    c = t / hz
    printf "| %d | %d | %.2f | %.0f | %.2f | %.0f |\n", r, n, w, n / w, c, n / c
  }'
done
