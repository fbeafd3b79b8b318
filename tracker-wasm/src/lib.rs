//! The browser tracker: the wasm half of `t.js` (CONTRACT §1 and §2).
//!
//! `t.js` (see `js/loader.js`) is a thin loader: it reads the `data-*` attributes, the page's
//! URL (as the parts the browser parsed) and the privacy signals, wires the page's events
//! (history, visibility, clicks, timers), replays the `window.tally` queue stub and sends the
//! bodies this crate writes. Everything else is decided here, in plain, natively tested Rust
//! without an allocator: which page views, events and engagement to record, URL cleaning,
//! opt-outs, `data-exclude` globs, prop limits, ULIDs, the JSON, batching and retries.
//!
//! All the state is one [`Tracker`]: a few numbers and one byte array [`Tracker::m`] holding,
//! at fixed places, the queue (one request body written in place), the I/O buffer shared with
//! `t.js`, and the saved page URL, host name and `data-exclude`. Text is handled as ranges of
//! positions in that array, indexed through a power-of-two mask, so that nothing can panic
//! (a panic site would bring `core::fmt` into the wasm) and no slice is ever passed around.
//! On wasm32, `abi` exports [`Tracker::call`] as the C-ABI function `c` over a static
//! `Tracker` (zero-initialised: no bytes in the binary).
//!
//! # Calls
//!
//! `t.js` writes the text arguments of a call into the I/O buffer ([`IO`]) as UTF-8 fields
//! joined by NUL bytes, and calls `c(op, len, a, now)`: the operation, the bytes written, a
//! number and the time (ms since 1970).
//!
//! | op | text fields | `a` | returns |
//! | --- | --- | --- | --- |
//! | [`START`] | see [`start`] | `screen.width` | [`FLUSH`] / [`BEACON`] bits |
//! | [`NAV`] | the page's URL | | bits |
//! | [`VIS`] | | hidden (1) or visible (0) | bits |
//! | [`CLICK`] | the link's URL, its `href` | | bits |
//! | [`EVENT`] | name, then per prop key, type, value (see [`Tracker::props`]) | | bits |
//! | [`PAGEVIEW`] | the given URL resolved against the page | | bits |
//! | [`USER`] | | logged in (1) or not (0) | bits |
//! | [`BEACON_BODY`] | | the previous body was accepted (1) | body length |
//! | [`FETCH_BODY`] | | | body length |
//! | [`DONE`] | | HTTP status (0: network error) | ms until the next try |
//! | [`IO_ADDRESS`] (wasm only) | | | the address of the I/O buffer |
//!
//! A URL is four fields, its parts as the browser parsed them: `hostname` (no port),
//! `origin`, `pathname`, `search` (`example.com`, `https://example.com:8443`, `/blog/hello`,
//! `?utm_source=news` or empty). Flags are the page's values as text, where a `1` or a `t`
//! means set: `hidden` and `allow-local` are `true` / `false`; the opt-outs are
//! `navigator.doNotTrack`, `navigator.globalPrivacyControl`, `navigator.webdriver` and
//! `localStorage.tally_ignore` joined by commas (none of the values that mean "not set" holds
//! a `1` or a `t`: `0`, `unspecified`, `false`, `undefined`, `null`, empty). Bodies are
//! written into the I/O buffer, from its start.
//!
//! # The queue
//!
//! One request body less its `]}`, at the start of [`Tracker::m`]: the head
//! (`{"site":"…","events":[`) and then up to [`MAX_EVENTS`] events joined by commas, at most
//! [`MAX_BODY`] bytes in all. Events are written in place at its end and kept only if they
//! fit; a body is a copy of the head and of the events not yet sent. Events are never moved:
//! the queue keeps where the unsent ones start (`sent`) and where those of the `fetch` in
//! flight end (`flight`), and starts over empty once everything is sent. A failed `fetch`
//! leaves its events first in line. Every event carries its own id, so sending one twice
//! never counts it twice.
//!
//! Policy: a batch goes out [`FLUSH_MS`] after the first event was queued (by `fetch` with
//! `keepalive`), or at once by `sendBeacon` when the page is hidden or left. One `fetch` is
//! in flight at a time; if it fails (network error, `408`, `429`, `5xx`) the next try waits
//! twice as long, up to [`MAX_BACKOFF_MS`]; `400` / `403` / `413` are dropped. Events that do
//! not fit in a full queue (the collector out of reach for a while) are dropped.
#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

