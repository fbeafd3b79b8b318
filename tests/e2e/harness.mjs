// The whole chain, started for real: the ingest server (SQLite in a temp dir, or a fresh
// PostgreSQL database), the edge worker under workerd (`wrangler dev`, INGEST_URL pointing at
// that server), a demo site on its own origin whose pages load the tracker from the edge, and
// headless Chromium (a browser per visitor). Used by chain.test.mjs and latency.mjs (the
// benchmark's figure).
//
// Host names (mapped to 127.0.0.1 inside Chromium): the site is http://example.com:PORT, the
// edge http://edge.test:PORT, an outside site http://elsewhere.test:PORT.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { Ingest, Edge, tempDir, waitFor, sleep, SITE, rootDir, edgeDir, ingestBin } from '../../edge-worker/test/harness.mjs';
import { buildOnce, TRACKER_DIR } from '../browser/helpers.mjs';

export { waitFor, sleep, SITE };

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PG_ADMIN = process.env.TALLY_TEST_PG || 'postgres://postgres@127.0.0.1:5432/postgres';

// The ingest server serves the admin page from here, whatever the current directory.
process.env.TALLY_WWW_DIR ??= join(rootDir, 'www');
process.env.TALLY_TRACKER_DIR ??= TRACKER_DIR;
// Warnings and errors only, from the server and from the CLI calls (`events`, `key create`).
process.env.TALLY_LOG ??= 'warn';

/** Visitors: one browser context each, told apart by their User-Agent (and screen). */
export const VISITORS = {
  desktop: {
    userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    viewport: { width: 1440, height: 900 },
  },
  iphone: {
    userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
    viewport: { width: 390, height: 844 },
  },
  tablet: {
    userAgent: 'Mozilla/5.0 (Linux; Android 14; SM-X910) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    viewport: { width: 800, height: 1280 },
  },
  mac: {
    userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
    viewport: { width: 1280, height: 800 },
  },
};

/** Markup that must never run on the admin page: it would set `window.__pwned`. */
export const HOSTILE = {
  name: '<img src=x onerror="window.__pwned=1">',
  key: '<b onmouseover="window.__pwned=2">k</b>',
  value: '<script>window.__pwned=3</script>',
  utm: '<svg onload="window.__pwned=4">',
};

/** The tracker the edge serves: `dist/tracker`, or `TALLY_E2E_TRACKER_DIR` (a given build). */
const TRACKER = process.env.TALLY_E2E_TRACKER_DIR || TRACKER_DIR;

/** Builds what the chain runs unless it is there: the tracker, the ingest server, the worker. */
export function buildAll() {
  if (TRACKER === TRACKER_DIR) buildOnce();
  else if (!existsSync(ingestBin)) execFileSync('cargo', ['build', '-q', '-p', 'ingest-server'], { cwd: rootDir, stdio: 'inherit' });
  if (!existsSync(join(edgeDir, 'build/index_bg.wasm'))) {
    if (!existsSync(join(edgeDir, 'node_modules'))) {
      execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: edgeDir, stdio: 'inherit' });
    }
    execFileSync(join(edgeDir, 'build.sh'), { cwd: edgeDir, stdio: 'inherit' });
  }
}

/** The edge's static assets: the current tracker build with the worker's _headers. */
function edgeAssets(dir) {
  const out = join(dir, 'assets');
  mkdirSync(out, { recursive: true });
  cpSync(TRACKER, out, { recursive: true });
  cpSync(join(edgeDir, 'assets/_headers'), join(out, '_headers'));
  return out;
}

