// Prints the size of each tracker file (raw and gzip -9) and the main-thread time the tracker
// costs a page in headless Chromium.
//
// Method: the same page is loaded with and without the tracker, RUNS times each, in fresh
// contexts (cold caches). For each load, a PerformanceObserver for `longtask` entries and the
// sum of script evaluation and compile time from the Chrome DevTools Protocol's
// `Performance.getMetrics` (ScriptDuration + TaskDuration, cumulative per page) are read after
// the tracker has sent its page view. The tracker's cost is the median difference of
// ScriptDuration and of TaskDuration between the two kinds of load: the main-thread time spent
// in t.js, in compiling and instantiating the wasm and in the calls into it.
//
// Run: node tracker-wasm/bench.mjs  (builds dist/tracker first if it is missing)
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  buildOnce,
  startIngest,
  startCollector,
  startSite,
  snippet,
  launch,
  until,
  sleep,
  TRACKER_DIR,
} from '../tests/browser/helpers.mjs';

const RUNS = Number(process.env.RUNS || 15);
buildOnce();

let total = 0;
for (const f of readdirSync(TRACKER_DIR).sort()) {
  const raw = readFileSync(path.join(TRACKER_DIR, f));
  const gz = gzipSync(raw, { level: 9 }).length;
  total += gz;
  console.log(`${f.padEnd(24)} ${String(raw.length).padStart(6)} bytes  ${String(gz).padStart(5)} gzip -9`);
}
console.log(`${'total'.padEnd(24)} ${''.padStart(6)}        ${String(total).padStart(5)} gzip -9 (budget 2560)`);

const ingest = await startIngest();
const collector = await startCollector(ingest.base);
const pages = {};
const site = await startSite(pages);
pages['/with'] = snippet(collector.port);
pages['/without'] = snippet(collector.port).replace(/<script defer src=[^>]*><\/script>/, '');

const { browser, context: first } = await launch();
await first.close();
async function measure(p, tracked) {
  const context = await browser.newContext({ userAgent: (await import('../tests/browser/helpers.mjs')).CHROME_UA });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  const before = collector.posts().length;
  await page.goto(`http://example.com:${site.port}${p}`, { waitUntil: 'load' });
  if (tracked) await until(() => collector.posts().length > before, 5000);
  else await sleep(1100);
  const { metrics } = await cdp.send('Performance.getMetrics');
  const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
  await context.close();
  return { script: m.ScriptDuration * 1000, task: m.TaskDuration * 1000 };
}
const median = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
const runs = { with: [], without: [] };
for (let i = 0; i < RUNS; i++) {
  runs.without.push(await measure('/without', false));
  runs.with.push(await measure('/with', true));
}
const d = (k) => median(runs.with.map((r) => r[k])) - median(runs.without.map((r) => r[k]));
console.log(`main-thread time of the tracker (median of ${RUNS} cold loads, with minus without):`);
console.log(`  script evaluation + wasm compile/instantiate: ${d('script').toFixed(2)} ms`);
console.log(`  all main-thread tasks:                         ${d('task').toFixed(2)} ms`);
await browser.close();
await collector.stop();
await site.stop();
await ingest.stop();
