// Prints the deployable bundle's size (wrangler deploy --dry-run) and the cost of one event
// request under workerd: the median wall time per request on loopback, and the median CPU
// time per request of the workerd process (user + system time from /proc, over batches of
// requests; it includes workerd's HTTP handling and the queue consumer's forwarding, so it
// is an upper bound of the worker's own CPU time).
// Usage: ./bench.sh (builds first) or node bench.mjs after ./build.sh.
import { readdirSync, readFileSync } from 'node:fs';
import { Ingest, Edge, tempDir, body, pageview, SITE, bundleSize, waitFor } from './test/harness.mjs';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;

function workerdPid(port) {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('workerd') && cmd.includes(`127.0.0.1:${port}`)) return Number(pid);
    } catch {}
  }
  throw new Error('workerd process not found');
}

function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
  return (ticks * 1000) / 100; // USER_HZ = 100
}

const size = bundleSize();
console.log(`bundle (wrangler): ${size.wrangler}`);
console.log(`bundle (files, gzip -9): raw ${kib(size.raw)}, gzip ${kib(size.gz)}`);

const dir = tempDir();
const ingest = new Ingest(dir);
ingest.cli('site', 'add', SITE);
await ingest.start();
const edge = new Edge(dir);
await edge.start(ingest.base);
try {
  const pid = workerdPid(edge.port);
  const send = (i) => edge.post(body([pageview(`/bench/${i}`)]), { ip: `198.51.100.${i % 200}` });
  for (let i = 0; i < 50; i++) await send(i); // warm up: salt, sites list, JIT
  const walls = [];
  const cpus = [];
  const BATCHES = 10;
  const PER = 50;
  let n = 0;
  for (let b = 0; b < BATCHES; b++) {
    const cpu0 = cpuMs(pid);
    for (let i = 0; i < PER; i++) {
      const t0 = performance.now();
      const res = await send(n++);
      await res.arrayBuffer();
      if (res.status !== 202) throw new Error(`status ${res.status}`);
      walls.push(performance.now() - t0);
    }
    await new Promise((r) => setTimeout(r, 1500)); // let the consumer forward this batch
    cpus.push((cpuMs(pid) - cpu0) / PER);
  }
  await waitFor(() => ingest.events().length >= 50 + BATCHES * PER, { what: 'all bench events' });
  console.log(`requests: ${BATCHES * PER} (one pageview each), all stored by the ingest server`);
  console.log(`median wall time per event request (loopback, wrangler dev): ${median(walls).toFixed(2)} ms`);
  console.log(`median workerd CPU time per event request (incl. forwarding): ${median(cpus).toFixed(2)} ms`);
} finally {
  await edge.stop();
  await ingest.stop();
}
