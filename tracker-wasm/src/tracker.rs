//! What the tracker records, as a state machine fed by the page: loads, navigations,
//! visibility changes, clicks and `tally(...)` calls. It knows nothing of the browser: the
//! glue passes in the time, and URLs as their parts (the browser's `URL` / `Location` /
//! `HTMLAnchorElement` parse them): five fields, [`PROTOCOL`] to [`SEARCH`], from a given
//! field of the call's [`Input`]. What the queue holds is sent by the glue.
//!
//! Everything lives in fixed buffers inside the one [`Tracker`] (no allocator): on wasm32 it
//! is a zero-initialised static, so it costs no bytes in the binary.

use crate::glob;
use crate::id::Rng;
use crate::input::Input;
use crate::props;
use crate::queue::{copy, Queue};

/// Visible time shorter than this is not worth an engagement event.
pub const MIN_ENGAGED_MS: u64 = 1000;
/// The name of outbound link click events (CONTRACT §1).
pub const OUTBOUND: &[u8] = b"Outbound Link: Click";
/// Longest page or referrer URL the collector accepts, in bytes (`tally_core::wire::MAX_URL`).
/// URLs as the browser serialises them are ASCII, so a cut never splits a character.
pub const MAX_URL: usize = 2048;
/// Longest `data-exclude` kept, in bytes.
pub const MAX_EXCLUDE: usize = 2048;
/// Longest host name kept, in bytes.
pub const MAX_HOST: usize = 256;

/// The parts of a URL, as offsets from its first field: `https:`, `example.com` (no port),
/// `https://example.com:8443`, `/blog/hello`, `?utm_source=news` (or empty).
pub const PROTOCOL: usize = 0;
pub const HOSTNAME: usize = 1;
pub const ORIGIN: usize = 2;
pub const PATHNAME: usize = 3;
pub const SEARCH: usize = 4;

/// How a page view came about (see [`Tracker::pageview`]).
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum How {
    Load,
    Navigation,
    Manual,
}

/// The first `n` bytes of `buf` (all of it if shorter).
fn prefix(buf: &[u8], n: usize) -> &[u8] {
    buf.get(..n.min(buf.len())).unwrap_or_default()
}

pub struct Tracker {
    pub input: Input,
    pub queue: Queue,
    started: bool,
    spa: bool,
    user: bool,
    screen: u64,
    rng: Rng,
    exclude: [u8; MAX_EXCLUDE],
    exclude_len: usize,
    /// The page's host name (the same for the whole life of the document).
    host: [u8; MAX_HOST],
    host_len: usize,
    /// The URL the current page is recorded with; empty when it is not tracked.
    page: [u8; MAX_URL],
    page_len: usize,
    engaged_ms: u64,
    /// Since when the page has been visible; 0 while hidden.
    visible_since: u64,
}

/// The page's settings and signals: where `t.js` puts them in the input of
/// [`Tracker::start`].
pub mod start {
    pub const SITE: usize = 0;
    pub const EXCLUDE: usize = 1;
    /// `data-spa`: anything but `off` counts history and hash navigations as page views.
    pub const SPA: usize = 2;
    /// The page's URL (five fields).
    pub const URL: usize = 3;
    /// `document.referrer` resolved against the page (five fields; the page's own URL when
    /// there is none).
    pub const REFERRER: usize = 8;
    pub const HIDDEN: usize = 13;
    /// `navigator.doNotTrack == "1"`, `navigator.globalPrivacyControl`,
    /// `navigator.webdriver` (an automated browser) or `localStorage.tally_ignore == "true"`
    /// (the owner's browser).
    pub const OPTED_OUT: usize = 14;
    /// `data-allow-local`: also track `localhost`, loopback and `file:` pages.
    pub const ALLOW_LOCAL: usize = 15;
    /// `Math.random()`, to seed the ids.
    pub const RANDOM: usize = 16;
}

impl Tracker {
    pub const fn new() -> Tracker {
        Tracker {
            input: Input::new(),
            queue: Queue::new(),
            started: false,
            spa: false,
            user: false,
            screen: 0,
            rng: Rng::new(0),
            exclude: [0; MAX_EXCLUDE],
            exclude_len: 0,
            host: [0; MAX_HOST],
            host_len: 0,
            page: [0; MAX_URL],
            page_len: 0,
            engaged_ms: 0,
            visible_since: 0,
        }
    }

