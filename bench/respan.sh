#!/usr/bin/env bash
# bench/respan.sh - the respan exporter benchmark (issue 4): OTLP/gRPC ->
# customer -> cost -> respan -> bench/sink.c standing in for Respan, with
# each sending_queue durability (fsync, async, memory), then the
# acknowledgement latency at a fixed, lower load.
#
#   bench/respan.sh [BUILD_DIR]       (builds nothing: BUILD_DIR must hold
#                                      respan-collector, bench/loadgen and
#                                      bench/sink; default build)
#
# Throughput: for each round and durability, bench/run.sh runs scenario
# grpc-llm with bench/configs/respan-DURABILITY.yaml and a fresh queue
# directory (BUILD_DIR/bench-queue, on the disk fsync is measured on).
# Latency: bench/run.sh again, with loadgen --rate at half the median fsync
# throughput (or BENCH_LATENCY_RATE), for fsync and memory.
#
# Delivery check: run.sh is given a shim build dir whose bench/loadgen
# wraps the real one and, once the last call is answered and before run.sh
# stops the collector, saves the collector's /metrics. The spans the
# receiver accepted (otelcol_receiver_accepted_spans, warm-up included)
# are then compared with the logs the sink counted after the collector's
# stop (the exporter drains for up to 5 s). Logs still queued at the stop
# are reported: with fsync or async they are on disk, and the collector is
# started once more on the same queue to deliver them; with memory they are
# lost by design.
#
# Environment (all optional; others pass through to bench/run.sh):
#   BENCH_ROUNDS=2                 rounds of the throughput runs (medians reported)
#   BENCH_DURABILITIES="fsync async memory"
#   BENCH_DURATION=12              measured seconds per throughput run
#   BENCH_LATENCY_DURATION=30      measured seconds per latency run
#   BENCH_LATENCY_RATE=            spans/s for the latency runs (default: half
#                                  the median fsync spans/s)
#   BENCH_LATENCY_DURABILITIES="fsync memory"
#   BENCH_QUEUE_DIR=BUILD_DIR/bench-queue   emptied before every run; e.g. a
#                                  directory on tmpfs tells the disk's share
#                                  of fsync latency from the collector's
#   BENCH_HOLD_DIR=BUILD_DIR/bench-hold     the customer processor's hold, where
#                                  the spans (none names a customer) wait
#                                  propagation_wait; emptied likewise
#   BENCH_MAX_HELD_MIB=1024        its max_held_mib: 30 s of waiting spans
#                                  at 150k spans/s take about 6 GiB
#   BENCH_GRPC_PORT=14337 BENCH_HTTP_PORT=14338 BENCH_METRICS_PORT=18898
#   BENCH_HEALTH_PORT=13299
# Output: a markdown report on stdout; raw output in BUILD_DIR/bench-respan/.
# Needs curl (the command) to read /metrics and the sink's /count.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd)
for bin in respan-collector bench/loadgen bench/sink; do
    if [[ ! -x $build/$bin ]]; then
        echo "bench/respan.sh: $build/$bin not found; build first" >&2
        exit 1
    fi
done
command -v curl >/dev/null || {
    echo "bench/respan.sh: needs curl" >&2
    exit 1
}

rounds=${BENCH_ROUNDS:-2}
durabilities=${BENCH_DURABILITIES:-fsync async memory}
latency_durabilities=${BENCH_LATENCY_DURABILITIES:-fsync memory}
latency_duration=${BENCH_LATENCY_DURATION:-30}
export BENCH_DURATION=${BENCH_DURATION:-12}
export BENCH_GRPC_PORT=${BENCH_GRPC_PORT:-14337}
export BENCH_HTTP_PORT=${BENCH_HTTP_PORT:-14338}
export BENCH_METRICS_PORT=${BENCH_METRICS_PORT:-18898}
export BENCH_HEALTH_PORT=${BENCH_HEALTH_PORT:-13299}
export BENCH_QUEUE_DIR=${BENCH_QUEUE_DIR:-$build/bench-queue}
export BENCH_HOLD_DIR=${BENCH_HOLD_DIR:-$build/bench-hold}
out=$build/bench-respan
shim=$out/shim
export RESPAN_BENCH_SCRAPE=$out/metrics-at-end.txt
mkdir -p "$out" "$shim/bench"

# The shim build dir: the real collector, and a loadgen that saves the
# collector's /metrics after the last answer, while the collector still runs.
ln -sf "$build/respan-collector" "$shim/respan-collector"
cat >"$shim/bench/loadgen" <<EOF
#!/usr/bin/env bash
rc=0
"$build/bench/loadgen" "\$@" || rc=\$?
curl -sf "http://127.0.0.1:\$BENCH_METRICS_PORT/metrics" >"\$RESPAN_BENCH_SCRAPE" || true
exit \$rc
EOF
chmod +x "$shim/bench/loadgen"

