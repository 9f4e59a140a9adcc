#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs and starts what the tests need
# (PostgreSQL, SeaweedFS as the S3 server, a Python venv), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/medallion/target}"
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
eval "$(scripts/services.sh start)"
# Service tests must fail, never skip, when a service is missing.
unset MEDALLION_SKIP_SERVICE_TESTS
# The fuzz targets (CSV reader, value parsers; seeded by the committed corpora in
# bronze/fuzz/corpus and schemas/fuzz) run this many cases each: a fixed budget.
export MEDALLION_FUZZ_CASES="${MEDALLION_FUZZ_CASES:-3000}"
echo "== cargo test (debug build; target $CARGO_TARGET_DIR)" >&2
rc=0
cargo test --workspace --locked --no-fail-fast "$@" || rc=$?
# The DuckDB peer (bench/peer_duckdb.py, written from the contract alone) recomputes gold from
# the same feeds: a hand-written hostile set and two generated days, compared to the cent.
echo "== gold against the DuckDB peer (bench/e2e_bench.py --check)" >&2
bench/e2e_bench.py --check --bin "$CARGO_TARGET_DIR/debug/medallion" --python "$MEDALLION_VENV/bin/python" || rc=$?
# The Airflow DAG under real Airflow (installed into a cached venv on first use), driving the
# binary cargo test just built.
echo "== Airflow DAG test (real Airflow; first run installs it into \${MEDALLION_CACHE:-~/.cache/medallion}/airflow-venv)" >&2
scripts/airflow_test.sh "$CARGO_TARGET_DIR/debug/medallion" || rc=$?
# The dashboard in a real browser (Debian's Chromium + playwright-core, installed on first use);
# screenshots in $CARGO_TARGET_DIR/artifacts.
echo "== dashboard browser test (Chromium)" >&2
MEDALLION_ARTIFACTS="$CARGO_TARGET_DIR/artifacts" scripts/browser_test.sh "$CARGO_TARGET_DIR/debug/medallion" || rc=$?
echo "== schemathesis against medallion serve's /openapi.json (installs schemathesis into the cached venv on first use)" >&2
scripts/schemathesis.sh "$CARGO_TARGET_DIR/debug/medallion" || rc=$?
# The single-machine build without Ballista (`--no-default-features`) keeps compiling.
echo "== cargo check --no-default-features (medallion without the cluster feature)" >&2
cargo check --workspace --locked --no-default-features --all-targets || rc=$?
exit "$rc"
