// A stand-in for the ingest server while developing and testing the admin page:
// serves www/ with the security headers the real server sends, and answers the stats API
// (CONTRACT §4) plus /api/sites, /api/monitors and /api/pipeline with fixed JSON that includes
// hostile strings from "tracked pages". With `upstream`, /api/* is proxied to a real server
// instead, so the page can be tested against it with the same headers.
//
//   node tests/browser/fixture-api.mjs [PORT]     # then open the printed URL, key: test-key

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WWW = fileURLToPath(new URL('../../www/', import.meta.url));
export const HOSTILE_IMG = '<img src=x onerror="window.__pwned=1">';
export const HOSTILE_SCRIPT = '<script>window.__pwned=1</script>';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon',
  '.json': 'application/json', '.md': 'text/markdown; charset=utf-8', '.txt': 'text/plain; charset=utf-8',
};

/** The headers the ingest server is expected to send with the page (see www/README.md). */
export function securityHeaders(apiBase = '') {
  return {
    'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
      + `connect-src 'self'${apiBase ? ` ${apiBase}` : ''}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'`,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
  };
}

export const SITES = [{ domain: 'example.com' }, { domain: 'shop.example.org' }];

export const SUMMARY = {
  pageviews: 12873, visitors: 4210, visits: 5032, bounce_rate: 0.4234, visit_duration_s: 125.4, events: 612,
  previous: { pageviews: 11040, visitors: 4391, visits: 4890, bounce_rate: 0.45, visit_duration_s: 118, events: 530 },
};

const LONG_PATH = '/docs/getting-started/installation/with-a-rather-long-path-that-has-to-wrap-on-phones';

const BREAKDOWNS = {
  page: [['/', 1520, 2890, 2400], ['/blog/hello-world', 840, 1210, 1002], [`/${HOSTILE_IMG}`, 402, 511, 480],
    ['/pricing', 380, 460, 420], [LONG_PATH, 120, 150, 140], [`/${HOSTILE_SCRIPT}`, 12, 14, 13]],
  entry_page: [['/', 1400, 2100], ['/blog/hello-world', 700, 900], [`/${HOSTILE_IMG}`, 300, 320]],
  exit_page: [['/pricing', 900, 1100], ['/', 850, 1000], [`/${HOSTILE_SCRIPT}`, 40, 41]],
  referrer: [['', 1900, 5000], ['news.ycombinator.com', 1200, 3300], ['google.com', 640, 1500], [HOSTILE_IMG, 22, 30]],
  utm_source: [['newsletter', 310, 420], [HOSTILE_IMG, 25, 31]],
  utm_medium: [['email', 310, 420], [HOSTILE_SCRIPT, 9, 9]],
  utm_campaign: [['launch-week', 280, 390], [HOSTILE_IMG, 8, 8]],
  country: [['DE', 1300, 4000], ['US', 1100, 3500], ['FR', 500, 1400], ['GB', 420, 1200], ['ZZ', 3, 3]],
  browser: [['Chrome', 2300, 7000], ['Firefox', 900, 2800], ['Safari', 800, 2500], ['Edge', 210, 573]],
  os: [['Windows', 1700, 5000], ['macOS', 1100, 3400], ['iOS', 800, 2300], ['Android', 450, 1400], ['Linux', 160, 773]],
  device: [['desktop', 2900, 9000], ['mobile', 1200, 3500], ['tablet', 110, 373]],
  user: [['anonymous', 3900, 11900], ['logged-in', 310, 973]],
};

const EVENTS = [['Signup', 120, 130], ['Outbound Link: Click', 90, 240], [HOSTILE_IMG, 7, 7]];
const PROP_VALUES = [['pro', 80, 85], ['free', 40, 45], [HOSTILE_IMG, 3, 3], [HOSTILE_SCRIPT, 1, 1]];

export const MONITORS = [
  { name: 'traffic-spike', site: 'example.com', metric: 'pageviews', state: 'ok', value: 212, threshold: 1000,
    last_notified_at: '2026-11-20T08:15:00Z', history: [] },
  { name: 'edge-lag', site: 'example.com', metric: 'edge_lag_s', state: 'firing', value: 95, threshold: 60,
    last_notified_at: new Date(Date.now() - 7 * 60000).toISOString(), last_notified_state: 'firing',
    history: [{ state: 'firing', value: 95, at: new Date(Date.now() - 7 * 60000).toISOString() },
      { state: 'resolved', value: 12, at: new Date(Date.now() - 90 * 60000).toISOString() }] },
  { name: HOSTILE_IMG, site: 'shop.example.org', metric: 'event:Signup', state: 'ok', value: 0, threshold: 1,
    last_notified_at: null, history: [] },
];

