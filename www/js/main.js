// Wires the admin page together: reads the view from the URL, loads every part of it from the
// stats API, and turns user actions (site, period, row clicks, filter removal) into new URLs.

import { createClient, statsQuery } from './api.js';
import { createBreakdowns } from './breakdowns.js';
import { createCards, createRealtime } from './cards.js';
import { createChart } from './chart.js';
import { createConnectDialog, credentials } from './connect.js';
import { $, h, replace } from './dom.js';
import { createMonitors, createPipeline } from './panels.js';
import { PERIODS, dimLabel, parse, range, serialize, timeZone, withFilter, withoutFilter } from './state.js';

const REALTIME_MS = 5000;
const OPS_MS = 30000;

let state = parse(window.location.search);
let client = null;
let sites = null; // [{domain}] from /api/sites, or null when the server has no such endpoint
let inflight = null;
let realtimeTimer = null;
let opsTimer = null;

const cards = createCards($('#cards'));
const chart = createChart($('#chart'));
const realtime = createRealtime($('#realtime'));
const monitors = createMonitors($('#monitors'));
const pipeline = createPipeline($('#pipeline'));
const breakdowns = createBreakdowns($('#breakdowns'), {
  onFilter: (dim, value) => navigate(withFilter(state, dim, value)),
  onProp: (name) => navigate({ ...state, prop: name }),
  onError: handleError,
});
const dialog = createConnectDialog($('#connect'), {
  onConnect: connect,
  onForget: () => stop('Enter an API key to see your stats.'),
});

// ---- navigation ----------------------------------------------------------------------------

function navigate(next) {
  state = next;
  const url = serialize(state) || window.location.pathname;
  if (url !== window.location.search) window.history.pushState(null, '', url);
  refresh();
}

window.addEventListener('popstate', () => {
  state = parse(window.location.search);
  refresh();
});

// ---- connecting ----------------------------------------------------------------------------

/** Tries a key and base; on success stores them and loads the page, otherwise throws. */
async function connect({ key, base }) {
  const candidate = createClient({ base, key });
  let list = null;
  try {
    list = await candidate.get('/api/sites');
  } catch (err) {
    if (err.status === 401) throw Object.assign(new Error('The server did not accept this key.'), { status: 401 });
    if (err.status !== 404) throw err;
  }
  credentials.setKey(key);
  credentials.setBase(base);
  client = candidate;
  sites = Array.isArray(list) ? list.map((s) => (typeof s === 'string' ? { domain: s } : s)).filter((s) => s && s.domain) : null;
  if (!state.site && sites && sites.length) {
    state = { ...state, site: String(sites[0].domain) };
    window.history.replaceState(null, '', serialize(state));
  }
  renderSitePicker();
  refresh();
  startTimers();
}

function stop(text) {
  client = null;
  if (inflight) inflight.abort();
  clearInterval(realtimeTimer);
  clearInterval(opsTimer);
  $('#dashboard').hidden = true;
  $('#export').disabled = true;
  const welcome = $('#welcome');
  welcome.hidden = false;
  replace(welcome.querySelector('h1'), 'Connect to your Tally server');
  replace(welcome.querySelector('p'), text);
  $('#connect-open').hidden = false;
}

/** 401 from any request: forget the key and ask again. Other errors are shown where they happen. */
function handleError(err) {
  if (err && err.status === 401 && client) {
    credentials.forgetKey();
    stop('The server no longer accepts the saved key.');
    dialog.open('The server did not accept the key. Please enter it again.');
  }
}

// ---- controls ------------------------------------------------------------------------------

const periodSelect = $('#period');
replace(periodSelect, PERIODS.map(([id, label]) => h('option', { value: id }, label)));
periodSelect.value = state.period;
periodSelect.addEventListener('change', () => {
  const next = { ...state, period: periodSelect.value };
  if (next.period === 'custom') {
    const r = range(state);
    next.from = state.from || r.from;
    next.to = state.to || r.to;
  }
  navigate(next);
});

$('#custom-range').addEventListener('submit', (e) => {
  e.preventDefault();
  const form = e.currentTarget;
  navigate({ ...state, period: 'custom', from: form.elements.from.value, to: form.elements.to.value });
});

function renderSitePicker() {
  const holder = $('#site-picker');
  const label = h('label', { for: 'site' }, 'Site');
  if (sites) {
    const names = sites.map((s) => String(s.domain));
    if (state.site && !names.includes(state.site)) names.push(state.site);
    const select = h('select', { id: 'site', name: 'site', disabled: names.length === 0 },
      names.length ? names.map((d) => h('option', { value: d }, d)) : h('option', { value: '' }, 'no sites yet'));
    select.value = state.site;
    select.addEventListener('change', () => navigate({ ...state, site: select.value, filters: [], prop: '' }));
    replace(holder, label, select);
  } else {
    const input = h('input', { id: 'site', name: 'site', type: 'text', value: state.site, placeholder: 'example.com',
      autocomplete: 'off', spellcheck: 'false', inputmode: 'url' });
    input.addEventListener('change', () => navigate({ ...state, site: input.value.trim(), filters: [], prop: '' }));
    replace(holder, label, input);
  }
}

