#!/usr/bin/env bash
# Installs every tool the build and the tests need, skipping what is already at the right version.
# Safe to run again; used by the quick start, by `scripts/test.sh` and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130   # must equal the wasm-bindgen crate pinned in Cargo.toml
WORKER_BUILD_VERSION=0.8.7

log() { printf '\n== %s\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if ! wasm-bindgen --version 2>/dev/null | grep -qw "$WASM_BINDGEN_VERSION"; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked 2>/dev/null \
    || cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if [ "${TALLY_SKIP_EDGE:-0}" != 1 ] && ! worker-build --version 2>/dev/null | grep -qw "$WORKER_BUILD_VERSION"; then
  log "installing worker-build $WORKER_BUILD_VERSION"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked 2>/dev/null \
    || cargo install worker-build --version "$WORKER_BUILD_VERSION"
fi

if [ "${TALLY_SKIP_BROWSER:-0}" != 1 ] && ! command -v chromium >/dev/null; then
  log "installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

npm_install() {
  local dir=$1
  [ -f "$dir/package.json" ] || return 0
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "npm ci in $dir"
    (cd "$dir" && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; })
  fi
}
npm_install .
[ "${TALLY_SKIP_EDGE:-0}" = 1 ] || npm_install edge-worker

# The real SMTP server of the ingest server's monitor tests (ingest-server/tests/smtp_sink.py).
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  log "pip install aiosmtpd"
  python3 -m pip install --quiet aiosmtpd==1.4.6 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages aiosmtpd==1.4.6
fi
