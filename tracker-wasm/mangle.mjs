// Names t.js's variables for gzip: node tracker-wasm/mangle.mjs IN OUT [TRIES]
//
// terser's mangler gives the n-th name of each scope the n-th letter of a list, by default
// the letters sorted by how often the code uses them. Which letter each name gets changes
// how well gzip finds repeats, so this is a hill climb over that list: from terser's own
// order, TRIES (default 3000) random swaps of two letters (one among the first 20, the
// ones used), each kept when the output's gzip -9 is no larger. The random numbers come from
// a fixed seed, so the output is the same on every machine.
import fs from 'node:fs';
import zlib from 'node:zlib';
import { minify } from 'terser';

const [input, output, tries = '3000'] = process.argv.slice(2);
const code = fs.readFileSync(input, 'utf8');
const mangle = async (letters) =>
  (
    await minify(code, {
      compress: false,
      ecma: 2020,
      mangle: letters && { nth_identifier: { get: (n) => letters[n % 54] + (n < 54 ? '' : n) } },
    })
  ).code;
const size = async (letters) => zlib.gzipSync(await mangle(letters), { level: 9 }).length;

// terser's order: its own output, the letters by how often they occur in it.
const plain = await mangle(undefined);
const count = (c) => plain.split(c).length;
let letters = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ$_'].sort((a, b) => count(b) - count(a));
let best = await size(letters);
const first = best;
// A linear congruential generator: the same numbers everywhere.
let seed = 1;
const below = (n) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0), seed % n);
for (let k = 0; k < +tries; k++) {
  const next = letters.slice();
  const [i, j] = [below(20), below(next.length)];
  [next[i], next[j]] = [next[j], next[i]];
  const s = await size(next);
  if (s <= best) [letters, best] = [next, s];
}
fs.writeFileSync(output, await mangle(letters));
console.log(`t.js's names chosen for gzip: ${first} -> ${best} bytes`);
