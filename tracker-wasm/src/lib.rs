//! The browser tracker: the wasm half of `t.js` (CONTRACT §1 and §2).
//!
//! `t.js` (see `js/loader.js`) is a thin loader: it reads the `data-*` attributes and the
//! page's URL (as the parts the browser parsed), decides whether the visit is tracked at all
//! (the privacy signals, local pages: it starts nothing otherwise), wires the page's events
//! (history unless `data-spa="off"`, visibility, clicks, timers), replays the `window.tally`
//! queue stub, and holds and sends the queued events. Everything else is decided here, in
//! plain, natively tested Rust without an allocator: which page views, events and
//! engagement to record, URL cleaning, `data-exclude` globs, prop limits, ULIDs, the events'
//! JSON, how many events a request may carry, when to send, and the retries.
//!
//! All the state is one [`Tracker`]: a few numbers and one byte array [`Tracker::m`] holding,
//! at fixed places, the events' constant text ([`CONST`]), the saved page URL, host name and
//! `data-exclude`, and the buffers shared with `t.js`: its input, then the events written.
//! Text is handled as ranges of positions in that array, indexed through a power-of-two
//! mask, so that nothing can panic (a panic site would bring `core::fmt` into the wasm) and
//! no slice is ever passed around. On wasm32, `abi` exports [`Tracker::call`] as the C-ABI
//! function `c` over a static `Tracker` (zeros but the constant text: its data segment is
//! that text alone).
//!
//! # Calls
//!
//! `t.js` writes the text arguments of a call into the input buffer ([`IN`]) as UTF-8
//! fields joined by NUL bytes, and calls `c(op, len, a, now)`: the operation, the bytes
//! written, a number and the time (ms since 1970). The events a call records are written as
//! JSON, each as `,{…}`, into the output buffer ([`OUT`], right after the input buffer,
//! where `t.js` reads them). The recording calls return the end of what they wrote (from
//! [`IN`]) times 2, plus [`BEACON`] when the queue is to be sent at once by `sendBeacon`;
//! `t.js` appends the events to its queue (a string).
//!
//! | op | text fields | `a` | returns |
//! | --- | --- | --- | --- |
//! | [`START`] | see [`start`] | `screen.width + Math.random()` | events |
//! | [`NAV`] | the page's URL | | events |
//! | [`VIS`] | | hidden (1) or visible (0) | events, [`BEACON`] when hidden |
//! | [`TALLY`] | see [`tally`] | `!!a` | events, [`BEACON`] after an outbound click |
//! | [`TAKE`] | | 0: the timer fired; 1: `sendBeacon` took the queue | 1: send by `fetch` now |
//! | [`DONE`] | | HTTP status of that `fetch` (0: network error) | ms until sent again; 0: done |
//!
//! [`TALLY`] is `tally(c, a, b)`, the page's API, and also how `t.js` reports a click on a
//! link: `tally('click', link, {url: link.href})` (`link` an `<a>` element).
//!
//! A URL is four fields, its parts as the browser parsed them: `hostname` (no port),
//! `origin`, `pathname`, `search` (`example.com`, `https://example.com:8443`, `/blog/hello`,
//! `?utm_source=news` or empty).
//!
//! # The queue
//!
//! `t.js` keeps the queued events as text and sends them as `{"site":…,"events":[…]}`; this
//! side counts them, and records no event that would take the queue past [`MAX_EVENTS`]
//! events or [`MAX_BODY`] bytes (so a request never holds more than the collector takes).
//! Policy: the queue goes out [`FLUSH_MS`] after a call that left events in it, by `fetch`
//! with `keepalive` (`t.js` starts a timer after each such call; when one fires, [`TAKE`]
//! says whether to send, and empties the queue), or at once by `sendBeacon` when the page is hidden
//! or left or an outbound link clicked. One `fetch` is in flight at a time: until it is done,
//! the queue waits (and fills up, then drops further events, while the collector cannot be
//! reached). A failed `fetch` (network error, `408`, `429`, `5xx`) is sent again, the same
//! body, after twice the previous wait, up to [`MAX_BACKOFF_MS`]; `400` / `403` / `413` are
//! dropped. Every event carries its own id, so sending one twice never counts it twice.
#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

#[cfg(all(target_arch = "wasm32", not(test)))]
mod abi;

