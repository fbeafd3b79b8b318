// The visitors / page views chart, drawn by uPlot (www/vendor/, copied there by
// scripts/build-www.sh). uPlot's live legend shows the values under the cursor; the chart can
// also be stepped through with the arrow keys when it has focus.

import { h, replace } from './dom.js';
import { count, short } from './format.js';

/** Parses an API bucket label ("2026-11-01", "2026-11", "2026-11-01T13:00:00Z") to epoch seconds. */
export function bucketTime(t) {
  if (typeof t === 'number') return t > 1e11 ? t / 1000 : t;
  const s = String(t);
  let d;
  if (/^\d{4}-\d{2}$/.test(s)) d = new Date(`${s}-01T00:00:00`);
  else if (/^\d{4}-\d{2}-\d{2}$/.test(s)) d = new Date(`${s}T00:00:00`);
  else if (/^\d{4}-\d{2}-\d{2}[T ]\d{2}(:\d{2})?(:\d{2})?$/.test(s)) d = new Date(s.replace(' ', 'T'));
  else d = new Date(s);
  const ms = d.getTime();
  return Number.isNaN(ms) ? null : ms / 1000;
}

const LABEL_FORMATS = {
  hour: { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' },
  day: { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' },
  month: { month: 'long', year: 'numeric' },
};

// Tick steps for the time axis (seconds): whole days for daily data, whole months for monthly
// data, so that a week of days is not labelled with hours. Hourly data uses uPlot's defaults.
const DAY_S = 86400;
const TICK_STEPS = {
  day: [1, 2, 3, 7, 14, 30, 91, 182, 365].map((d) => d * DAY_S),
  month: [30, 91, 182, 365].map((d) => d * DAY_S),
};

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export function createChart(root) {
  const holder = h('div', { class: 'chart-canvas' });
  let plot = null;
  let interval = 'day';

  const resize = new ResizeObserver(() => {
    if (plot) plot.setSize(size());
  });
  resize.observe(root);

  function size() {
    const width = Math.max(200, Math.floor(root.clientWidth));
    return { width, height: width < 600 ? 200 : 280 };
  }

  function destroy() {
    if (plot) plot.destroy();
    plot = null;
  }

  function message(cls, text, extra) {
    destroy();
    replace(root, h('div', { class: `chart-message ${cls}` }, text, extra));
  }

  function render(rows, newInterval) {
    interval = newInterval;
    const list = Array.isArray(rows) ? rows : [];
    const xs = [];
    const visitors = [];
    const pageviews = [];
    for (const row of list) {
      const x = bucketTime(row && row.t);
      if (x == null) continue;
      xs.push(x);
      visitors.push(Number(row.visitors) || 0);
      pageviews.push(Number(row.pageviews) || 0);
    }
    if (xs.length === 0) {
      message('empty', 'No data for this period.');
      return;
    }
    destroy();
    const empty = visitors.every((v) => v === 0) && pageviews.every((v) => v === 0);
    replace(root, holder, empty ? h('p', { class: 'chart-note' }, 'No visitors in this period yet.') : null);
    const totalV = visitors.reduce((a, b) => a + b, 0);
    const totalP = pageviews.reduce((a, b) => a + b, 0);
    holder.setAttribute('aria-label', `Chart of visitors and page views, ${xs.length} points: ` +
      `${count(totalV)} visitor-${interval}s and ${count(totalP)} page views in total. ` +
      'Use the left and right arrow keys to read each point.');
    plot = new window.uPlot(options(), [xs, visitors, pageviews], holder);
  }

  function options() {
    const fmt = new Intl.DateTimeFormat(undefined, LABEL_FORMATS[interval] || LABEL_FORMATS.day);
    const text = cssVar('--muted') || '#666';
    const grid = cssVar('--grid') || '#eee';
    const value = (u, v) => (v == null ? '–' : count(v));
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, font: '12px system-ui, sans-serif' };
    return {
      ...size(),
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(4, Math.ceil(max * 1.1))] } },
      series: [
        { label: interval === 'hour' ? 'Hour' : interval === 'month' ? 'Month' : 'Day',
          value: (u, ts) => (ts == null ? '–' : fmt.format(new Date(ts * 1000))) },
        { label: 'Visitors', stroke: cssVar('--accent') || '#4f46e5', fill: cssVar('--accent-fill') || 'rgba(79,70,229,.1)',
          width: 2, value, points: { size: 6 } },
        { label: 'Page views', stroke: cssVar('--accent-2') || '#0ea5e9', width: 2, dash: [6, 4], value, points: { size: 5 } },
      ],
      axes: [
        { ...axis, ...(TICK_STEPS[interval] ? { incrs: TICK_STEPS[interval] } : {}) },
        { ...axis,
          values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? short(v) : '')),
          size: (u, values) => 18 + 7.5 * Math.max(2, ...(values || []).map((v) => String(v).length)) },
      ],
      cursor: { drag: { x: false, y: false }, points: { size: 8 } },
      legend: { live: true },
      // Values show only while a point is under the cursor (or chosen with the keyboard).
      hooks: { setCursor: [(u) => root.classList.toggle('reading', u.cursor.idx != null)] },
    };
  }

  // Keyboard: arrows move the cursor point by point, so the legend reads out each value.
  holder.tabIndex = 0;
  holder.setAttribute('role', 'img');
  holder.addEventListener('keydown', (e) => {
    if (!plot || (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight' && e.key !== 'Home' && e.key !== 'End')) return;
    e.preventDefault();
    const n = plot.data[0].length;
    const cur = plot.cursor.idx;
    let idx;
    if (e.key === 'Home') idx = 0;
    else if (e.key === 'End' || cur == null) idx = n - 1;
    else idx = Math.min(n - 1, Math.max(0, cur + (e.key === 'ArrowRight' ? 1 : -1)));
    plot.setCursor({ left: plot.valToPos(plot.data[0][idx], 'x'), top: plot.valToPos(plot.data[1][idx], 'y') });
  });

  return {
    render,
    loading() {
      if (!plot) message('loading', 'Loading chart…');
      root.setAttribute('aria-busy', 'true');
    },
    done() {
      root.removeAttribute('aria-busy');
    },
    error(text, retry) {
      message('error', text, retry);
    },
  };
}
