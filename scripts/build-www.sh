#!/usr/bin/env bash
# Copies the chart library (uPlot, from node_modules) into www/vendor/ so that the admin page
# is a self-contained static folder: no CDN, no bundler, nothing to build at run time.
# The copies are committed too, so www/ works on any static host straight from a checkout;
# run this after `npm install` (or a uPlot upgrade in package.json) to refresh them.
# Idempotent: a file is only rewritten when its content changed.
set -euo pipefail
cd "$(dirname "$0")/.."

src=node_modules/uplot
dst=www/vendor

if [ ! -f "$src/dist/uPlot.iife.min.js" ]; then
  echo "build-www: $src not found; run 'npm install' first" >&2
  exit 1
fi

mkdir -p "$dst"
copy() {
  if ! cmp -s "$1" "$2"; then
    cp "$1" "$2"
    echo "build-www: updated $2" >&2
  fi
}
copy "$src/dist/uPlot.iife.min.js" "$dst/uPlot.iife.min.js"
copy "$src/dist/uPlot.min.css" "$dst/uPlot.min.css"
copy "$src/LICENSE" "$dst/uPlot.LICENSE"
