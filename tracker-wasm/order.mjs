// Orders the functions of a wasm module for gzip: node tracker-wasm/order.mjs IN OUT [TRIES]
//
// gzip finds repeats only within its 32 KiB window and codes nearer ones in fewer bits, so
// the order of the function bodies changes the compressed size by a few per cent, with the
// code unchanged. This is a hill climb over that order: from the order binaryen wrote, TRIES
// (default 3000) random swaps and moves of one function, each kept when the module's gzip -9
// is no larger. The random numbers come from a fixed seed, so the output is the same on
// every machine. The module is written back the way `wasm-opt -Oz` writes it (Stack IR,
// optimised), the features kept to MVP plus the saturating float-to-int conversions.
import fs from 'node:fs';
import zlib from 'node:zlib';
import binaryen from 'binaryen';

const [input, output, tries = '3000'] = process.argv.slice(2);
const features = binaryen.Features.MVP | binaryen.Features.NontrappingFPToInt;
binaryen.setOptimizeLevel(2);
binaryen.setShrinkLevel(2);
binaryen.setGenerateStackIR(true);
binaryen.setOptimizeStackIR(true);

const module = binaryen.readBinary(fs.readFileSync(input));
module.setFeatures(features);
// The text, as its top-level forms: each function is one (its lines up to the next form).
const head = [];
const funcs = [];
for (const line of module.emitText().split('\n').slice(1, -2)) {
  if (line.startsWith(' (func ')) funcs.push([line]);
  else if (line.startsWith(' (')) head.push(line);
  else funcs.at(-1).push(line);
}
module.dispose();

const build = (order) => {
  const m = binaryen.parseText(`(module\n${head.join('\n')}\n${order.map((i) => funcs[i].join('\n')).join('\n')}\n)`);
  m.setFeatures(features);
  const wasm = m.emitBinary();
  m.dispose();
  return wasm;
};
const size = (order) => zlib.gzipSync(build(order), { level: 9 }).length;

let order = funcs.map((_, i) => i);
let best = size(order);
const first = best;
// A linear congruential generator: the same numbers everywhere.
let seed = 1;
const below = (n) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0), seed % n);
for (let k = 0; k < +tries; k++) {
  const next = order.slice();
  const [i, j] = [below(next.length), below(next.length)];
  if (below(2)) [next[i], next[j]] = [next[j], next[i]];
  else next.splice(j, 0, ...next.splice(i, 1));
  const s = size(next);
  if (s <= best) [order, best] = [next, s];
}
fs.writeFileSync(output, build(order));
console.log(`${funcs.length} functions ordered for gzip: ${first} -> ${best} bytes`);
