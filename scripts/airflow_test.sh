#!/usr/bin/env bash
# The DAG test with a real Airflow: dags/medallion_nightly.py run by `airflow dags test` (every
# task in one process, no scheduler, `{{ ds }}` rendered) against the real `medallion` binary on
# a temporary local lake, landing zone and SQLite warehouse.
#
#   scripts/airflow_test.sh [MEDALLION_BIN]
#
# MEDALLION_BIN: the first argument, else $MEDALLION_BIN, else
# ${CARGO_TARGET_DIR:-~/.cache/medallion/target}/debug/medallion (build it first:
# `cargo build -p medallion`).
#
# On first use it creates ${MEDALLION_CACHE:-~/.cache/medallion}/airflow-venv (Python 3.11,
# apache-airflow pinned below, about 300 MB, about a minute from PyPI) and reuses it afterwards.
# Constraints: Airflow's official constraints file when it can be downloaded, else the versions
# pinned at the end of this file (the set this test passed with).
#
# Checks (each prints PASS or FAIL; the exit code is 1 when any failed):
#   1. both DAGs import without errors;
#   2. medallion_nightly for 2026-11-19 (feeds generated for 11-18 and 11-19, 11-18 already
#      through bronze and silver): bronze, silver and gold succeed, the run succeeds, and the
#      SQLite warehouse <lake>/warehouse.db has daily_sales rows for 2026-11-19;
#   3. medallion_nightly for 2026-11-25 (no feeds): the binary exits 4, bronze is SKIPPED and
#      so are silver and gold; the run is not failed;
#   4. a configuration error (exit code 2) fails bronze at once, without retries, and fails
#      the run;
#   5. medallion_maintain succeeds;
#   6. medallion_sharded for 2026-11-19 with 4 partners in 2 shards (--conf '{"shards": 2}'):
#      plan, both mapped shard tasks (bronze+silver --partners) and gold succeed, and every
#      gold table in its SQLite warehouse equals that of one unsharded `medallion run` of the
#      same feeds.
#
# Environment: MEDALLION_KEEP=1 keeps the temporary folder (lake, Airflow home, logs);
# MEDALLION_AIRFLOW_TEST_TIMEOUT (default 600 s) bounds each `airflow dags test` (a retried
# task waits for its real retry delay, minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

AIRFLOW_VERSION=3.3.2
PYTHON_VERSION=3.11
CONSTRAINTS_URL="https://raw.githubusercontent.com/apache/airflow/constraints-${AIRFLOW_VERSION}/constraints-${PYTHON_VERSION}.txt"
CACHE="${MEDALLION_CACHE:-${HOME:-/root}/.cache/medallion}"
VENV="$CACHE/airflow-venv"
DAGS_TEST_TIMEOUT="${MEDALLION_AIRFLOW_TEST_TIMEOUT:-600}"
DAY=2026-11-19           # the date the nightly DAG runs for
PREVIOUS_DAY=2026-11-18  # its previous day, taken through bronze and silver first
EMPTY_DAY=2026-11-25     # a date without feeds
BAD_DAY=2026-11-26       # the date of the configuration-error run

