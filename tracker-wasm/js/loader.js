// t.js: the loader of the tracker (build.sh minifies it into dist/tracker/t.js).
//
// It only does what needs the browser: it reads the data-* attributes, the page's URL and
// the privacy signals, wires the history / visibility / click listeners and the flush timer,
// and sends the bodies the wasm writes. Everything else is decided in Rust (src/lib.rs has
// the protocol). The wasm has no imports and one function export, c(op, len, a, now): text
// arguments go into the wasm's I/O buffer joined by NUL bytes (encodeInto), and request
// bodies come back in the same buffer. URLs are passed as their parts, as the browser parsed
// them (location, <a> elements, the URL API). It never throws into the page: the script and
// every entry point run inside try/catch, and without WebAssembly `tally` stays the page's
// stub.
(() => {
  try {
    let w = window,
      d = document,
      n = navigator,
      s = d.currentScript,
      attr = (k) => s.getAttribute('data-' + k),
      api = new URL(attr('api') || '/api/event', s.src),
      x,
      io,
      timer,
      body = (len) => new TextDecoder().decode(io.subarray(0, len)),
      // Calls `op` with the strings `args()` returns and the number `a`, then acts on the
      // answer: bit 2, send now by sendBeacon; any bit, send soon by fetch.
      call = (op, args, a) => {
        try {
          let r = x.c(op, new TextEncoder().encodeInto(args().join('\0'), io).written, a, Date.now());
          if (r & 2) for (let len, ok = 0; (len = x.c(7, 0, ok)) && (ok = n.sendBeacon(api, body(len))); );
          if (r && !timer) timer = setTimeout(flush, 1e3);
        } catch (e) {}
      },
      flush = (len) => {
        timer = 0;
        if ((len = x.c(8)))
          fetch(api, { method: 'POST', body: body(len), keepalive: !0 })
            .then((r) => r.status, () => 0)
            .then((status) => (timer = setTimeout(flush, x.c(9, 0, status))));
      },
      // A URL as the wasm takes it: its parts, as the browser parsed them.
      parts = (u) => [u.hostname, u.origin, u.pathname, u.search],
      resolve = (u) => parts(new URL(u || '', location)),
      nav = () => call(1, () => parts(location)),
      click = (e, a) => call(3, () => [...parts((a = e.target.closest('a[href]'))), a.href]),
      // tally(command, a, b): 'event' name props, 'pageview' {url}, 'user' bool. An unknown
      // command is op 0, which does nothing once started.
      tally = (c, a, b) =>
        call(
          { event: 4, pageview: 5, user: 6 }[c] | 0,
          () =>
            c == 'event'
              ? [a, ...Object.entries(b || {}).flatMap(([k, v]) => [k, (typeof v)[1], v])]
              : resolve(a && a.url),
          !!a,
        ),
      on = (target, type, f) => target.addEventListener(type, f, !0),
      start = (ignored) => {
        try {
          ignored = localStorage.tally_ignore;
        } catch (e) {}
        call(
          0,
          () => [attr('site'), attr('exclude'), attr('spa'), ...parts(location), ...resolve(d.referrer), d.hidden,
            [n.doNotTrack, n.globalPrivacyControl, n.webdriver, ignored], attr('allow-local') != null, Math.random()],
          screen.width,
        );
        for (let k of ['pushState', 'replaceState']) {
          let orig = history[k];
          history[k] = function () {
            try {
              return orig.apply(this, arguments);
            } finally {
              nav();
            }
          };
        }
        on(w, 'popstate', nav);
        on(w, 'hashchange', nav);
        on(d, 'visibilitychange', () => call(2, Array, d.hidden));
        on(w, 'pagehide', () => call(2, Array, 1));
        on(d, 'click', click);
        on(d, 'auxclick', click);
        for (let args of (w.tally && w.tally.q) || []) tally(...args);
        w.tally = tally;
      };
    WebAssembly.instantiateStreaming(fetch(new URL(WASM_FILE, s.src))).then((r) => {
      x = r.instance.exports;
      io = new Uint8Array(x.memory.buffer, x.c(10), 65536);
      d.prerendering ? d.addEventListener('prerenderingchange', start) : start();
    }, () => {});
  } catch (e) {}
})();
