// t.js: the loader of the tracker. It is bundled with the wasm-bindgen glue (./bindgen/t.js)
// into one small classic script by build.sh. It only wires the page to the wasm: the queue
// stub, the data-* attributes, history / visibility / click listeners and the flush timer.
// Everything is decided in Rust (src/web.rs). It never throws into the page: every entry
// into the wasm goes through run(), and any failure leaves `tally` a no-op.
import init, { start, cmd, nav, vis, click, flush, done } from './bindgen/t.js';

try {
  let w = window, d = document, timer = 0, ready = 0;
  let script = d.currentScript || d.querySelector('script[data-site]');
  let attr = (name) => script.getAttribute('data-' + name);
  let queue = (w.tally && w.tally.q) || [];
  let site = attr('site');
  let api = new URL(attr('api') || '/api/event', script.src).href;
  let spa = attr('spa') != 'off';
  let listen = (target, type, f, capture) => target.addEventListener(type, f, capture);

  // Calls a wasm export; schedules the flush it asks for; swallows every error.
  let run = (f, a, b, c) => {
    try {
      let delay = f(a, b, c);
      if (delay > 0 && !timer) timer = setTimeout(send, delay);
    } catch (e) {}
  };
  let send = () => {
    timer = 0;
    try {
      let p = flush();
      p && p.then((r) => run(done, r.status), () => run(done, 0));
    } catch (e) {}
  };
  let go = () => {
    try {
      if (start(site, api, spa, attr('exclude') || '', script.hasAttribute('data-allow-local')) < 0) throw 0;
      let changed = () => run(nav);
      if (spa) {
        for (let k of ['pushState', 'replaceState']) {
          let orig = history[k];
          history[k] = function () {
            let r = orig.apply(this, arguments);
            changed();
            return r;
          };
        }
        listen(w, 'popstate', changed);
        listen(w, 'hashchange', changed);
      }
      listen(d, 'visibilitychange', () => run(vis, d.hidden));
      listen(w, 'pagehide', () => run(vis, true));
      let clicked = (e) => {
        let a = e.target.closest && e.target.closest('a[href]');
        a && run(click, a.href);
      };
      listen(d, 'click', clicked, true);
      listen(d, 'auxclick', clicked, true);
      ready = 1;
      for (let args of queue) run(cmd, args[0], args[1], args[2]);
      run(() => 1);
    } catch (e) {
      queue = [];
    }
    queue = 0;
  };

  w.tally = function () {
    ready ? run(cmd, arguments[0], arguments[1], arguments[2]) : queue && queue.push(arguments);
  };
  if (site && w.WebAssembly) {
    init({ module_or_path: new URL(WASM_FILE, script.src) }).then(() => {
      d.prerendering ? listen(d, 'prerenderingchange', go, { once: true }) : go();
    }, () => (queue = 0));
  }
} catch (e) {}
