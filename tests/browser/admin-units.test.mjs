// The admin page's pure modules (www/js/state.js, www/js/format.js), run in Node.
//
//   node --test tests/browser/admin-units.test.mjs

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { change, duration, percent } from '../../www/js/format.js';
import { parse, range, serialize, withFilter, withoutFilter } from '../../www/js/state.js';

const NOW = new Date(2026, 10, 23, 15, 30); // 23 Nov 2026, local time

test('periods become from / to / interval in local dates', () => {
  const at = (period, extra = {}) => range({ period, ...extra }, NOW);
  assert.deepEqual(at('today'), { from: '2026-11-23', to: '2026-11-23', interval: 'hour' });
  assert.deepEqual(at('7d'), { from: '2026-11-17', to: '2026-11-23', interval: 'day' });
  assert.deepEqual(at('30d'), { from: '2026-10-25', to: '2026-11-23', interval: 'day' });
  assert.deepEqual(at('month'), { from: '2026-11-01', to: '2026-11-23', interval: 'day' });
  assert.deepEqual(at('12mo'), { from: '2025-12-01', to: '2026-11-23', interval: 'month' });
  assert.deepEqual(at('custom', { from: '2026-03-10', to: '2026-03-01' }), { from: '2026-03-01', to: '2026-03-10', interval: 'day' });
  assert.equal(at('custom', { from: '2026-01-01', to: '2026-06-30' }).interval, 'month');
  assert.equal(at('custom', { from: '2026-05-05', to: '2026-05-05' }).interval, 'hour');
});

test('the view state survives a round trip through the URL', () => {
  const state = parse('?site=example.com&period=custom&from=2026-01-01&to=2026-01-31&prop=plan'
    + '&filter%5Bpage%5D=%2F%3Cimg%3E&filter[country]=DE');
  assert.deepEqual(state, {
    site: 'example.com', period: 'custom', from: '2026-01-01', to: '2026-01-31', prop: 'plan',
    filters: [['page', '/<img>'], ['country', 'DE']],
  });
  assert.deepEqual(parse(serialize(state)), state);
  assert.equal(serialize(parse('')), '');
  assert.equal(parse('?period=bogus&from=nope').period, '30d');
  const replaced = withFilter(state, 'page', '/pricing');
  assert.deepEqual(replaced.filters, [['country', 'DE'], ['page', '/pricing']]);
  assert.deepEqual(withoutFilter(replaced, 'country').filters, [['page', '/pricing']]);
});

test('changes against the previous period', () => {
  assert.deepEqual(change(110, 100), { text: '10%', direction: 'up', good: true });
  assert.deepEqual(change(90, 100), { text: '10%', direction: 'down', good: false });
  assert.deepEqual(change(0.4, 0.5, { kind: 'fraction', lowerIsBetter: true }), { text: '10 pp', direction: 'down', good: true });
  assert.deepEqual(change(5, 0), { text: 'new', direction: 'up', good: true });
  assert.equal(change(5, undefined), null);
  assert.equal(percent(0.4234), '42%');
  assert.equal(duration(125.4), '2m 05s');
  assert.equal(duration(3725), '1h 02m');
});