pub const START: u32 = 0;
pub const NAV: u32 = 1;
pub const VIS: u32 = 2;
pub const TALLY: u32 = 3;
pub const TAKE: u32 = 4;
pub const DONE: u32 = 5;

/// Send the queue now by `sendBeacon` (the low bit of what the recording calls return).
pub const BEACON: u32 = 1;

/// Delay between a call that queued events and the batch that carries them (the timer
/// `t.js` starts), and the first wait before a failed batch is sent again.
pub const FLUSH_MS: u32 = 1000;
/// Longest wait between two tries of a failing collector.
pub const MAX_BACKOFF_MS: u32 = 60_000;
/// Events per request (CONTRACT §2: at most 50).
pub const MAX_EVENTS: u32 = 50;
/// Bytes of events per request: with the head `t.js` adds (`{"site":…,"events":[`, `]}`)
/// under the collector's 64 KiB and `sendBeacon`'s 64 KiB quota.
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

/// Where things are in [`Tracker::m`]: the constant text (first, so that its positions are
/// short numbers in the code), the saved page URL, host name and `data-exclude` (with NULs
/// before and after it), room to clean a URL in (see [`Tracker::pageview`]: it may take up
/// to the input's length, so it ends before the input starts), the input buffer and, after
/// it, the events written (`t.js` writes the input from [`IN`] on, reads the events from
/// [`OUT`] on, and may write past the input's end, into memory never read between calls).
/// The wasm's one data segment is the constant text, at the start of [`Tracker::m`]: `build.sh`
/// reads its address there and writes the input buffer's (that address plus [`IN`]) into
/// `t.js`.
const TEXT: usize = 0;
const PAGE: usize = 0x100;
const HOST: usize = 0x900;
const GLOBS: usize = 0x1000;
const SCRATCH: usize = 0x1900;
pub const IN: usize = 0x20000;
pub const IN_LEN: usize = 0x10000;
pub const OUT: usize = IN + IN_LEN;
const SIZE: usize = 0x40000;
const MASK: usize = SIZE - 1;

/// Whether `c` separates two `data-exclude` globs.
fn sep(c: u8) -> bool {
    c <= b' ' || c == b','
}

/// The constant text of the events (their JSON keys, the commands), at
/// [`TEXT`] in [`Tracker::m`], where it is compared and copied like any other text. Each
/// piece is written once: pieces that are part of others (`event`, `pageview`, `,"`, `user`…)
/// are found inside them. The pieces are in the order that gave the smallest wasm (gzip -9)
/// of the orders tried: it sets the positions the code holds as numbers, and what gzip finds
/// repeated.
const CONST: &[u8] = concat!(
    r#"","ts":pageview","screen":","id":",{"url":","kind":","user":trueutm_http,"referrer":""#,
    r#"engagement","engaged_ms":clickevent","name":","props":{""#,
    "Outbound Link: Click",
)
.as_bytes();

/// The character of the Crockford base-32 digit `d` (`0123456789ABCDEFGHJKMNPQRSTVWXYZ`),
/// computed: `0`–`9`, then `A` on, with one more skipped from each of `I`, `L`, `O` and `U`
/// on (the bits of the mask at 18, 20, 22 and 27, counted up to `d`). Smaller in the wasm
/// than the alphabet as text.
#[inline(always)]
fn crockford(d: u32) -> u8 {
    (d + 48 + 7 * (d > 9) as u32 + (0x854_0000u32 << (31 - d)).count_ones()) as u8
}

/// Where `s` is in [`CONST`]: its range of positions in [`Tracker::m`] (found when compiling).
const fn span(s: &[u8]) -> (usize, usize) {
    let mut i = 0;
    'at: while i + s.len() <= CONST.len() {
        let mut j = 0;
        while j < s.len() {
            if CONST[i + j] != s[j] {
                i += 1;
                continue 'at;
            }
            j += 1;
        }
        return (TEXT + i, TEXT + i + s.len());
    }
    panic!("not in CONST")
}

/// The range of positions of a piece of [`CONST`].
macro_rules! t {
    ($s:literal) => {{
        const S: (usize, usize) = span($s);
        S
    }};
}

