#!/usr/bin/env bash
# Builds the tracker's release assets into dist/tracker/ (or $TALLY_TRACKER_OUT):
#   t.js          the loader, which instantiates the wasm itself, minified (short-cached)
#   t-HASH.wasm   the wasm, content-hashed so that it can be cached immutably
# Needs what scripts/setup.sh installs: the wasm32 target and the npm tools (wasm-opt from
# binaryen, esbuild, terser). No wasm-bindgen: the wasm exports one C-ABI function (src/abi.rs).
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${TALLY_TRACKER_OUT:-dist/tracker}
TARGET=${CARGO_TARGET_DIR:-target}
WORK=$TARGET/tracker-wasm

for tool in node_modules/.bin/wasm-opt node_modules/.bin/esbuild node_modules/.bin/terser; do
  [ -x "$tool" ] || { echo "$tool is missing: run scripts/setup.sh (npm ci)" >&2; exit 1; }
done

# The wasm profile (opt-level z, LTO, panic abort, see Cargo.toml). The state is placed from address 8
# with a small stack after it (rather than after a 1 MiB stack), so that its addresses are
# short numbers in the code. The memory is exported as `m` (t.js reads `x.m.buffer`).
cargo rustc --quiet -p tracker-wasm --lib --crate-type cdylib --target wasm32-unknown-unknown \
  --profile wasm -- \
  -C link-arg=--no-stack-first -C link-arg=-zstack-size=4096 -C link-arg=--global-base=8 \
  -C link-arg=--export-memory=m

rm -rf "$WORK"
mkdir -p "$WORK"
# The linker also exports __data_end and __heap_base, which t.js never reads: removed.
# --ignore-implicit-traps lets binaryen move loads and stores as if they could not trap:
# every access is to the state (fixed addresses, or its byte array through a mask), inside
# the memory.
# The features are those the code uses, and no more (MVP and the saturating float-to-int
# conversions): rustc's target-features section, which binaryen would otherwise follow, is
# taken out first. Without bulk memory, which nothing here uses, the output has no DataCount
# section.
node_modules/.bin/wasm-opt --all-features --strip-target-features \
  "$TARGET/wasm32-unknown-unknown/wasm/tracker_wasm.wasm" -o "$WORK/linked.wasm"
# After a first -Oz, the control flow is flattened and rebuilt by binaryen's relooper, which
# finds a smaller shape for the loops than rustc's (−13 bytes of gzip), then optimised again,
# three times (each -Oz still finds something after the one before: −8); --converge repeats
# the whole sequence while the module shrinks.
node_modules/.bin/wasm-opt --remove-exports --pass-arg="remove-exports@__*" --ignore-implicit-traps --zero-filled-memory \
  -Oz --flatten --rereloop -Oz -Oz -Oz --converge --strip-debug --strip-producers \
  --mvp-features --enable-nontrapping-float-to-int \
  "$WORK/linked.wasm" -o "$WORK/opt.wasm"
# The functions ordered for gzip (a search with a fixed seed, see order.mjs): −21.
node tracker-wasm/order.mjs "$WORK/opt.wasm" "$WORK/t.wasm"

# Named by its content: 8 characters of its SHA-256 in base64url (48 bits).
wasm="t-$(node -p 'require("crypto").createHash("sha256").update(require("fs").readFileSync(process.argv[1])).digest("base64url").slice(0, 8)' "$WORK/t.wasm").wasm"
# The address of the input buffer, which t.js writes to: IN past the start of the state's
# byte array, whose first bytes are the constant text, the wasm's one data segment.
text=$(node_modules/.bin/wasm-dis "$WORK/t.wasm" | sed -n 's/^ *(data [^(]*(i32.const \([0-9]*\)) "\\",\\"ts\\":.*/\1/p')
[ -n "$text" ] || { echo "the wasm's data segment does not start with the constant text" >&2; exit 1; }
in=$(sed -n 's/^pub const IN: usize = \(0x[0-9a-fA-F]*\);$/\1/p' tracker-wasm/src/lib.rs)
[ -n "$in" ] || { echo "src/lib.rs does not define IN" >&2; exit 1; }
# esbuild minifies; terser's mangler then names the variables again, with the letters
# chosen for gzip (a search with a fixed seed, see mangle.mjs): −14 bytes.
node_modules/.bin/esbuild tracker-wasm/js/loader.js --minify --target=es2020 \
  --legal-comments=none --log-level=warning --define:WASM_FILE="\"$wasm\"" \
  --define:IO_ADDRESS=$((text + in)) --outfile="$WORK/t.min.js"
node tracker-wasm/mangle.mjs "$WORK/t.min.js" "$WORK/t.js"

# Replace the output directory's contents in one step each, so a server reading it never
# sees a t.js that points at a wasm file not there yet.
mkdir -p "$OUT"
cp "$WORK/t.wasm" "$OUT/$wasm"
cp "$WORK/t.js" "$OUT/t.js.tmp" && mv "$OUT/t.js.tmp" "$OUT/t.js"
find "$OUT" -maxdepth 1 -name 't-*.wasm' ! -name "$wasm" -delete

total=0
for f in "$OUT/t.js" "$OUT/$wasm"; do
  gz=$(gzip -9 -c "$f" | wc -c)
  total=$((total + gz))
  printf '%-32s %6d bytes, %5d gzip -9\n' "$f" "$(wc -c <"$f")" "$gz"
done
printf '%-32s %6s        %5d gzip -9 (budget 2560)\n' total '' "$total"
