#!/usr/bin/env bash
# bench/run.sh - run the collector under load and print the figures the
# benchmark promises, as a markdown table.
#
#   bench/run.sh [BUILD_DIR]          (`make bench` runs `bench/run.sh build`)
#
# For each scenario a fresh collector is started with bench/configs/*.yaml,
# so that its peak RSS (VmHWM) belongs to that scenario alone; loadgen then
# sends for BENCH_DURATION seconds after a short warm-up, reading the
# collector's CPU time and peak RSS from /proc; the collector is stopped with
# SIGTERM and must exit 0. Spans per second per core is spans divided by the
# collector's own CPU seconds: the load generator runs on the same machine
# and takes CPU the collector would otherwise get.
#
# Environment (all optional):
#   BENCH_DURATION=12        measured seconds per scenario
#   BENCH_WARMUP=2           unmeasured seconds before
#   BENCH_CONCURRENCY=16     calls outstanding
#   BENCH_SPANS=500          spans per request
#   BENCH_CONFIG=bench/configs/otlp-batch-nop.yaml
#   BENCH_MEMORY_LIMIT_MIB=256
#   BENCH_SCENARIOS="grpc-small grpc-llm http-proto-small http-json-small
#                    grpc-llm-flood http-proto-llm-flood"
#                            also: grpc-mixed grpc-small-gzip http-proto-small-gzip
#   BENCH_LOADGEN_ARGS=      more loadgen options, e.g. "--connections 1 --gzip"
#   BENCH_GRPC_PORT=14317 BENCH_HTTP_PORT=14318 BENCH_METRICS_PORT=18888
# Raw loadgen output goes to BUILD_DIR/bench-results/.
#
# Exit status is non-zero when a collector fails to start, does not exit 0
# on SIGTERM, or a scenario yields no result. The targets (250k small spans/s
# per core, peak RSS under the limit) are reported under the table, not
# enforced: a slow shared machine should not fail a build.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
collector=$build/respan-collector
loadgen=$build/bench/loadgen
for bin in "$collector" "$loadgen"; do
    if [[ ! -x $bin ]]; then
        echo "bench/run.sh: $bin not found; build first (make build)" >&2
        exit 1
    fi
done

duration=${BENCH_DURATION:-12}
warmup=${BENCH_WARMUP:-2}
concurrency=${BENCH_CONCURRENCY:-16}
spans=${BENCH_SPANS:-500}
config=${BENCH_CONFIG:-$here/configs/otlp-batch-nop.yaml}
scenarios=${BENCH_SCENARIOS:-grpc-small grpc-llm http-proto-small http-json-small grpc-llm-flood http-proto-llm-flood}
export BENCH_GRPC_PORT=${BENCH_GRPC_PORT:-14317}
export BENCH_HTTP_PORT=${BENCH_HTTP_PORT:-14318}
export BENCH_METRICS_PORT=${BENCH_METRICS_PORT:-18888}
export BENCH_MEMORY_LIMIT_MIB=${BENCH_MEMORY_LIMIT_MIB:-256}
out=$build/bench-results
mkdir -p "$out"

collector_pid=
# Running and not yet a zombie (kill -0 succeeds on an unreaped child).
running() {
    local state
    state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true)
    [[ -n $state && $state != Z ]]
}

# SIGTERM, then SIGKILL if the collector has not exited 20 s later; fails
# unless the collector exited 0 on its own.
stop_collector() {
    [[ -n $collector_pid ]] || return 0
    local status=0 pid=$collector_pid
    collector_pid=
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 200); do
        running "$pid" || break
        sleep 0.1
    done
    if running "$pid"; then
        echo "bench/run.sh: the collector did not exit within 20 s of SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" || true
        return 1
    fi
    wait "$pid" || status=$?
    return $status
}
trap 'stop_collector || true' EXIT

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_collector() {
    local log=$1
    "$collector" --config "$config" 2>"$log" &
    collector_pid=$!
    for _ in $(seq 100); do
        if port_open "$BENCH_GRPC_PORT" && port_open "$BENCH_HTTP_PORT"; then
            return 0
        fi
        if ! kill -0 "$collector_pid" 2>/dev/null; then
            echo "bench/run.sh: the collector exited at start-up; see $log:" >&2
            tail -5 "$log" >&2
            collector_pid=
            return 1
        fi
        sleep 0.1
    done
    echo "bench/run.sh: the collector did not listen on $BENCH_GRPC_PORT/$BENCH_HTTP_PORT" >&2
    return 1
}