export const PIPELINE = {
  hops: [
    { hop: 'browser', events: 1840 },
    { hop: 'edge', events: 1838, lag_p50_ms: 42, lag_p99_ms: 310 },
    { hop: 'ingest', events: 1838, lag_p50_ms: 1250, lag_p99_ms: 8400 },
    { hop: 'stored', events: 1795, lag_p50_ms: 180, lag_p99_ms: 950 },
  ],
  dropped: { bot: 31, invalid: 2, duplicate: 9, excluded: 1, rate_limited: 0, unknown_site: 0 },
  last_edge_batch: new Date(Date.now() - 40000).toISOString(),
};

/** Filters shrink every number, so that a filtered view visibly differs from the unfiltered one. */
function factorOf(q) {
  let n = 0;
  for (const key of q.keys()) if (key.startsWith('filter[')) n += 1;
  return 0.5 ** n;
}

function scaleSummary(s, f) {
  const out = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'previous') out.previous = scaleSummary(v, f);
    else out[k] = f > 0 && (k === 'bounce_rate' || k === 'visit_duration_s') ? v : Math.round(v * f);
  }
  return out;
}

function rows(list, dim, f) {
  return list.map(([value, visitors, pageviews, unique]) => {
    const row = { value, visitors: Math.round(visitors * f), pageviews: Math.round(pageviews * f) };
    if (dim === 'page') row.unique_pageviews = Math.round(unique * f);
    if (dim === 'event' || dim.startsWith('prop:')) {
      row.events = row.pageviews;
      delete row.pageviews;
    }
    return row;
  });
}

function timeseries(q, f) {
  const from = q.get('from') || '2026-11-01';
  const to = q.get('to') || from;
  const interval = q.get('interval') || 'day';
  const out = [];
  const wave = (i) => Math.round((80 + 40 * Math.sin(i / 2.3) + (i % 7) * 9) * f);
  if (interval === 'hour') {
    for (let hr = 0; hr < 24; hr += 1) {
      const v = wave(hr) / 4;
      out.push({ t: `${from}T${String(hr).padStart(2, '0')}:00:00`, visitors: Math.round(v), pageviews: Math.round(v * 2.6), visits: Math.round(v * 1.2) });
    }
    return out;
  }
  const d = new Date(`${from}T00:00:00Z`);
  const end = new Date(`${to}T00:00:00Z`);
  for (let i = 0; d <= end && i < 1000; i += 1) {
    const iso = d.toISOString().slice(0, 10);
    const v = interval === 'month' ? wave(i) * 30 : wave(i);
    out.push({ t: interval === 'month' ? iso.slice(0, 7) : iso, visitors: v, pageviews: Math.round(v * 2.8), visits: Math.round(v * 1.2) });
    if (interval === 'month') d.setUTCMonth(d.getUTCMonth() + 1, 1);
    else d.setUTCDate(d.getUTCDate() + 1);
  }
  return out;
}

function csv(q) {
  const lines = ['section,value,visitors,pageviews'];
  for (const [dim, list] of Object.entries(BREAKDOWNS)) {
    for (const [value, v, p] of list) lines.push([dim, `"${String(value).replace(/"/g, '""')}"`, v, p].join(','));
  }
  for (const r of timeseries(q, 1)) lines.push(['timeseries', r.t, r.visitors, r.pageviews].join(','));
  return `${lines.join('\n')}\n`;
}

