#!/usr/bin/env bash
# Builds the worker and the ingest server, then runs the edge worker's tests: the pure logic
# natively (cargo test -p tally-edge-model) and the built worker under workerd (wrangler dev)
# against the real ingest server (node --test test/).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

(cd "$root" && cargo test -q -p tally-edge-model)
(cd "$root" && cargo build -q -p ingest-server)
[ -d "$here/node_modules" ] || (cd "$here" && npm ci --no-audit --no-fund)
(cd "$here" && ./build.sh)
cd "$here"
node --test --test-concurrency=1 test/*.test.mjs
