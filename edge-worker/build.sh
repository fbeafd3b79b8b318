#!/usr/bin/env bash
# Builds the worker for wrangler (its [build] command): the wasm through worker-build, with
# the local wasm-bindgen, wasm-opt and esbuild (worker-build would download them otherwise),
# then build/assets/ = the tracker (t.js + wasm from dist/tracker) and _headers.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$here"

# The tests build once, then start `wrangler dev` several times without rebuilding.
if [ "${TALLY_EDGE_SKIP_BUILD:-0}" = 1 ] && [ -f build/index_bg.wasm ] && [ -f build/assets/t.js ]; then
  exit 0
fi

export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$root/node_modules/.bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$(ls "$here"/node_modules/@esbuild/*/bin/esbuild | head -n1)}"

worker-build --release
# worker-build keeps the wasm's name section and optimises lightly; this pass strips it and
# optimises for size (about 30% smaller gzipped).
"$WASM_OPT_BIN" -Oz --converge -tnh --strip-debug --strip-producers \
  --enable-bulk-memory --enable-reference-types --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-multivalue --enable-mutable-globals \
  build/index_bg.wasm -o build/index_bg.wasm

tracker="${TALLY_TRACKER_DIR:-$root/dist/tracker}"
if [ ! -f "$tracker/t.js" ] && [ -z "${TALLY_TRACKER_DIR:-}" ] && [ -x "$root/tracker-wasm/build.sh" ]; then
  "$root/tracker-wasm/build.sh"
fi
if [ ! -f "$tracker/t.js" ]; then
  echo "build.sh: no tracker at $tracker (run tracker-wasm/build.sh)" >&2
  exit 1
fi
rm -rf build/assets
mkdir -p build/assets
cp -R "$tracker"/. build/assets/
cp assets/_headers build/assets/_headers
