// The breakdown tables, one panel per group of dimensions with a tab per dimension.
// Each row is a button: clicking it (or Enter / Space on it) filters the whole page by that value.
// Values from tracked pages are put in text nodes only (see dom.js).

import { h, replace } from './dom.js';
import { short } from './format.js';
import { dimLabel } from './state.js';

const GROUPS = [
  { title: 'Top sources', tabs: [['referrer', 'Referrers'], ['utm_source', 'UTM source'], ['utm_medium', 'UTM medium'], ['utm_campaign', 'UTM campaign']] },
  { title: 'Top pages', tabs: [['page', 'Pages'], ['entry_page', 'Entry pages'], ['exit_page', 'Exit pages']] },
  { title: 'Locations', tabs: [['country', 'Countries']] },
  { title: 'Devices', tabs: [['browser', 'Browsers'], ['os', 'Systems'], ['device', 'Devices']] },
  { title: 'Events', tabs: [['event', 'Events'], ['prop', 'Properties']] },
  { title: 'Users', tabs: [['user', 'Logged in']] },
];

const COLUMN_LABELS = { visitors: 'Visitors', pageviews: 'Views', unique_pageviews: 'Unique', events: 'Events' };

const FIRST_LIMIT = 10;
const MORE_LIMIT = 100;

let regionNames = null;
try {
  regionNames = new Intl.DisplayNames(undefined, { type: 'region' });
} catch {
  regionNames = null;
}

/** What a value reads as in a table: empty values get a name; countries their full name. */
function display(dim, value) {
  if (value == null || value === '') return dim === 'referrer' ? 'Direct / none' : '(none)';
  const s = String(value);
  if (dim === 'country' && regionNames && /^[A-Z]{2}$/.test(s)) {
    try {
      const name = regionNames.of(s);
      if (name && name !== s) return `${name} (${s})`;
    } catch {
      // not a known region code; show it as it is
    }
  }
  return s;
}

/**
 * root: the element the panels go in. hooks: {onFilter(dim, value), onProp(name), onError(err)}.
 * Returns {load(ctx)} where ctx = {client, query(extra) -> URLSearchParams, state, signal}.
 */
export function createBreakdowns(root, hooks) {
  const panels = GROUPS.map((group, i) => createPanel(group, i, hooks));
  replace(root, panels.map((p) => p.el));
  return {
    load(ctx) {
      return Promise.all(panels.map((p) => p.load(ctx)));
    },
  };
}

function createPanel(group, index, hooks) {
  let active = 0;
  let limit = FIRST_LIMIT;
  let ctx = null;
  const id = `bd${index}`;
  const body = h('div', { class: 'panel-body', id: `${id}-body`, role: group.tabs.length > 1 ? 'tabpanel' : null });
  const heading = h('h2', { id: `${id}-title` }, group.title);
  const tabs = group.tabs.map(([dim, label], i) => h('button', {
    type: 'button', role: 'tab', id: `${id}-tab${i}`, 'aria-controls': `${id}-body`, dataset: { dim },
    onclick: () => select(i, true),
    onkeydown: (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      e.preventDefault();
      select((i + step + group.tabs.length) % group.tabs.length, true);
    },
  }, label));
  const tablist = group.tabs.length > 1
    ? h('div', { role: 'tablist', class: 'tabs', 'aria-labelledby': `${id}-title` }, tabs)
    : null;
  const more = h('button', { type: 'button', class: 'link more', hidden: true, onclick: () => {
    limit = limit === FIRST_LIMIT ? MORE_LIMIT : FIRST_LIMIT;
    load(ctx);
  } });
  const el = h('section', { class: 'panel breakdown', 'aria-labelledby': `${id}-title` },
    h('div', { class: 'panel-head' }, heading, tablist), body, h('div', { class: 'panel-foot' }, more));

  function select(i, focus) {
    if (i !== active) limit = FIRST_LIMIT;
    active = i;
    tabs.forEach((t, j) => {
      t.setAttribute('aria-selected', String(j === i));
      t.tabIndex = j === i ? 0 : -1;
    });
    if (tablist) body.setAttribute('aria-labelledby', tabs[i].id);
    if (focus) tabs[i].focus();
    if (ctx) load(ctx);
  }
  select(0, false);

  function currentDim() {
    const dim = group.tabs[active][0];
    if (dim !== 'prop') return dim;
    return ctx && ctx.state.prop ? `prop:${ctx.state.prop}` : null;
  }

  async function load(newCtx) {
    ctx = newCtx;
    const dim = currentDim();
    const controls = group.tabs[active][0] === 'prop' ? propInput(ctx.state.prop, hooks.onProp) : null;
    if (!dim) {
      replace(body, controls, h('p', { class: 'empty' }, 'Enter the name of a custom event property (for example "plan") to see its values.'));
      more.hidden = true;
      return;
    }
    body.setAttribute('aria-busy', 'true');
    if (!body.querySelector('table')) replace(body, controls, h('p', { class: 'loading' }, 'Loading…'));
    const requested = { dim, limit };
    try {
      const rows = await ctx.client.get('/api/stats/breakdown', ctx.query(requested), { signal: ctx.signal });
      if (dim !== currentDim() || requested.limit !== limit || newCtx !== ctx) return; // a newer view took over
      body.removeAttribute('aria-busy');
      replace(body, controls, table(dim, Array.isArray(rows) ? rows : [], ctx.state, hooks.onFilter, group.tabs[active][1]));
      more.hidden = !(Array.isArray(rows) && (rows.length >= FIRST_LIMIT || limit > FIRST_LIMIT));
      more.textContent = limit === FIRST_LIMIT ? 'Show more' : 'Show fewer';
    } catch (err) {
      if (err.name === 'AbortError' || newCtx !== ctx) return;
      body.removeAttribute('aria-busy');
      more.hidden = true;
      replace(body, controls, h('p', { class: 'error', role: 'alert' }, `Could not load ${group.tabs[active][1].toLowerCase()}: ${err.message} `,
        h('button', { type: 'button', class: 'link', onclick: () => load(ctx) }, 'Retry')));
      hooks.onError(err);
    }
  }

  return { el, load };
}