    pub fn started(&self) -> bool {
        self.started
    }

    /// Whether `url` is http(s): its protocol is `http:` or `https:`.
    fn is_http(&self, url: usize) -> bool {
        let p = self.input.f(url + PROTOCOL);
        p.starts_with(b"http") && p.len() <= 6
    }

    /// Whether `url` is on the page's host.
    fn on_host(&self, url: usize) -> bool {
        self.input.f(url + HOSTNAME) == prefix(&self.host, self.host_len)
    }

    // `<[u8]>::contains` brings a word-at-a-time `memchr` into the wasm; a plain loop is smaller.
    #[allow(clippy::manual_contains)]
    /// Starts tracking the page at `now`, `screen` pixels wide, with its page view, unless
    /// the visit is not to be tracked at all (CONTRACT §1). The input holds the [`start`]
    /// fields.
    pub fn start(&mut self, screen: u64, now: u64) {
        use start::*;
        let i = &self.input;
        // Local: `file:` (no host), `localhost` and other names without a dot, `[::1]`,
        // `*.localhost`, `127.*`.
        let h = i.f(URL + HOSTNAME);
        let local =
            !h.iter().any(|&b| b == b'.') || h.ends_with(b".localhost") || h.starts_with(b"127.");
        let site = i.f(SITE);
        if self.started
            || site.is_empty()
            || i.on(OPTED_OUT)
            || local && !i.on(ALLOW_LOCAL)
            || !self.queue.set_head(|q| {
                q.raw(b"{\"site\":");
                q.str(site);
                q.raw(b",\"events\":[");
            })
        {
            return;
        }
        self.exclude_len = copy(&mut self.exclude, i.f(EXCLUDE));
        self.host_len = copy(&mut self.host, h);
        self.started = true;
        self.spa = i.f(SPA) != b"off";
        self.screen = screen;
        self.rng = Rng::seeded(i.f(RANDOM), now);
        self.visible_since = if i.on(HIDDEN) { 0 } else { now };
        self.pageview(now, URL, How::Load);
    }

    /// Writes the members every event starts with into the queue, with the current page's
    /// URL; the caller adds its own, then `}`, and commits it.
    fn open(&mut self, kind: &[u8], now: u64) {
        let q = &mut self.queue;
        q.begin();
        q.raw(b"{\"url\":");
        q.str(prefix(&self.page, self.page_len));
        q.raw(b",\"id\":\"");
        self.rng.ulid(now, q);
        q.raw(b"\",\"kind\":\"");
        q.raw(kind);
        q.raw(b"\",\"ts\":");
        q.num(now);
    }

    fn user_and_commit(&mut self) -> bool {
        let q = &mut self.queue;
        q.raw(if self.user {
            b",\"user\":true}"
        } else {
            b",\"user\":false}"
        });
        q.commit()
    }

