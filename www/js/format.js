// Number, time and change formatting for the dashboard. Pure functions, no DOM.

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });

/** 12345 -> "12,345" (in the browser's locale); missing values -> "—". */
export function count(n) {
  return Number.isFinite(n) ? integer.format(n) : '—';
}

/** Short form for tight spaces (table cells, axis ticks): 12345 -> "12.3K". */
export function short(n) {
  if (!Number.isFinite(n)) return '—';
  return Math.abs(n) < 10000 ? integer.format(n) : compact.format(n);
}

/** A 0..1 fraction as a whole percentage: 0.4234 -> "42%". */
export function percent(fraction) {
  return Number.isFinite(fraction) ? `${Math.round(fraction * 100)}%` : '—';
}

/** Seconds as "45s", "2m 05s", "1h 02m". */
export function duration(seconds) {
  if (!Number.isFinite(seconds)) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const pad = (n) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
}

/** Milliseconds of lag as "120 ms", "3.4 s", "2m 05s". */
export function lag(ms) {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return duration(ms / 1000);
}

/**
 * The change of a metric against the previous period.
 * Returns null when there is nothing meaningful to compare, otherwise
 * {text, direction: 'up'|'down'|'flat', good: true|false|null}.
 * `kind` is 'count' (relative change in %) or 'fraction' (difference in percentage points);
 * `lowerIsBetter` flips what counts as good (bounce rate).
 */
export function change(current, previous, { kind = 'count', lowerIsBetter = false } = {}) {
  if (!Number.isFinite(current) || !Number.isFinite(previous)) return null;
  let delta;
  let text;
  if (kind === 'fraction') {
    delta = Math.round((current - previous) * 100);
    text = `${Math.abs(delta)} pp`;
  } else {
    if (previous === 0) {
      return current === 0 ? { text: '0%', direction: 'flat', good: null } : { text: 'new', direction: 'up', good: !lowerIsBetter };
    }
    delta = Math.round(((current - previous) / previous) * 100);
    text = `${Math.abs(delta)}%`;
  }
  if (delta === 0) return { text: '0%', direction: 'flat', good: null };
  const direction = delta > 0 ? 'up' : 'down';
  return { text, direction, good: (direction === 'up') !== lowerIsBetter };
}

/** An RFC 3339 timestamp as a local date-time, or "never" for null. */
export function when(ts) {
  if (ts == null || ts === '') return 'never';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** "3 minutes ago" style, for recent timestamps; falls back to when(). */
export function ago(ts, now = Date.now()) {
  if (ts == null || ts === '') return 'never';
  const t = new Date(ts).getTime();
  if (Number.isNaN(t)) return String(ts);
  const s = Math.round((now - t) / 1000);
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  if (Math.abs(s) < 60) return rtf.format(-s, 'second');
  if (Math.abs(s) < 3600) return rtf.format(-Math.round(s / 60), 'minute');
  if (Math.abs(s) < 86400) return rtf.format(-Math.round(s / 3600), 'hour');
  return when(ts);
}