sink_pid=
collector_pid=
cleanup() {
    [[ -n $collector_pid ]] && kill -TERM "$collector_pid" 2>/dev/null && wait "$collector_pid"
    [[ -n $sink_pid ]] && kill -TERM "$sink_pid" 2>/dev/null && wait "$sink_pid"
    return 0
}
trap cleanup EXIT

rm -f "$out/sink.port"
"$build/bench/sink" --port 0 >"$out/sink.port" &
sink_pid=$!
for _ in $(seq 50); do
    [[ -s $out/sink.port ]] && break
    sleep 0.1
done
export BENCH_SINK_PORT
BENCH_SINK_PORT=$(head -1 "$out/sink.port")
[[ $BENCH_SINK_PORT =~ ^[0-9]+$ ]] || {
    echo "bench/respan.sh: the sink did not start" >&2
    exit 1
}

sink_logs() {
    local line
    line=$(curl -sf "http://127.0.0.1:$BENCH_SINK_PORT/count") || {
        echo "bench/respan.sh: the sink does not answer on port $BENCH_SINK_PORT" >&2
        exit 1
    }
    echo "${line%% *}"
}

# metric NAME FILE: the sum of NAME's series in a /metrics text
metric() {
    awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%d\n", s }' "$2"
}

# field NAME LINE: the value of NAME=... in a loadgen RESULT line
field() {
    local kv
    for kv in $2; do
        [[ $kv == "$1="* ]] && {
            echo "${kv#*=}"
            return
        }
    done
    echo na
}

median() {
    sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) print "na"; else if (NR % 2) print v[(NR + 1) / 2];
              else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# Thousands separators, rounding to an integer; anything else as it is.
group() {
    local n
    n=$(LC_ALL=C printf '%.0f' "$1" 2>/dev/null) || {
        echo "$1"
        return
    }
    while [[ $n =~ ^([0-9]+)([0-9]{3}) ]]; do
        n="${BASH_REMATCH[1]},${BASH_REMATCH[2]}${n#"${BASH_REMATCH[0]}"}"
    done
    echo "$n"
}

# Delivers what a stopped collector left in the queue and the hold: runs
# the collector on them until both are empty (spans in the hold wait out
# what is left of propagation_wait first; 120 s at most). Prints the logs
# the sink received meanwhile.
drain_leftover() {
    local config=$1 before
    before=$(sink_logs)
    "$build/respan-collector" --config "$config" 2>>"$out/drain.log" &
    collector_pid=$!
    for _ in $(seq 1200); do
        sleep 0.1
        # Metrics read before the start is over (the hold being read back)
        # would show nothing waiting.
        curl -sf "http://127.0.0.1:$BENCH_HEALTH_PORT/" >/dev/null || continue
        local m
        m=$(curl -sf "http://127.0.0.1:$BENCH_METRICS_PORT/metrics" || true)
        [[ -n $m ]] && [[ $(metric otelcol_exporter_queue_size <(echo "$m")) == 0 ]] &&
            [[ $(metric respan_processor_customer_waiting_spans <(echo "$m")) == 0 ]] && break
    done
    kill -TERM "$collector_pid"
    wait "$collector_pid" || true
    collector_pid=
    echo $(($(sink_logs) - before))
}

# run_one LABEL CONFIG [RUN_SH_ENV...]: one bench/run.sh grpc-llm run on a
# fresh queue; leaves RESULT in $result and the delivery check in $check.
run_one() {
    local label=$1 config=$2
    shift 2
    rm -rf "$BENCH_QUEUE_DIR" "$BENCH_HOLD_DIR" "$RESPAN_BENCH_SCRAPE"
    local before after
    before=$(sink_logs)
    echo "== $label ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
    env "$@" BENCH_CONFIG="$config" BENCH_SCENARIOS=grpc-llm "$here/run.sh" "$shim" \
        >"$out/$label.table" 2>"$out/$label.log" || echo "bench/respan.sh: run.sh failed for $label (see $out/$label.log)" >&2
    cp "$shim/bench-results/grpc-llm.txt" "$out/$label.txt" 2>/dev/null || true
    cp "$shim/bench-results/grpc-llm.collector.log" "$out/$label.collector.log" 2>/dev/null || true
    after=$(sink_logs)
    result=$(grep '^RESULT ' "$out/$label.txt" || true)
    local accepted=na delivered=$((after - before)) late=0
    [[ -f $RESPAN_BENCH_SCRAPE ]] && accepted=$(metric otelcol_receiver_accepted_spans "$RESPAN_BENCH_SCRAPE")
    cp "$RESPAN_BENCH_SCRAPE" "$out/$label.metrics" 2>/dev/null || true
    if [[ $accepted == na ]]; then
        check="no /metrics scrape"
    elif ((delivered >= accepted)); then
        check="ok: $(group "$delivered") logs delivered for $(group "$accepted") spans accepted"
    elif [[ $config == *memory* ]]; then
        check="$(group $((accepted - delivered))) of $(group "$accepted") accepted still queued in memory at stop: lost (durability memory)"
    else
        late=$(drain_leftover "$config")
        check="$(group $((accepted - delivered))) of $(group "$accepted") still queued at stop; a restart on the queue delivered $(group "$late")"
        ((delivered + late >= accepted)) || check+=" (MISSING $((accepted - delivered - late)))"
    fi
    echo "   $check" >&2
    echo "$label: $check" >>"$out/checks.txt"
}

