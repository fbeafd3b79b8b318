// Starts the real ingest server (temp SQLite database, random port) and the built worker under
// `wrangler dev` (workerd), and offers small helpers. Used by edge.test.mjs and ../bench.mjs.
import { spawn, execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const edgeDir = join(here, '..');
export const rootDir = join(edgeDir, '..');
export const ingestBin = process.env.INGEST_SERVER_BIN || join(rootDir, 'target/debug/ingest-server');
export const SECRET = 'edge-test-secret-0123456789abcdef';
export const SITE = 'example.com';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export async function waitFor(check, { timeoutMs = 60_000, intervalMs = 200, what = 'condition' } = {}) {
  const start = Date.now();
  let last;
  while (Date.now() - start < timeoutMs) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

/** A process group we started, stopped by its own id. */
function start(cmd, args, opts) {
  const child = spawn(cmd, args, { ...opts, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.output = '';
  child.stdout.on('data', (d) => (child.output += d));
  child.stderr.on('data', (d) => (child.output += d));
  return child;
}

async function stop(child, signal = 'SIGTERM') {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  try {
    process.kill(-child.pid, signal);
  } catch {}
  await Promise.race([exited, sleep(10_000)]);
  if (child.exitCode === null) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
  }
}

export class Ingest {
  constructor(dir) {
    this.dir = dir;
    this.db = join(dir, 'tally.db');
    this.url = `sqlite://${this.db}`;
    this.logs = '';
  }
  cli(...args) {
    return execFileSync(ingestBin, ['--database-url', this.url, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  }
  async start(port) {
    this.port = port ?? this.port ?? (await freePort());
    this.base = `http://127.0.0.1:${this.port}`;
    this.proc = start(ingestBin, ['--database-url', this.url, '--listen', `127.0.0.1:${this.port}`, 'serve'], {
      env: { ...process.env, TALLY_EDGE_SECRET: SECRET, RUST_LOG: process.env.RUST_LOG || 'info' },
    });
    await waitFor(async () => (await fetch(`${this.base}/healthz`)).ok, { what: 'ingest server' });
  }
  async stop() {
    await stop(this.proc);
    this.logs += this.proc.output;
  }
  events(site = SITE) {
    return this.cli('events', '--site', site)
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l));
  }
  allLogs() {
    return this.logs + (this.proc ? this.proc.output : '');
  }
  /** The database files' bytes (main file, WAL, shared memory, the digests' file and its WAL). */
  databaseBytes() {
    return ['', '-wal', '-shm', '-digests', '-digests-wal']
      .map((s) => this.db + s)
      .filter(existsSync)
      .map((p) => readFileSync(p));
  }
}

export class Edge {
  constructor(dir) {
    this.dir = dir;
  }
  /** `args`: extra `wrangler dev` arguments (e.g. `['--assets', DIR]`). */
  async start(ingestBase, vars = {}, { args: extra = [] } = {}) {
    this.port = await freePort();
    this.base = `http://127.0.0.1:${this.port}`;
    const allVars = { INGEST_URL: ingestBase, TALLY_EDGE_SECRET: SECRET, RETRY_BASE_DELAY_S: '1', ...vars };
    const args = ['wrangler', 'dev', '--port', String(this.port), '--ip', '127.0.0.1',
      '--inspector-port', String(await freePort()), '--persist-to', join(this.dir, 'state'), '--log-level', 'info'];
    for (const [k, v] of Object.entries(allVars)) args.push('--var', `${k}:${v}`);
    args.push(...extra);
    this.proc = start('npx', args, {
      cwd: edgeDir,
      env: { ...process.env, TALLY_EDGE_SKIP_BUILD: '1', WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
    });
    await waitFor(async () => (await fetch(`${this.base}/t.js`)).ok, { timeoutMs: 120_000, what: 'wrangler dev' });
  }
  async stop() {
    await stop(this.proc);
  }
  post(body, { ip = '198.51.100.1', ua = FIREFOX, origin = 'https://example.com', headers = {} } = {}) {
    return fetch(`${this.base}/api/event`, {
      method: 'POST',
      headers: {
        'Content-Type': 'text/plain;charset=UTF-8',
        'User-Agent': ua,
        'CF-Connecting-IP': ip,
        ...(origin ? { Origin: origin } : {}),
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }
}

export const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';

/** A fresh ULID-shaped event id: "0" and 25 random Crockford base-32 characters. */
export function ulid() {
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  return '0' + Array.from(randomBytes(25), (b) => alphabet[b & 31]).join('');
}

export function pageview(path = '/', extra = {}) {
  return { id: ulid(), kind: 'pageview', url: `https://example.com${path}`, ts: Date.now(), screen: 1440, ...extra };
}

export function body(events, site = SITE) {
  return { site, events };
}

/** Signs like the edge does (tally-core edge::sign). */
export function sign(ts, bodyText, secret = SECRET) {
  return 'v1=' + createHmac('sha256', secret).update(`v1:${ts}:${bodyText}`).digest('hex');
}

export function tempDir() {
  return mkdtempSync(join(tmpdir(), 'tally-edge-test-'));
}

/** The deployable bundle's budget: gzip -9 of every file `wrangler deploy --dry-run` writes. */
export const BUNDLE_BUDGET_GZIP = 150_000;

/**
 * Builds the deployable bundle with `wrangler deploy --dry-run` (no account needed) from the
 * last `build.sh` output and measures it: wrangler's own line, and the files' raw and gzip -9
 * bytes (source maps and READMEs aside).
 */
export function bundleSize() {
  const out = join(tempDir(), 'dry');
  const log = execFileSync('npx', ['wrangler', 'deploy', '--dry-run', '--outdir', out], {
    cwd: edgeDir,
    encoding: 'utf8',
    env: { ...process.env, TALLY_EDGE_SKIP_BUILD: '1', WRANGLER_SEND_METRICS: 'false' },
  });
  let raw = 0;
  let gz = 0;
  for (const f of readdirSync(out)) {
    if (f.endsWith('.map') || f.endsWith('.md')) continue;
    const bytes = readFileSync(join(out, f));
    raw += statSync(join(out, f)).size;
    gz += gzipSync(bytes, { level: 9 }).length;
  }
  return { wrangler: log.match(/Total Upload: .*/)?.[0], raw, gz };
}
