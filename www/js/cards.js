// The summary cards (with the change against the previous period) and the realtime counter.

import { h, replace } from './dom.js';
import { change, count, duration, percent } from './format.js';

const METRICS = [
  { key: 'visitors', label: 'Unique visitors', show: count },
  { key: 'visits', label: 'Visits', show: count },
  { key: 'pageviews', label: 'Page views', show: count },
  { key: 'bounce_rate', label: 'Bounce rate', show: percent, kind: 'fraction', lowerIsBetter: true },
  { key: 'visit_duration_s', label: 'Visit duration', show: duration },
  { key: 'events', label: 'Events', show: count },
];

const ARROWS = { up: '↑', down: '↓', flat: '→' };

export function createCards(root) {
  function skeleton(state) {
    return METRICS.map((m) => h('div', { class: `card ${state}`, dataset: { metric: m.key } },
      h('dt', { class: 'card-label' }, m.label),
      h('dd', { class: 'card-value' }, state === 'loading' ? '…' : '—'),
      h('dd', { class: 'card-change' }, ' ')));
  }

  return {
    loading() {
      root.setAttribute('aria-busy', 'true');
      if (!root.children.length) replace(root, skeleton('loading'));
    },
    render(summary) {
      root.removeAttribute('aria-busy');
      const data = summary && typeof summary === 'object' ? summary : {};
      const prev = data.previous && typeof data.previous === 'object' ? data.previous : {};
      replace(root, METRICS.map((m) => {
        const value = Number(data[m.key]);
        const before = Number(prev[m.key]);
        // Rates and averages over no visits are undefined, not zero.
        const averaged = m.key === 'bounce_rate' || m.key === 'visit_duration_s';
        const delta = averaged && Number(prev.visits) === 0 ? null : change(value, before, m);
        return h('div', { class: 'card', dataset: { metric: m.key } },
          h('dt', { class: 'card-label' }, m.label),
          h('dd', { class: 'card-value', dataset: { value: Number.isFinite(value) ? String(value) : '' } }, m.show(value)),
          delta
            ? h('dd', {
              class: `card-change ${delta.direction} ${delta.good == null ? '' : delta.good ? 'good' : 'bad'}`,
              title: `Previous period: ${m.show(before)}`,
            }, h('span', { 'aria-hidden': 'true' }, ARROWS[delta.direction], ' '),
            h('span', { class: 'sr-only' }, delta.direction === 'flat' ? 'unchanged, ' : delta.direction === 'up' ? 'up ' : 'down '),
            delta.text,
            h('span', { class: 'change-note' }, ' vs previous'))
            : h('dd', { class: 'card-change' }, 'no previous data'));
      }));
    },
    error() {
      root.removeAttribute('aria-busy');
      replace(root, skeleton('error'));
    },
  };
}

/** The "N current visitors" line; only touches the DOM when the number changes (aria-live). */
export function createRealtime(root) {
  const number = h('span', { class: 'realtime-value' }, '–');
  const label = h('span', {}, ' current visitors');
  replace(root, h('span', { class: 'dot', 'aria-hidden': 'true' }), number, label);
  root.classList.add('stale');
  let last = null;
  return {
    render(data) {
      const n = Number(data && data.visitors);
      const text = Number.isFinite(n) ? count(n) : '–';
      root.classList.toggle('stale', false);
      if (text === last) return;
      last = text;
      number.textContent = text;
      number.dataset.value = Number.isFinite(n) ? String(n) : '';
      label.textContent = n === 1 ? ' current visitor' : ' current visitors';
    },
    stale() {
      root.classList.toggle('stale', true);
    },
  };
}
