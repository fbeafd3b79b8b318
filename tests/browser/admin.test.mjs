// The admin page (www/) in real headless Chromium.
//
//   node --test tests/browser/admin.test.mjs
//
// Against a real ingest server when target/debug/ingest-server (or $TALLY_INGEST_BIN) is built;
// otherwise, or with TALLY_ADMIN_TEST=fixture, against tests/browser/fixture-api.mjs, which
// serves www/ with the same security headers and fixed JSON full of hostile strings, missing
// endpoints and failures (scripts/test.sh runs both). Screenshots go to tests/artifacts/admin-desktop.png and admin-phone.png.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startIngestServer } from './admin-server.mjs';
import { HOSTILE_IMG, HOSTILE_SCRIPT, startFixture } from './fixture-api.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ARTIFACTS = join(ROOT, 'tests/artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TZ = 'Europe/Berlin';
const SITE = 'example.com';

let browser;
let target; // {mode: 'fixture' | 'server', url, key, close()}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  target = await startIngestServer({ root: ROOT, site: SITE });
  if (!target) {
    const fx = await startFixture({ key: 'test-key' });
    target = { mode: 'fixture', url: fx.url, key: 'test-key', close: fx.close };
  }
  console.log(`# admin page under test at ${target.url} (${target.mode === 'server' ? 'ingest server' : 'fixture API'})`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (target) await target.close();
});

// ---- helpers -------------------------------------------------------------------------------

/**
 * Opens the page in a fresh context. With `key`, the key is already in sessionStorage.
 * Collects console errors, page errors and CSP violations into `problems`.
 */
async function open({ width = 1280, height = 900, key = target.key, path = `/?site=${SITE}`, allow = [] } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, timezoneId: TZ, locale: 'en-US', acceptDownloads: true });
  await context.addInitScript((k) => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window.__csp = window.__csp || []).push(`${e.violatedDirective} ${e.blockedURI}`);
    });
    if (k) sessionStorage.setItem('tally.key', k);
  }, key || '');
  const page = await context.newPage();
  const problems = [];
  const requests = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !allow.some((re) => re.test(m.text()))) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('request', (r) => { if (r.url().includes('/api/')) requests.push(r); });
  await page.goto(target.url + path);
  return { context, page, problems, requests };
}

async function ready(page, { data = true } = {}) {
  await page.waitForSelector('.card-value[data-value]:not([data-value=""])');
  // A period may hold no data (the real server, a filter matching nothing): then the
  // breakdowns show their empty state instead of a table.
  await page.waitForSelector(data ? '.breakdown-table' : '.breakdown-table, .breakdown .empty');
  await page.waitForFunction(() => !document.querySelector('[aria-busy="true"]'));
}

async function finish({ context, page, problems }) {
  const csp = await page.evaluate(() => window.__csp || []);
  const pwned = await page.evaluate(() => window.__pwned);
  await context.close();
  assert.deepEqual(csp, [], 'no CSP violations');
  assert.deepEqual(problems, [], 'no console errors');
  assert.equal(pwned, undefined, 'no injected script ran');
}

/** The same request the page made, sent from here with the key: what the API says. */
async function apiAnswer(request) {
  const r = await fetch(request.url(), { headers: { Authorization: `Bearer ${target.key}` } });
  assert.equal(r.status, 200, request.url());
  return r.json();
}

