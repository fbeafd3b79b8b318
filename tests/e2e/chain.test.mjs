// The whole chain as a user meets it: pages of a demo site on http://example.com:PORT load the
// tracker from the edge worker (workerd), the edge queues and forwards to the real ingest
// server, and the numbers come out of the stats API and the admin page. Run once on SQLite and
// once on PostgreSQL.
//
//   node --test --test-concurrency=1 tests/e2e/
//
// Three visitors (desktop Chrome, iPhone Safari, Android tablet) go through scripted visits
// whose numbers are worked out by hand below; a fourth visits while the ingest server is
// stopped and restarted.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildAll, startChain, stopChain, realtimeLatency, waitFor, sleep, SITE, HOSTILE } from './harness.mjs';

/** The realtime requirement: a page view shows within this long of its request. */
const REALTIME_LIMIT_MS = 2000;

before(() => buildAll());

/**
 * The failures of this file, printed again when it ends: a run's output is long, and its end
 * is what a CI log shows first. Each carries the warnings and errors the ingest server logged.
 */
const failures = [];
after(() => {
  if (!failures.length) return;
  console.log(`# ${failures.length} failed:`);
  for (const f of failures) console.log(f.replace(/^/gm, '#   '));
});

/** `test`, with a failure kept for the summary above. */
function check(chainOf, name, fn) {
  test(name, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      const chain = chainOf();
      const logs = (chain?.ingest?.allLogs() ?? '').split('\n').filter((l) => /WARN|ERROR/.test(l));
      failures.push([`${chain?.kind} / ${name}: ${String(e?.message ?? e).slice(0, 3000)}`, ...logs.slice(-20)].join('\n'));
      throw e;
    }
  });
}

/** Waits until an event matching `pred` was sent in a request after the `from`-th one. */
async function sentAfter(chain, from, pred, what) {
  return waitFor(() => chain.posts.slice(from).flatMap((p) => p.events).find(pred), { timeoutMs: 15_000, intervalMs: 50, what });
}

const pathOf = (e) => new URL(e.url).pathname;
const pageview = (path) => (e) => e.kind === 'pageview' && pathOf(e) === path;

/** Runs `action` and waits until the page view of `path` it causes has been sent. */
async function view(chain, action, path) {
  const from = chain.posts.length;
  await action();
  await sentAfter(chain, from, pageview(path), `the page view of ${path}`);
}

/** Runs `action` and waits until the custom event `name` it causes has been sent. */
async function event(chain, action, name) {
  const from = chain.posts.length;
  await action();
  await sentAfter(chain, from, (e) => e.kind === 'event' && e.name === name, `the event ${name}`);
}

/** Breakdown rows reduced to `keys`, in value order (ties of the API's order aside). */
const pick = (rows, keys) =>
  rows.map((r) => Object.fromEntries(keys.map((k) => [k, r[k]]))).sort((a, b) => (a.value < b.value ? -1 : 1));

function sortedByVisitors(rows) {
  for (let i = 1; i < rows.length; i++) assert.ok(rows[i - 1].visitors >= rows[i].visitors, JSON.stringify(rows));
}

/** Polls the summary until it equals `expected` (rollups lag the raw events) or time is up. */
async function settledSummary(chain, expected) {
  let last;
  try {
    await waitFor(
      async () => {
        last = await chain.stats('summary');
        return Object.keys(expected).every((k) => last[k] === expected[k]);
      },
      { timeoutMs: 30_000, intervalMs: 250, what: 'the summary' },
    );
  } catch {
    // asserted below, with the difference shown
  }
  return last;
}

/** Waits until every event the browsers sent is stored; returns the stored count per id. */
async function allStored(chain, timeoutMs = 30_000) {
  let counts;
  const missing = () => chain.sent().filter((e) => !counts.has(e.id));
  try {
    await waitFor(
      () => {
        counts = chain.storedCounts();
        return missing().length === 0;
      },
      { timeoutMs, intervalMs: 500, what: 'every sent event in the database' },
    );
  } catch {
    assert.fail(`never stored: ${JSON.stringify(missing())}`);
  }
  return counts;
}

