#!/usr/bin/env bash
# Static checks that CI runs (`make lint`), on the C code only:
#   1. clang-format: every tracked *.c / *.h matches .clang-format;
#   2. cppcheck: warning, performance and portability findings in our own
#      sources (generated protobuf-c code and system headers are not ours).
# Exits non-zero on any finding. Scratch files (the generated OTLP headers
# cppcheck needs to see the struct types, cppcheck's cache) live in
# $LINT_BUILD (default build-lint/), never in the source tree.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${LINT_BUILD:-build-lint}
status=0

# --- 1. formatting ------------------------------------------------------------
mapfile -t sources < <(git ls-files '*.c' '*.h')
if ! clang-format --dry-run --Werror "${sources[@]}"; then
  echo "lint: clang-format: the files above differ from .clang-format (fix: make format)" >&2
  status=1
fi

# --- 2. cppcheck ------------------------------------------------------------------
# The OTLP structs come from protoc-c at build time; generate them here the
# same way so cppcheck knows their fields instead of guessing. Their one
# system header, protobuf-c.h, is shown to cppcheck through a directory of
# its own: its version macros guard the generated code with #error, and
# handing cppcheck all of /usr/include would analyse glibc instead of us.
gen=$build/proto
sysinc=$build/sysinc
mkdir -p "$gen" "$sysinc/protobuf-c" "$build/cppcheck"
for proto in $(cd proto && find . -name '*.proto' | sort); do
  protoc-c --proto_path=proto --c_out="$gen" "proto/$proto"
done
ln -sf /usr/include/protobuf-c/protobuf-c.h "$sysinc/protobuf-c/protobuf-c.h"

dirs=()
for d in core otlp llm receiver processors exporter extension replay store bench fuzz; do
  [ -d "$d" ] && dirs+=("$d")
done

# -D fixes the one configuration we build (cppcheck then skips guessing
# others); system headers are left out, see above.
# Suppressions, each with its reason:
#   missingIncludeSystem  system headers are not given to cppcheck on purpose:
#                         it would analyse glibc, not us.
suppress=(
  --suppress=missingIncludeSystem
)
if ! cppcheck --quiet --std=c11 --platform=unix64 --library=posix \
    --enable=warning,performance,portability --error-exitcode=1 --inline-suppr \
    "${suppress[@]}" -D_GNU_SOURCE -DRC_VERSION='"lint"' \
    -I . -I "$gen" -I "$sysinc" --cppcheck-build-dir="$build/cppcheck" -j "$(nproc)" \
    --template='{file}:{line}: {severity} ({id}): {message}' \
    "${dirs[@]}"; then
  echo "lint: cppcheck reported the findings above" >&2
  status=1
fi
exit $status
