#!/usr/bin/env bash
# Installs the Debian packages listed in debian-packages.txt that are not
# installed yet, then the pinned npm packages of the end-to-end tests.
# Idempotent and quiet when there is nothing to do, so `make run` and
# `make test` can call it every time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

wanted=$(grep -v '^\s*#' "$root/debian-packages.txt" | awk 'NF {print $1}')
missing=()
for pkg in $wanted; do
  # Anything already on PATH (a toolchain the image ships) counts as present.
  case "$pkg" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
    python3) command -v python3 >/dev/null 2>&1 && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--tests" ]; then
  e2e="$root/tests/e2e"
  if [ -f "$e2e/package-lock.json" ] && [ ! -d "$e2e/node_modules" -o "$e2e/package-lock.json" -nt "$e2e/node_modules" ]; then
    echo "setup: installing the pinned OpenTelemetry JS SDK (npm ci)"
    (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
