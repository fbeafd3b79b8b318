#!/usr/bin/env node
// Replays the dead-letter queue: moves every message of tally-events-dlq back onto
// tally-events, where the worker forwards it again (events keep their ids, so a message that
// did arrive after all only counts once). Uses Cloudflare's Queues REST API:
//
//   CLOUDFLARE_ACCOUNT_ID=... CLOUDFLARE_API_TOKEN=... node scripts/replay-dlq.mjs
//
// Needs, once: `npx wrangler queues consumer http add tally-events-dlq` (a pull consumer),
// and a token with Queues edit rights. Each message is acknowledged on the dead-letter queue
// only after it was pushed onto the main queue.
const { CLOUDFLARE_ACCOUNT_ID: account, CLOUDFLARE_API_TOKEN: token } = process.env;
const FROM = process.env.DLQ || 'tally-events-dlq';
const TO = process.env.QUEUE || 'tally-events';
if (!account || !token) {
  console.error('set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN');
  process.exit(2);
}
const api = async (method, path, body) => {
  const res = await fetch(`https://api.cloudflare.com/client/v4/accounts/${account}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok || json.success === false) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json.errors)}`);
  return json.result;
};
const queues = await api('GET', '/queues?per_page=1000');
const id = (name) => {
  const q = queues.find((q) => q.queue_name === name);
  if (!q) throw new Error(`no queue ${name}`);
  return q.queue_id;
};
const [from, to] = [id(FROM), id(TO)];
let moved = 0;
for (;;) {
  const pulled = await api('POST', `/queues/${from}/messages/pull`, { batch_size: 100, visibility_timeout_ms: 120_000 });
  const messages = Array.isArray(pulled) ? pulled : pulled?.messages ?? [];
  if (messages.length === 0) break;
  const bodies = messages.map((m) => {
    const type = m.metadata?.['CF-Content-Type'];
    return type === 'json' ? JSON.parse(m.body) : m.body; // the worker's messages are strings
  });
  await api('POST', `/queues/${to}/messages/batch`, {
    messages: bodies.map((body) => ({ body, content_type: 'text' })),
  });
  await api('POST', `/queues/${from}/messages/ack`, { acks: messages.map((m) => ({ lease_id: m.lease_id })), retries: [] });
  moved += messages.length;
  console.log(`replayed ${moved}`);
}
console.log(`done: ${moved} messages moved from ${FROM} to ${TO}`);