    /// A page view of the URL at field `url`: the page load (with the document's referrer),
    /// a history or hash navigation (only when `data-spa` is on and the URL as recorded
    /// changed) or `tally('pageview')`. Navigations end the previous page's engagement first.
    ///
    /// The URL recorded: origin and path, and of the query only the `utm_*` parameters (the
    /// collector stores nothing else of it, and other parameters may hold tokens or e-mail
    /// addresses); no fragment. Not http(s), or excluded by `data-exclude`: not tracked.
    pub fn pageview(&mut self, now: u64, url: usize, how: How) {
        let tracked = self.is_http(url)
            && !glob::excluded(
                prefix(&self.exclude, self.exclude_len),
                self.input.f(url + PATHNAME),
            );
        let (i, q) = (&self.input, &mut self.queue);
        let start = q.scratch();
        if tracked {
            q.raw(i.f(url + ORIGIN));
            q.raw(i.f(url + PATHNAME));
            let (search, mut sep, mut keep) = (i.f(url + SEARCH), b'?', false);
            for (k, &b) in search.iter().enumerate() {
                if b == b'?' || b == b'&' {
                    keep = search.get(k + 1..).unwrap_or_default().starts_with(b"utm_");
                    if keep {
                        q.put(sep);
                        sep = b'&';
                    }
                } else if keep {
                    q.put(b);
                }
            }
            q.w = q.w.min(start + MAX_URL);
        }
        let end = q.w;
        let same = q.written(start, end) == prefix(&self.page, self.page_len);
        if how == How::Navigation && (!self.spa || same) {
            return;
        }
        if how != How::Load {
            self.leave(now);
        }
        self.page_len = copy(&mut self.page, self.queue.written(start, end));
        if self.page_len == 0 {
            return;
        }
        let r = start::REFERRER;
        let referrer = how == How::Load && self.is_http(r) && !self.on_host(r);
        self.open(b"pageview", now);
        let (i, q) = (&self.input, &mut self.queue);
        if referrer {
            q.raw(b",\"referrer\":\"");
            let origin = i.f(r + ORIGIN);
            q.text(origin);
            let path = i.f(r + PATHNAME);
            q.text(prefix(path, MAX_URL.saturating_sub(origin.len())));
            q.put(b'"');
        }
        q.raw(b",\"screen\":");
        q.num(self.screen);
        self.user_and_commit();
    }

    /// `tally('pageview', {url})`: the URL at field 0, as the browser resolved it against the
    /// page; one on another host is not recorded (the collector would refuse it).
    pub fn manual_pageview(&mut self, now: u64) {
        if self.on_host(0) {
            self.pageview(now, 0, How::Manual);
        }
    }

    /// The current page is left or hidden at `now`: its visible time so far becomes an
    /// engagement event.
    pub fn leave(&mut self, now: u64) {
        if self.visible_since != 0 {
            self.engaged_ms += now.saturating_sub(self.visible_since);
            self.visible_since = now;
        }
        let engaged_ms = self.engaged_ms;
        self.engaged_ms = 0;
        if engaged_ms >= MIN_ENGAGED_MS && self.page_len > 0 {
            self.open(b"engagement", now);
            let q = &mut self.queue;
            q.raw(b",\"engaged_ms\":");
            q.num(engaged_ms);
            q.put(b'}');
            q.commit();
        }
    }

    /// The page became hidden (or is being left) or visible again. Returns whether the queue
    /// must be sent now, by `sendBeacon`.
    pub fn visibility(&mut self, now: u64, hidden: bool) -> bool {
        if hidden {
            self.leave(now);
            self.visible_since = 0;
        } else if self.visible_since == 0 {
            self.visible_since = now;
        }
        hidden
    }

    /// A custom event on the current page: its name at field 0 and its props after it (see
    /// [`props::write`]); or, for an outbound click, the `href` at field 5. Returns whether it
    /// was queued: not when the page is not tracked, nor without a name.
    fn event(&mut self, now: u64, outbound: bool) -> bool {
        let name = props::name(self.input.f(0));
        if self.page_len == 0 || !outbound && name == 0 {
            return false;
        }
        self.open(b"event", now);
        let (i, q) = (&self.input, &mut self.queue);
        q.raw(b",\"name\":");
        if outbound {
            q.str(OUTBOUND);
            q.raw(b",\"props\":{\"url\":");
            q.str(props::cut(i.f(5), props::MAX_VALUE));
            q.put(b'}');
        } else {
            q.str(prefix(i.f(0), name));
            props::write(q, i, 1);
        }
        self.user_and_commit()
    }

    /// `tally('event', name, props)`: the name at field 0, the props after it.
    pub fn custom(&mut self, now: u64) -> bool {
        self.event(now, false)
    }

    /// A click on a link: its URL at field 0, its `href` at field 5. Returns whether it was an
    /// outbound link, whose event must be sent now (by `sendBeacon`: the page may be going
    /// away).
    pub fn click(&mut self, now: u64) -> bool {
        self.is_http(0) && !self.on_host(0) && self.event(now, true)
    }

    /// `tally('user', logged_in)`.
    pub fn set_user(&mut self, logged_in: bool) {
        self.user = logged_in;
    }
}

impl Default for Tracker {
    fn default() -> Tracker {
        Tracker::new()
    }
}

#[cfg(test)]
mod tests;
