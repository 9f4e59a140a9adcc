#!/usr/bin/env bash
# The main job on the embedded default (a local lake in ./lake): generates three days of
# synthetic partner feeds into ./landing, lands each day in bronze and runs silver on it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/medallion/target}"
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
cargo build --locked -q -p medallion
M="$CARGO_TARGET_DIR/debug/medallion"
"$M" generate --partners 3 --days 3 --start-date 2026-11-18 -q
for d in 2026-11-18 2026-11-19; do
  "$M" bronze --date "$d" -q
  "$M" silver --date "$d" -q >/dev/null
done
"$M" bronze --date 2026-11-20 -q
echo
"$M" feeds --date 2026-11-20
echo
"$M" silver --date 2026-11-20
echo
echo "Lake: $(pwd)/lake   (raw/ = immutable copies, bronze/ = Parquet, silver/ = Delta tables)"
echo "Try:  $M feeds --json | head -40     $M silver --help     $M maintain"
