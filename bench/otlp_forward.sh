#!/usr/bin/env bash
# bench/otlp_forward.sh - the forwarding benchmark of issue 10: OTLP/gRPC ->
# otlp exporter (gzip, sending queue with fsync) -> a second collector
# (bench/configs/otlp-nop.yaml) standing in for the next pipeline stage.
#
#   bench/otlp_forward.sh [BUILD_DIR]     (builds nothing; default build)
#
# The next collector runs for the whole benchmark on ports of its own. For
# each scenario a fresh forwarding collector
# (bench/configs/otlp-forward-fsync.yaml, an empty queue) takes
# bench/loadgen's load for BENCH_DURATION seconds; loadgen reports its
# acknowledged spans/s and, from /proc, the forwarding collector's CPU, so
# spans/s per core covers receiving, encoding, the fsync'd queue and the
# gRPC calls to the next collector. Forwarding kept up when, once the load
# stops, the queue empties at once: the report gives the spans still queued
# then and how long the senders took to deliver them.
#
# Environment (all optional): BENCH_SCENARIOS="llm small", BENCH_DURATION=12,
# BENCH_WARMUP=2, BENCH_CONCURRENCY=16, BENCH_SPANS=500,
# BENCH_GRPC_PORT=14317 BENCH_METRICS_PORT=18888 (the forwarding collector),
# BENCH_NEXT_GRPC_PORT=14417 BENCH_NEXT_METRICS_PORT=18988,
# BENCH_QUEUE_DIR=BUILD_DIR/bench-otlp-queue, BENCH_LOADGEN_ARGS (more
# loadgen options, e.g. "--rate 2000" for a light functional run). Needs curl.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd)
export BENCH_GRPC_PORT=${BENCH_GRPC_PORT:-14317}
export BENCH_HTTP_PORT=${BENCH_HTTP_PORT:-14318}
export BENCH_METRICS_PORT=${BENCH_METRICS_PORT:-18888}
export BENCH_NEXT_GRPC_PORT=${BENCH_NEXT_GRPC_PORT:-14417}
export BENCH_QUEUE_DIR=${BENCH_QUEUE_DIR:-$build/bench-otlp-queue}
next_metrics=${BENCH_NEXT_METRICS_PORT:-18988}
scenarios=${BENCH_SCENARIOS:-llm small}
out=$build/bench-otlp-forward
mkdir -p "$out"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    for _ in $(seq 100); do
        port_open "$1" && return 0
        sleep 0.1
    done
    echo "bench/otlp_forward.sh: nothing listens on $1" >&2
    return 1
}
# metric PORT NAME: the sum of NAME's series on that collector's /metrics
metric() {
    curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '
        index($0, n "{") == 1 || index($0, n " ") == 1 { s += $NF } END { printf "%d\n", s }'
}

BENCH_GRPC_PORT=$BENCH_NEXT_GRPC_PORT BENCH_HTTP_PORT=$((BENCH_NEXT_GRPC_PORT + 1)) \
    BENCH_METRICS_PORT=$next_metrics BENCH_MEMORY_LIMIT_MIB=1024 \
    "$build/respan-collector" --config "$here/configs/otlp-nop.yaml" 2>"$out/next.log" &
pids+=($!)
wait_port "$BENCH_NEXT_GRPC_PORT"

echo "| spans | spans/s acknowledged | spans/s per forwarding core | queued at the end | delivered after |"
echo "|---|---:|---:|---:|---:|"
for kind in $scenarios; do
    rm -rf "$BENCH_QUEUE_DIR"
    "$build/respan-collector" --config "$here/configs/otlp-forward-fsync.yaml" \
        2>"$out/$kind.collector.log" &
    pid=$!
    pids+=("$pid")
    wait_port "$BENCH_GRPC_PORT"
    # shellcheck disable=SC2086 # BENCH_LOADGEN_ARGS is a list of options
    "$build/bench/loadgen" --protocol grpc --target "127.0.0.1:$BENCH_GRPC_PORT" --kind "$kind" \
        --spans-per-request "${BENCH_SPANS:-500}" --concurrency "${BENCH_CONCURRENCY:-16}" \
        --duration "${BENCH_DURATION:-12}" --warmup "${BENCH_WARMUP:-2}" \
        --collector-pid "$pid" ${BENCH_LOADGEN_ARGS:-} >"$out/$kind.txt" || true
    line=$(grep '^RESULT ' "$out/$kind.txt" || echo "")
    accepted=$(metric "$BENCH_METRICS_PORT" otelcol_receiver_accepted_spans)
    sent=$(metric "$BENCH_METRICS_PORT" otelcol_exporter_sent_spans)
    queued=$((accepted - sent))
    t0=$(date +%s.%N)
    for _ in $(seq 600); do
        (($(metric "$BENCH_METRICS_PORT" otelcol_exporter_sent_spans) >= accepted)) && break
        sleep 0.1
    done
    took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }')
    kill -TERM "$pid"
    wait "$pid" || true
    get() { tr ' ' '\n' <<<"$line" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
    echo "| $kind | $(get spans_per_s) | $(get spans_per_s_per_core) | $queued | $took |"
done
echo
echo "next collector accepted $(metric "$next_metrics" otelcol_receiver_accepted_spans) spans in all;" \
    "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
