// The end-to-end realtime latency, for the benchmark report: the chain on SQLite (ingest
// server, edge worker under workerd, demo site, Chromium), then ROUNDS new visitors, each
// loading a page; for each, the time from its page view request reaching the edge's origin
// until /api/stats/realtime counts it (polled every 50 ms).
//
//   node tests/e2e/latency.mjs            (ROUNDS=5 by default)
//
// The last line is for `bench`: `e2e-realtime-latency-ms median=… max=… rounds=…`.
import { buildAll, startChain, stopChain, realtimeLatency, VISITORS } from './harness.mjs';

const ROUNDS = Number(process.env.ROUNDS || 5);
buildAll();
const chain = await startChain('sqlite');
const figures = [];
try {
  for (let i = 0; i < ROUNDS; i++) {
    // A new User-Agent each round: a new visitor for the realtime count.
    const who = { ...VISITORS.desktop, userAgent: `${VISITORS.desktop.userAgent} Round/${i}` };
    const { ms, visitor } = await realtimeLatency(chain, who, `/?round=${i}`);
    await visitor.close();
    figures.push(ms);
    console.log(`round ${i + 1}: ${Math.round(ms)} ms`);
  }
} finally {
  await stopChain(chain);
}
const sorted = [...figures].sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)];
const max = sorted.at(-1);
console.log(`e2e-realtime-latency-ms median=${Math.round(median)} max=${Math.round(max)} rounds=${ROUNDS}`);