# --- pinned versions --------------------------------------------------------------------------
# `pip freeze` of the venv this test passed with (Python 3.11, apache-airflow 3.3.2 from PyPI),
# used as the constraints when Airflow's official constraints file cannot be downloaded.
pinned_versions() {
  cat <<'EOF'
a2wsgi==1.10.10 aiosmtplib==5.1.3 aiosqlite==0.22.1 alembic==1.20.1 annotated-doc==0.0.7
annotated-types==0.8.0 anyio==4.16.0 apache-airflow==3.3.2 apache-airflow-core==3.3.2
apache-airflow-providers-common-compat==1.23.0 apache-airflow-providers-common-io==1.11.0
apache-airflow-providers-common-sql==2.4.0 apache-airflow-providers-smtp==3.2.0
apache-airflow-providers-standard==1.21.0 apache-airflow-task-sdk==1.3.2 argcomplete==3.7.2
arrow==1.4.0 asgiref==3.13.0 attrs==26.1.0 babel==2.18.0 cachetools==8.0.1 cadwyn==7.0.0
certifi==2026.10.18 cffi==2.1.1 charset-normalizer==3.5.2 click==8.5.1 colorlog==6.12.0
cron_descriptor==2.2.1 croniter==7.0.0 cryptography==50.0.2 Deprecated==1.3.1 dill==0.4.1
dnspython==2.9.2 email-validator==2.4.0 fastapi==0.136.3 fastapi-cli==0.0.34 fsspec==2026.9.0
googleapis-common-protos==1.76.0 greenback==1.3.0 greenlet==3.5.6 grpcio==1.85.1 h11==0.16.0
httpcore==1.0.9 httptools==0.9.0 httpx==0.28.1 idna==3.20 importlib_metadata==10.2.0
isoduration==20.11.0 itsdangerous==2.2.0 Jinja2==3.1.6 jsonschema==4.26.0
jsonschema-specifications==2025.9.1 lazy-importer==0.1.0 lazy-object-proxy==1.13.0 libcst==1.9.0
linkify-it-py==2.2.0 lockfile==0.12.2 Mako==1.4.3 markdown-it-py==4.3.0 MarkupSafe==3.0.4
mdurl==0.1.2 methodtools==0.4.7 more-itertools==11.2.1 msgspec==0.22.0 natsort==8.4.0
opentelemetry-api==1.45.2 opentelemetry-exporter-http-transport==0.66b2
opentelemetry-exporter-otlp==1.45.2 opentelemetry-exporter-otlp-common==0.66b2
opentelemetry-exporter-otlp-proto-common==1.45.2 opentelemetry-exporter-otlp-proto-grpc==1.45.2
opentelemetry-exporter-otlp-proto-http==1.45.2 opentelemetry-proto==1.45.2
opentelemetry-sdk==1.45.2 opentelemetry-semantic-conventions==0.66b2 outcome==1.3.0.post0
packaging==26.3 pathlib_abc==0.5.2 pathspec==1.1.1 pendulum==3.3.0 pluggy==1.7.0
protobuf==7.36.2 psutil==7.2.2 pycparser==3.12 pydantic==2.14.3 pydantic-extra-types==2.11.1
pydantic-settings==2.16.3 pydantic_core==2.50.4 Pygments==2.21.0 pygtrie==2.6.2 PyJWT==2.15.1
python-daemon==3.1.2 python-dateutil==4.0.0 python-dotenv==1.2.4 python-multipart==0.0.34
python-slugify==9.2.0 PyYAML==6.0.3 referencing==0.37.0 requests==2.34.2 rich==15.0.0
rich-argparse==1.8.0 rich-toolkit==0.20.6 rpds-py==2026.9.1 setproctitle==1.3.8
shellingham==1.5.4 six==1.17.0 sniffio==1.3.1 SQLAlchemy==2.1.9 sqlparse==0.6.1
starlette==1.10.0 structlog==26.1.0 svcs==26.2.0 tabulate==0.10.0 tenacity==9.2.1
termcolor==3.3.0 text-unidecode==1.3 typer==0.29.2 typing-inspection==0.4.5
typing_extensions==4.16.0 tzdata==2026.6 universal_pathlib==0.3.10 urllib3==2.8.0
uuid6==2025.0.1 uvicorn==0.54.0 uvloop==0.23.0 watchfiles==1.3.0 websockets==17.4
wirerope==1.0.0 wrapt==2.5.2 zipp==4.1.2
EOF
}

log() { printf '[airflow-test] %s\n' "$*" >&2; }
die() { printf '[airflow-test] ERROR: %s\n' "$*" >&2; echo "FAIL: $*"; exit 1; }