/** The fixed API. Returns [status, body, contentType] or null when the path is not an API path. */
function answer(path, q, opts) {
  if (opts.hide.includes(path)) return [404, { error: 'not found' }];
  if (opts.fail.includes(path)) return [500, { error: 'internal error' }];
  const f = opts.empty ? 0 : factorOf(q);
  if (opts.empty && path === '/api/stats/breakdown') return [200, []];
  switch (path) {
    case '/api/sites': return [200, SITES];
    case '/api/monitors': return [200, MONITORS];
    case '/api/pipeline': return q.get('site') ? [200, PIPELINE] : [400, { error: 'site is required' }];
    case '/api/stats/summary': return [200, scaleSummary(SUMMARY, f)];
    case '/api/stats/timeseries': return [200, timeseries(q, f)];
    case '/api/stats/realtime': return [200, { visitors: 7 }];
    case '/api/stats/export': return [200, csv(q), 'text/csv; charset=utf-8'];
    case '/api/stats/breakdown': {
      const dim = q.get('dim') || '';
      const limit = Number(q.get('limit') || 100);
      const list = dim === 'event' ? EVENTS : dim.startsWith('prop:') ? PROP_VALUES : BREAKDOWNS[dim];
      if (!list) return [400, { error: `unknown dim ${dim}` }];
      return [200, rows(list, dim, f).slice(0, limit)];
    }
    default: return null;
  }
}

async function serveStatic(res, pathname) {
  const rel = normalize(decodeURIComponent(pathname === '/' ? '/index.html' : pathname)).replace(/^([/\\])+/, '');
  const file = join(WWW, rel);
  if (!file.startsWith(WWW) || rel.split(sep).includes('..')) return send(res, 403, 'forbidden', 'text/plain');
  try {
    const body = await readFile(file);
    return send(res, 200, body, TYPES[extname(file)] || 'application/octet-stream');
  } catch {
    return send(res, 404, 'not found', 'text/plain; charset=utf-8');
  }
}

function send(res, status, body, type, extra = {}) {
  const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': type || 'application/json', 'Cache-Control': 'no-store', ...extra });
  res.end(data);
}

async function proxy(req, res, upstream) {
  const target = new URL(req.url, upstream);
  try {
    const r = await fetch(target, { headers: { authorization: req.headers.authorization || '', accept: req.headers.accept || '*/*' } });
    const body = Buffer.from(await r.arrayBuffer());
    send(res, r.status, body, r.headers.get('content-type') || 'application/octet-stream');
  } catch (err) {
    send(res, 502, { error: `upstream: ${err.message}` });
  }
}

/**
 * Starts the server. Options: port (0 = any), key (the accepted Bearer key), hide (API paths
 * answered 404, e.g. ['/api/sites']), fail (API paths answered 500), empty (a site with no
 * data: zeros and empty lists), upstream (proxy /api/* to this base URL instead).
 * Resolves to {url, requests, close()}; `requests` lists every API request ({path, query, auth}).
 */
export async function startFixture({ port = 0, key = 'test-key', hide = [], fail = [], empty = false, upstream = null } = {}) {
  const requests = [];
  const opts = { hide, fail, empty };
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://fixture');
    if (!upstream && url.pathname === '/healthz') return send(res, 200, { ok: true });
    if (!upstream && url.pathname === '/api/event' && req.method === 'POST') {
      let body = '';
      for await (const chunk of req) body += chunk;
      try {
        return send(res, 202, { accepted: JSON.parse(body).events.length, duplicates: 0 });
      } catch {
        return send(res, 400, { error: 'malformed body' });
      }
    }
    if (!url.pathname.startsWith('/api/')) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed', 'text/plain');
      return serveStatic({ writeHead: (s, h) => res.writeHead(s, { ...h, ...securityHeaders() }), end: (b) => res.end(b) }, url.pathname);
    }
    requests.push({ path: url.pathname, query: url.searchParams, auth: req.headers.authorization || '' });
    if (upstream) return proxy(req, res, upstream);
    if (req.headers.authorization !== `Bearer ${key}`) return send(res, 401, { error: 'unauthorized' });
    const out = answer(url.pathname, url.searchParams, opts);
    if (!out) return send(res, 404, { error: 'not found' });
    const [status, body, type] = out;
    const extra = type && type.startsWith('text/csv') ? { 'Content-Disposition': 'attachment; filename="tally.csv"' } : {};
    return send(res, status, body, type, extra);
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const { port: bound } = server.address();
  return {
    url: `http://127.0.0.1:${bound}`,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const port = Number(process.argv[2] || 8787);
  const upstream = process.env.TALLY_UPSTREAM || null;
  const fx = await startFixture({ port, upstream });
  console.log(`admin page: ${fx.url}/  (API key: test-key${upstream ? `, proxied to ${upstream}` : ''})`);
}
