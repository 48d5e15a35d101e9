#!/usr/bin/env bash
# The quick-start demo, on the embedded defaults (SQLite + local folders, no
# other server): start a central hub and one district edge node, generate a
# few hundred scanned pages with barcodes, ingest them into batches, accept
# and sync them, print the hub's reconciliation table, and keep both running
# (the edge syncing in the background) until Ctrl-C.
#
# Usage: packaging/demo.sh [DIR]      (default ./demo-data)
# Env:   DANGAN_DEMO_LISTEN (hub address, default 127.0.0.1:8700)
#        DANGAN_DEMO_BATCHES, DANGAN_DEMO_PAGES (default 3 batches x 100 pages)
#        DANGAN_DEMO_EXIT=1 exits after the table instead of staying up
#        DANGAN_LANG=en for English messages
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-./demo-data}
listen=${DANGAN_DEMO_LISTEN:-127.0.0.1:8700}
batches=${DANGAN_DEMO_BATCHES:-3}
pages=${DANGAN_DEMO_PAGES:-100}
district=330106

if [ -e "$dir" ]; then
  if [ -f "$dir/.dangan-demo" ]; then
    rm -rf "$dir"
  else
    echo "demo: $dir exists and is not a demo folder; pass another folder" >&2
    exit 2
  fi
fi
mkdir -p "$dir"
touch "$dir/.dangan-demo"

echo "demo: building (release) ..."
cargo build --release -q -p dangan-edge -p dangan-hub -p dangan-testkit --bins
target=${CARGO_TARGET_DIR:-target}/release
edge() { "$target/dangan-edge" --data "$dir/edge" "$@"; }
hub() { "$target/dangan-hub" --data "$dir/hub" "$@"; }

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'echo; echo "demo: stopping"; exit 0' INT TERM

echo "demo: hub in $dir/hub"
hub init --city "${district:0:4}00" > "$dir/hub-init.txt"
"$target/dangan-hub" --data "$dir/hub" serve --json --listen "$listen" > "$dir/hub.out" 2> "$dir/hub.log" &
pids+=($!)
for _ in $(seq 100); do
  grep -q '"url"' "$dir/hub.out" 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$dir/hub.log" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/.*"url": *"\([^"]*\)".*/\1/p' "$dir/hub.out" | head -n1)
[ -n "$url" ] || { echo "demo: the hub did not start; see $dir/hub.log" >&2; exit 1; }
admin_token=$(grep -o 'dga_[0-9a-f]*' "$dir/hub-init.txt")

echo "demo: district $district edge in $dir/edge, enrolled at $url"
edge init --district "$district" > /dev/null
code=$(hub node enrol --district "$district" --json | sed -n 's/.*"code": *"\([^"]*\)".*/\1/p')
edge enrol --hub "$url" --code "$code"

echo "demo: generating $batches x $pages scanned pages ..."
# One folder more than the batches synced: it is left for the web UI.
"$target/dangan-fixtures" district "$dir/scans" --batches "$((batches + 1))" --pages "$pages" > /dev/null
for folder in "$dir"/scans/batch-*; do
  number="${folder##*-}"
  if [ "$((10#$number))" -gt "$batches" ]; then
    # Scanned, waiting for QC in the browser.
    edge ingest --batch "$district-demo-qc" "$folder"
    edge batch scanned "$district-demo-qc" > /dev/null
    continue
  fi
  batch="$district-demo-$number"
  edge ingest --batch "$batch" "$folder"
  edge batch accept "$batch" --reason "demo: no QC in the demo"
done

# Demo users for the web UI (a demo password, printed below; never reuse it).
password="${DANGAN_DEMO_PASSWORD:-dangan-demo}"
for user in "caozuo operator" "zhijian inspector" "guanli admin"; do
  set -- $user
  printf '%s\n' "$password" | edge user add "$1" --role "$2" > /dev/null
done

edge sync --now
echo
hub reconcile
echo
cat <<EOF
demo: hub $url, edge $dir/edge (district $district).
  dangan-edge --data $dir/edge batch list
  dangan-hub --data $dir/hub reconcile --json
  curl -H 'Authorization: Bearer $admin_token' $url/api/v1/reconcile
EOF
if [ "${DANGAN_DEMO_EXIT:-0}" = 1 ]; then
  exit 0
fi
edge_listen="${DANGAN_DEMO_EDGE_LISTEN:-127.0.0.1:8720}"
"$target/dangan-edge" --data "$dir/edge" serve --listen "$edge_listen" 2> "$dir/edge.log" &
pids+=($!)
echo "demo: hub and edge running (logs in $dir/*.log); Ctrl-C stops both."
echo "demo: the edge's web UI is http://$edge_listen/ — log in as caozuo (operator),"
echo "      zhijian (inspector) or guanli (admin), password $password; batch $district-demo-qc"
echo "      waits for QC. The JSON API is under /api/v1 (OpenAPI at /api/v1/openapi.json)."
wait
