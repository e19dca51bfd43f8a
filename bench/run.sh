#!/usr/bin/env bash
# Runs every benchmark and rewrites docs/BENCHMARKS.md. Usage: npm run bench [-- name…]
set -euo pipefail
cd "$(dirname "$0")/.."
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(core haproxy scale memory outage swarm watch history topology)
npm run build --silent
for b in "${benches[@]}"; do
  echo "== bench/$b.ts" >&2
  npx tsx "bench/$b.ts"
done
