// The tracker in real headless Chromium against a real ingest server: a page on
// http://example.com:PORT with t.js loading from http://collector.test:PORT2 (a recording proxy
// in front of the ingest server). Every check reads the data the ingest server stored.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { buildOnce, startIngest, startCollector, startSite, snippet, launch, until, sleep, TRACKER_DIR } from './helpers.mjs';

let ingest, collector, site, plain;
const pages = {};

before(async () => {
  buildOnce();
  ingest = await startIngest();
  collector = await startCollector(ingest.base);
  site = await startSite(pages);
  const c = collector.port;
  pages['/'] = snippet(c, '', "tally('event','Signup',{plan:'pro',seats:3,trial:true,nested:{a:1}});tally('user',true)");
  pages['/about'] = pages['/'];
  for (const name of ['dnt', 'gpc', 'ignore', 'webdriver', 'excluded', 'local']) pages[`/${name}`] = snippet(c, 'data-exclude="/excluded,/admin/*"');
  pages['/local-allowed'] = snippet(c, 'data-allow-local');
  pages['/spa-off'] = snippet(c, 'data-spa="off"');
  pages['/no-wasm'] = snippet(c);
  // t.js from a static server that answers the wasm as application/octet-stream (as some
  // servers and CDNs do), the events to the collector.
  plain = await startPlainServer();
  pages['/wrong-type'] = snippet(c, `data-api="http://collector.test:${c}/api/event"`).replace(
    `collector.test:${c}/t.js`,
    `collector.test:${plain.port}/t.js`,
  );
});

after(async () => {
  await plain?.stop();
  await collector?.stop();
  await site?.stop();
  await ingest?.stop();
});

const url = (p) => `http://example.com:${site.port}${p}`;

/** Serves dist/tracker (CORS open) with every file as application/octet-stream; records the
 * paths requested. */