async function waitUntil(check, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const lastRequest = (requests, path) => [...requests].reverse().find((r) => new URL(r.url()).pathname === path);
const digits = (s) => s.replace(/[^\d]/g, '');

// ---- tests ---------------------------------------------------------------------------------

describe('admin page', () => {
  test('asks for the key, refuses a wrong one (401), then loads', async () => {
    const s = await open({ key: '', allow: [/status of 401/] });
    const { page } = s;
    const dialog = page.locator('dialog#connect');
    await dialog.waitFor({ state: 'visible' });
    await page.fill('#api-key', 'not-the-key');
    await page.click('dialog button[type=submit]');
    await page.waitForFunction(() => /not accept/.test(document.querySelector('.dialog-message').textContent));
    assert.ok(await dialog.isVisible(), 'the dialog stays open after a 401');
    await page.fill('#api-key', target.key);
    await page.click('dialog button[type=submit]');
    await ready(page);
    assert.equal(await dialog.isVisible(), false);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('tally.key')), target.key);
    await finish(s);
  });

  test('a stale key in the session gets the key prompt back', async () => {
    const s = await open({ key: 'expired-key', allow: [/status of 401/] });
    await s.page.locator('dialog#connect').waitFor({ state: 'visible' });
    assert.match(await s.page.textContent('.dialog-message'), /not accepted/);
    assert.equal(await s.page.evaluate(() => sessionStorage.getItem('tally.key')), null);
    await finish(s);
  });

  test('the numbers on the page equal the API\'s; the chart shows values on hover', async () => {
    const s = await open();
    const { page, requests } = s;
    await ready(page);

    const summaryReq = lastRequest(requests, '/api/stats/summary');
    const q = new URL(summaryReq.url()).searchParams;
    assert.equal(q.get('site'), SITE);
    assert.equal(q.get('tz'), TZ);
    assert.match(q.get('from'), /^\d{4}-\d{2}-\d{2}$/);
    assert.equal(summaryReq.headers().authorization, `Bearer ${target.key}`);
    const summary = await apiAnswer(summaryReq);
    for (const key of ['visitors', 'visits', 'pageviews', 'events']) {
      const card = page.locator(`.card[data-metric="${key}"] .card-value`);
      assert.equal(Number(await card.getAttribute('data-value')), summary[key], key);
      assert.equal(digits(await card.textContent()), String(summary[key]), `${key} as shown`);
    }
    const bounce = await page.textContent('.card[data-metric="bounce_rate"] .card-value');
    assert.equal(bounce, `${Math.round(summary.bounce_rate * 100)}%`);

    const pagesReq = requests.find((r) => r.url().includes('/api/stats/breakdown') && new URL(r.url()).searchParams.get('dim') === 'page');
    const pages = await apiAnswer(pagesReq);
    const shown = await page.$$eval('.breakdown-table[data-dim="page"] tbody tr', (trs) => trs.map((tr) => ({
      value: tr.querySelector('.row-filter').textContent,
      visitors: Number(tr.querySelector('td').dataset.value),
    })));
    assert.deepEqual(shown, pages.map((r) => ({ value: r.value || '(none)', visitors: r.visitors })));

    const series = await apiAnswer(lastRequest(requests, '/api/stats/timeseries'));
    const over = page.locator('#chart .u-over');
    const box = await over.boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const legend = await page.$$eval('#chart .u-legend .u-series', (rows) => rows.map((r) => r.querySelector('.u-value').textContent));
    assert.equal(legend.length, 3);
    assert.notEqual(legend[0], '–', 'hovering shows the time');
    const visitorValues = series.map((r) => String(r.visitors));
    assert.ok(visitorValues.includes(digits(legend[1])), `hover value ${legend[1]} is one of the series' visitors`);

    await page.mouse.move(0, 0);
    await page.focus('#chart .chart-canvas');
    await page.keyboard.press('End');
    const lastValue = await page.textContent('#chart .u-legend .u-series:nth-child(2) .u-value');
    assert.equal(digits(lastValue), String(series.at(-1).visitors), 'End on the focused chart reads the last point');
    await page.keyboard.press('ArrowLeft');
    const before = await page.textContent('#chart .u-legend .u-series:nth-child(2) .u-value');
    assert.equal(digits(before), String(series.at(-2).visitors), 'ArrowLeft steps back one point');
    await page.evaluate(() => document.activeElement.blur());
    await page.screenshot({ path: join(ARTIFACTS, 'admin-desktop.png'), fullPage: true });
    await finish(s);
  });

  test('hostile strings from tracked pages are shown as text and run nothing', async () => {
    const s = await open({ path: `/?site=${SITE}&prop=plan` });
    const { page } = s;
    await ready(page);
    const texts = [];
    const tab = async (panelTitle, name) => {
      const panel = page.locator('section.breakdown', { has: page.locator('h2', { hasText: panelTitle }) });
      await panel.getByRole('tab', { name, exact: true }).click();
      await panel.locator('.breakdown-table').waitFor();
      await page.waitForFunction(() => !document.querySelector('[aria-busy="true"]'));
      texts.push(...await panel.locator('.row-filter').allTextContents());
    };
    await tab('Events', 'Events');
    await tab('Events', 'Properties');
    assert.ok(texts.includes(HOSTILE_IMG), 'event name / prop value shown literally');
    if (target.mode === 'fixture') {
      await tab('Top sources', 'Referrers');
      await tab('Top sources', 'UTM source');
      await tab('Top sources', 'UTM campaign');
      await tab('Top pages', 'Pages');
      for (const needle of [`/${HOSTILE_IMG}`, `/${HOSTILE_SCRIPT}`]) assert.ok(texts.includes(needle), needle);
      assert.ok(texts.filter((t) => t === HOSTILE_IMG).length >= 4, 'in referrer, UTM values, event and prop');
      assert.match(await page.textContent('#monitors'), /<img src=x onerror=/);
    }
    const injected = await page.evaluate(() => ({
      imgs: [...document.querySelectorAll('main img')].length,
      scripts: [...document.querySelectorAll('script')].filter((e) => !/vendor\/uPlot|js\/main\.js/.test(e.src)).length,
      pwned: window.__pwned,
    }));
    assert.deepEqual(injected, { imgs: 0, scripts: 0, pwned: undefined });
    await finish(s);
  });

  test('clicking a row filters the whole page; back removes the filter', async () => {
    const s = await open();
    const { page, requests } = s;
    await ready(page);
    const row = page.locator('.breakdown-table[data-dim="browser"] tbody tr').first();
    const value = await row.locator('.row-filter').textContent();
    const filtered = page.waitForRequest((r) => r.url().includes('/api/stats/summary')
      && new URL(r.url()).searchParams.get('filter[browser]') === value);
    await row.locator('td').first().click();
    await filtered;
    await ready(page);
    assert.equal(new URL(page.url()).searchParams.get('filter[browser]'), value);
    assert.match(await page.textContent('#filters'), new RegExp(`Browser is ${value}`));
    const after = requests.filter((r) => r.url().includes('/api/stats/'));
    const last = after.slice(-5);
    assert.ok(last.every((r) => new URL(r.url()).searchParams.get('filter[browser]') === value), 'later requests carry the filter');
    const summary = await apiAnswer(lastRequest(requests, '/api/stats/summary'));
    assert.equal(Number(await page.getAttribute('.card[data-metric="visitors"] .card-value', 'data-value')), summary.visitors);

    await page.goBack();
    await page.waitForFunction(() => !new URL(location.href).searchParams.has('filter[browser]'));
    await ready(page);
    assert.equal(await page.isVisible('#filters .chip'), false);
    await finish(s);
  });

  test('keyboard: Tab reaches the period picker and a row; Enter filters', async () => {
    const s = await open();
    const { page } = s;
    await ready(page);
    const tabUntil = async (pred, max = 80) => {
      for (let i = 0; i < max; i += 1) {
        await page.keyboard.press('Tab');
        if (await page.evaluate(pred)) return true;
      }
      return false;
    };
    assert.ok(await tabUntil(() => document.activeElement.id === 'period'), 'Tab reaches the period picker');
    assert.ok(await tabUntil(() => document.activeElement.classList.contains('row-filter')), 'Tab reaches a breakdown row');
    const dim = await page.evaluate(() => document.activeElement.closest('table').dataset.dim);
    const value = await page.evaluate(() => document.activeElement.textContent);
    const filtered = page.waitForRequest((r) => r.url().includes('/api/stats/summary') && new URL(r.url()).searchParams.has(`filter[${dim}]`));
    await page.keyboard.press('Enter');
    await filtered;
    const applied = new URL(page.url()).searchParams.get(`filter[${dim}]`);
    assert.equal(applied === '' ? '(none)' : applied, value.startsWith('Direct') ? '(none)' : value);
    await finish(s);
  });

  test('changing the period asks for the right range and interval', async () => {
    const s = await open();
    const { page } = s;
    await ready(page);
    const today = page.waitForRequest((r) => r.url().includes('/api/stats/timeseries') && new URL(r.url()).searchParams.get('interval') === 'hour');
    await page.selectOption('#period', 'today');
    const q = new URL((await today).url()).searchParams;
    assert.equal(q.get('from'), q.get('to'));
    const year = page.waitForRequest((r) => r.url().includes('/api/stats/timeseries') && new URL(r.url()).searchParams.get('interval') === 'month');
    await page.selectOption('#period', '12mo');
    await year;
    await ready(page);
    assert.equal(new URL(page.url()).searchParams.get('period'), '12mo');
    await finish(s);
  });

  test('CSV download goes through fetch with the key', async () => {
    const s = await open();
    const { page, requests } = s;
    await ready(page);
    const download = page.waitForEvent('download');
    await page.click('#export');
    const file = await download;
    assert.match(file.suggestedFilename(), /^tally-example\.com-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.csv$/);
    const req = lastRequest(requests, '/api/stats/export');
    assert.equal(new URL(req.url()).searchParams.get('format'), 'csv');
    assert.equal(req.headers().authorization, `Bearer ${target.key}`);
    await finish(s);
  });

  test('fits a 390 px phone without sideways scrolling', async () => {
    const s = await open({ width: 390, height: 844 });
    const { page } = s;
    await ready(page);
    await page.waitForTimeout(300); // let the chart follow its container's width
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `scrollWidth ${width} <= 390`);
    await page.screenshot({ path: join(ARTIFACTS, 'admin-phone.png'), fullPage: true });

    // The widest header: a custom range and a long filter value.
    const long = `/docs/${'very-long-segment-'.repeat(8)}end`;
    await page.goto(`${target.url}/?site=${SITE}&period=custom&from=2026-01-01&to=2026-03-31&filter[page]=${encodeURIComponent(long)}`);
    await ready(page, { data: false });
    await page.waitForTimeout(300);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `scrollWidth ${wide} <= 390 with a custom range and a long filter`);
    await finish(s);
  });

  /** Runs `body(session)` against a second fixture started with `options`. */
  async function withFixture(t, options, allow, body) {
    if (target.mode !== 'fixture') {
      t.skip('needs the fixture API');
      return;
    }
    const fx = await startFixture({ key: target.key, ...options });
    const saved = target.url;
    target.url = fx.url;
    try {
      const s = await open({ allow });
      await body(s);
      await finish(s);
    } finally {
      target.url = saved;
      await fx.close();
    }
  }

  test('without /api/sites, /api/monitors and /api/pipeline the page still works', (t) => withFixture(t,
    { hide: ['/api/sites', '/api/monitors', '/api/pipeline'] }, [/status of 404/], async ({ page }) => {
      await ready(page);
      assert.equal(await page.getAttribute('#site', 'type'), 'text');
      assert.equal(await page.inputValue('#site'), SITE);
      assert.equal(await page.isVisible('#monitors'), false);
      assert.equal(await page.isVisible('#pipeline'), false);
    }));

  test('changes against the previous period, the site picker, a custom range, realtime refresh, monitors and the pipeline', (t) =>
    withFixture(t, {}, [], async ({ page, requests }) => {
      await ready(page);
      // Each card's change is computed from the API's `previous`: visitors 4210 vs 4391 is down
      // 4 %, page views 12873 vs 11040 up 17 %; a lower bounce rate is good.
      const change = (metric) => page.locator(`.card[data-metric="${metric}"] .card-change`);
      assert.match(await change('visitors').getAttribute('class'), /\bdown\b.*\bbad\b/);
      assert.match(await change('visitors').textContent(), /4\s?%/);
      assert.match(await change('pageviews').getAttribute('class'), /\bup\b.*\bgood\b/);
      assert.match(await change('pageviews').textContent(), /17\s?%/);
      assert.match(await change('bounce_rate').getAttribute('class'), /\bdown\b.*\bgood\b/);
      assert.equal(await change('visitors').getAttribute('title'), 'Previous period: 4,391');

      // The site picker lists /api/sites; choosing another site asks the API for it.
      assert.deepEqual(await page.$$eval('#site option', (os) => os.map((o) => o.value)), ['example.com', 'shop.example.org']);
      await page.selectOption('#site', 'shop.example.org');
      await page.waitForFunction(() => new URLSearchParams(location.search).get('site') === 'shop.example.org');
      await ready(page);
      const summary = lastRequest(requests, '/api/stats/summary');
      assert.equal(new URL(summary.url()).searchParams.get('site'), 'shop.example.org');

      // A custom range: the form's dates become the query's from / to.
      await page.selectOption('#period', 'custom');
      await page.fill('#custom-range [name=from]', '2026-03-01');
      await page.fill('#custom-range [name=to]', '2026-03-10');
      await page.locator('#custom-range button[type=submit]').click();
      await page.waitForFunction(() => new URLSearchParams(location.search).get('from') === '2026-03-01');
      await ready(page);
      const q = new URL(lastRequest(requests, '/api/stats/timeseries').url()).searchParams;
      assert.deepEqual([q.get('from'), q.get('to'), q.get('interval')], ['2026-03-01', '2026-03-10', 'day']);

      // Realtime visitors are asked for again every few seconds.
      const realtimeCalls = () => requests.filter((r) => new URL(r.url()).pathname === '/api/stats/realtime').length;
      const before = realtimeCalls();
      await page.waitForFunction(() => document.querySelector('#realtime .realtime-value')?.dataset.value === '7');
      await waitUntil(() => realtimeCalls() > before, 12_000, 'a realtime refresh');

      // The monitors panel: each monitor's state, last value and latest transitions.
      const rows = await page.$$eval('.monitors-table tbody tr', (trs) => trs.map((tr) => [
        tr.querySelector('th').textContent, tr.querySelector('.badge').textContent,
        tr.querySelector('[data-label="History"]').textContent]));
      assert.equal(rows.length, 3);
      assert.deepEqual(rows[1].slice(0, 2), ['edge-lag', 'firing']);
      assert.match(rows[1][2], /firing .*ago · resolved .*ago/);
      // The pipeline view: the events of each hop, the lags and the drops, as the API says.
      const hops = await page.$$eval('.flow .hop', (lis) => lis.map((li) => [li.dataset.hop, li.querySelector('.hop-count').dataset.value]));
      assert.deepEqual(hops, [['browser', '1840'], ['edge', '1838'], ['ingest', '1838'], ['stored', '1795']]);
      assert.match(await page.textContent('.flow .hop[data-hop="ingest"] .hop-lag'), /p50 1\.3 s.*p99 8\.4 s|p50 1250.*p99 8400/);
      assert.ok((await page.$$('.drops dd')).length >= 6, 'every drop reason listed');
    }));

  test('a period without data shows empty states', (t) => withFixture(t, { empty: true }, [], async ({ page }) => {
    await page.waitForSelector('.card-value[data-value="0"]');
    await page.waitForFunction(() => document.querySelectorAll('.breakdown .empty').length >= 6);
    assert.match(await page.textContent('#chart'), /No visitors in this period/);
  }));

  test('a failing API call shows an error with a retry, not a broken page', (t) => withFixture(t,
    { fail: ['/api/stats/summary', '/api/stats/breakdown'] }, [/status of 500/], async ({ page }) => {
      await page.waitForSelector('#status .error');
      assert.match(await page.textContent('#status'), /could not be loaded/);
      assert.ok(await page.locator('#status button', { hasText: 'Retry' }).isVisible());
      await page.waitForSelector('.breakdown .error');
      assert.ok(await page.isVisible('#chart .u-over'), 'the chart still loads');
    }));
});
