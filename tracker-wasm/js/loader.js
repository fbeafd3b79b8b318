// t.js: the loader of the tracker (build.sh minifies it into dist/tracker/t.js).
//
// It only does what needs the browser: it reads the data-* attributes, the page's URL and
// the privacy signals, and starts nothing (it does not even fetch the wasm) on a visit that
// is not to be tracked: opted out, automated, a local page. Then it wires the history /
// visibility / click listeners and the flush timer, holds the queued events and sends them.
// Everything else is decided in Rust (src/lib.rs has the protocol). The wasm has no imports
// and exports its memory `m` and one function, c(op, len, a, now): text arguments go into
// the wasm's I/O buffer joined by NUL bytes (encodeInto), and the events a call records
// come back after them (64 KiB on), as JSON, which t.js only queues and sends. URLs are
// passed as their parts, as the browser parsed them (location, <a> elements, the URL API).
// It never throws into the page: the script and every call into the wasm run inside
// try/catch (what they read, inside too), and without WebAssembly `tally` stays the page's
// stub.
//
// A block, not a function: its declarations are its own (there is no function declaration
// in it, which a block would not keep to itself), nothing is added to the page.
try {
  let w = window,
    d = document,
    n = navigator,
    s = d.currentScript,
    // The data-* attributes.
    data = s.dataset,
    api = new URL(data.api || '/api/event', s.src),
    // The queued events, each as ",{…}".
    q = '',
    x,
    io,
    body = () => '{"site":' + JSON.stringify(data.site) + ',"events":[' + q.slice(1) + ']}',
    // Calls `op` with the strings `args()` returns and the number `a`, queues the events
    // it wrote, sends the queue now by sendBeacon if it says so (bit 0), and else soon.
    call = (op, args, a, r) => {
      try {
        r = x.c(op, new TextEncoder().encodeInto(args().join('\0'), io).written, a, Date.now());
        q += new TextDecoder().decode(io.subarray(65536, r >> 1));
        if (r & 1 && q && n.sendBeacon(api, body())) (q = ''), x.c(4, 0, 1);
        wake();
      } catch (e) {}
    },
    // A second after a call that left events queued, the queue goes out by fetch, unless
    // the wasm says no (one in flight, or the queue already taken): each such call starts
    // its own timer, so the first to fire takes what is queued.
    wake = () => q && setTimeout(flush, 1e3),
    flush = () => x.c(4) && send(body(), (q = '')),
    // Sends a body by fetch and tells the wasm its status (a network error has none: 0),
    // which says when to send it again (0: never), else the queue waits for the next flush.
    send = (b) =>
      fetch(api, { method: 'POST', body: b, keepalive: !0 })
        .catch((e) => e)
        .then((r) => ((r = x.c(5, 0, r.status)) ? setTimeout(send, r, b) : wake())),
    // A URL as the wasm takes it: resolved against the page (without one, the page's own),
    // and then its parts, as the browser parsed them.
    resolve = (u) => ((u = new URL(u || '', location)), [u.hostname, u.origin, u.pathname, u.search]),
    nav = () => call(1, resolve),
    // Whether the page is visible, also right after the start (a page opened hidden sends
    // its page view at once, by sendBeacon).
    vis = () => call(2, Array, d.hidden),
    // A click: tally('click', the link clicked, if any, {url: its href}); the wasm keeps
    // outbound ones.
    click = (e) => tally('click', (e = e.target.closest?.('a[href]')), { url: e?.href }),
    // tally(command, a, b): 'event' name props, 'pageview' {url}, 'user' bool (and 'click'
    // link); the wasm takes all of them the same way: the command, a.url (or a link's
    // href) resolved, a as text, and per prop its key, and its value after a letter of its
    // type: (typeof v)[1] for a finite number ('u'), else (typeof v)[2] ('r' string, 'o'
    // boolean, 'm' NaN…).
    tally = (c, a, b) =>
      call(
        3,
        () => [c, ...resolve(a?.url || a?.href), a, ...Object.entries(b || {}).flatMap(([k, v]) => [k, (typeof v)[2 - Number.isFinite(v)] + v])],
        !!a,
      ),
    on = (target, type, f) => target.addEventListener(type, f, !0),
    start = () => {
      call(0, () => [data.exclude, ...resolve(), ...resolve(d.referrer)], screen.width + Math.random());
      vis();
      // nav() never throws; a call that throws changed nothing, and throws as before.
      // Hash changes fire popstate too (and the fragment is not part of the URL recorded).
      if (data.spa != 'off') {
        for (let k of ['pushState', 'replaceState']) {
          let orig = history[k];
          history[k] = (...args) => ((args = orig.apply(history, args)), nav(), args);
        }
        on(w, 'popstate', nav);
      }
      on(d, 'visibilitychange', vis);
      on(w, 'pagehide', () => call(2, Array, 1));
      on(d, 'click', click);
      on(d, 'auxclick', click);
      for (let args of w.tally?.q || []) tally(...args);
      w.tally = tally;
    },
    ignored;
  try {
    ignored = localStorage.tally_ignore;
  } catch (e) {}
  // Not tracked at all: opted out, automated, a local page (file:, names without a dot,
  // *.localhost, 127.*) unless data-allow-local, or no data-site.
  n.doNotTrack == 1 ||
    n.globalPrivacyControl ||
    n.webdriver ||
    ignored == 'true' ||
    !data.site ||
    (data.allowLocal == null && /^(127\.|[^.]*$)|\.localhost$/.test(resolve()[0])) ||
    // Fetched once; streamed, and when streaming fails (the wasm served without
    // application/wasm, or no streaming in the browser) instantiated from its bytes. Without
    // WebAssembly, or with a CSP that refuses wasm, both fail and nothing starts.
    fetch(new URL(WASM_FILE, s.src))
      .then((r) => WebAssembly.instantiateStreaming(r.clone()).catch(() => r.arrayBuffer().then(WebAssembly.instantiate)))
      .then((r) => {
        x = r.instance.exports;
        // The input buffer's address in the wasm's memory (build.sh finds it in the wasm).
        io = new Uint8Array(x.m.buffer, IO_ADDRESS);
        d.prerendering ? on(d, 'prerenderingchange', start) : start();
      }, () => {});
} catch (e) {}