async function startPlainServer() {
  const requests = [];
  const server = http.createServer((req, res) => {
    const name = path.basename(new URL(req.url, 'http://x').pathname);
    requests.push(name);
    let body;
    try {
      body = readFileSync(path.join(TRACKER_DIR, name));
    } catch {
      return res.writeHead(404).end();
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'access-control-allow-origin': '*' }).end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { port: server.address().port, requests, stop: () => new Promise((r) => server.close(r)) };
}

test('a visit: page view, queued event with props, SPA navigations, outbound click, engagement', async () => {
  const { browser, context } = await launch();
  try {
    const page = await context.newPage();
    const problems = [];
    page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
    page.on('pageerror', (e) => problems.push(String(e)));

    await page.goto(url('/?utm_source=news&token=secret#top'), { waitUntil: 'load' });
    await until(() => collector.posts().length >= 1);
    await sleep(1300);
    await page.evaluate(() => history.pushState({}, '', '/about'));
    await sleep(1200);
    await page.evaluate(() => history.back());
    await sleep(1200);

    // Nothing of the tracker on the page: no cookies, nothing stored.
    assert.deepEqual(await context.cookies(), []);
    assert.deepEqual(await page.evaluate(() => [localStorage.length, sessionStorage.length]), [0, 0]);

    await page.click('#out');
    await page.waitForURL(/elsewhere\.test/);
    await page.close({ runBeforeUnload: true });

    const events = await until(() => {
      const e = ingest.events();
      return e.some((x) => x.kind === 'engagement') && e.some((x) => x.name === 'Outbound Link: Click') ? e : null;
    });
    assert.ok(events, `stored: ${JSON.stringify(ingest.events())}`);
    const views = events.filter((e) => e.kind === 'pageview').map((e) => e.path);
    assert.deepEqual(views, ['/', '/about', '/']);
    const first = events.find((e) => e.kind === 'pageview');
    assert.equal(first.utm_source, 'news');

    const signup = events.find((e) => e.name === 'Signup');
    assert.ok(signup, 'the queued custom event');
    const props = typeof signup.props === 'string' ? JSON.parse(signup.props) : signup.props;
    // Stored as text by the server; on the wire the types were kept, and `nested` was dropped.
    assert.deepEqual(Object.fromEntries(Object.entries(props).map(([k, v]) => [k, String(v)])), {
      plan: 'pro',
      seats: '3',
      trial: 'true',
    });
    const wire = collector.posts().flatMap((p) => JSON.parse(p.body).events).find((e) => e.name === 'Signup');
    assert.deepEqual(wire.props, { plan: 'pro', seats: 3, trial: true });
    // Replayed in order: the event came before tally('user', true) (anonymous: no flag sent,
    // and stored as not logged in), the SPA page views after.
    assert.equal(wire.user, undefined);
    assert.equal(events.find((e) => e.name === 'Signup').user, null);
    const about = collector.posts().flatMap((p) => JSON.parse(p.body).events).find((e) => e.url.endsWith('/about'));
    assert.equal(about.user, true);
    assert.equal(events.find((e) => e.path === '/about').user, true);

    const out = events.find((e) => e.name === 'Outbound Link: Click');
    const outProps = typeof out.props === 'string' ? JSON.parse(out.props) : out.props;
    assert.equal(outProps.url, `http://elsewhere.test:${site.port}/landing`);

    const engaged = events.filter((e) => e.kind === 'engagement');
    assert.ok(engaged.length >= 2, 'engagement on the SPA navigation and on leaving');
    assert.ok(engaged.every((e) => e.engaged_ms >= 1000 && e.engaged_ms < 60000), JSON.stringify(engaged));

    // Every event sent carries its own id, and the visit went out in fewer requests than events.
    const sent = collector.posts().flatMap((p) => JSON.parse(p.body).events);
    assert.equal(new Set(sent.map((e) => e.id)).size, sent.length);
    assert.ok(sent.every((e) => /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/.test(e.id)));
    assert.ok(
      collector.posts().length < sent.length,
      `${collector.posts().length} requests for ${sent.length} events`,
    );
    assert.ok(collector.posts().every((p) => p.headers['content-type'].startsWith('text/plain')));
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

async function sendsNothing(path, { automation = false, init, base = url('') } = {}) {
  const { browser, context } = await launch({ automation });
  try {
    const page = await context.newPage();
    if (init) await page.addInitScript(init);
    const before = collector.posts().length;
    const assets = collector.requests.length;
    await page.goto(base + path, { waitUntil: 'load' });
    // t.js was loaded (it does not even fetch the wasm on a page it does not track, except
    // for an excluded path), then nothing was sent, even on leaving.
    await until(() => collector.requests.length >= assets + 1, 5000);
    await page.evaluate(() => tally('event', 'Nope'));
    await sleep(1500);
    await page.close({ runBeforeUnload: true });
    await sleep(500);
    assert.equal(collector.posts().length, before, `requests sent from ${path}`);
    assert.ok(!ingest.events().some((e) => e.path === path));
  } finally {
    await browser.close();
  }
}

test('Do Not Track: nothing is sent', () =>
  sendsNothing('/dnt', { init: () => Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' }) }));

test('Global Privacy Control: nothing is sent', () =>
  sendsNothing('/gpc', { init: () => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true }) }));

test('localStorage.tally_ignore: nothing is sent', () =>
  sendsNothing('/ignore', { init: () => localStorage.setItem('tally_ignore', 'true') }));

test('automated browser (navigator.webdriver): nothing is sent', () => sendsNothing('/webdriver', { automation: true }));

test('data-exclude: nothing is sent for an excluded page', () => sendsNothing('/excluded'));

test('local page: nothing is sent', () => sendsNothing('/local', { base: `http://localhost:${site.port}` }));

test('local page with data-allow-local: tracked', async () => {
  const { browser, context } = await launch();
  try {
    const page = await context.newPage();
    await page.goto(`http://localhost:${site.port}/local-allowed`, { waitUntil: 'load' });
    // The collector refuses the page view (localhost is not example.com), but it was sent.
    const sent = await until(() =>
      collector.posts().flatMap((p) => JSON.parse(p.body).events).find((e) => e.url.includes('/local-allowed')),
    );
    assert.equal(sent?.url, `http://localhost:${site.port}/local-allowed`);
  } finally {
    await browser.close();
  }
});

test('data-spa="off": history navigations are not page views, tally(\'pageview\') is', async () => {
  const { browser, context } = await launch();
  try {
    const page = await context.newPage();
    await page.goto(url('/spa-off'), { waitUntil: 'load' });
    // The tracker starts once its wasm is instantiated, which can be after `load`: until then
    // there is no history listener to test (and the first page view would take the pushed URL).
    await page.waitForFunction(() => !String(tally).includes('tally.q'));
    await page.evaluate(() => history.pushState({}, '', '/spa-off/pushed'));
    await page.evaluate(() => tally('pageview', { url: '/spa-off/manual' }));
    await page.close({ runBeforeUnload: true });
    const views = await until(() => {
      const v = ingest.events().filter((e) => e.kind === 'pageview' && e.path.startsWith('/spa-off'));
      return v.length >= 2 ? v : null;
    });
    await sleep(1500);
    // (In any order: both may be recorded in the same millisecond, when the calls were
    // queued before t.js started.)
    assert.deepEqual(
      ingest
        .events()
        .filter((e) => e.kind === 'pageview' && e.path.startsWith('/spa-off'))
        .map((e) => e.path)
        .sort(),
      ['/spa-off', '/spa-off/manual'],
      JSON.stringify(views),
    );
  } finally {
    await browser.close();
  }
});

test('the wasm served without application/wasm: instantiated from its bytes, fetched once', async () => {
  const { browser, context } = await launch();
  try {
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    await page.goto(url('/wrong-type'), { waitUntil: 'load' });
    const view = await until(() => ingest.events().find((e) => e.kind === 'pageview' && e.path === '/wrong-type'));
    assert.ok(view, `stored: ${JSON.stringify(ingest.events().map((e) => e.path))}`);
    await page.evaluate(() => tally('event', 'Fallback'));
    assert.ok(await until(() => ingest.events().find((e) => e.name === 'Fallback' && e.path === '/wrong-type')));
    assert.deepEqual(plain.requests.filter((f) => f.endsWith('.wasm')).length, 1, JSON.stringify(plain.requests));
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('a failed send is sent again, the same body, and counted once', async () => {
  // Between the page and the collector: the first request is answered 503; the second
  // reaches the collector (which stores it) but its answer is cut off, a network error to
  // the page; the third goes through, and the collector finds its events already stored.
  const bodies = [];
  const flaky = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      bodies.push(body.toString());
      if (bodies.length === 1) {
        // The connection closed after it, so that the next request comes on a new one (the
        // browser itself would send a request again that failed on a reused connection).
        return res
          .writeHead(503, { 'access-control-allow-origin': '*', 'retry-after': '1', connection: 'close' })
          .end();
      }
      const up = http.request(
        `http://127.0.0.1:${collector.port}${req.url}`,
        { method: 'POST', headers: { ...req.headers, host: `collector.test:${collector.port}` } },
        (r) => {
          if (bodies.length === 2) return r.resume().on('end', () => req.socket.destroy());
          res.writeHead(r.statusCode, r.headers);
          r.pipe(res);
        },
      );
      up.end(body);
    });
  });
  await new Promise((r) => flaky.listen(0, '127.0.0.1', r));
  pages['/flaky'] = snippet(collector.port, `data-api="http://collector.test:${flaky.address().port}/api/event"`);
  const { browser, context } = await launch();
  try {
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    await page.goto(url('/flaky'), { waitUntil: 'load' });
    assert.ok(await until(() => bodies.length >= 3), `requests: ${bodies.length}`);
    assert.equal(bodies[1], bodies[0], 'sent again as it was');
    assert.equal(bodies[2], bodies[0], 'sent again as it was');
    const posted = collector.posts().filter((p) => p.body === bodies[0]);
    assert.equal(posted.length, 2, 'the second and third tries reached the collector');
    await sleep(1000);
    const views = ingest.events().filter((e) => e.kind === 'pageview' && e.path === '/flaky');
    assert.equal(views.length, 1, JSON.stringify(views));
    assert.equal(bodies.length, 3, 'nothing more once it went through');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await new Promise((r) => flaky.close(r));
  }
});

test('without WebAssembly: no error, tally stays the stub, nothing is sent', async () => {
  const { browser, context } = await launch();
  try {
    const page = await context.newPage();
    await page.addInitScript(() => delete window.WebAssembly);
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    const before = collector.posts().length;
    await page.goto(url('/no-wasm'), { waitUntil: 'load' });
    await page.evaluate(() => tally('event', 'Nope'));
    await sleep(1500);
    assert.equal(await page.evaluate(() => tally.q.length), 1, 'the stub still queues');
    await page.close({ runBeforeUnload: true });
    await sleep(500);
    assert.equal(collector.posts().length, before);
    assert.ok(!ingest.events().some((e) => e.path === '/no-wasm'));
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
