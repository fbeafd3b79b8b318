// The tracker's size budget: t.js + every file it loads ≤ 2560 bytes with gzip -9, with every
// feature of CONTRACT §1 and the instantiateStreaming fallback (tracker-wasm/README.md, "Size",
// has the steps that got it there). A second check keeps the tracker from growing back past
// what it is today, so that a change that costs bytes is a decision, not an accident.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildOnce, TRACKER_DIR } from './helpers.mjs';

export const BUDGET = 2560;
/** Today's size: the tracker may only shrink. */
export const CEILING = 2532;

function measure() {
  buildOnce();
  const files = readdirSync(TRACKER_DIR).filter((f) => f === 't.js' || f.endsWith('.wasm'));
  assert.equal(files.length, 2, `one t.js and one wasm in ${TRACKER_DIR}: ${files}`);
  const js = readFileSync(path.join(TRACKER_DIR, 't.js'), 'utf8');
  const wasm = files.find((f) => f.endsWith('.wasm'));
  assert.ok(js.includes(JSON.stringify(wasm)), 't.js loads the wasm that is there');
  const sizes = files.map((f) => [f, gzipSync(readFileSync(path.join(TRACKER_DIR, f)), { level: 9 }).length]);
  const total = sizes.reduce((a, [, n]) => a + n, 0);
  return { sizes: JSON.stringify(Object.fromEntries(sizes)), total };
}

test(`t.js and its wasm are at most ${BUDGET} bytes gzip -9`, () => {
  const { sizes, total } = measure();
  console.log(`tracker gzip -9: ${sizes}, total ${total}`);
  assert.ok(total <= BUDGET, `gzip -9 sizes ${sizes}, total ${total} > ${BUDGET}`);
});

test(`t.js and its wasm never grow past ${CEILING} bytes gzip -9`, () => {
  const { sizes, total } = measure();
  assert.ok(total <= CEILING, `gzip -9 sizes ${sizes}, total ${total} > ${CEILING}: if the bytes are worth it, raise CEILING`);
});
