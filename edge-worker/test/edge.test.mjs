// The built worker under workerd (`wrangler dev`) against the real ingest server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ingest, Edge, tempDir, body, pageview, sign, waitFor, sleep, SITE, SECRET } from './harness.mjs';

const IP = '203.0.113.77';
const UA = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 UniqueMarker-7f3a9c';
let ingest;
let edge;
let key;
const sent = [];

before(async () => {
  const dir = tempDir();
  ingest = new Ingest(dir);
  ingest.cli('site', 'add', SITE);
  key = ingest.cli('key', 'create').trim().split(/\s+/).pop();
  await ingest.start();
  edge = new Edge(dir);
  await edge.start(ingest.base);
});

after(async () => {
  await edge?.stop();
  await ingest?.stop();
});

const storedIds = () => new Set(ingest.events().map((e) => e.id));

test('serves the tracker with its content types and long-lived caching', async () => {
  const js = await fetch(`${edge.base}/t.js`);
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type'), /javascript/);
  assert.match(js.headers.get('cache-control'), /max-age=\d{5,}/);
  const src = await js.text();
  const wasmName = src.match(/t-[\w-]+\.wasm/)?.[0];
  assert.ok(wasmName, 't.js names its wasm');
  const wasm = await fetch(`${edge.base}/${wasmName}`);
  assert.equal(wasm.status, 200);
  assert.equal(wasm.headers.get('content-type'), 'application/wasm');
  assert.equal(wasm.headers.get('access-control-allow-origin'), '*');
  assert.match(wasm.headers.get('cache-control'), /max-age=\d{5,}/);
});

test('an event arrives once, within about a second, enriched at the edge', async () => {
  const ev = pageview('/hello', { referrer: 'https://news.ycombinator.com/' });
  sent.push(ev.id);
  const t0 = Date.now();
  const res = await edge.post(body([ev]), { ip: IP, ua: UA });
  assert.equal(res.status, 202);
  assert.deepEqual(await res.json(), { accepted: 1, duplicates: 0 });
  assert.equal(res.headers.get('access-control-allow-origin'), 'https://example.com');
  const stored = await waitFor(() => ingest.events().find((e) => e.id === ev.id), { what: 'the event' });
  const lagMs = Date.now() - t0;
  assert.ok(lagMs < 3000, `stored after ${lagMs} ms`);
  assert.equal(stored.path, '/hello');
  assert.equal(stored.browser, 'Firefox');
  assert.equal(stored.os, 'Linux');
  assert.equal(stored.device, 'desktop');
  assert.match(stored.visitor, /^[0-9a-f]{16}$/);
  assert.match(stored.batch, /^edge-/);

  // The same request again, and the same event in a later request: still one event.
  assert.equal((await edge.post(body([ev]), { ip: IP, ua: UA })).status, 202);
  const second = pageview('/second');
  sent.push(second.id);
  assert.equal((await edge.post(body([ev, second]), { ip: IP, ua: UA })).status, 202);
  await waitFor(() => storedIds().has(second.id), { what: 'the second event' });
  await sleep(1500);
  const all = ingest.events().filter((e) => e.id === ev.id);
  assert.equal(all.length, 1);
  // Same IP, UA and day: same visitor.
  assert.equal(ingest.events().find((e) => e.id === second.id).visitor, stored.visitor);
});

test('refuses what the ingest server refuses, with the same statuses', async () => {
  const bad = await edge.post('{"site":', {});
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /malformed/);
  const badEvent = await edge.post(body([{ ...pageview(), id: 'nope' }]));
  assert.equal(badEvent.status, 400);
  assert.match((await badEvent.json()).error, /events\[0\]\.id/);
  const big = await edge.post(body([pageview('/' + 'x'.repeat(70 * 1024))]));
  assert.equal(big.status, 413);
  const unknown = await edge.post(body([{ ...pageview(), url: 'https://other.test/' }], 'other.test'), {
    origin: 'https://other.test',
  });
  assert.equal(unknown.status, 403);
  assert.equal(unknown.headers.get('access-control-allow-origin'), null);
  const foreignOrigin = await edge.post(body([pageview()]), { origin: 'https://evil.test' });
  assert.equal(foreignOrigin.status, 403);
  assert.equal(foreignOrigin.headers.get('access-control-allow-origin'), null);
  const foreignUrl = await edge.post(body([{ ...pageview(), url: 'https://evil.test/' }]));
  assert.equal(foreignUrl.status, 403);
  const preflight = await fetch(`${edge.base}/api/event`, {
    method: 'OPTIONS',
    headers: { Origin: 'https://www.example.com', 'Access-Control-Request-Method': 'POST' },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get('access-control-allow-origin'), 'https://www.example.com');
});

/** The ingest server's pipeline view of the site: drops of the last hour by reason. */
async function dropped() {
  const res = await fetch(`${ingest.base}/api/pipeline?site=${SITE}`, { headers: { Authorization: `Bearer ${key}` } });
  assert.equal(res.status, 200);
  return (await res.json()).dropped;
}

