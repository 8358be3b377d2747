#!/usr/bin/env bash
# OTLP/HTTP over TLS, HTTP/1.1 against HTTP/2 (issue 14): what the port's
# two servers cost per span, and what the ClientHello sniff costs a new
# connection.
#
#   bench/http2.sh <build-dir>
#
# A collector runs OTLP/HTTP with TLS -> batch -> nop (certificates made by
# tests/lib/certs.py). loadgen sends protobuf requests of 500 small spans
# over https, 16 in flight, BENCH_ROUNDS times (default 3), interleaved:
#   http1.1  16 keep-alive HTTP/1.1 connections, served by libmicrohttpd
#            (GnuTLS) after the front hands them over;
#   h2       the same 16 calls as streams of 2 HTTP/2 connections (ALPN h2),
#            served by nghttp2 (OpenSSL) in the front's event loop.
# Each for BENCH_DURATION seconds (default 10). Reported per run: spans/s,
# spans/s per collector core, p99 latency, peak RSS. Then the cost of a new
# connection, where the front first peeks at the ClientHello: h2load
# (nghttp2-client) opens BENCH_CONNECTS connections (default 500), one
# request of one span each, with ALPN http/1.1 and then h2: connections/s.
# BENCH_COLLECTOR runs another collector binary (loadgen stays this build's),
# e.g. one built before the HTTP/2 front, for its HTTP/1.1 figures.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 <build-dir>" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${BENCH_ROUNDS:-3}
duration=${BENCH_DURATION:-10}
connects=${BENCH_CONNECTS:-500}
work=$(mktemp -d /tmp/respan-bench-http2.XXXXXX)
pid=
trap 'kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
python3 -c "import sys; sys.path.insert(0, '$root/tests/lib'); import certs; certs.make_server('$work')"
http=$(free_port)
metrics=$(free_port)
cat >"$work/config.yaml" <<YAML
receivers:
  otlp:
    protocols:
      http:
        endpoint: "127.0.0.1:$http"
        tls: { cert_file: "$work/server.pem", key_file: "$work/server.key" }
        max_connections_per_ip: 0   # the connection test opens hundreds from 127.0.0.1
processors:
  batch: { send_batch_size: 8192, timeout: 200ms }
exporters:
  nop: {}
service:
  memory_limit_mib: 256
  telemetry: { metrics: { endpoint: "127.0.0.1:$metrics" }, logs: { level: warn } }
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [nop] }
YAML
"${BENCH_COLLECTOR:-$build/respan-collector}" --config "$work/config.yaml" 2>"$work/stderr" &
pid=$!
for _ in $(seq 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$metrics/metrics')" \
    2>/dev/null && break
  sleep 0.1
done

run() { # name, loadgen flags...
  local name=$1
  shift
  "$build/bench/loadgen" --protocol http-proto --target "localhost:$http" --tls-ca "$work/ca.pem" \
    --kind small --spans-per-request 500 --concurrency 16 --duration "$duration" --warmup 2 \
    --collector-pid "$pid" "$@" >"$work/$name.txt"
  sed -nE 's/^RESULT .* spans_per_s=([0-9]+) collector_cpu_s=[0-9.]+ cpu_s_per_million=[0-9.]+ spans_per_s_per_core=([0-9]+) peak_rss_mib=([0-9.]+) .* p99_ms=([0-9.]+) .*/\1 \2 \3 \4/p' \
    "$work/$name.txt"
}

printf '%-8s %5s %12s %14s %8s %9s\n' protocol round spans/s spans/s/core p99_ms peak_MiB
for r in $(seq "$rounds"); do
  read -r s c m p < <(run "h1-$r")
  printf '%-8s %5s %12s %14s %8s %9s\n' http1.1 "$r" "$s" "$c" "$p" "$m"
  read -r s c m p < <(run "h2-$r" --http2 --connections 2)
  printf '%-8s %5s %12s %14s %8s %9s\n' h2 "$r" "$s" "$c" "$p" "$m"
done

# New connections: h2load's clients each open their own connection, so -n
# equal to -c is one request a connection.
"$build/bench/loadgen" --protocol http-proto --kind small --spans-per-request 1 \
  --dump-body "$work/one.pb" >/dev/null
echo
echo "new TLS connections, one request of one span each ($connects per protocol):"
for proto in http/1.1 h2; do
  flags=(--npn-list=h2)
  [ "$proto" = http/1.1 ] && flags=(--h1)
  out="$work/connect-${proto/\//}.txt"
  h2load "${flags[@]}" -n "$connects" -c "$connects" -t 1 -d "$work/one.pb" \
    -H 'content-type: application/x-protobuf' "https://localhost:$http/v1/traces" >"$out" 2>&1 || true
  ok=$(sed -nE 's/^status codes: ([0-9]+) 2xx.*/\1/p' "$out")
  rate=$(sed -nE 's/^finished in .*, ([0-9.]+) req\/s.*/\1/p' "$out")
  echo "  $proto: $ok of $connects answered 2xx, $rate connections/s"
done