function psql(sql) {
  execFileSync('psql', [PG_ADMIN, '-v', 'ON_ERROR_STOP=1', '-q', '-c', sql], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** A fresh database: `sqlite` (a file in `dir`) or `postgres` (a new database). */
function database(kind, dir) {
  if (kind === 'sqlite') return { url: `sqlite://${join(dir, 'tally.db')}`, drop() {} };
  const name = `tally_e2e_${process.pid}_${Date.now() % 1e8}`;
  psql(`CREATE DATABASE ${name}`);
  return {
    url: `${PG_ADMIN.slice(0, PG_ADMIN.lastIndexOf('/'))}/${name}`,
    drop: () => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

/** The demo site's pages: every page carries the script tag loading from the edge. */
function pages(edgePort) {
  const page = (title, body) => `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>
<script>window.tally=window.tally||function(){(tally.q=tally.q||[]).push(arguments)}</script>
<script defer src="http://edge.test:${edgePort}/t.js" data-site="${SITE}"></script>
</head><body>
<nav><a id="nav-home" href="/">Home</a> <a id="nav-pricing" href="/pricing">Pricing</a>
<a id="nav-app" href="/app">App</a> <a id="nav-blog" href="/blog/hello">Blog</a></nav>
<main><h1>${title}</h1>${body}</main></body></html>`;
  // Hostile strings a tracked page can send: as an event name, a prop key and value (and, from
  // the URL, a UTM value). `<` is escaped so that the strings stay inside the script.
  const js = (v) => JSON.stringify(v).replace(/</g, '\\u003c');
  return {
    '/hostile': page('Hostile', `<button id="hostile">Send</button><script>
document.getElementById('hostile').onclick = () => tally('event', ${js(HOSTILE.name)}, {${js(HOSTILE.key)}: ${js(HOSTILE.value)}});
</script>`),
    '/': page('Home', '<p>Welcome.</p>'),
    '/pricing': page('Pricing', `<button id="signup" onclick="tally('event','Signup',{plan:'pro'})">Sign up</button>`),
    '/blog/hello': page('Hello', '<p>Read more <a id="out" href="http://elsewhere.test:SITE_PORT/landing">elsewhere</a>.</p>'),
    // A single-page app: its views are history.pushState navigations.
    '/app': page('App', `<p id="view">overview</p>
<button id="to-settings" onclick="history.pushState({},'','/app/settings');view.textContent='settings'">Settings</button>
<button id="to-billing" onclick="history.pushState({},'','/app/billing');view.textContent='billing'">Billing</button>`),
  };
}

/**
 * The edge's public origin: a relay in front of `wrangler dev` that records every
 * `POST /api/event` it passes on (when it arrived, its events, the edge's answer), so that the
 * tests know the id of every event the browsers sent, including beacons sent while a page
 * unloads.
 */
async function startRecorder(target) {
  const posts = [];
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let post = null;
      if (req.method === 'POST' && req.url.startsWith('/api/event')) {
        let events = [];
        try {
          events = JSON.parse(body.toString()).events ?? [];
        } catch {}
        post = { at: Date.now(), ua: req.headers['user-agent'], events, status: null };
        posts.push(post);
      }
      const up = http.request(
        new URL(req.url, upstream),
        { method: req.method, headers: { ...req.headers, host: upstream.host } },
        (r) => {
          if (post) post.status = r.statusCode;
          res.writeHead(r.statusCode, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => {
        if (post) post.status = 502;
        res.writeHead(502).end();
      });
      up.end(body);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { port: server.address().port, posts, stop: () => new Promise((r) => server.close(r)) };
}

/** The demo site on example.com, and the outside site's pages on any other host. */
async function startSite(edgePort) {
  const html = pages(edgePort);
  const server = http.createServer((req, res) => {
    const own = (req.headers.host || '').startsWith(`${SITE}:`);
    const body = (own && html[new URL(req.url, 'http://x').pathname]) || '<!doctype html><title>Elsewhere</title><p>Another site.';
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(body.replaceAll('SITE_PORT', server.address().port));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { port: server.address().port, stop: () => new Promise((r) => server.close(r)) };
}

/**
 * Headless Chromium with the host names mapped and `navigator.webdriver` off. `userAgent` is
 * set for the whole browser: a per-context override does not reach the beacons a page sends
 * while it unloads, which would then carry the HeadlessChrome User-Agent (and be dropped as a
 * bot).
 */
function launch(userAgent) {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-blink-features=AutomationControlled',
      '--host-resolver-rules=MAP example.com 127.0.0.1, MAP edge.test 127.0.0.1, MAP elsewhere.test 127.0.0.1',
      ...(userAgent ? [`--user-agent=${userAgent}`] : []),
    ],
  });
}

/**
 * Starts the chain on `kind` (`sqlite` | `postgres`). The edge retries failed batches with its
 * production delay (RETRY_BASE_DELAY_S = 10).
 */
export async function startChain(kind) {
  const dir = tempDir();
  const db = database(kind, dir);
  const chain = { kind, dir, db, browsers: [] };
  try {
    const ingest = new Ingest(dir);
    ingest.url = db.url;
    ingest.cli('site', 'add', SITE);
    chain.key = ingest.cli('key', 'create').trim().split(/\s+/).pop();
    await ingest.start();
    chain.ingest = ingest;
    const edge = new Edge(dir);
    await edge.start(ingest.base, { RETRY_BASE_DELAY_S: '10' }, { args: ['--assets', edgeAssets(dir)] });
    chain.edge = edge;
    // The edge loads the sites list on its first request to /api/event; a CORS preflight does
    // it here, so that the first page view measured is not the worker's first request.
    await fetch(`${edge.base}/api/event`, {
      method: 'OPTIONS',
      headers: { Origin: `http://${SITE}`, 'Access-Control-Request-Method': 'POST' },
    });
    chain.recorder = await startRecorder(edge.base);
    chain.site = await startSite(chain.recorder.port);
    chain.browser = await launch();
  } catch (e) {
    await stopChain(chain);
    throw e;
  }
  return Object.assign(chain, helpers(chain));
}

export async function stopChain(chain) {
  for (const b of [chain.browser, ...chain.browsers]) await b?.close().catch(() => {});
  await chain.site?.stop();
  await chain.recorder?.stop();
  await chain.edge?.stop();
  await chain.ingest?.stop();
  try {
    chain.db.drop();
  } catch (e) {
    console.log(`# could not drop the test database: ${e.message}`);
  }
  rmSync(chain.dir, { recursive: true, force: true });
}

function helpers(chain) {
  const posts = chain.recorder.posts;
  return {
    /** Every POST /api/event the browsers sent through the edge: {at, events, status}. */
    posts,
    url: (path) => `http://example.com:${chain.site.port}${path}`,
    /** The events sent by the browsers so far (from the request bodies). */
    sent: () => posts.flatMap((p) => p.events),
    /**
     * One visitor, by name in VISITORS or as `{userAgent, viewport}`: a browser of its own;
     * `problems` collects the page's errors.
     */
    async visitor(who) {
      const { userAgent, viewport } = typeof who === 'string' ? VISITORS[who] : who;
      const browser = await launch(userAgent);
      chain.browsers.push(browser);
      const context = await browser.newContext({ userAgent, viewport, timezoneId: 'UTC' });
      const page = await context.newPage();
      const problems = [];
      page.on('pageerror', (e) => problems.push(String(e)));
      return { context, page, problems, close: () => browser.close() };
    },
    /** GET /api/stats/PATH with the key. */
    async stats(path, params = {}) {
      const q = new URLSearchParams({ site: SITE, ...params });
      const r = await fetch(`${chain.ingest.base}/api/stats/${path}?${q}`, {
        headers: { Authorization: `Bearer ${chain.key}` },
      });
      if (r.status !== 200) throw new Error(`${path}: ${r.status} ${await r.text()}`);
      return r.json();
    },
    /** How many times each event id is stored. */
    storedCounts() {
      const counts = new Map();
      for (const e of chain.ingest.events()) counts.set(e.id, (counts.get(e.id) || 0) + 1);
      return counts;
    },
  };
}

/**
 * Loads `path` as a new visitor and measures the time from the moment its first page view
 * request reached the edge's origin until `/api/stats/realtime` counts one more visitor
 * (polled every 50 ms). Returns the milliseconds and the visitor.
 */
export async function realtimeLatency(chain, who, path = '/') {
  const before = (await chain.stats('realtime')).visitors;
  const v = await chain.visitor(who);
  const first = chain.posts.length;
  await v.page.goto(chain.url(path));
  let seenAt = null;
  await waitFor(
    async () => {
      const { visitors } = await chain.stats('realtime');
      if (visitors > before) seenAt = Date.now();
      return seenAt;
    },
    { timeoutMs: 30_000, intervalMs: 50, what: 'the page view in /api/stats/realtime' },
  );
  const post = chain.posts.slice(first).find((p) => p.events.some((e) => e.kind === 'pageview'));
  if (!post) throw new Error('no page view request was seen');
  return { ms: seenAt - post.at, visitor: v };
}
