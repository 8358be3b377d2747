#!/usr/bin/env bash
# bench/compare.sh - two collector builds under the same load, interleaved,
# on one machine: what changed in a component's cost (e.g. the gRPC
# receiver on nghttp2 against gRPC core's server).
#
#   bench/compare.sh OLD_BUILD NEW_BUILD
#
# Each build dir must hold respan-collector; the load generator comes from
# NEW_BUILD (bench/loadgen), so both are driven by the same client. For each
# round, bench/run.sh runs BENCH_SCENARIOS with the old collector, then with
# the new one, so machine noise hits both alike. Prints, per scenario, the
# median spans/s, spans/s per collector core and peak RSS of each, every
# round in brackets, and the new/old ratio of the per-core medians.
#
# Environment (all optional; others pass through to bench/run.sh):
#   BENCH_ROUNDS=3
#   BENCH_SCENARIOS="grpc-small grpc-llm"
#   BENCH_CONFIG=bench/configs/otlp-batch-nop.yaml
# Raw output in NEW_BUILD/bench-compare/.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
[[ $# -eq 2 ]] || {
    echo "usage: $0 OLD_BUILD NEW_BUILD" >&2
    exit 2
}
old=$(cd "$1" && pwd)
new=$(cd "$2" && pwd)
for b in "$old" "$new"; do
    [[ -x $b/respan-collector ]] || {
        echo "bench/compare.sh: $b/respan-collector not found" >&2
        exit 1
    }
done
[[ -x $new/bench/loadgen ]] || {
    echo "bench/compare.sh: $new/bench/loadgen not found" >&2
    exit 1
}
rounds=${BENCH_ROUNDS:-3}
export BENCH_SCENARIOS=${BENCH_SCENARIOS:-grpc-small grpc-llm}
out=$new/bench-compare
mkdir -p "$out"

# A build dir per side holding its collector and the one load generator.
for side in old new; do
    mkdir -p "$out/$side/bench"
    src=$old
    [[ $side == new ]] && src=$new
    ln -sf "$src/respan-collector" "$out/$side/respan-collector"
    ln -sf "$new/bench/loadgen" "$out/$side/bench/loadgen"
done

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
    tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "na"; else if (NR % 2) print v[(NR + 1) / 2];
              else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A sps core rss
for r in $(seq "$rounds"); do
    for side in old new; do
        echo "== round $r, $side ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
        "$here/run.sh" "$out/$side" >"$out/$side-$r.table" 2>"$out/$side-$r.log" ||
            echo "bench/compare.sh: run.sh failed for $side round $r (see $out/$side-$r.log)" >&2
        for s in $BENCH_SCENARIOS; do
            line=$(grep '^RESULT ' "$out/$side/bench-results/$s.txt" 2>/dev/null || true)
            sps[$side,$s]+="$(field spans_per_s "$line") "
            core[$side,$s]+="$(field spans_per_s_per_core "$line") "
            rss[$side,$s]+="$(field peak_rss_mib "$line") "
        done
    done
done

echo "Old: $old; new: $new; $(nproc) CPUs; $rounds interleaved rounds (medians, every round in brackets)"
echo
echo "| scenario | build | spans/s | spans/s per collector core | peak RSS MiB |"
echo "|---|---|---:|---:|---:|"
for s in $BENCH_SCENARIOS; do
    for side in old new; do
        echo "| $s | $side | $(median <<<"${sps[$side,$s]}") (${sps[$side,$s]% }) |" \
            "$(median <<<"${core[$side,$s]}") (${core[$side,$s]% }) | $(median <<<"${rss[$side,$s]}") |"
    done
done
echo
for s in $BENCH_SCENARIOS; do
    o=$(median <<<"${core[old,$s]}")
    n=$(median <<<"${core[new,$s]}")
    awk -v s="$s" -v o="$o" -v n="$n" 'BEGIN { if (o > 0) printf "%s: new/old per core %.2f\n", s, n / o }'
done