function renderControls(r) {
  periodSelect.value = state.period;
  const custom = $('#custom-range');
  custom.hidden = state.period !== 'custom';
  custom.elements.from.value = r.from;
  custom.elements.to.value = r.to;
  const site = $('#site');
  if (site && site.value !== state.site) site.value = state.site;

  const filters = $('#filters');
  replace(filters, state.filters.map(([dim, value]) => h('span', { class: 'chip' },
    h('span', { class: 'chip-dim' }, `${dimLabel(dim)} is `),
    h('span', { class: 'chip-value' }, value === '' ? '(none)' : value),
    h('button', { type: 'button', class: 'chip-remove', 'aria-label': `Remove filter ${dimLabel(dim)} is ${value}`,
      onclick: () => navigate(withoutFilter(state, dim)) }, '×'))),
  state.filters.length > 1
    ? h('button', { type: 'button', class: 'link', onclick: () => navigate({ ...state, filters: [] }) }, 'Clear all filters')
    : null);
  filters.hidden = state.filters.length === 0;
}

// ---- loading -------------------------------------------------------------------------------

function context(signal) {
  const r = range(state);
  const base = { site: state.site, from: r.from, to: r.to, tz: timeZone(), filters: state.filters };
  return { client, state, signal, site: state.site, range: r, query: (extra) => statsQuery(base, extra) };
}

function refresh() {
  if (!client) return;
  if (inflight) inflight.abort();
  inflight = new AbortController();
  const ctx = context(inflight.signal);
  renderControls(ctx.range);
  document.title = state.site ? `${state.site} · Tally` : 'Tally';
  $('#welcome').hidden = Boolean(state.site);
  $('#dashboard').hidden = !state.site;
  $('#export').disabled = !state.site;
  replace($('#status'));
  if (!state.site) {
    $('#welcome').hidden = false;
    replace($('#welcome h1'), 'Choose a site');
    replace($('#welcome p'), sites && sites.length === 0
      ? 'No sites are registered yet. Add one with `ingest-server site add example.com`.'
      : 'Type the domain of a site registered on this server in the Site field.');
    $('#connect-open').hidden = true;
    return;
  }

  cards.loading();
  chart.loading();
  const summary = client.get('/api/stats/summary', ctx.query(), { signal: ctx.signal })
    .then(cards.render, (err) => fail(err, 'the summary', cards.error));
  const series = client.get('/api/stats/timeseries', ctx.query({ interval: ctx.range.interval }), { signal: ctx.signal })
    .then((rows) => chart.render(rows, ctx.range.interval), (err) => fail(err, 'the chart', (text, retry) => chart.error(text, retry)))
    .finally(chart.done);
  Promise.all([summary, series, breakdowns.load(ctx), tick(ctx.signal), ops(ctx.signal)]).catch(() => {});
}

function fail(err, what, show) {
  if (err.name === 'AbortError') return;
  handleError(err);
  const retry = h('button', { type: 'button', class: 'link', onclick: refresh }, 'Retry');
  show(`Could not load ${what}: ${err.message}`, retry);
  const status = $('#status');
  if (!status.firstChild) replace(status, h('p', { class: 'error' }, `Some statistics could not be loaded: ${err.message} `, retry));
}

async function tick(signal) {
  if (!client || !state.site) return;
  try {
    const q = statsQuery({ site: state.site, tz: timeZone(), filters: state.filters });
    realtime.render(await client.get('/api/stats/realtime', q, { signal }));
  } catch (err) {
    if (err.name === 'AbortError') return;
    realtime.stale();
    handleError(err);
  }
}

async function ops(signal) {
  if (!client || !state.site) return;
  const ctx = { client, site: state.site, signal };
  await Promise.all([monitors.load(ctx), pipeline.load(ctx)]).catch(handleError);
}

function startTimers() {
  clearInterval(realtimeTimer);
  clearInterval(opsTimer);
  realtimeTimer = setInterval(() => { if (!document.hidden) tick(); }, REALTIME_MS);
  opsTimer = setInterval(() => { if (!document.hidden) ops(); }, OPS_MS);
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) tick();
});

// ---- export --------------------------------------------------------------------------------

$('#export').addEventListener('click', async (e) => {
  const button = e.currentTarget;
  if (!client || !state.site) return;
  const r = range(state);
  const q = statsQuery({ site: state.site, from: r.from, to: r.to, tz: timeZone(), filters: state.filters },
    { format: 'csv', interval: r.interval });
  button.disabled = true;
  const old = button.textContent;
  button.textContent = 'Preparing…';
  try {
    const blob = await client.blob('/api/stats/export', q);
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `tally-${state.site}-${r.from}-${r.to}.csv`, hidden: true });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    handleError(err);
    if (err.status !== 401) replace($('#status'), h('p', { class: 'error' }, `The CSV export failed: ${err.message}`));
  } finally {
    button.disabled = false;
    button.textContent = old;
  }
});

// ---- start ---------------------------------------------------------------------------------

$('#settings').addEventListener('click', () => dialog.open());
$('#connect-open').addEventListener('click', () => dialog.open());

if (credentials.key()) {
  connect({ key: credentials.key(), base: credentials.base() }).catch((err) => {
    stop(err.message);
    if (err.status === 401) {
      credentials.forgetKey();
      dialog.open('The saved key was not accepted. Please enter it again.');
    }
  });
} else {
  stop('Enter a stats API key (made with `ingest-server key create`) to see your sites.');
  dialog.open();
}