function propInput(current, onProp) {
  const input = h('input', { type: 'text', id: 'prop-name', name: 'prop', value: current || '', placeholder: 'e.g. plan',
    autocomplete: 'off', spellcheck: 'false' });
  return h('form', { class: 'prop-form', onsubmit: (e) => {
    e.preventDefault();
    onProp(input.value.trim());
  } }, h('label', { for: 'prop-name' }, 'Property name'), input, h('button', { type: 'submit' }, 'Show'));
}

function table(dim, rows, state, onFilter, caption) {
  if (rows.length === 0) return h('p', { class: 'empty' }, 'No data for this period.');
  const wanted = dim === 'page' ? ['visitors', 'pageviews', 'unique_pageviews']
    : dim === 'event' || dim.startsWith('prop:') ? ['visitors', 'events', 'pageviews']
      : ['visitors', 'pageviews'];
  const present = (key) => rows.some((r) => r && r[key] != null && Number.isFinite(Number(r[key])));
  const shown = wanted.filter(present).slice(0, dim === 'page' ? 3 : 2).map((key) => [key, COLUMN_LABELS[key]]);
  const max = Math.max(1, ...rows.map((r) => Number(r && r.visitors) || 0));
  const filtered = new Map(state.filters);
  return h('table', { class: 'breakdown-table', dataset: { dim } },
    h('caption', { class: 'sr-only' }, `${caption}. Choose a row to filter the page by it.`),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', class: 'name' }, dimLabel(dim)),
      shown.map(([key, label]) => h('th', { scope: 'col', class: key === 'unique_pageviews' ? 'num extra' : 'num' }, label)))),
    h('tbody', {}, rows.map((row) => {
      const value = row && row.value != null ? String(row.value) : '';
      const text = display(dim, value);
      const isActive = filtered.has(dim) && filtered.get(dim) === value;
      const bar = h('span', { class: 'bar', 'aria-hidden': 'true' });
      bar.style.width = `${Math.round(((Number(row && row.visitors) || 0) / max) * 100)}%`;
      return h('tr', { class: isActive ? 'active' : null, onclick: () => onFilter(dim, value) },
        h('th', { scope: 'row', class: 'name' }, bar,
          h('button', { type: 'button', class: 'row-filter', title: `Filter by ${dimLabel(dim).toLowerCase()}: ${text}`,
            'aria-pressed': isActive ? 'true' : 'false' }, text)),
        shown.map(([key]) => h('td', { class: key === 'unique_pageviews' ? 'num extra' : 'num', dataset: { value: String(row[key] ?? '') } }, short(Number(row[key])))));
    })));
}
