#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting and lints, unit and integration tests
# (SQLite and PostgreSQL), the tracker and the admin page in headless Chromium, the edge
# worker under workerd, and the whole chain end to end (tests/e2e/). Installs what it needs
# first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*" >&2; }

step "tools"
bash scripts/setup.sh

step "PostgreSQL on 127.0.0.1:5432"
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "build: tracker assets, admin page vendor files, ingest server"
bash tracker-wasm/build.sh
bash scripts/build-www.sh
cargo build -p ingest-server

step "Rust tests (unit, router, real servers on SQLite and PostgreSQL)"
cargo test --workspace

step "browser tests (headless Chromium, real ingest server)"
node --test --test-concurrency=1 tests/browser/

step "admin page against the fixture API (hostile strings in every field, missing endpoints, failures)"
TALLY_ADMIN_TEST=fixture node --test tests/browser/admin.test.mjs

step "edge worker under workerd"
bash edge-worker/test.sh

step "end to end: Chromium → edge worker (workerd) → ingest server (SQLite, PostgreSQL) → stats API and admin page"
node --test --test-concurrency=1 tests/e2e/