commit=$(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$here/.." diff --quiet HEAD -- 2>/dev/null || commit+=" (with uncommitted changes)"
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$out/checks.txt"

declare -A sps core p50 p99 rss
for r in $(seq "$rounds"); do
    for d in $durabilities; do
        run_one "$d-$r" "$here/configs/respan-$d.yaml"
        sps[$d]+="$(field spans_per_s "$result") "
        core[$d]+="$(field spans_per_s_per_core "$result") "
        p50[$d]+="$(field p50_ms "$result") "
        p99[$d]+="$(field p99_ms "$result") "
        rss[$d]+="$(field peak_rss_mib "$result") "
    done
done

med() { tr ' ' '\n' <<<"$1" | grep -E '^[0-9.]+$' | median; }
list() { local x s=; for x in $1; do s+="${s:+ / }$(group "$x")"; done; echo "$s"; }

queue_fs=$(mkdir -p "$BENCH_QUEUE_DIR" && df -P -T "$BENCH_QUEUE_DIR" | awk 'NR == 2 { print $1 " (" $2 ")" }')
echo "Commit $commit; $(nproc) CPUs, load average $loadavg at start; grpc-llm, 500 spans/request," \
    "concurrency ${BENCH_CONCURRENCY:-16}, ${BENCH_DURATION}s per run, $rounds rounds (medians; every run in brackets);" \
    "queue on $queue_fs"
echo
echo "| durability | spans/s | spans/s per collector core | p50 / p99 ack latency ms | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for d in $durabilities; do
    echo "| $d | $(group "$(med "${sps[$d]}")") ($(list "${sps[$d]}")) | $(group "$(med "${core[$d]}")") ($(list "${core[$d]}"))" \
        "| $(med "${p50[$d]}") / $(med "${p99[$d]}") | $(med "${rss[$d]}") |"
done
fsync_core=$(med "${core[fsync]:-}")
if [[ $fsync_core != na ]]; then
    verdict="not met"
    awk -v v="$fsync_core" 'BEGIN { exit !(v >= 100000) }' && verdict=met
    echo
    echo "Target >= 100,000 LLM spans/s per collector core with durability fsync: $(group "$fsync_core") ($verdict)"
fi
echo
echo "Delivery check (sink count against otelcol_receiver_accepted_spans):"
sed 's/^/- /' "$out/checks.txt"

# --- latency at a set load ---------------------------------------------------
rate=${BENCH_LATENCY_RATE:-}
if [[ -z $rate ]]; then
    fsync_sps=$(med "${sps[fsync]:-}")
    [[ $fsync_sps == na ]] && exit 0
    rate=$(awk -v v="$fsync_sps" 'BEGIN { printf "%d\n", int(v / 2 / 1000) * 1000 }')
fi
: >"$out/checks.txt"
declare -A lat
lat_p99=
for r in $(seq "$rounds"); do
    for d in $latency_durabilities; do
        run_one "latency-$d-$r" "$here/configs/respan-$d.yaml" BENCH_DURATION="$latency_duration" \
            BENCH_LOADGEN_ARGS="--rate $rate"
        cores=$(awk -v c="$(field collector_cpu_s "$result")" -v s="$(field seconds "$result")" \
            'BEGIN { if (s > 0) printf "%.2f", c / s; else print "na" }')
        [[ $d == fsync ]] && lat_p99+="$(field p99_ms "$result") "
        lat[$d]+="| $d | $r | $(group "$(field spans_per_s "$result")") | $(field p50_ms "$result") / $(field p99_ms "$result") / $(field p999_ms "$result") | $cores | $(field late_starts "$result") |"$'\n'
    done
done
echo
echo "Latency at $(group "$rate") spans/s (loadgen --rate: calls of 500 spans started evenly), ${latency_duration}s per run:"
echo
echo "| durability | round | spans/s | p50 / p99 / p99.9 ack latency ms | collector cores busy | late starts |"
echo "|---|---:|---:|---:|---:|---:|"
for d in $latency_durabilities; do printf '%s' "${lat[$d]}"; done
echo
p99_med=$(med "$lat_p99")
if [[ $p99_med != na ]]; then
    verdict="not met"
    awk -v v="$p99_med" 'BEGIN { exit !(v < 20) }' && verdict=met
    echo "Target p99 acknowledgement latency < 20 ms at this load with durability fsync:" \
        "median p99 $p99_med ms ($verdict)"
fi
echo
echo "Delivery check:"
sed 's/^/- /' "$out/checks.txt"
