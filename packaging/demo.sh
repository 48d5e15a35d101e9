#!/usr/bin/env bash
# The quick-start demo: generate a few scans, create a district pre-archive
# in ./edge-data (SQLite + local folders, no server) and ingest them.
# Usage: packaging/demo.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-./edge-data}
scans=$(mktemp -d)
cargo build --release -q -p dangan-edge -p dangan-testkit
target=${CARGO_TARGET_DIR:-target}
"$target/release/dangan-fixtures" demo "$scans"
if [ ! -f "$data/edge.db" ]; then
  "$target/release/dangan-edge" init --data "$data" --district 330106
fi
"$target/release/dangan-edge" ingest --data "$data" --batch demo "$scans"
"$target/release/dangan-edge" batch show demo --data "$data"
echo
echo "quarantined files are in $data/quarantine/demo; JSON: dangan-edge batch show demo --json --data $data"
