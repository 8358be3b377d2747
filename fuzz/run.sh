#!/usr/bin/env bash
# Runs every libFuzzer target for a fixed time from a copy of its seed corpus.
#
#   fuzz/run.sh <fuzz-build-dir> <seconds> [extra libFuzzer flags...]
#
# `make fuzz-smoke` (and so CI) calls this after building with -DRC_FUZZ=ON.
# The seeds in fuzz/corpus/<name>/ are copied to a temporary directory first,
# so the inputs libFuzzer adds while it runs never touch the checkout. Crash,
# leak and timeout reproducers go to <fuzz-build-dir>/fuzz-artifacts/<target>/
# (override with FUZZ_ARTIFACTS), which outlives the run. FUZZ_TARGETS picks
# a subset ("fuzz_json fuzz_proto"). Exit status: 0 when every target ran
# its time without a finding, 1 otherwise; one summary line per target.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 <fuzz-build-dir> <seconds> [libFuzzer flags...]" >&2
  exit 2
fi
build=$1
seconds=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
artifacts=${FUZZ_ARTIFACTS:-$build/fuzz-artifacts}
targets=${FUZZ_TARGETS:-fuzz_proto fuzz_json fuzz_json_diff fuzz_http_body fuzz_queue
  fuzz_respan_response fuzz_replay_input
  fuzz_otlp_response fuzz_config fuzz_pricing fuzz_headers fuzz_respan_log fuzz_grpc_h2
  fuzz_api_query fuzz_tenants fuzz_tls_handshake}

# target -> seed folder under fuzz/corpus/
corpus_of() {
  case "$1" in
    fuzz_proto) echo proto ;;
    fuzz_json) echo json ;;
    fuzz_json_diff) echo json_diff ;;
    fuzz_http_body) echo http_body ;;
    fuzz_queue) echo queue ;;
    fuzz_grpc_h2) echo grpc_h2 ;;
    fuzz_replay_input) echo replay_input ;;
    fuzz_respan_response) echo respan_response ;;
    fuzz_otlp_response) echo otlp_response ;;
    fuzz_config) echo config ;;
    fuzz_pricing) echo pricing ;;
    fuzz_headers) echo headers ;;
    fuzz_respan_log) echo respan_log ;;
    fuzz_api_query) echo api_query ;;
    fuzz_tenants) echo tenants ;;
    fuzz_tls_handshake) echo tls_handshake ;;
    *) echo "$0: unknown target $1" >&2; return 1 ;;
  esac
}

work=$(mktemp -d "${TMPDIR:-/tmp}/rc-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# "#1234  DONE   cov: 812 ft: 2100 corp: 54/12Kb ..." -> "cov 812, ft 2100, corpus 54"
final_stats() {
  grep -E '^#[0-9]+[[:space:]]+DONE' "$1" | tail -n 1 |
    sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/cov \1, ft \2, corpus \3/'
}

failed=0
for target in $targets; do
  bin=$build/fuzz/$target
  seeds=$root/fuzz/corpus/$(corpus_of "$target")
  if [ ! -x "$bin" ]; then
    echo "$target: FAILED, $bin is missing (build with -DRC_FUZZ=ON)"
    failed=1
    continue
  fi
  corpus=$work/$target
  mkdir -p "$corpus" "$artifacts/$target"
  cp -r "$seeds/." "$corpus/"
  # fuzz_json_diff starts from fuzz_json's seeds too, without a copy of them
  [ "$target" = fuzz_json_diff ] && cp -r "$root/fuzz/corpus/json/." "$corpus/"
  seed_count=$(find "$corpus" -type f | wc -l)
  flags=(-max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10
         -print_final_stats=1 -artifact_prefix="$artifacts/$target/")
  # fuzz/<seed folder>.dict, when there is one (json, config, pricing);
  # the differential JSON target shares json.dict
  dict=$root/fuzz/$(corpus_of "$target").dict
  [ "$target" = fuzz_json_diff ] && dict=$root/fuzz/json.dict
  [ -f "$dict" ] && flags+=(-dict="$dict")
  log=$work/$target.log
  # stdin from /dev/null: no input may make a target wait on a terminal
  # (a config naming /dev/stdin as a file, say).
  if "$bin" "${flags[@]}" "$@" "$corpus" </dev/null >"$log" 2>&1; then
    runs=$(sed -nE 's/^stat::number_of_executed_units: ([0-9]+)/\1/p' "$log")
    echo "$target: ok, ${runs:-?} runs in ${seconds}s, $(final_stats "$log") (from $seed_count seeds)"
  else
    failed=1
    echo "$target: FAILED; the finding, from its log:"
    # The first report and its stack; libFuzzer's own deadly-signal trace
    # that follows repeats it.
    awk '!shown && /ERROR: |runtime error|^fuzz: |^INFO: .*(leak|Timeout|out-of-memory)/ {shown=1}
         shown && (/^[[:space:]]*$/ || n++ == 16) {exit}
         shown' "$log" | sed 's/^/    /'
    grep -E '^SUMMARY: |Test unit written to' "$log" | sort -u | sed 's/^/    /'
    echo "$target: reproducers in $artifacts/$target/ (rerun: $bin <file>)"
  fi
done
exit $failed