function scenario(kind) {
  describe(`the chain on ${kind}`, () => {
    let chain;
    let desktop; // visitor A, carried from the realtime test into the visits test
    let started;

    before(async () => {
      started = Date.now();
      chain = await startChain(kind);
    });

    after(async () => {
      await stopChain(chain);
      console.log(`# chain on ${kind}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    });

    check(() => chain, 'a page view reaches /api/stats/realtime within 2 s of its request reaching the edge', async (t) => {
      const landing = '/?utm_source=newsletter&utm_medium=email&utm_campaign=launch';
      const { ms, visitor } = await realtimeLatency(chain, 'desktop', landing);
      desktop = visitor;
      t.diagnostic(`realtime latency on ${kind}: ${Math.round(ms)} ms`);
      console.log(`# realtime latency (${kind}): ${Math.round(ms)} ms`);
      assert.ok(ms <= REALTIME_LIMIT_MS, `${Math.round(ms)} ms`);
    });

    check(() => chain, 'three visitors: the stats API counts exactly what they did', async () => {
      // A, desktop Chrome, came from a newsletter (UTM) and is on `/` already: pricing, signs up
      // for the pro plan, home again, then the app (one full load, two pushState views, back
      // once: a popstate view), then leaves. 7 page views, 1 event, 1 visit, no bounce.
      const a = desktop.page;
      await view(chain, () => a.click('#nav-pricing'), '/pricing');
      await event(chain, () => a.click('#signup'), 'Signup');
      await view(chain, () => a.click('#nav-home'), '/');
      await view(chain, () => a.click('#nav-app'), '/app');
      await view(chain, () => a.click('#to-settings'), '/app/settings');
      await view(chain, () => a.click('#to-billing'), '/app/billing');
      await view(chain, () => a.evaluate(() => history.back()), '/app/settings');
      let from = chain.posts.length;
      await a.goto(`http://elsewhere.test:${chain.site.port}/`);
      await sentAfter(chain, from, (e) => e.kind === 'engagement', 'engagement on leaving');

      // B, iPhone Safari, comes from Hacker News to the blog post and follows its outbound
      // link. 1 page view, 1 event (the outbound click): no bounce.
      const b = await chain.visitor('iphone');
      await view(chain, () => b.page.goto(chain.url('/blog/hello'), { referer: 'https://news.ycombinator.com/item?id=1' }), '/blog/hello');
      await event(chain, () => b.page.click('#out'), 'Outbound Link: Click');
      await b.page.waitForURL(/elsewhere\.test/);

      // C, Android tablet, opens the pricing page and leaves: a bounce.
      const c = await chain.visitor('tablet');
      await view(chain, () => c.page.goto(chain.url('/pricing')), '/pricing');
      from = chain.posts.length;
      await c.page.goto('about:blank');
      await sentAfter(chain, from, (e) => e.kind === 'engagement', 'engagement on leaving');

      for (const v of [desktop, b, c]) assert.deepEqual(v.problems, []);
      await Promise.all([desktop, b, c].map((v) => v.close()));

      // Every request the browsers sent was accepted by the edge, and every event arrived once.
      await waitFor(() => chain.posts.every((p) => p.status !== null), { what: 'answers' });
      assert.deepEqual(chain.posts.filter((p) => /Headless/.test(p.ua)), [], 'each visitor\'s own User-Agent');
      const refused = chain.posts.filter((p) => p.status !== 202);
      assert.deepEqual(refused, [], 'every request accepted by the edge');
      const counts = await allStored(chain);
      for (const e of chain.sent()) assert.equal(counts.get(e.id), 1, `${e.kind} ${e.url} stored once`);
      assert.ok([...counts.values()].every((n) => n === 1));

      const expected = { pageviews: 9, visitors: 3, visits: 3, bounce_rate: 0.3333, events: 2 };
      const summary = await settledSummary(chain, expected);
      assert.deepEqual(pick([{ value: '', ...summary }], ['value', ...Object.keys(expected)]), [{ value: '', ...expected }]);
      assert.ok(summary.visit_duration_s > 0, 'visits have a duration');

      const breakdown = async (dim) => {
        const rows = await chain.stats('breakdown', { dim });
        sortedByVisitors(rows);
        return rows;
      };
      const pageKeys = ['value', 'visitors', 'pageviews', 'unique_pageviews', 'events'];
      assert.deepEqual(pick(await breakdown('page'), pageKeys), [
        { value: '/', visitors: 1, pageviews: 2, unique_pageviews: 1, events: 0 },
        { value: '/app', visitors: 1, pageviews: 1, unique_pageviews: 1, events: 0 },
        { value: '/app/billing', visitors: 1, pageviews: 1, unique_pageviews: 1, events: 0 },
        { value: '/app/settings', visitors: 1, pageviews: 2, unique_pageviews: 1, events: 0 },
        { value: '/blog/hello', visitors: 1, pageviews: 1, unique_pageviews: 1, events: 1 },
        { value: '/pricing', visitors: 2, pageviews: 2, unique_pageviews: 2, events: 1 },
      ]);
      const visitKeys = ['value', 'visitors', 'pageviews', 'visits', 'bounce_rate', 'events'];
      assert.deepEqual(pick(await breakdown('referrer'), visitKeys), [
        { value: 'Direct / None', visitors: 2, pageviews: 8, visits: 2, bounce_rate: 0.5, events: 1 },
        { value: 'Hacker News', visitors: 1, pageviews: 1, visits: 1, bounce_rate: 0, events: 1 },
      ]);
      for (const [dim, value] of [['utm_source', 'newsletter'], ['utm_medium', 'email'], ['utm_campaign', 'launch']]) {
        assert.deepEqual(pick(await breakdown(dim), visitKeys), [
          { value, visitors: 1, pageviews: 7, visits: 1, bounce_rate: 0, events: 1 },
        ], dim);
      }
      assert.deepEqual(pick(await breakdown('device'), visitKeys), [
        { value: 'desktop', visitors: 1, pageviews: 7, visits: 1, bounce_rate: 0, events: 1 },
        { value: 'mobile', visitors: 1, pageviews: 1, visits: 1, bounce_rate: 0, events: 1 },
        { value: 'tablet', visitors: 1, pageviews: 1, visits: 1, bounce_rate: 1, events: 0 },
      ]);
      const eventKeys = ['value', 'visitors', 'events'];
      assert.deepEqual(pick(await breakdown('event'), eventKeys), [
        { value: 'Outbound Link: Click', visitors: 1, events: 1 },
        { value: 'Signup', visitors: 1, events: 1 },
      ]);
      assert.deepEqual(pick(await breakdown('prop:plan'), eventKeys), [{ value: 'pro', visitors: 1, events: 1 }]);
      assert.deepEqual(pick(await breakdown('prop:url'), eventKeys), [
        { value: `http://elsewhere.test:${chain.site.port}/landing`, visitors: 1, events: 1 },
      ]);
      assert.deepEqual(await chain.stats('realtime'), { visitors: 3 });
    });

    check(() => chain, 'the admin page, opened with the key, shows the same numbers', async () => {
      const context = await chain.browser.newContext({ timezoneId: 'UTC', viewport: { width: 1280, height: 1000 } });
      const page = await context.newPage();
      const problems = [];
      page.on('pageerror', (e) => problems.push(String(e)));
      await page.goto(`${chain.ingest.base}/?site=${SITE}&prop=plan`);
      await page.locator('dialog#connect').waitFor({ state: 'visible' });
      await page.fill('#api-key', chain.key);
      await page.click('dialog button[type=submit]');
      await page.waitForSelector('.card-value[data-value]:not([data-value=""])');
      await page.selectOption('#period', 'today');
      await page.waitForFunction(() => new URLSearchParams(location.search).get('period') === 'today');
      const settled = () => page.waitForFunction(() => !document.querySelector('[aria-busy="true"]'));
      await settled();

      const cards = {};
      for (const k of ['visitors', 'visits', 'pageviews', 'events', 'bounce_rate']) {
        cards[k] = Number(await page.locator(`.card[data-metric="${k}"] .card-value`).getAttribute('data-value'));
      }
      assert.deepEqual(cards, { visitors: 3, visits: 3, pageviews: 9, events: 2, bounce_rate: 0.3333 });
      assert.equal(await page.textContent('.card[data-metric="bounce_rate"] .card-value'), '33%');
      await page.waitForFunction(() => document.querySelector('#realtime .realtime-value')?.dataset.value === '3');

      /** The rows of a panel's tab as [text, ...numbers shown]. */
      const table = async (panelTitle, tab) => {
        const panel = page.locator('section.breakdown', { has: page.locator('h2', { hasText: panelTitle }) });
        if (tab) await panel.getByRole('tab', { name: tab, exact: true }).click();
        await settled();
        return (
          await panel.locator('.breakdown-table tbody tr').evaluateAll((trs) =>
            trs.map((tr) => [tr.querySelector('.row-filter').textContent, ...[...tr.querySelectorAll('td')].map((td) => Number(td.dataset.value))]),
          )
        ).sort();
      };
      // Columns: visitors, views, unique views (pages); visitors, events (events, props);
      // visitors, views (the others).
      assert.deepEqual(await table('Top pages'), [
        ['/', 1, 2, 1], ['/app', 1, 1, 1], ['/app/billing', 1, 1, 1], ['/app/settings', 1, 2, 1],
        ['/blog/hello', 1, 1, 1], ['/pricing', 2, 2, 2],
      ]);
      assert.deepEqual(await table('Top sources'), [['Direct / None', 2, 8], ['Hacker News', 1, 1]]);
      assert.deepEqual(await table('Top sources', 'UTM source'), [['newsletter', 1, 7]]);
      assert.deepEqual(await table('Devices', 'Devices'), [['desktop', 1, 7], ['mobile', 1, 1], ['tablet', 1, 1]]);
      assert.deepEqual(await table('Events'), [['Outbound Link: Click', 1, 1], ['Signup', 1, 1]]);
      assert.deepEqual(await table('Events', 'Properties'), [['pro', 1, 1]]);
      assert.deepEqual(problems, []);
      await context.close();
    });

    check(() => chain, 'the ingest server stops mid-visit: every event arrives exactly once after its restart', async () => {
      const d = await chain.visitor('mac');
      await view(chain, () => d.page.goto(chain.url('/app')), '/app');
      const first = chain.sent().at(-1);
      await waitFor(() => chain.storedCounts().has(first.id), { what: 'the first page view stored' });

      await chain.ingest.stop(); // SIGTERM: it writes what it acknowledged and exits
      const from = chain.posts.length;
      await view(chain, () => d.page.click('#to-settings'), '/app/settings');
      await view(chain, () => d.page.click('#to-billing'), '/app/billing');
      await view(chain, () => d.page.click('#nav-pricing'), '/pricing');
      await event(chain, () => d.page.click('#signup'), 'Signup');
      const leaving = chain.posts.length;
      await d.page.goto(`http://elsewhere.test:${chain.site.port}/`);
      await sentAfter(chain, leaving, (e) => e.kind === 'engagement', 'engagement on leaving');
      assert.deepEqual(d.problems, []);
      await d.close();

      const during = chain.posts.slice(from);
      await waitFor(() => during.every((p) => p.status !== null), { what: 'answers' });
      assert.deepEqual([...new Set(during.map((p) => p.status))], [202], 'the edge accepts while the ingest server is down');
      const ids = during.flatMap((p) => p.events.map((e) => e.id));
      assert.ok(ids.length >= 5, `${ids.length} events sent during the outage`);
      const stored = chain.storedCounts();
      assert.ok(ids.every((id) => !stored.has(id)), 'nothing arrived while the server was down');

      await sleep(1500); // the edge's consumer has failed at least once by now
      await chain.ingest.start();
      const counts = await allStored(chain, 120_000);
      for (const id of ids) assert.equal(counts.get(id), 1, id);
      for (const e of chain.sent()) assert.equal(counts.get(e.id), 1, `${e.kind} ${e.url} stored once`);
      assert.ok([...counts.values()].every((n) => n === 1));

      // D: /app, two pushState views and /pricing with a signup: 4 page views, 1 event.
      const expected = { pageviews: 13, visitors: 4, visits: 4, bounce_rate: 0.25, events: 3 };
      const summary = await settledSummary(chain, expected);
      assert.deepEqual(pick([{ value: '', ...summary }], ['value', ...Object.keys(expected)]), [{ value: '', ...expected }]);
      assert.deepEqual(pick(await chain.stats('breakdown', { dim: 'prop:plan' }), ['value', 'visitors', 'events']), [
        { value: 'pro', visitors: 2, events: 2 },
      ]);
    });

    check(() => chain, 'the trace of an event shows every hop it took, and the pipeline view counts them', async () => {
      const get = async (path) => {
        const r = await fetch(`${chain.ingest.base}${path}`, { headers: { Authorization: `Bearer ${chain.key}` } });
        assert.equal(r.status, 200, path);
        return r.json();
      };
      const sent = new Set(chain.sent().map((e) => e.id));
      const post = chain.posts.find((p) => p.events.some((e) => e.kind === 'pageview'));
      const ev = post.events.find((e) => e.kind === 'pageview');
      const hops = await get(`/api/trace/${ev.id}`);
      assert.deepEqual(hops.map((h) => h.hop), ['browser', 'edge', 'ingest', 'stored']);
      const at = hops.map((h) => Date.parse(h.at));
      for (let i = 1; i < at.length; i++) assert.ok(at[i] >= at[i - 1], `hops in order: ${JSON.stringify(hops)}`);
      assert.equal(at[0], ev.ts, 'the browser hop is the time the browser gave');
      assert.ok(Math.abs(at[1] - post.at) < 2000, 'the edge hop is when the edge took the request');
      assert.match(hops[1].batch, /^edge-/);
      const pipeline = await get(`/api/pipeline?site=${SITE}`);
      const hop = Object.fromEntries(pipeline.hops.map((h) => [h.hop, h.events]));
      assert.equal(hop.stored, sent.size, JSON.stringify(pipeline.hops));
      assert.equal(hop.edge, sent.size, JSON.stringify(pipeline.hops));
      assert.ok(pipeline.last_edge_batch, 'the last edge batch is shown');
    });

    check(() => chain, 'hostile strings sent through the whole chain are shown as text on the admin page', async () => {
      const v = await chain.visitor({
        userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
        viewport: { width: 1280, height: 800 },
      });
      await view(chain, () => v.page.goto(chain.url(`/hostile?utm_source=${encodeURIComponent(HOSTILE.utm)}`)), '/hostile');
      await event(chain, () => v.page.click('#hostile'), HOSTILE.name);
      assert.deepEqual(v.problems, []);
      await v.close();
      await allStored(chain);
      await waitFor(async () => (await chain.stats('breakdown', { dim: 'event' })).some((r) => r.value === HOSTILE.name), {
        what: 'the hostile event in the rollups',
      });
      const stored = (await chain.stats('breakdown', { dim: `prop:${HOSTILE.key}` })).map((r) => r.value);
      assert.deepEqual(stored, [HOSTILE.value], 'stored as sent');

      const context = await chain.browser.newContext({ timezoneId: 'UTC', viewport: { width: 1280, height: 1000 } });
      const page = await context.newPage();
      const problems = [];
      page.on('pageerror', (e) => problems.push(String(e)));
      await page.goto(`${chain.ingest.base}/?site=${SITE}&period=today&prop=${encodeURIComponent(HOSTILE.key)}`);
      await page.locator('dialog#connect').waitFor({ state: 'visible' });
      await page.fill('#api-key', chain.key);
      await page.click('dialog button[type=submit]');
      await page.waitForSelector('.card-value[data-value]:not([data-value=""])');
      const texts = [];
      const tab = async (panelTitle, name) => {
        const panel = page.locator('section.breakdown', { has: page.locator('h2', { hasText: panelTitle }) });
        await panel.getByRole('tab', { name, exact: true }).click();
        await panel.locator('.breakdown-table').waitFor();
        await page.waitForFunction(() => !document.querySelector('[aria-busy="true"]'));
        texts.push(...(await panel.locator('.row-filter').allTextContents()));
      };
      await tab('Events', 'Events');
      await tab('Events', 'Properties');
      await tab('Top sources', 'UTM source');
      for (const needle of [HOSTILE.name, HOSTILE.value, HOSTILE.utm]) assert.ok(texts.includes(needle), `${needle} in ${JSON.stringify(texts)}`);
      // Hovering and clicking the rows (a filter) runs nothing either.
      await page.locator('.row-filter', { hasText: HOSTILE.utm }).first().hover();
      const injected = await page.evaluate(() => ({
        imgs: document.querySelectorAll('main img, main svg[onload], main b[onmouseover]').length,
        scripts: [...document.querySelectorAll('script')].filter((e) => !/vendor\/uPlot|js\/main\.js/.test(e.src)).length,
        pwned: window.__pwned,
      }));
      assert.deepEqual(injected, { imgs: 0, scripts: 0, pwned: undefined });
      assert.deepEqual(problems, []);
      await context.close();
    });
  });
}

scenario('sqlite');
scenario('postgres');
