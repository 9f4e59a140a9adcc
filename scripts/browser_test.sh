#!/usr/bin/env bash
# The dashboard in a real browser: installs Debian's Chromium and playwright-core (npm) when
# missing, builds the demo lake with the given binary, serves it with a reader key and runs
# tests/browser/dashboard.cjs. Screenshots go to $MEDALLION_ARTIFACTS (default ./target-artifacts).
# Usage: scripts/browser_test.sh <medallion binary>
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${1:?usage: scripts/browser_test.sh <medallion binary>}")"
cache="${MEDALLION_CACHE:-$HOME/.cache/medallion}"
shots="$(realpath -m "${MEDALLION_ARTIFACTS:-./target-artifacts}")"
mkdir -p "$cache" "$shots"
say() { echo "[browser] $*" >&2; }

if ! command -v chromium >/dev/null; then
  say "installing Debian's chromium"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q chromium >/dev/null
fi
command -v node >/dev/null || { echo "node is required for the browser test" >&2; exit 1; }
pw="$cache/node/node_modules/playwright-core"
if [ ! -d "$pw" ]; then
  say "installing playwright-core into $cache/node"
  npm install --silent --no-audit --no-fund --prefix "$cache/node" playwright-core@1 >/dev/null
fi

work="$(mktemp -d)"
cleanup() { [ -n "${server:-}" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$bin" demo --dir "$work/demo" -q >/dev/null
key="reader-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
MEDALLION_API_KEYS="reader:$key" "$bin" serve --lake "$work/demo/lake" --landing "$work/demo/landing" --listen 127.0.0.1:0 >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  addr="$(grep -o 'listening on http://[0-9.:]*' "$work/serve.log" | head -1 | sed 's#.*http://##')" || true
  [ -n "$addr" ] && break
  sleep 0.2
done
[ -n "${addr:-}" ] || { cat "$work/serve.log" >&2; echo "the server did not start" >&2; exit 1; }
PLAYWRIGHT_CORE="$pw" node tests/browser/dashboard.cjs "http://$addr" "$key" "$shots"
