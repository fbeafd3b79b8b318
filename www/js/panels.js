// The operator panels: monitors (GET /api/monitors, CONTRACT §7) and the pipeline flow
// (GET /api/pipeline?site=SITE, CONTRACT §8). Both are hidden when the server answers 404,
// and both read their JSON defensively: unknown or missing fields show as "—", never break.

import { h, replace } from './dom.js';
import { ago, count, lag, when } from './format.js';

const HOPS = ['browser', 'edge', 'ingest', 'stored'];
const HOP_LABELS = { browser: 'Browser', edge: 'Edge', ingest: 'Ingest', stored: 'Stored' };
const DROP_REASONS = ['bot', 'invalid', 'duplicate', 'excluded', 'rate_limited', 'unknown_site'];

const num = (v) => (v == null || v === '' ? NaN : Number(v));
const str = (v) => (v == null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));

/** Finds the first present field among several spellings, looking one level into objects. */
function pick(obj, ...paths) {
  for (const path of paths) {
    let v = obj;
    for (const key of path.split('.')) v = v && typeof v === 'object' ? v[key] : undefined;
    if (v !== undefined && v !== null) return v;
  }
  return undefined;
}

export function createMonitors(section) {
  const body = section.querySelector('.panel-body');
  return {
    async load({ client, signal }) {
      try {
        const data = await client.get('/api/monitors', null, { signal });
        const list = Array.isArray(data) ? data : Array.isArray(data && data.monitors) ? data.monitors : [];
        section.hidden = false;
        replace(body, list.length ? monitorTable(list)
          : h('p', { class: 'empty' }, 'No monitors are configured (see TALLY_MONITORS).'));
      } catch (err) {
        if (err.name === 'AbortError') return;
        if (err.status === 404) {
          section.hidden = true;
          return;
        }
        section.hidden = false;
        replace(body, h('p', { class: 'error', role: 'alert' }, `Could not load monitors: ${err.message}`));
        if (err.status === 401) throw err;
      }
    },
  };
}