test('bots are dropped at the edge', async () => {
  // Refusals of earlier tests travel with the next queued request: deliver them first.
  const flush = pageview('/before-bots');
  sent.push(flush.id);
  assert.equal((await edge.post(body([flush]), { ip: IP, ua: UA })).status, 202);
  await waitFor(() => storedIds().has(flush.id), { what: 'the first event' });
  await sleep(1500); // the ingest server writes drop counters every second
  const before = await dropped();
  const ev = pageview('/bot');
  const res = await edge.post(body([ev]), { ua: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)' });
  assert.equal(res.status, 202);
  assert.equal((await res.json()).accepted, 0);
  const headless = pageview('/headless');
  const res2 = await edge.post(body([headless]), { ua: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36' });
  assert.equal((await res2.json()).accepted, 0);
  await sleep(2500);
  const ids = storedIds();
  assert.ok(!ids.has(ev.id) && !ids.has(headless.id));
  // Counted on the ingest server's pipeline view, with what the edge refused since.
  const malformed = await edge.post('{"site":', {});
  assert.equal(malformed.status, 400);
  const unknown = await edge.post(body([pageview('/x')], 'unknown.example'), { origin: null });
  assert.equal(unknown.status, 403);
  const carrier = pageview('/after-refusals');
  sent.push(carrier.id);
  assert.equal((await edge.post(body([carrier]), { ip: IP, ua: UA })).status, 202);
  const after = await waitFor(
    async () => {
      const d = await dropped();
      return d.bot - before.bot >= 2 && d.invalid > before.invalid && d.unknown_site > before.unknown_site && d;
    },
    { timeoutMs: 30_000, what: 'the edge drops on the pipeline view' },
  );
  assert.equal(after.bot - before.bot, 2);
  assert.equal(after.invalid - before.invalid, 1);
  assert.equal(after.unknown_site - before.unknown_site, 1);
});

test('with the ingest server stopped, events are accepted and all arrive after it restarts', async () => {
  await ingest.stop();
  const evs = [];
  for (let i = 0; i < 10; i++) {
    const ev = pageview(`/offline/${i}`);
    evs.push(ev.id);
    const res = await edge.post(body([ev]), { ip: IP, ua: UA });
    assert.equal(res.status, 202);
  }
  sent.push(...evs);
  await sleep(4000); // a few failed deliveries
  await ingest.start();
  await waitFor(() => evs.every((id) => storedIds().has(id)), { timeoutMs: 90_000, what: 'all offline events' });
  const counts = new Map();
  for (const e of ingest.events()) counts.set(e.id, (counts.get(e.id) || 0) + 1);
  for (const id of evs) assert.equal(counts.get(id), 1, id);
});

test('a forged, stale or replayed batch sent straight to the ingest server is refused', async () => {
  const ev = { site: SITE, ...pageview('/forged'), visitor: '0123456789abcdef', browser: 'Firefox', os: 'Linux', device: 'desktop', edge_at: Date.now() };
  const text = JSON.stringify({ batch: 'forged-1', events: [ev] });
  const postBatch = (ts, sig) =>
    fetch(`${ingest.base}/api/edge/batch`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Tally-Timestamp': String(ts), 'X-Tally-Signature': sig },
      body: text,
    });
  const now = Math.floor(Date.now() / 1000);
  assert.equal((await postBatch(now, sign(now, text, 'not-the-secret-at-all-000'))).status, 401);
  assert.equal((await postBatch(now - 3600, sign(now - 3600, text))).status, 401);
  const unsigned = await fetch(`${ingest.base}/api/edge/batch`, { method: 'POST', body: text });
  assert.equal(unsigned.status, 401);
  // A correctly signed batch passes once; the identical request again is a replay.
  const sig = sign(now, text);
  assert.equal((await postBatch(now, sig)).status, 200);
  assert.equal((await postBatch(now, sig)).status, 401);
  assert.equal(ingest.events().filter((e) => e.id === ev.id).length, 1);
});

test('the client IP and User-Agent appear nowhere in the ingest database or logs', async () => {
  assert.ok(sent.length >= 12);
  assert.ok(sent.every((id) => storedIds().has(id)));
  await ingest.stop(); // flush the WAL and collect all logs
  const needles = [IP, 'UniqueMarker-7f3a9c', 'rv:128.0'];
  for (const bytes of ingest.databaseBytes()) {
    for (const n of needles) assert.equal(bytes.indexOf(Buffer.from(n)), -1, `database holds ${n}`);
  }
  const logs = ingest.allLogs();
  assert.ok(logs.includes('edge batch'), 'the logs were captured');
  for (const n of needles) assert.ok(!logs.includes(n), `logs hold ${n}`);
  const dump = ingest.cli('events', '--site', SITE);
  for (const n of needles) assert.ok(!dump.includes(n), `events hold ${n}`);
  await ingest.start();
});

test('a client over the per-IP limit gets 429 with Retry-After', async () => {
  const ip = '192.0.2.200';
  const results = await Promise.all(
    Array.from({ length: 140 }, () => edge.post('{}', { ip }).then((r) => [r.status, r.headers.get('retry-after')])),
  );
  const limited = results.filter(([s]) => s === 429);
  assert.ok(limited.length > 0, `statuses: ${[...new Set(results.map(([s]) => s))]}`);
  assert.ok(limited.every(([, ra]) => Number(ra) > 0));
  // Another client is not affected.
  assert.equal((await edge.post('{}', { ip: '192.0.2.201' })).status, 400);
});
