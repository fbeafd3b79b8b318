// Sensitive values do not get past the edge (CONTRACT §3, filtered hop by hop): an event whose
// URL holds credentials, tokens, an e-mail address in the path and a session in its hash
// route, whose referrer has a path and a query, and whose props have sensitive names, is
// queued and forwarded without any of those values, and the ingest server stores exactly
// what it stores for the same event sent straight to it.
//
// The edge's INGEST_URL is a recording proxy in front of the real ingest server: it keeps
// every signed batch the queue consumer forwards. The consumer copies the queued events into
// the batch as they are (model/src/forward.rs), so these batches show what the queue held.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { Ingest, Edge, tempDir, body, ulid, waitFor, freePort, SITE, FIREFOX } from './harness.mjs';

const REDACT = 'coupon';
const URL_SECRETS = 'https://jdoe:pa55w0rd@www.example.com/users/jane.doe@example.com/settings'
  + '?token=tok-9f8e7d&session=sess-1a2b&utm_source=newsletter&utm_campaign=spring+sale&ref=cmp-42'
  + '#/billing?sid=sid-5c6d';
const REFERRER = 'https://mail.example.org/inbox/msg-77?auth=auth-3e4f';
const SECRETS = ['pa55w0rd', 'jdoe', 'jane.doe', 'tok-9f8e7d', 'sess-1a2b', 'cmp-42', 'sid-5c6d',
  'inbox', 'msg-77', 'auth-3e4f', 'pw-hunter2', 'SAVE-50'];

let ingest;
let edge;
let proxy;
const forwarded = [];

function events() {
  const now = Date.now();
  return [
    { id: ulid(), kind: 'pageview', url: URL_SECRETS, referrer: REFERRER, ts: now, screen: 1440 },
    {
      id: ulid(), kind: 'event', name: 'Signup', url: URL_SECRETS, referrer: REFERRER, ts: now + 1,
      props: { plan: 'pro', seats: 3, password: 'pw-hunter2', user_email: 'jane.doe@example.com', coupon: 'SAVE-50' },
    },
  ];
}

before(async () => {
  const dir = tempDir();
  // The ingest server gets the same extra word as the edge.
  process.env.TALLY_REDACT = REDACT;
  ingest = new Ingest(dir);
  ingest.cli('site', 'add', SITE);
  await ingest.start();
  proxy = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const bytes = Buffer.concat(chunks);
    forwarded.push({ path: req.url, body: bytes.toString('utf8') });
    const headers = { ...req.headers };
    delete headers.host;
    delete headers['content-length'];
    delete headers.connection;
    delete headers['transfer-encoding'];
    try {
      const up = await fetch(ingest.base + req.url, {
        method: req.method,
        headers,
        body: req.method === 'GET' ? undefined : bytes,
      });
      res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'text/plain' });
      res.end(Buffer.from(await up.arrayBuffer()));
    } catch {
      res.writeHead(502).end();
    }
  });
  const port = await freePort();
  await new Promise((r) => proxy.listen(port, '127.0.0.1', r));
  edge = new Edge(dir);
  await edge.start(`http://127.0.0.1:${port}`, { TALLY_REDACT: REDACT });
});

after(async () => {
  await edge?.stop();
  await ingest?.stop();
  proxy?.close();
});

/** What the ingest server counts of a stored event. */
const counted = (e) => ({
  kind: e.kind, name: e.name, path: e.path, referrer: e.referrer, utm_source: e.utm_source,
  utm_medium: e.utm_medium, utm_campaign: e.utm_campaign, utm_term: e.utm_term,
  utm_content: e.utm_content, props: e.props,
});

test('the edge queues and forwards no sensitive value, and the counted values are unchanged', async () => {
  const viaEdge = events();
  const res = await edge.post(body(viaEdge));
  assert.equal(res.status, 202);
  assert.deepEqual(await res.json(), { accepted: 2, duplicates: 0 });

  // The same events (new ids) straight to the ingest server, which cleans them itself.
  const direct = events();
  const straight = await fetch(`${ingest.base}/api/event`, {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain', 'User-Agent': FIREFOX, Origin: 'https://example.com' },
    body: JSON.stringify(body(direct)),
  });
  assert.equal(straight.status, 202);

  const ids = [...viaEdge, ...direct].map((e) => e.id);
  const stored = await waitFor(() => {
    const all = ingest.events();
    const found = ids.map((id) => all.find((e) => e.id === id));
    return found.every(Boolean) && found;
  }, { what: 'the four events' });

  // What the edge forwarded (= what its queue held): the events, none of the values.
  const batches = forwarded.filter((f) => f.path === '/api/edge/batch');
  const carrying = batches.filter((b) => viaEdge.every((e) => b.body.includes(e.id)));
  assert.equal(carrying.length >= 1, true, `a forwarded batch holds the events: ${batches.length} batches`);
  for (const b of batches) {
    for (const s of SECRETS) assert.ok(!b.body.includes(s), `a forwarded batch holds ${s}: ${b.body}`);
  }
  const sent = JSON.parse(carrying[0].body).events.filter((e) => e.id === viaEdge[0].id)[0];
  assert.equal(sent.url, 'https://www.example.com/users/:email/settings?utm_source=newsletter&utm_campaign=spring+sale#/billing');
  assert.equal(sent.referrer, 'https://mail.example.org/');
  const custom = JSON.parse(carrying[0].body).events.filter((e) => e.id === viaEdge[1].id)[0];
  assert.deepEqual(custom.props, {
    coupon: '[redacted]', password: '[redacted]', plan: 'pro', seats: 3, user_email: '[redacted]',
  });
  for (const s of SECRETS) assert.ok(!edge.proc.output.includes(s), `the edge's log holds ${s}`);

  // Counted: the same as the ingest server's own cleaning of the original events.
  const [edgePage, edgeCustom, directPage, directCustom] = stored;
  assert.deepEqual(counted(edgePage), counted(directPage));
  assert.deepEqual(counted(edgeCustom), counted(directCustom));
  assert.equal(edgePage.path, '/users/:email/settings#/billing');
  assert.equal(edgePage.utm_source, 'newsletter');
  assert.equal(edgePage.utm_campaign, 'spring sale');
  assert.equal(edgePage.referrer, 'mail.example.org');
  assert.deepEqual(edgeCustom.props, {
    coupon: '[redacted]', password: '[redacted]', plan: 'pro', seats: '3', user_email: '[redacted]',
  });
});