/// The fields of [`START`]. `t.js` makes the page's other decisions before it: it starts
/// nothing at all when the visit is not to be tracked (opt-outs, local pages, no `data-site`),
/// and wires no history listener for `data-spa="off"`. Right after it, `t.js` tells whether
/// the page is visible ([`VIS`]): until then, no time is visible.
pub mod start {
    pub const EXCLUDE: usize = 0;
    /// The page's URL (four fields).
    pub const URL: usize = 1;
    /// `document.referrer` resolved against the page (the page's own URL when there is none).
    pub const REFERRER: usize = 5;
}

/// The fields of [`TALLY`]: the command, a URL (four fields: `a.url`, or the `href` of a
/// link, resolved against the page; the page itself without one), `a` as text (the name of
/// a custom event), then per prop of `b` its key, and its type and value (see
/// `Tracker::props`). The commands: `event`, `pageview`, `user` and `click`; any other does
/// nothing.
pub mod tally {
    pub const COMMAND: usize = 0;
    pub const URL: usize = 1;
    pub const NAME: usize = 5;
}

// The parts of a URL, from its first field.
const HOSTNAME: usize = 0;
const ORIGIN: usize = 1;
const PATHNAME: usize = 2;
const SEARCH: usize = 3;

/// [`Tracker::visible_since`] while the page is hidden: no time has been visible.
/// Later than any time, and by more than 2^63 ms, so that the visible time up to any `now`
/// is negative as an `i64`.
const NEVER: u64 = i64::MAX as u64;

/// A field no call has: a page view with it as its referrer has none.
const NONE: usize = 99;
/// Another field no call has: a manual page view (recorded even when its URL did not change).
const MANUAL: usize = 98;

#[repr(C)]
pub struct Tracker {
    /// Where the next byte is written.
    w: usize,
    /// Where the event being written starts.
    from: usize,
    /// Where the fields of the call end.
    end: usize,
    /// The events in `t.js`'s queue, and their bytes.
    events: u32,
    bytes: usize,
    /// While a `fetch` is in flight (it may wait to be sent again): the last wait before it
    /// was sent again, [`FLUSH_MS`] before the first; the next is twice as long. 0: none is
    /// in flight.
    backoff: u32,
    page_len: usize,
    host_len: usize,
    exclude_len: usize,
    user: bool,
    screen: u32,
    rng: u64,
    /// Since when the page has been visible; [`NEVER`] while hidden.
    visible_since: u64,
    pub m: [u8; SIZE],
}

impl Tracker {
    pub const fn new() -> Tracker {
        let mut m = [0; SIZE];
        let mut i = 0;
        while i < CONST.len() {
            m[TEXT + i] = CONST[i];
            i += 1;
        }
        Tracker {
            w: 0,
            end: 0,
            from: 0,
            events: 0,
            bytes: 0,
            backoff: 0,
            page_len: 0,
            host_len: 0,
            exclude_len: 0,
            user: false,
            screen: 0,
            rng: 0,
            visible_since: 0,
            m,
        }
    }

