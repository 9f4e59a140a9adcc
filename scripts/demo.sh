#!/usr/bin/env bash
# The main job on the embedded default: `medallion demo` generates three days of synthetic
# partner feeds and runs bronze -> silver -> gold on each into a local lake
# (./medallion-demo/lake) and the embedded SQLite warehouse inside it, then shows where to look.
# Needs only Rust (cargo); a debug build, no services.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/medallion/target}"
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
cargo build --locked -q -p medallion
exec "$CARGO_TARGET_DIR/debug/medallion" demo "$@"
