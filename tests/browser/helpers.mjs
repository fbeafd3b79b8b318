// Shared helpers of the tracker's browser tests: a real ingest server (SQLite), a recording
// proxy in front of it (the "collector" origin, to count requests), a static site on another
// origin, and Chromium driven by playwright-core.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const TRACKER_DIR = path.join(ROOT, 'dist/tracker');
const INGEST = path.join(ROOT, 'target/debug/ingest-server');
const CHROMIUM = '/usr/bin/chromium';
export const CHROME_UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';

/** The newest modification time of the files under `dir` (recursively). */
function newest(dir) {
  return Math.max(
    0,
    ...readdirSync(dir, { withFileTypes: true }).map((e) =>
      e.isDirectory() ? newest(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs,
    ),
  );
}

/** Builds the tracker assets (again when their sources changed) and the ingest server unless
 * they are already there. */
export function buildOnce() {
  const js = path.join(TRACKER_DIR, 't.js');
  const sources = ['src', 'js', 'build.sh', 'Cargo.toml'].map((f) => path.join(ROOT, 'tracker-wasm', f));
  const built = existsSync(js) ? statSync(js).mtimeMs : 0;
  if (sources.some((f) => (statSync(f).isDirectory() ? newest(f) : statSync(f).mtimeMs) > built)) {
    execFileSync(path.join(ROOT, 'tracker-wasm/build.sh'), { stdio: 'inherit' });
  }
  if (!existsSync(INGEST)) {
    execFileSync('cargo', ['build', '-q', '-p', 'ingest-server'], { cwd: ROOT, stdio: 'inherit' });
  }
}

const listen = (server) =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));

async function freePort() {
  const s = http.createServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
}

/** A fresh ingest server with `example.com` registered, serving dist/tracker. */
export async function startIngest() {
  const dir = mkdtempSync(path.join(tmpdir(), 'tally-tracker-'));
  const db = `sqlite://${dir}/tally.db`;
  execFileSync(INGEST, ['--database-url', db, 'site', 'add', 'example.com'], { stdio: 'ignore' });
  const port = await freePort();
  const proc = spawn(INGEST, ['--database-url', db, '--listen', `127.0.0.1:${port}`, 'serve'], {
    env: { ...process.env, TALLY_TRACKER_DIR: TRACKER_DIR, RUST_LOG: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {}
    if (i > 100) throw new Error('the ingest server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    /** The stored events of example.com, oldest first. */
    events() {
      const out = execFileSync(INGEST, ['--database-url', db, 'events', '--site', 'example.com'], {
        encoding: 'utf8',
      });
      return out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .sort((a, b) => (a.id < b.id ? -1 : 1));
    },
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    },
  };
}

/** The collector origin: forwards every request to the ingest server and records each one. */
export async function startCollector(target) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method, url: req.url, headers: req.headers, body: body.toString() });
      const up = http.request(
        new URL(req.url, target),
        { method: req.method, headers: { ...req.headers, host: new URL(target).host } },
        (r) => {
          res.writeHead(r.statusCode, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => res.writeHead(502).end());
      up.end(body);
    });
  });
  const port = await listen(server);
  return {
    port,
    requests,
    /** The POST /api/event requests received so far. */
    posts: () => requests.filter((r) => r.method === 'POST' && r.url.startsWith('/api/event')),
    stop: () => new Promise((r) => server.close(r)),
  };
}

/** A static site: `pages` maps a path to HTML; any other path gets a small page. */
export async function startSite(pages) {
  const server = http.createServer((req, res) => {
    const html = pages[new URL(req.url, 'http://x').pathname] ?? '<!doctype html><title>other</title><p>other page';
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html.replaceAll('SITE_PORT', port));
  });
  const port = await listen(server);
  return { port, stop: () => new Promise((r) => server.close(r)) };
}

/** The page snippet of CONTRACT §1, with the queue stub. */
export function snippet(collectorPort, attrs = '', before = '') {
  return `<!doctype html><html><head><title>t</title>
<script>window.tally=window.tally||function(){(tally.q=tally.q||[]).push(arguments)}</script>
<script>${before}</script>
<script defer src="http://collector.test:${collectorPort}/t.js" data-site="example.com" ${attrs}></script>
</head><body><h1>Hello</h1>
<a id="out" href="http://elsewhere.test:SITE_PORT/landing">elsewhere</a>
<a id="in" href="/about">about</a>
</body></html>`;
}

/** Headless Chromium. `automation`: keep `navigator.webdriver` true (as Playwright sets it). */
export async function launch({ automation = false } = {}) {
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--host-resolver-rules=MAP example.com 127.0.0.1, MAP collector.test 127.0.0.1, MAP elsewhere.test 127.0.0.1',
  ];
  if (!automation) args.push('--disable-blink-features=AutomationControlled');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args });
  const context = await browser.newContext({ userAgent: CHROME_UA });
  return { browser, context };
}

/** Polls `f` until it returns a truthy value or `ms` pass; returns the last value. */
export async function until(f, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

