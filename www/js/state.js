// The view state (site, period, filters, property name) and its home in the URL query string,
// so that a view can be shared as a link and back / forward move between views.
// Also turns a period into the from / to / interval the stats API takes.

export const PERIODS = [
  ['today', 'Today'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
  ['month', 'This month'],
  ['12mo', 'Last 12 months'],
  ['custom', 'Custom range'],
];

const DIM_LABELS = {
  page: 'Page', entry_page: 'Entry page', exit_page: 'Exit page', referrer: 'Referrer',
  utm_source: 'UTM source', utm_medium: 'UTM medium', utm_campaign: 'UTM campaign',
  country: 'Country', browser: 'Browser', os: 'OS', device: 'Device', event: 'Event', user: 'User',
};

export function dimLabel(dim) {
  if (dim.startsWith('prop:')) return `Property ${dim.slice(5)}`;
  return DIM_LABELS[dim] || dim;
}

const FILTER_KEY = /^filter\[(.+)\]$/;

/** Reads the state from a query string ("?site=..&period=..&filter[page]=/x"). */
export function parse(search) {
  const q = new URLSearchParams(search);
  const period = PERIODS.some(([id]) => id === q.get('period')) ? q.get('period') : '30d';
  const filters = [];
  for (const [key, value] of q) {
    const m = FILTER_KEY.exec(key);
    if (m && !filters.some(([d]) => d === m[1])) filters.push([m[1], value]);
  }
  return {
    site: q.get('site') || '',
    period,
    from: isoDate(q.get('from')) ? q.get('from') : '',
    to: isoDate(q.get('to')) ? q.get('to') : '',
    prop: q.get('prop') || '',
    filters,
  };
}

/** The inverse of parse: a query string starting with "?" (or "" for the default view). */
export function serialize(state) {
  const q = new URLSearchParams();
  if (state.site) q.set('site', state.site);
  if (state.period !== '30d') q.set('period', state.period);
  if (state.period === 'custom') {
    if (state.from) q.set('from', state.from);
    if (state.to) q.set('to', state.to);
  }
  if (state.prop) q.set('prop', state.prop);
  for (const [dim, value] of state.filters) q.append(`filter[${dim}]`, value);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Returns a copy of the state with the filter on `dim` set to `value` (replacing any). */
export function withFilter(state, dim, value) {
  return { ...state, filters: [...state.filters.filter(([d]) => d !== dim), [dim, value]] };
}

export function withoutFilter(state, dim) {
  return { ...state, filters: state.filters.filter(([d]) => d !== dim) };
}

function isoDate(s) {
  return typeof s === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(s) && !Number.isNaN(Date.parse(s));
}

/** A Date as YYYY-MM-DD in the browser's time zone. */
export function localDate(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

const DAY_MS = 86400000;

/**
 * The date range of a state: {from, to, interval} with ISO dates (both days included) in the
 * browser's time zone, and the interval the chart uses (hour for one day, day up to about three
 * months, month beyond).
 */
export function range(state, now = new Date()) {
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const daysBack = (n) => new Date(today.getFullYear(), today.getMonth(), today.getDate() - n);
  let from;
  let to = today;
  switch (state.period) {
    case 'today': from = today; break;
    case '7d': from = daysBack(6); break;
    case 'month': from = new Date(today.getFullYear(), today.getMonth(), 1); break;
    case '12mo': from = new Date(today.getFullYear(), today.getMonth() - 11, 1); break;
    case 'custom':
      if (state.from && state.to) {
        from = new Date(`${state.from}T00:00:00`);
        to = new Date(`${state.to}T00:00:00`);
        if (from > to) [from, to] = [to, from];
        break;
      }
      from = daysBack(29);
      break;
    default: from = daysBack(29);
  }
  const days = Math.round((to - from) / DAY_MS) + 1;
  const interval = days <= 1 ? 'hour' : days <= 93 ? 'day' : 'month';
  return { from: localDate(from), to: localDate(to), interval };
}

/** The browser's IANA time zone, sent as `tz` so that days and hours are the user's. */
export function timeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}
