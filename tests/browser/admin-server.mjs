// The server the admin page tests run against: a real ingest server (target/debug/ingest-server
// or $TALLY_INGEST_BIN) with a fresh database and seeded events when it serves the stats API,
// else null so that the tests use tests/browser/fixture-api.mjs.

import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { HOSTILE_IMG, startFixture } from './fixture-api.mjs';

const run = promisify(execFile);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(url, ms) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch {
      // not up yet
    }
    if (Date.now() > end) throw new Error(`${url} did not come up`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Starts target/debug/ingest-server with a fresh database and seeds it; null when it is not
 * built or TALLY_ADMIN_TEST=fixture (the fixture API is used then). Throws when it is built but
 * does not work.
 */
export async function startIngestServer({ root, site }) {
  const bin = process.env.TALLY_INGEST_BIN || join(root, 'target/debug/ingest-server');
  if (process.env.TALLY_ADMIN_TEST === 'fixture' || !existsSync(bin)) return null;
  const dir = mkdtempSync(join(tmpdir(), 'tally-admin-'));
  const port = await freePort();
  const env = { ...process.env, DATABASE_URL: `sqlite://${join(dir, 'tally.db')}`, TALLY_LISTEN: `127.0.0.1:${port}`, RUST_LOG: 'warn' };
  let child = null;
  try {
    await run(bin, ['migrate'], { env, cwd: root }).catch(() => {});
    await run(bin, ['site', 'add', site], { env, cwd: root });
    const { stdout } = await run(bin, ['key', 'create'], { env, cwd: root });
    const key = stdout.split(/\s+/).filter((w) => w.length >= 16).pop();
    if (!key) throw new Error('no key printed by `key create`');
    child = spawn(bin, ['serve'], { env, cwd: root, stdio: 'ignore' });
    const url = `http://127.0.0.1:${port}`;
    await waitFor(`${url}/healthz`, 20000);
    const probe = await fetch(`${url}/api/stats/summary?site=${site}`, { headers: { Authorization: `Bearer ${key}` } });
    if (probe.status !== 200) throw new Error(`stats API answered ${probe.status}`);
    await seed(url, site);
    const page = await fetch(`${url}/`).then((r) => r.text()).catch(() => '');
    const stop = async () => {
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    };
    if (page.includes('id="dashboard"')) return { mode: 'server', url, key, close: stop };
    // The server does not serve www/ (yet): serve it from the fixture, proxying /api/* to it.
    const fx = await startFixture({ upstream: url });
    return { mode: 'server', url: fx.url, key, close: async () => { await fx.close(); await stop(); } };
  } catch (err) {
    // A server that is there but does not work is a failure, not a reason to test the fixture.
    if (child) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`the ingest server at ${bin} is not usable: ${err.message}`);
  }
}

/** Sends events with hostile strings in every field a tracked page controls (CONTRACT §2). */
async function seed(url, site) {
  const ts = Date.now() - 60000;
  const id = (i) => `01JD3Z6Q8R9S0T1V2W3X4Y${String(i).padStart(4, '0')}`;
  const events = [
    { kind: 'pageview', url: `https://${site}/`, referrer: 'https://news.ycombinator.com/', screen: 1440 },
    { kind: 'pageview', url: `https://${site}/${HOSTILE_IMG}`, screen: 1440 },
    { kind: 'pageview', url: `https://${site}/blog?utm_source=${encodeURIComponent(HOSTILE_IMG)}`, screen: 390 },
    { kind: 'event', name: HOSTILE_IMG, props: { plan: HOSTILE_IMG }, url: `https://${site}/pricing` },
    { kind: 'event', name: 'Signup', props: { plan: 'pro' }, url: `https://${site}/pricing` },
  ].map((e, i) => ({ id: id(i), user: false, ts: ts + i * 1000, ...e }));
  const r = await fetch(`${url}/api/event`, {
    method: 'POST',
    headers: {
      'Content-Type': 'text/plain;charset=UTF-8', Origin: `https://${site}`,
      'User-Agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
    },
    body: JSON.stringify({ site, events }),
  });
  if (r.status !== 202) throw new Error(`seeding events answered ${r.status}`);
  await new Promise((res) => setTimeout(res, 1500)); // let the writer flush
}
