#!/usr/bin/env bash
# One tenant flooding must not starve another (issue 14): the steady
# tenant's throughput alone, and again while a noisy tenant floods.
#
#   bench/tenant_isolation.sh <build-dir>
#
# A collector runs OTLP/gRPC -> batch -> nop with auth (tokens for the
# tenants "steady" and "noisy") and a rate limit on noisy only
# (BENCH_NOISY_LIMIT spans/s, default 1000, burst the same). loadgen sends
# steady's load paced at BENCH_STEADY_RATE spans/s (default 100000) for
# BENCH_DURATION seconds (default 15), first alone, then beside a second
# loadgen that floods as noisy, unpaced (32 calls in flight), which is
# refused with RESOURCE_EXHAUSTED nearly always. Reported: steady's spans/s
# in both runs and their ratio (the target: within 10%), noisy's accepted
# and throttled spans from /metrics.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 <build-dir>" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
rate=${BENCH_STEADY_RATE:-100000}
limit=${BENCH_NOISY_LIMIT:-1000}
duration=${BENCH_DURATION:-15}
work=$(mktemp -d /tmp/respan-bench-isolation.XXXXXX)
pid=
trap 'kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
grpc=$(free_port)
metrics=$(free_port)
printf 'steady-token-3f9a1c steady\nnoisy-token-b72e40 noisy\n' >"$work/tokens.txt"
cat >"$work/config.yaml" <<EOF
receivers:
  otlp:
    protocols:
      grpc: { endpoint: "127.0.0.1:$grpc" }
    auth: { tokens_file: "$work/tokens.txt" }
    rate_limits:
      tenants: { noisy: { spans_per_second: $limit, burst: $limit } }
processors:
  batch: { send_batch_size: 8192, timeout: 200ms }
exporters:
  nop: {}
service:
  telemetry: { metrics: { endpoint: "127.0.0.1:$metrics" }, logs: { level: warn } }
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [nop] }
EOF
"$build/respan-collector" --config "$work/config.yaml" 2>"$work/stderr" &
pid=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$metrics/metrics" && break
  sleep 0.1
done

steady() {
  "$build/bench/loadgen" --protocol grpc --target "127.0.0.1:$grpc" --kind small \
    --spans-per-request 500 --concurrency 16 --rate "$rate" --duration "$duration" --warmup 2 \
    --token steady-token-3f9a1c >"$work/$1.txt"
  sed -nE 's/^RESULT .* spans_per_s=([0-9]+) .*/\1/p' "$work/$1.txt"
}

alone=$(steady alone)
"$build/bench/loadgen" --protocol grpc --target "127.0.0.1:$grpc" --kind small \
  --spans-per-request 500 --concurrency 32 --duration $((duration + 6)) --warmup 0 \
  --backoff-ms 0 --token noisy-token-b72e40 >"$work/noisy.txt" 2>&1 &
noisy=$!
sleep 1
flooded=$(steady flooded)
wait "$noisy" || true
scrape() {
  curl -s "http://127.0.0.1:$metrics/metrics" | sed -nE "s/^$1\{[^}]*tenant=\"$2\"\} ([0-9.e+]+)/\1/p"
}
echo "steady tenant, paced at $rate spans/s for ${duration}s (gRPC, small spans):"
echo "  alone:                    $alone spans/s"
echo "  beside a flooding tenant: $flooded spans/s"
python3 -c "
a, f = $alone, $flooded
print('  ratio: %.3f (%s the 10%% target)' % (f / a, 'within' if abs(f / a - 1) <= 0.10 else 'OUTSIDE'))"
echo "noisy tenant (limit $limit spans/s): accepted $(scrape respan_receiver_tenant_accepted_spans noisy)," \
  "throttled $(scrape respan_receiver_tenant_throttled_spans noisy)"
echo "steady tenant: throttled $(scrape respan_receiver_tenant_throttled_spans steady)"