#[cfg(all(target_arch = "wasm32", not(test)))]
mod abi;

pub const START: u32 = 0;
pub const NAV: u32 = 1;
pub const VIS: u32 = 2;
pub const CLICK: u32 = 3;
pub const EVENT: u32 = 4;
pub const PAGEVIEW: u32 = 5;
pub const USER: u32 = 6;
pub const BEACON_BODY: u32 = 7;
pub const FETCH_BODY: u32 = 8;
pub const DONE: u32 = 9;
pub const IO_ADDRESS: u32 = 10;

/// Events wait: send them in [`FLUSH_MS`] by `fetch`.
pub const FLUSH: u32 = 1;
/// Send the queue now by `sendBeacon`.
pub const BEACON: u32 = 2;

/// Delay between the first queued event and the batch that carries it.
pub const FLUSH_MS: u32 = 1000;
/// Longest wait between two tries of a failing collector.
pub const MAX_BACKOFF_MS: u32 = 60_000;
/// Events per request (CONTRACT §2: at most 50).
pub const MAX_EVENTS: u32 = 50;
/// Bytes per request: under the collector's 64 KiB and `sendBeacon`'s 64 KiB quota.
pub const MAX_BODY: usize = 60_000;
/// Visible time shorter than this is not worth an engagement event.
pub const MIN_ENGAGED_MS: u64 = 1000;
/// Longest page or referrer URL the collector accepts, in bytes (`tally_core::wire::MAX_URL`).
/// URLs as the browser serialises them are ASCII, so a cut never splits a character.
pub const MAX_URL: usize = 2048;
/// Custom events (CONTRACT §1): at most this many props, keys of at most [`MAX_KEY`]
/// characters (longer ones are dropped), string values and event names cut to
/// [`MAX_VALUE`] and [`MAX_NAME`] characters (as the collector counts them).
pub const MAX_PROPS: u32 = 30;
pub const MAX_KEY: usize = 64;
pub const MAX_VALUE: usize = 256;
pub const MAX_NAME: usize = 120;

/// Where things are in [`Tracker::m`]: the queue from 0 (with room past the longest body
/// for the URL being cleaned, see [`Tracker::pageview`]), the saved page URL, host name and
/// `data-exclude` (followed by a comma), and the I/O buffer.
const QUEUE_END: usize = 0x14000;
const PAGE: usize = 0x14000;
const HOST: usize = 0x14800;
const GLOBS: usize = 0x15000;
pub const IO: usize = 0x18000;
pub const IO_LEN: usize = 0x10000;
const SIZE: usize = 0x40000;
const MASK: usize = SIZE - 1;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The fields of [`START`].
pub mod start {
    pub const SITE: usize = 0;
    pub const EXCLUDE: usize = 1;
    /// `data-spa`: anything but `off` counts history and hash navigations as page views.
    pub const SPA: usize = 2;
    /// The page's URL (four fields).
    pub const URL: usize = 3;
    /// `document.referrer` resolved against the page (the page's own URL when there is none).
    pub const REFERRER: usize = 7;
    pub const HIDDEN: usize = 11;
    /// `navigator.doNotTrack == "1"`, `navigator.globalPrivacyControl`,
    /// `navigator.webdriver` (an automated browser) or `localStorage.tally_ignore == "true"`.
    pub const OPTED_OUT: usize = 12;
    /// `data-allow-local`: also track `localhost`, loopback and `file:` pages.
    pub const ALLOW_LOCAL: usize = 13;
    /// `Math.random()`, to seed the ids.
    pub const RANDOM: usize = 14;
}

// The parts of a URL, from its first field.
const HOSTNAME: usize = 0;
const ORIGIN: usize = 1;
const PATHNAME: usize = 2;
const SEARCH: usize = 3;

/// How a page view came about (see [`Tracker::pageview`]).
const LOAD: u32 = 0;
const NAVIGATION: u32 = 1;
const MANUAL: u32 = 2;

#[repr(C)]
pub struct Tracker {
    // The queue: where the head ends, the unsent events start (after a comma unless it is
    // `head`), the events of the `fetch` in flight end (`sent` when none is), the events end,
    // and the next byte is written.
    head: usize,
    sent: usize,
    flight: usize,
    len: usize,
    w: usize,
    /// Events since the queue was last empty.
    events: u32,
    failures: u32,
    /// Where the fields of the call end.
    end: usize,
    page_len: usize,
    host_len: usize,
    exclude_len: usize,
    started: bool,
    spa: bool,
    user: bool,
    screen: u64,
    rng: u64,
    engaged_ms: u64,
    /// Since when the page has been visible; 0 while hidden.
    visible_since: u64,
    pub m: [u8; SIZE],
}

