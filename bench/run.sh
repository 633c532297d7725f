#!/usr/bin/env bash
# Runs bench/${BENCH:-create}.ts inside a private network namespace, deleted afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-create}
[ -f "bench/$BENCH.ts" ] || { echo "no bench/$BENCH.ts"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench-$BENCH needs root (namespace, bridge, TAPs)"; exit 1; }
NS=banger-bench-$$
ip netns add "$NS"
trap 'for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done; ip netns del "$NS" 2>/dev/null || true' EXIT
ip -n "$NS" link set lo up
BANGER_BENCH_NS=$NS ip netns exec "$NS" npx vite-node "bench/$BENCH.ts" -- "$@"
