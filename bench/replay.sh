#!/usr/bin/env bash
# The replay benchmark (issue 11): an OTLP/JSON-lines file of LLM spans
# replayed through customer + cost into nop, on one core.
#
#   bench/replay.sh <build-dir> [sizes in MiB, default "100 2048"]
#
# For each size, bench/replay_gen writes the file once (cached in
# $BENCH_DATA, default /tmp/respan-bench-replay), then `respan-collector
# replay -q` runs bench/configs/replay-customer-cost-nop.yaml over it,
# BENCH_ROUNDS times (default 3), pinned to one CPU with taskset so that
# the figure is per core whatever the machine. Reported per run: spans,
# wall seconds, CPU seconds (user + system), spans/s of wall time and per
# CPU second, and peak RSS. RSS should not depend on the file's size: the
# input is streamed.
#
# BENCH_GZIP=1 also replays a gzip-compressed copy of each file.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 <build-dir> [sizes-in-MiB...]" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
shift
sizes=${*:-100 2048}
root=$(cd "$(dirname "$0")/.." && pwd)
data=${BENCH_DATA:-/tmp/respan-bench-replay}
rounds=${BENCH_ROUNDS:-3}
cpu=${BENCH_CPU:-0}
config=$root/bench/configs/replay-customer-cost-nop.yaml
mkdir -p "$data"

run_one() { # file label
  local file=$1 label=$2 out
  out=$(mktemp)
  /usr/bin/time -f "%e %U %S %M" -o "$out.time" \
    taskset -c "$cpu" "$build/respan-collector" replay -q -c "$config" "$file" 2>"$out" || {
    cat "$out" >&2
    rm -f "$out" "$out.time"
    return 1
  }
  local spans wall user sys rss
  spans=$(sed -n 's/^replay: [0-9]* files\?, \([0-9]*\) spans read.*/\1/p' "$out")
  read -r wall user sys rss <"$out.time"
  awk -v l="$label" -v s="$spans" -v w="$wall" -v u="$user" -v y="$sys" -v r="$rss" 'BEGIN {
    c = u + y
    printf "| %s | %d | %.2f | %.2f | %.0f | %.0f | %.1f |\n", l, s, w, c, s / w, s / c, r / 1024
  }'
  rm -f "$out" "$out.time"
}

echo "| input | spans | wall s | CPU s | spans/s | spans/s per core | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|"
for mib in $sizes; do
  file=$data/llm-$mib.jsonl
  if [ ! -s "$file" ]; then
    "$build/bench/replay_gen" --out "$file" --mib "$mib" >/dev/null
  fi
  for _ in $(seq "$rounds"); do run_one "$file" "$mib MiB JSON lines"; done
  if [ "${BENCH_GZIP:-0}" = 1 ]; then
    [ -s "$file.gz" ] || gzip -1 -c "$file" >"$file.gz"
    for _ in $(seq "$rounds"); do run_one "$file.gz" "$mib MiB JSON lines, gzip"; done
  fi
done