passed=0
failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
# check DESCRIPTION CONDITION...: PASS or FAIL by the exit code of the condition.
check() { local what="$1"; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

# --- the binary -------------------------------------------------------------------------------
BIN="${1:-${MEDALLION_BIN:-${CARGO_TARGET_DIR:-$CACHE/target}/debug/medallion}}"
if [[ "$BIN" != */* ]]; then
  BIN="$(command -v "$BIN" || true)"
fi
[ -n "$BIN" ] && [ -x "$BIN" ] || die "medallion binary not found or not executable: ${1:-${MEDALLION_BIN:-${CARGO_TARGET_DIR:-$CACHE/target}/debug/medallion}} (build it with cargo build -p medallion, or pass its path)"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

# --- the Airflow venv -------------------------------------------------------------------------
find_python() {
  local c
  for c in "${MEDALLION_AIRFLOW_PYTHON:-}" "python${PYTHON_VERSION}" python3; do
    [ -n "$c" ] || continue
    if command -v "$c" >/dev/null 2>&1 &&
      [ "$("$c" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$PYTHON_VERSION" ]; then
      command -v "$c"
      return
    fi
  done
  return 1
}

apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install Python $PYTHON_VERSION with venv support by hand"
  log "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q update </dev/null >&2 9>&-
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q install -y --no-install-recommends "$@" </dev/null >&2 9>&-
}

install_airflow() {
  local py constraints t0=$SECONDS
  py="$(find_python)" || { apt_install "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-venv"; py="$(find_python)"; } ||
    die "Python $PYTHON_VERSION not found (set MEDALLION_AIRFLOW_PYTHON)"
  log "creating $VENV with $py"
  rm -rf "$VENV"
  if ! "$py" -m venv "$VENV" >&2; then
    rm -rf "$VENV"
    apt_install "python${PYTHON_VERSION}-venv"
    "$py" -m venv "$VENV" >&2 || die "$py -m venv $VENV failed"
  fi
  constraints="$VENV/constraints.txt"
  if command -v curl >/dev/null && curl -fsSL --max-time 30 -o "$constraints" "$CONSTRAINTS_URL" 2>/dev/null; then
    log "constraints: $CONSTRAINTS_URL"
  else
    log "constraints: the official file cannot be downloaded; using the versions pinned in $0"
    pinned_versions | tr ' ' '\n' | sed '/^$/d' >"$constraints"
  fi
  log "pip install apache-airflow==$AIRFLOW_VERSION (about 300 MB)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "apache-airflow==$AIRFLOW_VERSION" -c "$constraints" </dev/null >&2 ||
    die "pip install apache-airflow==$AIRFLOW_VERSION failed"
  "$VENV/bin/airflow" version >/dev/null 2>&1 || die "the installed airflow does not start"
  touch "$VENV/.installed-airflow-$AIRFLOW_VERSION"
  INSTALL_SECONDS=$((SECONDS - t0))
  log "Airflow $AIRFLOW_VERSION installed in ${INSTALL_SECONDS}s"
}

mkdir -p "$CACHE"
INSTALL_SECONDS=0
# One installer at a time; a venv without the marker (an interrupted install) is redone.
exec 9>"$CACHE/airflow-venv.lock"
flock -w 1800 9 || die "another airflow_test.sh is still installing $VENV"
if [ -f "$VENV/.installed-airflow-$AIRFLOW_VERSION" ] && [ -x "$VENV/bin/airflow" ]; then
  log "install: reusing $VENV"
else
  install_airflow
fi
exec 9>&-
AIRFLOW="$VENV/bin/airflow"

# --- a private Airflow and lake ---------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/medallion-airflow.XXXXXX")"
cleanup() {
  if [ "${MEDALLION_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
LOGS="$WORK/logs"
mkdir -p "$LOGS"

# Nothing from the caller's Airflow or warehouse settings may leak in (a configured
# sql_alchemy_conn would migrate someone's real metadata database).
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^AIRFLOW' || true)
unset MEDALLION_WAREHOUSE DATABASE_URL
export AIRFLOW_HOME="$WORK/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the repo's dags/
export MEDALLION_BIN="$BIN"
export MEDALLION_LAKE="$WORK/lake"
export MEDALLION_LANDING="$WORK/landing"
WAREHOUSE="$MEDALLION_LAKE/warehouse.db"   # the default warehouse: SQLite in the lake
cd "$WORK"   # no medallion.toml of the repo or the caller

# Prints the JSON document of an `airflow … -o json` command (its last line; log lines and
# warnings come before it).
af_json() { "$AIRFLOW" "$@" -o json 2>/dev/null | grep -E '^\[|^\{' | tail -n 1; }

# states DAG_ID DATE: "run STATE" then "TASK STATE" lines for the DAG's run of that date.
states() {
  local runs run_id
  runs="$(af_json dags list-runs "$1")"
  run_id="$("$VENV/bin/python" -c '
import json, sys
runs = [r for r in json.loads(sys.argv[1] or "[]") if r["logical_date"].startswith(sys.argv[2])]
if runs:
    print(runs[-1]["run_id"])
' "$runs" "$2")"
  [ -n "$run_id" ] || { echo "run none"; return; }
  "$VENV/bin/python" -c '
import json, sys
run = [r for r in json.loads(sys.argv[1]) if r["run_id"] == sys.argv[2]][0]
print("run", run["state"])
for t in json.loads(sys.argv[3] or "[]"):
    print(t["task_id"], t["state"])
' "$runs" "$run_id" "$(af_json tasks states-for-dag-run "$1" "$run_id")"
}
state_of() { awk -v k="$1" '$1 == k { print $2 }' <<<"$STATES"; }
is_state() { [ "$(state_of "$1")" = "$2" ]; }

# dags_test NAME DAG_ID DATE [CONF]: runs `airflow dags test` (with --conf CONF when given),
# output in $LOGS/NAME.log; sets DAGS_TEST_RC, DAGS_TEST_SECONDS and STATES.
dags_test() {
  local t0=$SECONDS
  local conf=()
  [ -z "${4:-}" ] || conf=(--conf "$4")
  set +e
  timeout "$DAGS_TEST_TIMEOUT" "$AIRFLOW" dags test "${conf[@]}" "$2" "$3" >"$LOGS/$1.log" 2>&1
  DAGS_TEST_RC=$?
  set -e
  DAGS_TEST_SECONDS=$((SECONDS - t0))
  log "airflow dags test $2 $3: exit $DAGS_TEST_RC in ${DAGS_TEST_SECONDS}s (log: $LOGS/$1.log)"
  [ "$DAGS_TEST_RC" != 124 ] || log "timed out after ${DAGS_TEST_TIMEOUT}s (a task waiting for a retry?)"
  STATES="$(states "$2" "$3")"
  log "states: $(tr '\n' ' ' <<<"$STATES")"
}
show_log() { log "last lines of $LOGS/$1.log:"; tail -n 40 "$LOGS/$1.log" | cut -c1-400 >&2; }

# medallion NAME ARGS...: runs the binary, output in $LOGS/NAME.log.
medallion() {
  local name="$1"; shift
  local rc=0
  "$BIN" "$@" >"$LOGS/$name.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    tail -n 20 "$LOGS/$name.log" >&2
    die "medallion $* exited with $rc"
  fi
}

# --- the data ---------------------------------------------------------------------------------
t_setup=$SECONDS
log "binary: $BIN"
medallion generate generate --partners 2 --days 2 --start-date "$PREVIOUS_DAY" --out "$MEDALLION_LANDING"
medallion bronze-previous bronze --date "$PREVIOUS_DAY"
medallion silver-previous silver --date "$PREVIOUS_DAY"
log "feeds for $PREVIOUS_DAY and $DAY generated, $PREVIOUS_DAY through bronze and silver in $((SECONDS - t_setup))s"

"$AIRFLOW" db migrate >"$LOGS/db-migrate.log" 2>&1 || { show_log db-migrate; die "airflow db migrate failed"; }

# 1. The DAG file imports, and defines both DAGs.
# (--local: parse the folder now; the metadata database knows no DAG before a run.)
errors="$(af_json dags list-import-errors --local)"
dags="$(af_json dags list --local)"
check "dags/ imports without errors" [ "$errors" = "[]" ]
[ "$errors" = "[]" ] || log "import errors: $errors"
check "DAGs medallion_nightly, medallion_sharded and medallion_maintain are defined" \
  "$VENV/bin/python" -c '
import json, sys
ids = {d["dag_id"] for d in json.loads(sys.argv[1] or "[]")}
sys.exit(0 if {"medallion_nightly", "medallion_sharded", "medallion_maintain"} <= ids else 1)' "$dags"

# 2. A day with feeds: bronze >> silver >> gold, all successful, gold published to the warehouse.
dags_test nightly medallion_nightly "$DAY"
NIGHTLY_SECONDS=$DAGS_TEST_SECONDS
for t in bronze silver gold; do
  check "$DAY: task $t succeeded" is_state "$t" success
done
check "$DAY: the DAG run succeeded (airflow dags test exit 0)" \
  eval '[ "$DAGS_TEST_RC" = 0 ] && is_state run success'
check "$DAY: gold rendered {{ ds }} as --date $DAY" grep -q -- "--stages gold --date $DAY" "$LOGS/nightly.log"
rows="$("$VENV/bin/python" - "$WAREHOUSE" "$DAY" <<'EOF' 2>&1 || true
import sqlite3, sys
path, day = sys.argv[1], sys.argv[2]
try:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    print(con.execute("SELECT COUNT(*) FROM daily_sales WHERE order_date = ?", (day,)).fetchone()[0])
except sqlite3.Error as e:
    print(f"{type(e).__name__}: {e}")
EOF
)"
check "$DAY: the warehouse $WAREHOUSE has daily_sales rows for $DAY ($rows)" \
  eval '[[ "$rows" =~ ^[0-9]+$ ]] && [ "$rows" -gt 0 ]'
[ "$STATES" != "" ] && is_state run success || show_log nightly

# 3. A day without feeds: exit code 4 skips bronze, and with it silver and gold.
dags_test empty medallion_nightly "$EMPTY_DAY"
EMPTY_SECONDS=$DAGS_TEST_SECONDS
check "$EMPTY_DAY (no feeds): bronze exited 4" grep -q "exited with return code 4" "$LOGS/empty.log"
for t in bronze silver gold; do
  check "$EMPTY_DAY (no feeds): task $t skipped" is_state "$t" skipped
done
check "$EMPTY_DAY (no feeds): the DAG run is not failed (airflow dags test exit 0)" \
  eval '[ "$DAGS_TEST_RC" = 0 ] && is_state run success'
is_state bronze skipped || show_log empty

# 4. A configuration error (an unsupported landing scheme: exit 2) fails at once, no retry.
MEDALLION_LANDING="ftp://nowhere/incoming" dags_test bad-config medallion_nightly "$BAD_DAY"
check "bad configuration: bronze exited 2" grep -q "exited with return code 2" "$LOGS/bad-config.log"
check "bad configuration: bronze failed without a retry" \
  eval 'is_state bronze failed && ! grep -q up_for_retry "$LOGS/bad-config.log"'
check "bad configuration: silver and gold not run (upstream_failed)" \
  eval 'is_state silver upstream_failed && is_state gold upstream_failed'
check "bad configuration: the DAG run failed" eval '[ "$DAGS_TEST_RC" = 1 ] && is_state run failed'

# 5. The weekly maintenance DAG.
dags_test maintain medallion_maintain "$DAY"
check "medallion_maintain: task maintain succeeded" is_state maintain success
is_state maintain success || show_log maintain

# 6. The sharded DAG: bronze+silver mapped over 2 shards of 4 partners, then gold; its gold
# equals one unsharded run's of the same feeds.
SHARD_LANDING="$WORK/landing-sharded"
medallion generate-sharded generate --partners 4 --days 1 --start-date "$DAY" --out "$SHARD_LANDING"
MEDALLION_LAKE="$WORK/lake-whole" MEDALLION_LANDING="$SHARD_LANDING" medallion whole-run run --date "$DAY"
MEDALLION_LAKE="$WORK/lake-sharded" MEDALLION_LANDING="$SHARD_LANDING" \
  dags_test sharded medallion_sharded "$DAY" '{"shards": 2}'
SHARDED_SECONDS=$DAGS_TEST_SECONDS
check "sharded: task plan succeeded" is_state plan success
check "sharded: 2 mapped shard tasks succeeded" eval '[ "$(state_of shard | grep -c "^success$")" = 2 ]'
check "sharded: the shards ran with --partners" grep -q -- "--partners acme,initech" "$LOGS/sharded.log"
check "sharded: task gold succeeded" is_state gold success
check "sharded: the DAG run succeeded" eval '[ "$DAGS_TEST_RC" = 0 ] && is_state run success'
same="$("$VENV/bin/python" - "$WORK/lake-sharded/warehouse.db" "$WORK/lake-whole/warehouse.db" <<'EOF' 2>&1 || true
import sqlite3, sys
def gold(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'medallion%' ORDER BY name")]
    return {n: sorted(map(repr, con.execute(f'SELECT * FROM "{n}"'))) for n in names}
try:
    a, b = gold(sys.argv[1]), gold(sys.argv[2])
    rows = sum(len(v) for v in b.values())
    print(f"same ({len(b)} tables, {rows} rows)" if a == b and rows > 0 else f"differ: {sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))} ({rows} rows)")
except sqlite3.Error as e:
    print(f"{type(e).__name__}: {e}")
EOF
)"
check "sharded: gold equals an unsharded run's: $same" eval '[[ "$same" == same* ]]'
is_state gold success || show_log sharded

echo "airflow_test: Airflow $AIRFLOW_VERSION; install ${INSTALL_SECONDS}s (0 = venv reused);" \
  "dags test: nightly ${NIGHTLY_SECONDS}s, no-feeds ${EMPTY_SECONDS}s, sharded ${SHARDED_SECONDS}s; total ${SECONDS}s"
echo "airflow: $passed passed, $failed failed"
[ "$failed" = 0 ]