impl Tracker {
    pub const fn new() -> Tracker {
        Tracker {
            head: 0,
            sent: 0,
            flight: 0,
            len: 0,
            w: 0,
            events: 0,
            failures: 0,
            end: IO,
            page_len: 0,
            host_len: 0,
            exclude_len: 0,
            started: false,
            spa: false,
            user: false,
            screen: 0,
            rng: 0,
            engaged_ms: 0,
            visible_since: 0,
            m: [0; SIZE],
        }
    }

    pub fn started(&self) -> bool {
        self.started
    }

    /// One call of `t.js`: `op` with `len` bytes of text fields in the I/O buffer, the number
    /// `a`, at time `now` (ms since 1970). Nothing happens before tracking started.
    pub fn call(&mut self, op: u32, len: usize, a: f64, now: f64) -> u32 {
        let (now, set) = (now as u64, a != 0.0);
        if op != START && !self.started {
            return 0;
        }
        // The fields end with a NUL too.
        self.end = IO + len.min(IO_LEN - 1);
        self.m[self.end] = 0;
        let mut beacon = false;
        match op {
            START => self.start(a as u64, now),
            NAV => self.pageview(now, 0, NAVIGATION),
            VIS => {
                beacon = set;
                if set {
                    self.leave(now);
                    self.visible_since = 0;
                } else if self.visible_since == 0 {
                    self.visible_since = now;
                }
            }
            // A click on a link to another host: its event is sent now, by `sendBeacon` (the
            // page may be going away).
            CLICK => beacon = self.is_http(0) && !self.on_host(0) && self.event(now, true),
            EVENT => _ = self.event(now, false),
            // `tally('pageview', {url})`: one on another host is not recorded (the collector
            // would refuse it).
            PAGEVIEW if self.on_host(0) => self.pageview(now, 0, MANUAL),
            USER => self.user = set,
            BEACON_BODY => {
                // The previous body was taken: its events are done with.
                if set {
                    self.len = self.flight;
                    if self.len == self.sent {
                        self.clear();
                    }
                }
                return self.body(self.flight);
            }
            FETCH_BODY => {
                if self.flight > self.sent {
                    return 0;
                }
                self.flight = self.len;
                return self.body(self.sent);
            }
            DONE => {
                let status = a as u32;
                if status == 0 || status == 408 || status == 429 || status >= 500 {
                    self.failures = (self.failures + 1).min(16);
                    self.flight = self.sent;
                } else {
                    self.sent = self.flight;
                    self.failures = 0;
                    if self.sent == self.len {
                        self.clear();
                    }
                }
                return (FLUSH_MS << self.failures).min(MAX_BACKOFF_MS);
            }
            _ => {}
        }
        if beacon {
            BEACON
        } else {
            (self.len > self.flight) as u32 * FLUSH
        }
    }

    // Fields and text.

    /// Where field `k` starts (past the end when there is no such field).
    #[inline(never)]
    fn a(&self, mut k: usize) -> usize {
        let mut i = IO;
        while k > 0 && i <= self.end {
            if self.m[i & MASK] == 0 {
                k -= 1;
            }
            i += 1;
        }
        i
    }

    /// Where field `k` ends (before it starts when there is no such field).
    fn b(&self, k: usize) -> usize {
        self.a(k + 1) - 1
    }

    /// Whether field `k` holds a `1` or a `t`.
    fn on(&self, k: usize) -> bool {
        let (mut i, b) = (self.a(k), self.b(k));
        while i < b {
            let c = self.m[i & MASK];
            if c == b'1' || c == b't' {
                return true;
            }
            i += 1;
        }
        false
    }

