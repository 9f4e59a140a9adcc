#!/usr/bin/env bash
# Property-based API test: schemathesis (PyPI) against the `/openapi.json` of a real
# `medallion serve` on a small demo lake (local folder + SQLite warehouse), every operation,
# with two checks: not_a_server_error (no 5xx) and response_schema_conformance (every response
# matches its documented schema). Exits non-zero on any finding.
#
#   scripts/schemathesis.sh [MEDALLION_BIN]
#
# MEDALLION_BIN: the first argument, else $MEDALLION_BIN, else
# ${CARGO_TARGET_DIR:-~/.cache/medallion/target}/debug/medallion (build it first).
#
# Every operation is tested with a key of the role it needs: one pass with an operator key
# (reads and runs; the operator role includes the reader's), one with an ingest key over the
# upload. schemathesis is installed on first use into the project's cached venv
# ($MEDALLION_VENV, else ${MEDALLION_CACHE:-~/.cache/medallion}/venv; scripts/services.sh
# makes the same one).
#
# Environment: MEDALLION_SCHEMATHESIS_MAX_EXAMPLES (default 30 per operation),
# MEDALLION_SCHEMATHESIS_MAX_TIME (default 150 s per pass), MEDALLION_KEEP=1 keeps the
# temporary folder (demo lake, server log, schemathesis reports).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_SPEC="${MEDALLION_SCHEMATHESIS_SPEC:-schemathesis==4.32.5}"
CACHE="${MEDALLION_CACHE:-${HOME:-/root}/.cache/medallion}"
VENV="${MEDALLION_VENV:-$CACHE/venv}"
BIN="${1:-${MEDALLION_BIN:-${CARGO_TARGET_DIR:-$CACHE/target}/debug/medallion}}"
MAX_EXAMPLES="${MEDALLION_SCHEMATHESIS_MAX_EXAMPLES:-30}"
MAX_TIME="${MEDALLION_SCHEMATHESIS_MAX_TIME:-150}"

log() { printf '[schemathesis] %s\n' "$*" >&2; }
[ -x "$BIN" ] || { log "no medallion binary at $BIN (cargo build -p medallion)"; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import schemathesis' 2>/dev/null; then
  log "pip install $SCHEMATHESIS_SPEC"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$SCHEMATHESIS_SPEC" </dev/null
fi

TMP="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ "${MEDALLION_KEEP:-}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

log "demo lake in $TMP/demo"
"$BIN" demo --dir "$TMP/demo" --partners 2 --days 2 --rows 40 -q >/dev/null

key() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
OPERATOR="$(key)"; INGEST="$(key)"
MEDALLION_API_KEYS="operator:$OPERATOR,ingest:$INGEST" \
MEDALLION_LAKE="$TMP/demo/lake" MEDALLION_LANDING="$TMP/demo/landing" \
MEDALLION_WAREHOUSE="sqlite://$TMP/demo/lake/warehouse.db" \
  "$BIN" serve --listen 127.0.0.1:0 >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 600); do
  ADDR="$(sed -n 's/.*listening on \(http:\/\/\)\{0,1\}\([0-9.]*:[0-9]*\).*/\2/p' "$TMP/server.log" | head -n1)"
  [ -n "$ADDR" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; log "medallion serve exited"; exit 1; }
  sleep 0.2
done
[ -n "$ADDR" ] || { cat "$TMP/server.log" >&2; log "medallion serve did not start"; exit 1; }
log "medallion serve on $ADDR"

st() {
  local name="$1"; shift
  log "pass: $name"
  "$VENV/bin/st" --no-color run "http://$ADDR/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" --seed 42 \
    --request-timeout 60 --continue-on-failure \
    --report junit --report-dir "$TMP/reports-$name" "$@"
}

rc=0
st operator -H "Authorization: Bearer $OPERATOR" --exclude-name "POST /v1/feeds" || rc=$?
st ingest -H "Authorization: Bearer $INGEST" --include-name "POST /v1/feeds" || rc=$?
if [ "$rc" -ne 0 ]; then
  log "FAIL (server log: $TMP/server.log with MEDALLION_KEEP=1)"
  tail -n 40 "$TMP/server.log" >&2
else
  log "PASS"
fi
exit "$rc"
