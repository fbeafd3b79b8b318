// t.js: the loader of the tracker (build.sh minifies it into dist/tracker/t.js).
//
// It only wires the page to the wasm: the queue stub, the data-* attributes, the privacy
// signals, history / visibility / click listeners, the flush timer and the two ways of
// sending. Everything else is decided in Rust (src/web.rs, src/tracker.rs). It instantiates
// the wasm-bindgen output itself: the wasm's exports take numbers and wasm-bindgen `String`s
// (pointer + length of UTF-8 bytes allocated with __wbindgen_malloc), so the generated JS
// bindings are not needed. It never throws into the page: the whole script and every callback
// run inside try/catch, and any failure leaves `tally` a no-op.
(() => {
  try {
    let w = window, d = document, n = navigator, x, timer = 0, queue, api, script;
    let now = Date.now;
    // One JS string as a wasm-bindgen String argument: [pointer, length].
    let str = (s) => {
      let b = new TextEncoder().encode(s == null ? '' : '' + s), p = x.__wbindgen_malloc(b.length, 1);
      new Uint8Array(x.memory.buffer).set(b, p);
      return [p, b.length];
    };
    let href = () => str(location.href);
    // The body the wasm left in its memory, as a string (so that it goes out as text/plain).
    let body = (len) => new TextDecoder().decode(new Uint8Array(x.memory.buffer, x.body(), len));
    // Acts on what a wasm call asks for: 1 flush soon by fetch, 2 send now by sendBeacon.
    let act = (r) => {
      if (r & 2) {
        for (let len; (len = x.next(1)) && n.sendBeacon(api, body(len)); ) x.sent(0);
      }
      if (r & 3 && !timer) timer = setTimeout(flush, 1000);
    };
    let run = (f) => {
      try {
        act(f());
      } catch (e) {}
    };
    let flush = () => {
      timer = 0;
      run(() => {
        let len = x.next(0);
        if (len) {
          let done = (status) => run(() => ((timer = setTimeout(flush, x.done(status))), 0));
          fetch(api, { method: 'POST', body: body(len), keepalive: true }).then((r) => done(r.status), () => done(0));
          x.sent(1);
        }
        return 0;
      });
    };
    // tally(command, a, b)
    let command = (c, a, b) =>
      run(() => {
        if (c == 'user') return x.user(!!a), 0;
        if (c == 'pageview') return x.page(...href(), ...str((a && a.url) || ''), now());
        if (c == 'event') {
          for (let [k, v] of Object.entries(b || {})) {
            let t = typeof v;
            x.prop(...str(k), ...str(v), t == 'string' ? 0 : t == 'number' && isFinite(v) ? 1 : t == 'boolean' ? 2 : 3);
          }
          return x.event(...href(), ...str(a), now());
        }
        return 0;
      });

    script = d.currentScript || d.querySelector('script[data-site]');
    let attr = (name) => script.getAttribute('data-' + name);
    let site = attr('site');
    let spa = attr('spa') != 'off';
    queue = (w.tally && w.tally.q) || [];
    w.tally = function () {
      queue ? queue.push(arguments) : x && command(...arguments);
    };
    api = new URL(attr('api') || '/api/event', script.src).href;

    let go = () =>
      run(() => {
        let ignored;
        try {
          ignored = localStorage.tally_ignore == 'true';
        } catch (e) {}
        let flags =
          (n.doNotTrack == '1') | (n.globalPrivacyControl ? 2 : 0) | (n.webdriver ? 4 : 0) | (ignored ? 8 : 0) |
          (script.hasAttribute('data-allow-local') ? 16 : 0);
        let r = x.start(...str(site), ...str(attr('exclude')), spa, flags, ...href(), ...str(d.referrer),
          screen.width, d.hidden, now(), Math.random());
        if (r & 4) throw (x = 0);
        let listen = (target, type, f) => target.addEventListener(type, (e) => run(() => f(e)), true);
        let changed = () => x.nav(...href(), now());
        if (spa) {
          for (let k of ['pushState', 'replaceState']) {
            let orig = history[k];
            history[k] = function () {
              let r = orig.apply(this, arguments);
              run(changed);
              return r;
            };
          }
          listen(w, 'popstate', changed);
          listen(w, 'hashchange', changed);
        }
        listen(d, 'visibilitychange', () => x.vis(d.hidden, now()));
        listen(w, 'pagehide', () => x.vis(1, now()));
        let clicked = (e) => {
          let a = e.target.closest && e.target.closest('a[href]');
          return a ? x.click(...href(), ...str(a.href), now()) : 0;
        };
        listen(d, 'click', clicked);
        listen(d, 'auxclick', clicked);
        let q = queue;
        queue = 0;
        for (let args of q) command(...args);
        return r;
      });

    if (site && w.WebAssembly) {
      let url = new URL(WASM_FILE, script.src);
      let imports = { './t_bg.js': new Proxy({}, { get: (_, name) => () => { if (!/table/.test(name)) throw 0; } }) };
      let ready = (r) => {
        x = (r.instance || r).exports;
        d.prerendering ? d.addEventListener('prerenderingchange', go, { once: true }) : go();
      };
      let fallback = () => fetch(url).then((r) => r.arrayBuffer()).then((b) => WebAssembly.instantiate(b, imports));
      (WebAssembly.instantiateStreaming ? WebAssembly.instantiateStreaming(fetch(url), imports).catch(fallback) : fallback())
        .then(ready)
        .catch(() => (queue = x = 0));
    }
  } catch (e) {}
})();
