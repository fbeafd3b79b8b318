#!/usr/bin/env bash
# Builds the worker and the ingest server, then prints the bundle size and the per-request
# cost under workerd (see bench.mjs for how they are measured).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
(cd "$here/.." && cargo build -q -p ingest-server)
(cd "$here" && ./build.sh >/dev/null 2>&1)
cd "$here" && node bench.mjs