    /// Whether the text from `a` to `b` starts with `s`.
    #[inline(never)]
    fn has(&self, a: usize, b: usize, s: &[u8]) -> bool {
        let mut i = 0;
        while i < s.len() {
            if a + i >= b || self.m[(a + i) & MASK] != s[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// Whether the text from `a` to `b` is the text from `c` to `d`.
    #[inline(never)]
    fn same(&self, a: usize, b: usize, c: usize, d: usize) -> bool {
        if b.wrapping_sub(a) != d - c {
            return false;
        }
        let mut i = 0;
        while c + i < d {
            if self.m[(a + i) & MASK] != self.m[(c + i) & MASK] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// Copies the text from `a` to `b` to `to`, at most `max` bytes; returns the length.
    #[inline(never)]
    fn save(&mut self, to: usize, a: usize, b: usize, max: usize) -> usize {
        let mut n = 0;
        while a + n < b && n < max {
            self.m[(to + n) & MASK] = self.m[(a + n) & MASK];
            n += 1;
        }
        n
    }

    /// Where the first `max` characters of the UTF-8 text from `a` to `b` end.
    #[inline(never)]
    fn cut(&self, a: usize, b: usize, max: usize) -> usize {
        let (mut i, mut chars) = (a, 0);
        while i < b {
            if self.m[i & MASK] & 0xC0 != 0x80 {
                if chars == max {
                    break;
                }
                chars += 1;
            }
            i += 1;
        }
        i
    }

    // Writing into the queue.

    #[inline(never)]
    fn put(&mut self, b: u8) {
        self.m[self.w.min(QUEUE_END - 1)] = b;
        self.w += 1;
    }

    #[inline(never)]
    fn raw(&mut self, s: &[u8]) {
        for &b in s {
            self.put(b);
        }
    }

    /// The text from `a` to `b`, escaped for a JSON string.
    #[inline(never)]
    fn text(&mut self, a: usize, b: usize) {
        for i in a..b {
            let c = self.m[i & MASK];
            if c == b'"' || c == b'\\' {
                self.put(b'\\');
            } else if c < 0x20 {
                self.raw(b"\\u00");
                self.put(b'0' + (c >> 4));
                self.put(b"0123456789abcdef"[(c & 15) as usize]);
                continue;
            }
            self.put(c);
        }
    }

    /// The decimal digits of `n`.
    fn num(&mut self, n: u64) {
        if n >= 10 {
            self.num(n / 10);
        }
        self.put(b'0' + (n % 10) as u8);
    }

    fn clear(&mut self) {
        (self.sent, self.flight, self.len, self.events) = (self.head, self.head, self.head, 0);
    }

    /// Writes into the I/O buffer the head and the events from byte `from` on, as a body;
    /// returns its length (0: no events).
    fn body(&mut self, from: usize) -> u32 {
        if from >= self.len {
            return 0;
        }
        let n = self.save(IO, 0, self.head, IO_LEN);
        let n = n + self.save(IO + n, from + (from > self.head) as usize, self.len, IO_LEN);
        self.m[(IO + n) & MASK] = b']';
        self.m[(IO + n + 1) & MASK] = b'}';
        n as u32 + 2
    }

    // What is recorded.

    /// Whether the URL at field `u` is http(s).
    fn is_http(&self, u: usize) -> bool {
        self.has(self.a(u + ORIGIN), self.b(u + ORIGIN), b"http")
    }

    /// Whether the URL at field `u` is on the page's host.
    fn on_host(&self, u: usize) -> bool {
        self.same(
            self.a(u + HOSTNAME),
            self.b(u + HOSTNAME),
            HOST,
            HOST + self.host_len,
        )
    }

    /// Starts tracking the page at `now`, `screen` pixels wide, with its page view, unless
    /// the visit is not to be tracked at all (CONTRACT §1). The fields are the [`start`] ones.
    fn start(&mut self, screen: u64, now: u64) {
        use start::*;
        // Local: `file:` (no host), `localhost` and other names without a dot, `[::1]`,
        // `*.localhost`, `127.*`.
        let (h, e) = (self.a(URL), self.b(URL));
        let local = !(h..e).any(|i| self.m[i & MASK] == b'.')
            || self.has(e.saturating_sub(10).max(h), e, b".localhost")
            || self.has(h, e, b"127.");
        if self.started
            || self.a(SITE) == self.b(SITE)
            || self.on(OPTED_OUT)
            || local && !self.on(ALLOW_LOCAL)
        {
            return;
        }
        self.w = 0;
        self.raw(b"{\"site\":\"");
        self.text(self.a(SITE), self.b(SITE));
        self.raw(b"\",\"events\":[");
        self.head = self.w;
        self.clear();
        if self.w > 1024 {
            return;
        }
        self.exclude_len = self.save(GLOBS, self.a(EXCLUDE), self.b(EXCLUDE), MAX_URL);
        self.m[GLOBS + self.exclude_len] = b',';
        self.host_len = self.save(HOST, h, e, 256);
        self.started = true;
        self.spa = self.b(SPA) - self.a(SPA) != 3 || !self.has(self.a(SPA), self.b(SPA), b"off");
        self.screen = screen;
        let mut h = now;
        for i in self.a(RANDOM)..self.b(RANDOM) {
            h = (h ^ self.m[i & MASK] as u64).wrapping_mul(0x100_0000_01b3);
        }
        self.rng = h | 1;
        self.visible_since = if self.on(HIDDEN) { 0 } else { now };
        self.pageview(now, URL, LOAD);
    }

    /// Whether the path from `a` to `b` matches one of the `data-exclude` globs: `*` matches
    /// any run of characters, `/` included; everything else matches itself. Globs are
    /// separated by commas or spaces.
    fn excluded(&self, a: usize, b: usize) -> bool {
        let mut p = GLOBS;
        for i in GLOBS..=GLOBS + self.exclude_len {
            let c = self.m[i & MASK];
            if c == b',' || c == b' ' {
                if i > p && self.glob(p, i, a, b) {
                    return true;
                }
                p = i + 1;
            }
        }
        false
    }

    /// Wildcard matching of the text from `t` to `te` by the glob from `p` to `pe`, with
    /// backtracking to the last `*`.
    #[inline(never)]
    fn glob(&self, mut p: usize, pe: usize, mut t: usize, te: usize) -> bool {
        let (mut star, mut retry) = (0, 0);
        while t < te {
            let want = if p < pe { self.m[p & MASK] } else { 0 };
            if want == b'*' {
                (star, retry) = (p + 1, t);
                p += 1;
            } else if want == self.m[t & MASK] {
                p += 1;
                t += 1;
            } else if star > 0 {
                retry += 1;
                (p, t) = (star, retry);
            } else {
                return false;
            }
        }
        while p < pe && self.m[p & MASK] == b'*' {
            p += 1;
        }
        p >= pe
    }

    /// Starts an event of `kind` at the end of the queue, with the current page's URL, its
    /// id and time; the caller adds its own members, then [`Tracker::commit`]s it.
    #[inline(never)]
    fn open(&mut self, kind: &[u8], now: u64) {
        self.w = self.len;
        if self.len > self.sent {
            self.put(b',');
        }
        self.raw(b"{\"kind\":\"");
        self.raw(kind);
        self.raw(b"\",\"url\":\"");
        self.text(PAGE, PAGE + self.page_len);
        // A ULID: 10 characters of time, then 16 random ones (xorshift64*).
        self.raw(b"\",\"id\":\"");
        for i in 0..26 {
            let c = if i < 10 {
                now >> (45 - 5 * i)
            } else {
                let mut x = self.rng;
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                self.rng = x;
                x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 59
            };
            self.put(CROCKFORD[(c & 31) as usize]);
        }
        self.raw(b"\",\"ts\":");
        self.num(now);
    }

    /// Ends the event with the user flag and keeps it if it fits. Returns whether it did.
    #[inline(never)]
    fn commit(&mut self) -> bool {
        self.raw(if self.user {
            b",\"user\":true}"
        } else {
            b",\"user\":false}"
        });
        let kept = self.w <= MAX_BODY - 2 && self.events < MAX_EVENTS;
        if kept {
            self.len = self.w;
            self.events += 1;
        }
        kept
    }

    /// A page view of the URL at field `u`: the page load (with the document's referrer), a
    /// history or hash navigation (only when `data-spa` is on and the URL as recorded
    /// changed) or `tally('pageview')`. Navigations end the previous page's engagement first.
    ///
    /// The URL recorded: origin and path, and of the query only the `utm_*` parameters (the
    /// collector stores nothing else of it, and other parameters may hold tokens or e-mail
    /// addresses); no fragment. Not http(s), or excluded by `data-exclude`: not tracked. It
    /// is written past the longest queue, where the next event leaves it alone.
    fn pageview(&mut self, now: u64, u: usize, how: u32) {
        let start = self.len + 8192;
        self.w = start;
        if self.is_http(u) && !self.excluded(self.a(u + PATHNAME), self.b(u + PATHNAME)) {
            self.save_url(u);
            let (mut sep, mut keep) = (b'?', false);
            for i in self.a(u + SEARCH)..self.b(u + SEARCH) {
                let c = self.m[i & MASK];
                if c == b'?' || c == b'&' {
                    keep = self.has(i + 1, self.b(u + SEARCH), b"utm_");
                    if keep {
                        self.put(sep);
                        sep = b'&';
                    }
                } else if keep {
                    self.put(c);
                }
            }
        }
        let end = self.w.min(start + MAX_URL);
        if how == NAVIGATION && (!self.spa || self.same(start, end, PAGE, PAGE + self.page_len)) {
            return;
        }
        if how != LOAD {
            self.leave(now);
        }
        self.page_len = self.save(PAGE, start, end, MAX_URL);
        if self.page_len == 0 {
            return;
        }
        let r = start::REFERRER;
        let referrer = how == LOAD && self.is_http(r) && !self.on_host(r);
        self.open(b"pageview", now);
        if referrer {
            self.raw(b",\"referrer\":\"");
            let w = self.w;
            self.save_url(r);
            self.w = self.w.min(w + MAX_URL);
            self.put(b'"');
        }
        self.raw(b",\"screen\":");
        self.num(self.screen);
        self.commit();
    }

    /// Writes the origin and path of the URL at field `u`.
    fn save_url(&mut self, u: usize) {
        self.text(self.a(u + ORIGIN), self.b(u + ORIGIN));
        self.text(self.a(u + PATHNAME), self.b(u + PATHNAME));
    }

    /// The current page is left or hidden at `now`: its visible time so far becomes an
    /// engagement event.
    fn leave(&mut self, now: u64) {
        if self.visible_since != 0 {
            self.engaged_ms += now.saturating_sub(self.visible_since);
            self.visible_since = now;
        }
        let engaged_ms = self.engaged_ms;
        self.engaged_ms = 0;
        if engaged_ms >= MIN_ENGAGED_MS && self.page_len > 0 {
            self.open(b"engagement", now);
            self.raw(b",\"engaged_ms\":");
            self.num(engaged_ms);
            self.commit();
        }
    }

    /// A custom event on the current page: its name at field 0 and its props after it; or,
    /// for an outbound click, `Outbound Link: Click` with the `href` at field 4 as prop `url`.
    /// Returns whether it was queued: not when the page is not tracked, nor without a name.
    fn event(&mut self, now: u64, outbound: bool) -> bool {
        let (a, b) = (self.a(0), self.cut(self.a(0), self.b(0), MAX_NAME));
        if self.page_len == 0 || !outbound && !(a..b).any(|i| self.m[i & MASK] > b' ') {
            return false;
        }
        self.open(b"event", now);
        self.raw(b",\"name\":\"");
        if outbound {
            self.raw(b"Outbound Link: Click\",\"props\":{\"url\":\"");
            self.text(self.a(4), self.cut(self.a(4), self.b(4), MAX_VALUE));
            self.raw(b"\"}");
        } else {
            self.text(a, b);
            self.put(b'"');
            self.props();
        }
        self.commit()
    }

    /// Writes the props of a custom event as its `"props"` member, from field 1 on: for each
    /// prop its key, its type (the second letter of JavaScript's `typeof`: `t` string, `u`
    /// number (or function), `o` boolean) and its value as text. Props that break a limit
    /// are dropped, and so are numbers that are not finite (or functions): a number is kept
    /// when it starts with a digit or `-` and ends with a digit (`3`, `-0.5`, `1e+21`; not
    /// `NaN`, `-Infinity`, `x=>1`). Strings are cut. Nothing is written when no prop is left.
    fn props(&mut self) {
        let (mut n, mut k) = (0, 1);
        while self.a(k + 2) <= self.end {
            let (key, ke) = (self.a(k), self.b(k));
            let kind = self.m[self.a(k + 1) & MASK];
            let (v, ve) = (self.a(k + 2), self.b(k + 2));
            k += 3;
            let (first, last) = (self.m[v & MASK], self.m[(ve - 1) & MASK]);
            let number = (first == b'-' || first.is_ascii_digit()) && last.is_ascii_digit();
            if n == MAX_PROPS
                || key == ke
                || self.cut(key, ke, MAX_KEY) < ke
                || !(kind == b't' || kind == b'o' || kind == b'u' && v < ve && number)
            {
                continue;
            }
            self.raw(if n == 0 { b",\"props\":{\"" } else { b",\"" });
            self.text(key, ke);
            self.raw(b"\":");
            if kind == b't' {
                self.put(b'"');
                self.text(v, self.cut(v, ve, MAX_VALUE));
                self.put(b'"');
            } else {
                self.text(v, ve);
            }
            n += 1;
        }
        if n > 0 {
            self.put(b'}');
        }
    }
}

impl Default for Tracker {
    fn default() -> Tracker {
        Tracker::new()
    }
}

#[cfg(test)]
mod tests;
