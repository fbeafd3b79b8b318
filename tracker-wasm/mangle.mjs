// Names t.js's variables for gzip: node tracker-wasm/mangle.mjs IN OUT [TRIES]
//
// terser's mangler gives the n-th name of each scope the n-th letter of a list: the letters
// sorted by how often the rest of the code uses them. Which letter each name gets changes
// how well gzip finds repeats, so this is a hill climb over that list: from terser's own
// order, TRIES (default 3000) random swaps of two letters (one among the first 20, the
// ones used), each kept when the output's gzip -9 is no larger. The random numbers come from
// a fixed seed, so the output is the same on every machine.
import fs from 'node:fs';
import zlib from 'node:zlib';
import { minify } from 'terser';

const [input, output, tries = '3000'] = process.argv.slice(2);
const code = fs.readFileSync(input, 'utf8');
const leading = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ$_'];
const digits = [...'0123456789'];

// terser's own list (as its `base54`: it counts the characters of what it does not rename,
// then sorts), with the letters at positions i and swap[i] exchanged.
const names = (swaps) => {
  const count = new Map();
  let chars;
  return {
    reset: () => [...leading, ...digits].forEach((c) => count.set(c, 0)),
    consider: (text, delta) => [...text].forEach((c) => count.has(c) && count.set(c, count.get(c) + delta)),
    sort: () => {
      const sorted = (list) => list.slice().sort((a, b) => count.get(b) - count.get(a));
      chars = sorted(leading);
      for (const [i, j] of swaps) [chars[i], chars[j]] = [chars[j], chars[i]];
      chars.push(...sorted(digits));
    },
    get: (n) => {
      let name = '';
      let base = 54;
      n++;
      do {
        n--;
        name += chars[n % base];
        n = Math.floor(n / base);
        base = 64;
      } while (n > 0);
      return name;
    },
  };
};
const mangle = async (swaps) =>
  (await minify(code, { compress: false, ecma: 2020, mangle: { nth_identifier: names(swaps) } })).code;
const size = async (swaps) => zlib.gzipSync(await mangle(swaps), { level: 9 }).length;

let swaps = [];
let best = await size(swaps);
const first = best;
// A linear congruential generator: the same numbers everywhere.
let seed = 1;
const below = (n) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0), seed % n);
for (let k = 0; k < +tries; k++) {
  const next = [...swaps, [below(20), below(leading.length)]];
  const s = await size(next);
  if (s <= best) [swaps, best] = [next, s];
}
fs.writeFileSync(output, await mangle(swaps));
console.log(`t.js's names chosen for gzip: ${first} -> ${best} bytes`);