# scenario name -> loadgen arguments
scenario_args() {
    local grpc="--protocol grpc --target 127.0.0.1:$BENCH_GRPC_PORT"
    local proto="--protocol http-proto --target 127.0.0.1:$BENCH_HTTP_PORT"
    local json="--protocol http-json --target 127.0.0.1:$BENCH_HTTP_PORT"
    local flood="--concurrency 128 --spans-per-request 1000"
    case $1 in
    grpc-small) echo "$grpc --kind small" ;;
    grpc-llm) echo "$grpc --kind llm" ;;
    grpc-mixed) echo "$grpc --kind mixed" ;;
    grpc-small-gzip) echo "$grpc --kind small --gzip" ;;
    # Floods: far more in flight than the memory limit allows, to see that
    # backpressure, not RSS growth, absorbs the excess.
    grpc-llm-flood) echo "$grpc --kind llm $flood" ;;
    http-proto-llm-flood) echo "$proto --kind llm $flood" ;;
    http-proto-small) echo "$proto --kind small" ;;
    http-proto-small-gzip) echo "$proto --kind small --gzip" ;;
    http-json-small) echo "$json --kind small" ;;
    *) return 1 ;;
    esac
}

# field NAME LINE: the value of NAME=... in a RESULT line
field() {
    local kv
    for kv in $2; do
        if [[ $kv == "$1="* ]]; then
            echo "${kv#*=}"
            return
        fi
    done
    echo na
}

# Thousands separators without relying on the locale.
group() {
    local n=$1
    [[ $n =~ ^[0-9]+$ ]] || { echo "$n"; return; }
    while [[ $n =~ ^([0-9]+)([0-9]{3}) ]]; do
        n="${BASH_REMATCH[1]},${BASH_REMATCH[2]}${n#"${BASH_REMATCH[0]}"}"
    done
    echo "$n"
}

# Other work on the machine lowers spans/s (not the per-core figure much):
# say how busy it was.
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
rows=()
over_limit=()
failed=0
grpc_small_per_core=
for s in $scenarios; do
    if ! args=$(scenario_args "$s"); then
        echo "bench/run.sh: unknown scenario $s" >&2
        exit 1
    fi
    start_collector "$out/$s.collector.log" || exit 1
    echo "== $s: loadgen $args" >&2
    # shellcheck disable=SC2086 # args and BENCH_LOADGEN_ARGS are lists of options
    # Later options win: the scenario's own come after the common ones.
    "$loadgen" --spans-per-request "$spans" --concurrency "$concurrency" \
        --duration "$duration" --warmup "$warmup" --collector-pid "$collector_pid" \
        $args ${BENCH_LOADGEN_ARGS:-} >"$out/$s.txt" || true
    cat "$out/$s.txt" >&2
    if ! stop_collector; then
        echo "bench/run.sh: the collector did not exit cleanly after $s" >&2
        failed=1
    fi
    line=$(grep '^RESULT ' "$out/$s.txt" || true)
    if [[ -z $line ]]; then
        echo "bench/run.sh: no result for $s" >&2
        failed=1
        continue
    fi
    per_core=$(field spans_per_s_per_core "$line")
    [[ $s == grpc-small ]] && grpc_small_per_core=$per_core
    rss=$(field peak_rss_mib "$line")
    if [[ $rss == na ]] || awk -v r="$rss" -v l="$BENCH_MEMORY_LIMIT_MIB" 'BEGIN { exit !(r >= l) }'; then
        over_limit+=("$s ($rss MiB)")
    fi
    load="$(field concurrency "$line") × $(field spans_per_request "$line")"
    errors="$(field errors "$line") / $(field backpressure "$line")"
    rows+=("| $s | $load | $(group "$(field spans_per_s "$line")") | $(group "$per_core") \
| $(field cpu_s_per_million "$line") | $rss / $BENCH_MEMORY_LIMIT_MIB \
| $(field p50_ms "$line") / $(field p99_ms "$line") | $(field bytes_per_span "$line") | $errors |")
done

echo
echo "Collector: $(basename "$config"), memory_limit_mib $BENCH_MEMORY_LIMIT_MIB;" \
    "$spans spans/request, concurrency $concurrency, ${duration}s per scenario;" \
    "$(nproc) CPUs, load average $loadavg at start"
echo
echo "| scenario | calls × spans | spans/s | spans/s per collector core |" \
    "collector CPU s per 1M spans | peak RSS MiB / limit | latency p50 / p99 ms | bytes/span |" \
    "failed / refused calls |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
if [[ -n $grpc_small_per_core && $grpc_small_per_core != na ]]; then
    verdict="not met"
    ((grpc_small_per_core >= 250000)) && verdict=met
    echo
    echo "Target OTLP/gRPC -> batch -> nop >= 250,000 small spans/s per core:" \
        "$(group "$grpc_small_per_core") ($verdict)"
fi
if ((${#over_limit[@]})); then
    echo "Peak RSS went over the memory limit ($BENCH_MEMORY_LIMIT_MIB MiB) in: ${over_limit[*]}"
else
    echo "Peak RSS stayed under the memory limit ($BENCH_MEMORY_LIMIT_MIB MiB) in every scenario."
fi
exit $failed