    /// One call of `t.js`: `op` with `len` bytes of text fields in the input buffer, the
    /// number `a`, at time `now` (ms since 1970). `t.js` starts with [`START`], and only on a
    /// page it tracks.
    pub fn call(&mut self, op: u32, len: usize, a: f64, now: f64) -> u32 {
        let (now, set) = (now as u64, a as u32 != 0);
        // The fields end with a NUL too.
        self.end = IN + len.min(IN_LEN - 1);
        self.m[self.end] = 0;
        self.w = OUT;
        let mut beacon = false;
        match op {
            START => self.start(a, now),
            NAV => self.pageview(0, NONE, now),
            VIS => {
                beacon = set;
                // Shown again: hidden until now, so no time is recorded.
                self.leave(now);
                self.visible_since = if set { NEVER } else { now };
            }
            TALLY => {
                if self.is(tally::COMMAND, t!(b"event")) {
                    let a = self.a(tally::NAME);
                    self.event((a, self.cut(a, self.b(tally::NAME), MAX_NAME)), now);
                }
                // `tally('click', link, {url: link.href})`, as `t.js` calls it for clicks on
                // links: one to another host is sent now, by `sendBeacon` (the page may be
                // going away).
                if self.is(tally::COMMAND, t!(b"click"))
                    && self.is_http(tally::URL)
                    && !self.on_host(tally::URL)
                {
                    beacon = true;
                    self.event(t!(b"Outbound Link: Click"), now);
                }
                // `tally('pageview', {url})`: one on another host is not recorded (the
                // collector would refuse it).
                if self.is(tally::COMMAND, t!(b"pageview")) && self.on_host(tally::URL) {
                    self.pageview(tally::URL, MANUAL, now);
                }
                if self.is(tally::COMMAND, t!(b"user")) {
                    self.user = set;
                }
            }
            TAKE => {
                // `sendBeacon` took the queue; or the timer fired, and the queue goes out by
                // `fetch` unless one is in flight (or it is empty).
                let fetch = !set;
                if fetch && (self.backoff > 0 || self.events == 0) {
                    return 0;
                }
                (self.events, self.bytes) = (0, 0);
                if fetch {
                    self.backoff = FLUSH_MS;
                }
                return fetch as u32;
            }
            DONE => {
                let status = a as u32;
                if status == 0 || status == 408 || status == 429 || status >= 500 {
                    // Sent again after 2 s, 4 s, 8 s… up to a minute.
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF_MS);
                    return self.backoff;
                }
                self.backoff = 0;
                return 0;
            }
            _ => {}
        }
        // The events, where `t.js` reads them: after the input.
        ((self.w - IN) as u32) << 1 | beacon as u32
    }

    // Fields and text.

    /// Where field `k` starts (past the end when there is no such field).
    #[inline(never)]
    fn a(&self, k: usize) -> usize {
        let mut i = IN;
        for _ in 0..k {
            i = self.next(i) + 1;
        }
        i
    }

    /// Where the field from `i` ends: at the next NUL (or at `i` past the end).
    #[inline(never)]
    fn next(&self, mut i: usize) -> usize {
        while i < self.end && self.m[i & MASK] != 0 {
            i += 1;
        }
        i
    }

    /// Where field `k` ends (before it starts when there is no such field).
    #[inline(always)]
    fn b(&self, k: usize) -> usize {
        self.next(self.a(k))
    }

    /// Whether field `k` is the text `s`.
    #[inline(always)]
    fn is(&self, k: usize, (c, d): (usize, usize)) -> bool {
        self.same(self.a(k), self.b(k), c, d)
    }

    /// Whether the text from `a` on starts with the text from `c` to `d` (a NUL or a field's
    /// end never matches: none of the texts compared holds one).
    #[inline(never)]
    fn has(&self, mut a: usize, (mut c, d): (usize, usize)) -> bool {
        while c != d {
            if self.m[a & MASK] != self.m[c & MASK] {
                return false;
            }
            (a, c) = (a + 1, c + 1);
        }
        true
    }

    /// Whether the text from `a` to `b` is the text from `c` to `d`.
    fn same(&self, a: usize, b: usize, c: usize, d: usize) -> bool {
        b.wrapping_sub(a) == d - c && self.has(a, (c, d))
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
        while i != b {
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

    // Writing events.

    #[inline(never)]
    fn put(&mut self, b: u8) {
        self.m[self.w.min(MASK)] = b;
        self.w += 1;
    }

    /// The text from `a` to `b` as it is (a piece of [`CONST`]).
    #[inline(never)]
    fn raw(&mut self, (mut a, b): (usize, usize)) {
        while a != b {
            self.put(self.m[a & MASK]);
            a += 1;
        }
    }

    /// The text from `a` to `b`, escaped for a JSON string. Returns whether it holds more
    /// than spaces.
    #[inline(never)]
    fn text(&mut self, mut a: usize, b: usize) -> bool {
        let mut seen = false;
        while a != b {
            let c = self.m[a & MASK];
            a += 1;
            seen |= c > b' ';
            if c == b'"' || c == b'\\' {
                self.put(b'\\');
            }
            self.put(if c < b' ' { b' ' } else { c });
        }
        seen
    }

    /// The decimal digits of `n`.
    fn num(&mut self, n: u64) {
        if n >= 10 {
            self.num(n / 10);
        }
        self.put(b'0' + (n % 10) as u8);
    }

    // What is recorded.

    /// Whether the URL at field `u` is http(s).
    #[inline(always)]
    fn is_http(&self, u: usize) -> bool {
        self.has(self.a(u + ORIGIN), t!(b"http"))
    }

    /// Whether the URL at field `u` is on the page's host.
    #[inline(always)]
    fn on_host(&self, u: usize) -> bool {
        self.same(
            self.a(u + HOSTNAME),
            self.b(u + HOSTNAME),
            HOST,
            HOST + self.host_len,
        )
    }

    /// Starts tracking the page at `now` with its page view; `screen` is the page's width in
    /// pixels plus `Math.random()`. The fields are the [`start`] ones.
    fn start(&mut self, screen: f64, now: u64) {
        use start::*;
        self.exclude_len = self.save(GLOBS, self.a(EXCLUDE), self.b(EXCLUDE), MAX_URL);
        self.host_len = self.save(HOST, self.a(URL), self.b(URL), 256);
        self.screen = screen as u32;
        // The seed of the ids: the bits of `Math.random()` (the fraction; the time is in the
        // ids already).
        self.rng = screen.to_bits();
        // The visible time starts with the call `t.js` makes right after this one ([`VIS`]).
        self.pageview(URL, REFERRER, now);
    }

    /// Whether the path from `t0` to `te` matches one of the `data-exclude` globs: `*`
    /// matches any run of characters, `/` included; everything else matches itself. Globs are
    /// separated by commas or spaces (the byte after the last is a NUL, a separator too). One
    /// pass over the globs, each matched with backtracking to its last `*`.
    fn excluded(&self, t0: usize, te: usize) -> bool {
        let (mut p, mut t, mut star, mut retry) = (GLOBS, t0, 0, 0);
        while p <= GLOBS + self.exclude_len {
            let c = self.m[p & MASK];
            if c == b'*' {
                (star, retry) = (p + 1, t);
                p += 1;
            } else if sep(c) && t == te {
                return true;
            } else if !sep(c) && t < te && c == self.m[t & MASK] {
                p += 1;
                t += 1;
            } else if star > 0 && retry < te {
                retry += 1;
                (p, t) = (star, retry);
            } else if sep(c) {
                // The next glob.
                (p, t, star) = (p + 1, t0, 0);
            } else {
                // This one does not match: on to its end (past the path's end, `t` matches
                // nothing).
                (p, t) = (p + 1, te + 1);
            }
        }
        false
    }

    /// Starts an event after the events of this call, with the current page's URL, its id
    /// and time, then its kind: `kind` is the kind's text and the start of the member that
    /// follows it (`event","name":"`), so that one copy writes both. The caller adds its
    /// members, then [`Tracker::commit`]s it.
    #[inline(never)]
    fn open(&mut self, kind: (usize, usize), now: u64) {
        self.from = self.w;
        self.raw(t!(b",{\"url\":\""));
        self.text(PAGE, PAGE + self.page_len);
        // A ULID: 10 characters of time (its 50 low bits, 5 at a time from the top), then 16
        // random ones: the seed of the page view plus one per event (as a monotonic ULID
        // generator counts within a millisecond), its 64 bits rotated 5 at a time. Ids are
        // unique; the page's events need not look unrelated to one another (their `ts`
        // orders them anyway), and each page load has its own seed.
        let x = self.rng.wrapping_add(1);
        self.rng = x;
        self.raw(t!(b"\",\"id\":\""));
        let mut t = now << 14;
        for i in 0..26 {
            if i == 10 {
                t = x;
            }
            t = t.rotate_left(5);
            self.put(crockford(t as u32 & 31));
        }
        self.raw(t!(b"\",\"ts\":"));
        self.num(now);
        self.raw(t!(b",\"kind\":\""));
        self.raw(kind);
    }

    /// Ends the event that started at `from` with the user flag, and keeps it if the queue
    /// has room for it.
    #[inline(never)]
    fn commit(&mut self) {
        let from = self.from;
        // Anonymous is the default: only a logged-in visitor's events say so.
        if self.user {
            self.raw(t!(b",\"user\":true"));
        }
        self.put(b'}');
        let bytes = self.bytes + self.w - from;
        if bytes <= MAX_BODY && self.events < MAX_EVENTS {
            (self.bytes, self.events) = (bytes, self.events + 1);
        } else {
            self.w = from;
        }
    }

    /// A page view of the URL at field `u`, with the URL at field `r` as its referrer when it
    /// is on another host ([`NONE`]: none): the page load (with the document's referrer), a
    /// history or hash navigation (only when the URL as recorded changed) or, `r` being
    /// [`MANUAL`], `tally('pageview')` (recorded even when the URL did not change). One
    /// signature for this, [`Tracker::open`] and [`Tracker::event`] (two positions and the
    /// time) makes one function type in the wasm for the three. The previous page's engagement ends first (at the load: none).
    ///
    /// The URL recorded: origin and path, and of the query only the `utm_*` parameters (the
    /// collector stores nothing else of it, and other parameters may hold tokens or e-mail
    /// addresses); no fragment. Not http(s), or excluded by `data-exclude`: not tracked. It
    /// is cleaned in the scratch space, then saved as the page's URL.
    fn pageview(&mut self, u: usize, r: usize, now: u64) {
        let out = self.w;
        self.w = SCRATCH;
        if self.is_http(u) && !self.excluded(self.a(u + PATHNAME), self.b(u + PATHNAME)) {
            self.save_url(u);
            let (mut sep, mut keep) = (b'?', false);
            let (mut i, end) = (self.a(u + SEARCH), self.b(u + SEARCH));
            while i != end {
                let c = self.m[i & MASK];
                i += 1;
                if c == b'?' || c == b'&' {
                    keep = self.has(i, t!(b"utm_"));
                    if keep {
                        self.put(sep);
                        sep = b'&';
                    }
                } else if keep {
                    self.put(c);
                }
            }
        }
        let end = self.w.min(SCRATCH + MAX_URL);
        self.w = out;
        if r != MANUAL && self.same(SCRATCH, end, PAGE, PAGE + self.page_len) {
            return;
        }
        self.leave(now);
        self.page_len = self.save(PAGE, SCRATCH, end, MAX_URL);
        if self.page_len == 0 {
            return;
        }
        self.open(t!(b"pageview\",\"screen\":"), now);
        self.num(self.screen.into());
        if self.is_http(r) && !self.on_host(r) {
            self.raw(t!(b",\"referrer\":\""));
            let w = self.w;
            self.save_url(r);
            self.w = self.w.min(w + MAX_URL);
            self.put(b'"');
        }
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
        // Nothing while hidden (nor after the clock was set back): the time is negative.
        let engaged_ms = now.wrapping_sub(self.visible_since);
        self.visible_since = self.visible_since.max(now);
        if engaged_ms as i64 >= MIN_ENGAGED_MS as i64 && self.page_len > 0 {
            self.open(t!(b"engagement\",\"engaged_ms\":"), now);
            self.num(engaged_ms);
            self.commit();
        }
    }

    /// A custom event on the current page, named by the text from `a` to `b` (the name
    /// passed, cut; or `Outbound Link: Click`), with the props after field [`tally::NAME`].
    /// Not when the page is not tracked, nor without a name (spaces only).
    fn event(&mut self, (a, b): (usize, usize), now: u64) {
        if self.page_len == 0 {
            return;
        }
        self.open(t!(b"event\",\"name\":\""), now);
        if !self.text(a, b) {
            self.w = self.from;
            return;
        }
        self.put(b'"');
        self.props(tally::NAME + 1);
        self.commit();
    }

    /// Writes the props of a custom event as its `"props"` member, from field `k` on: two
    /// fields each, its key, and its value as text after its type, as `t.js` tells it: the
    /// letter `typeof v` has at index 1 for a finite number (`u`), at index 2 for anything
    /// else (`r` string, `o` boolean; `m` for `NaN` or infinities, `n` for a function, `d`
    /// undefined, `j` an object or `null`, `g` a bigint; a symbol makes `t.js`'s call throw).
    /// Of the letters that can come, only the kept ones are in `o..=u`. Props of other
    /// types, and those that break a limit, are dropped. Strings are cut.
    /// Nothing is written when no prop is left.
    fn props(&mut self, k: usize) {
        // The fields are read in order: each ends at the next NUL.
        let (mut n, mut key) = (0, self.a(k));
        loop {
            let ke = self.next(key);
            if n == MAX_PROPS || ke >= self.end {
                break;
            }
            let (kind, v) = (self.m[(ke + 1) & MASK], ke + 2);
            let ve = self.next(v);
            if key < ke && self.cut(key, ke, MAX_KEY) == ke && (b'o'..=b'u').contains(&kind) {
                self.raw(if n == 0 {
                    t!(b",\"props\":{\"")
                } else {
                    t!(b",\"")
                });
                self.text(key, ke);
                self.raw(t!(b"\":"));
                if kind == b'r' {
                    self.put(b'"');
                    self.text(v, self.cut(v, ve, MAX_VALUE));
                    self.put(b'"');
                } else {
                    self.text(v, ve);
                }
                n += 1;
            }
            key = ve + 1;
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
