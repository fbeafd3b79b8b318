// The ingest server down for a whole minute while the edge (workerd) keeps taking traffic:
// every event the edge answered 202 for arrives after the server returns, exactly once.
//
// Visitors (their own IP and User-Agent each) send a page view, a custom event or a batch of
// both every 600 ms or so for `OUTAGE_MS` while the ingest server is stopped, plus a few
// before and after. The edge runs with the production retry delay (10 s, doubling), so the
// last deliveries come well after the server is back. `TALLY_EDGE_OUTAGE_MS` changes the
// length of the outage (default 60 000).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ingest, Edge, tempDir, body, pageview, waitFor, sleep, SITE } from './harness.mjs';

const OUTAGE_MS = Number(process.env.TALLY_EDGE_OUTAGE_MS || 60_000);
// Visitors, each under the edge's per-IP limit of 120 requests a minute (about 100).
const VISITORS = 16;
let ingest;
let edge;

before(async () => {
  const dir = tempDir();
  ingest = new Ingest(dir);
  ingest.cli('site', 'add', SITE);
  await ingest.start();
  edge = new Edge(dir);
  await edge.start(ingest.base, { RETRY_BASE_DELAY_S: '10' });
});

after(async () => {
  await edge?.stop();
  await ingest?.stop();
});

const visitor = (i) => ({
  ip: `198.51.100.${10 + i}`,
  ua: `Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.${i}`,
});

/** Sends a request of one to three events for visitor `i`; returns the ids the edge took. */
async function send(i, n) {
  const evs = [pageview(`/outage/${i}/${n}`)];
  if (n % 3 === 1) evs.push({ ...pageview(`/outage/${i}/${n}`), kind: 'event', name: 'Signup', props: { n } });
  if (n % 5 === 2) evs.push({ ...pageview(`/outage/${i}/${n}`), kind: 'engagement', engaged_ms: 1500 });
  const res = await edge.post(body(evs), visitor(i));
  assert.equal(res.status, 202, await res.text());
  return evs.map((e) => e.id);
}

/** Each visitor sends one request every ~600 ms until `until`; returns every id taken. */
async function traffic(until) {
  const ids = [];
  await Promise.all(
    Array.from({ length: VISITORS }, async (_, i) => {
      for (let n = 0; Date.now() < until; n++) {
        ids.push(...(await send(i, n)));
        await sleep(550 + Math.random() * 100);
      }
    }),
  );
  return ids;
}

test(`the ingest server down for ${OUTAGE_MS / 1000} s under steady traffic: everything arrives once`, async () => {
  const before = await traffic(Date.now() + 2_000);
  await waitFor(() => ingest.events().length >= before.length, { what: 'the events sent before the outage' });

  await ingest.stop();
  const stoppedAt = Date.now();
  const during = await traffic(stoppedAt + OUTAGE_MS);
  await ingest.start();
  const restartedAt = Date.now();
  const afterIds = await traffic(restartedAt + 2_000);

  const sent = [...before, ...during, ...afterIds];
  assert.equal(new Set(sent).size, sent.length);
  await waitFor(
    () => {
      const stored = new Set(ingest.events().map((e) => e.id));
      return sent.every((id) => stored.has(id));
    },
    { timeoutMs: 240_000, intervalMs: 2_000, what: 'every acknowledged event' },
  );
  const arrivedAfterS = (Date.now() - restartedAt) / 1000;

  const counts = new Map();
  for (const e of ingest.events()) counts.set(e.id, (counts.get(e.id) || 0) + 1);
  const expected = new Set(sent);
  assert.deepEqual([...counts.keys()].filter((id) => !expected.has(id)), [], 'nothing stored that was not sent');
  assert.deepEqual(sent.filter((id) => counts.get(id) !== 1), [], 'every event stored exactly once');
  console.log(
    `outage ${((restartedAt - stoppedAt) / 1000).toFixed(0)} s: sent and acknowledged ${sent.length} ` +
      `(${during.length} during the outage), stored ${counts.size}, each once; ` +
      `all in ${arrivedAfterS.toFixed(0)} s after the restart`,
  );
});
