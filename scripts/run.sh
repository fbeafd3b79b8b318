#!/usr/bin/env bash
# Runs Tally locally: builds the tracker and the ingest server, registers the demo site,
# fills a demo database with 30 days of sample traffic on first run, prints an API key, and
# serves the admin page, the tracker and a demo page on http://localhost:8080/.
set -euo pipefail
cd "$(dirname "$0")/.."

TALLY_SKIP_EDGE=1 TALLY_SKIP_BROWSER=1 bash scripts/setup.sh
bash tracker-wasm/build.sh
bash scripts/build-www.sh
cargo build --release -q -p ingest-server
server=target/release/ingest-server

export DATABASE_URL=${DATABASE_URL:-sqlite://tally-demo.db}
export TALLY_LISTEN=${TALLY_LISTEN:-127.0.0.1:8080}
"$server" site add localhost >/dev/null
if "$server" help demo >/dev/null 2>&1; then
  "$server" demo --site localhost
fi
key=$("$server" key create --label quickstart)
port=${TALLY_LISTEN##*:}
cat <<MSG

  Tally is running.
    admin page   http://localhost:$port/        API key: $key
    demo site    http://localhost:$port/demo/   (each visit shows up on the admin page)
    database     $DATABASE_URL
  Ctrl-C stops it (every acknowledged event is written first).

MSG
exec "$server" serve