function monitorTable(list) {
  return h('div', { class: 'table-scroll' }, h('table', { class: 'monitors-table' },
    h('caption', { class: 'sr-only' }, 'Monitors and their state'),
    h('thead', {}, h('tr', {}, ['Monitor', 'Site', 'Metric', 'State', 'Last value', 'Last notification', 'History']
      .map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, list.map((m) => {
      const state = str(pick(m, 'state')) || 'unknown';
      const threshold = pick(m, 'threshold', 'above', 'below');
      const side = m && m.below != null && m.above == null ? '<' : '>';
      const value = pick(m, 'value', 'last_value');
      const notified = pick(m, 'last_notified_at', 'last_notification.at', 'last_notification');
      const notifiedState = pick(m, 'last_notification.state', 'last_notified_state');
      const cell = (label, ...content) => h('td', { 'data-label': label }, h('span', { class: 'cell' }, ...content));
      // The latest transitions, newest first (at most three shown).
      const history = (Array.isArray(m && m.history) ? m.history : [])
        .filter((e) => e && typeof e === 'object').slice(0, 3);
      return h('tr', {},
        h('th', { scope: 'row' }, str(pick(m, 'name')) || '—'),
        cell('Site', str(pick(m, 'site')) || '—'),
        cell('Metric', str(pick(m, 'metric')) || '—',
          threshold != null ? h('span', { class: 'muted' }, ` ${side} ${str(threshold)}`) : null),
        cell('State', h('span', { class: `badge state-${/^(ok|firing|resolved)$/.test(state) ? state : 'unknown'}` }, state)),
        cell('Last value', value == null ? '—' : Number.isFinite(num(value)) ? count(num(value)) : str(value)),
        cell('Last notification', h('span', { title: notified == null || typeof notified === 'object' ? null : when(str(notified)) },
          typeof notified === 'object' ? '—' : ago(notified), notifiedState ? ` (${str(notifiedState)})` : '')),
        cell('History', history.length
          ? h('span', { class: 'history' }, history.map((e, i) => h('span', { title: when(str(pick(e, 'at'))) },
            i > 0 ? ' · ' : '', `${str(pick(e, 'state')) || '?'} ${ago(str(pick(e, 'at')))}`)))
          : '—'));
    }))));
}

export function createPipeline(section) {
  const body = section.querySelector('.panel-body');
  return {
    async load({ client, site, signal }) {
      try {
        const data = await client.get('/api/pipeline', new URLSearchParams({ site }), { signal });
        section.hidden = false;
        replace(body, pipelineView(data && typeof data === 'object' ? data : {}));
      } catch (err) {
        if (err.name === 'AbortError') return;
        if (err.status === 404) {
          section.hidden = true;
          return;
        }
        section.hidden = false;
        replace(body, h('p', { class: 'error', role: 'alert' }, `Could not load the pipeline: ${err.message}`));
        if (err.status === 401) throw err;
      }
    },
  };
}

/** The hops as a map name -> hop object, from an array ([{hop: ..}]) or an object ({browser: ..}). */
function hopsOf(data) {
  const raw = data.hops;
  const map = new Map();
  if (Array.isArray(raw)) {
    for (const hop of raw) if (hop && typeof hop === 'object') map.set(str(pick(hop, 'hop', 'name')), hop);
  } else if (raw && typeof raw === 'object') {
    for (const [name, hop] of Object.entries(raw)) map.set(name, hop && typeof hop === 'object' ? hop : { events: hop });
  }
  return map;
}

function pipelineView(data) {
  const hops = hopsOf(data);
  const names = [...HOPS, ...[...hops.keys()].filter((n) => !HOPS.includes(n))];
  const flow = h('ol', { class: 'flow', 'aria-label': 'Events per hop in the last hour, and the lag from the previous hop' },
    names.map((name, i) => {
      const hop = hops.get(name) || {};
      const events = num(pick(hop, 'events', 'count', 'seen'));
      const p50 = num(pick(hop, 'lag_p50_ms', 'p50_ms', 'lag.p50_ms', 'lag_ms.p50'));
      const p99 = num(pick(hop, 'lag_p99_ms', 'p99_ms', 'lag.p99_ms', 'lag_ms.p99'));
      return h('li', { class: 'hop', dataset: { hop: name } },
        i > 0 ? h('span', { class: 'hop-lag' },
          h('span', { class: 'arrow', 'aria-hidden': 'true' }),
          Number.isFinite(p50) || Number.isFinite(p99)
            ? h('span', { class: 'lag-values' }, h('span', { class: 'sr-only' }, 'lag '),
              h('span', {}, `p50 ${lag(p50)}`), h('span', {}, `p99 ${lag(p99)}`))
            : h('span', { class: 'muted' }, 'lag —')) : null,
        h('span', { class: 'hop-box' },
          h('span', { class: 'hop-name' }, HOP_LABELS[name] || name),
          h('span', { class: 'hop-count', dataset: { value: Number.isFinite(events) ? String(events) : '' } },
            Number.isFinite(events) ? count(events) : '—'),
          h('span', { class: 'hop-unit' }, 'events')));
    }));

  const dropped = data.dropped;
  const drops = new Map();
  if (Array.isArray(dropped)) {
    for (const d of dropped) if (d && typeof d === 'object') drops.set(str(pick(d, 'reason')), num(pick(d, 'count', 'events')));
  } else if (dropped && typeof dropped === 'object') {
    for (const [reason, n] of Object.entries(dropped)) drops.set(reason, num(n));
  }
  const reasons = [...DROP_REASONS.filter((r) => drops.has(r)), ...[...drops.keys()].filter((r) => !DROP_REASONS.includes(r))];
  const last = pick(data, 'last_edge_batch', 'last_edge_batch_at');

  return [
    flow,
    h('div', { class: 'pipeline-facts' },
      h('div', {},
        h('h3', {}, 'Dropped in the last hour'),
        reasons.length
          ? h('dl', { class: 'drops' }, reasons.map((r) => h('div', {},
            h('dt', {}, r.replace(/_/g, ' ')), h('dd', { dataset: { value: String(drops.get(r)) } }, count(drops.get(r))))))
          : h('p', { class: 'muted' }, 'Nothing dropped.')),
      h('div', {},
        h('h3', {}, 'Last batch from the edge'),
        h('p', { title: last == null ? null : when(str(last)) }, last == null ? 'none yet' : ago(str(last))))),
  ];
}
