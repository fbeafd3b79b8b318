//! What the tracker records, as a state machine fed by the page: loads, navigations,
//! visibility changes, clicks and `tally(...)` calls. It knows nothing of the browser: the
//! glue passes in the time and the URLs, and sends what [`Tracker::queue`] holds.

use alloc::vec::Vec;

use crate::id::Rng;
use crate::json::Obj;
use crate::queue::Queue;
use crate::{glob, props, url};

/// Visible time shorter than this is not worth an engagement event.
pub const MIN_ENGAGED_MS: u64 = 1000;
/// The name of outbound link click events (CONTRACT §1).
pub const OUTBOUND: &[u8] = b"Outbound Link: Click";

/// The script tag's settings.
pub struct Config {
    pub site: Vec<u8>,
    /// `data-spa="auto"`: history and hash navigations are page views.
    pub spa: bool,
    /// `data-exclude`.
    pub exclude: Vec<u8>,
}

/// Why a visit is not tracked at all (CONTRACT §1): bits of the flags `t.js` reads.
pub mod opt_out {
    /// `navigator.doNotTrack == "1"`.
    pub const DNT: u32 = 1;
    /// `navigator.globalPrivacyControl`.
    pub const GPC: u32 = 2;
    /// `navigator.webdriver`: an automated browser.
    pub const WEBDRIVER: u32 = 4;
    /// `localStorage.tally_ignore == "true"`: the site owner's own browser.
    pub const IGNORE: u32 = 8;
    /// Not a flag against tracking but for it: `data-allow-local`.
    pub const ALLOW_LOCAL: u32 = 16;
}

/// Whether a visit to `href` with the given [`opt_out`] `flags` must not be tracked.
pub fn opted_out(flags: u32, href: &[u8]) -> bool {
    flags & (opt_out::DNT | opt_out::GPC | opt_out::WEBDRIVER | opt_out::IGNORE) != 0
        || (flags & opt_out::ALLOW_LOCAL == 0 && url::is_local(href))
}

pub struct Tracker {
    pub config: Config,
    pub queue: Queue,
    rng: Rng,
    screen: u32,
    user: bool,
    /// The cleaned URL of the current page; empty when it is excluded.
    page: Vec<u8>,
    engaged_ms: u64,
    /// Since when the page has been visible; `None` while hidden.
    visible_since: Option<u64>,
}

impl Tracker {
    /// A tracker for a page loaded at `now`, visible or `hidden`, `screen` pixels wide.
    pub fn new(config: Config, seed: u64, screen: u32, now: u64, hidden: bool) -> Tracker {
        Tracker {
            config,
            queue: Queue::default(),
            rng: Rng::new(seed),
            screen,
            user: false,
            page: Vec::new(),
            engaged_ms: 0,
            visible_since: (!hidden).then_some(now),
        }
    }

    /// The URL `href` is recorded with, or `None` when it is not tracked (`data-exclude`, not
    /// http(s)).
    fn tracked(&self, href: &[u8]) -> Option<Vec<u8>> {
        let clean = url::clean(href)?;
        let path = url::parts(&clean)?.path;
        (!glob::excluded(&self.config.exclude, path)).then_some(clean)
    }

    fn event(&mut self, kind: &[u8], url: &[u8], now: u64) -> Obj {
        let mut obj = Obj::new();
        obj.str(b"id", &self.rng.ulid(now))
            .str(b"kind", kind)
            .str(b"url", url)
            .num(b"ts", now);
        obj
    }

    /// A page view of `href` (the page load, or `tally('pageview')`), with the document's
    /// `referrer` (empty for navigations inside the page).
    pub fn pageview(&mut self, now: u64, href: &[u8], referrer: &[u8]) {
        self.page = self.tracked(href).unwrap_or_default();
        if self.page.is_empty() {
            return;
        }
        let page = core::mem::take(&mut self.page);
        let mut obj = self.event(b"pageview", &page, now);
        if let Some(r) = url::referrer(referrer, &page) {
            obj.str(b"referrer", &r);
        }
        obj.num(b"screen", self.screen as u64)
            .bool(b"user", self.user);
        self.queue.push(obj.finish());
        self.page = page;
    }

    /// The page's URL changed to `href` without a load (history API, hash): a page view when
    /// `data-spa` is on and the URL as recorded differs from the current page's.
    pub fn navigate(&mut self, now: u64, href: &[u8]) {
        if self.config.spa && self.tracked(href).unwrap_or_default() != self.page {
            self.leave(now);
            self.pageview(now, href, b"");
        }
    }

    /// The current page is left or hidden at `now`: its visible time so far becomes an
    /// engagement event.
    pub fn leave(&mut self, now: u64) {
        if let Some(since) = self.visible_since.replace(now) {
            self.engaged_ms += now.saturating_sub(since);
        }
        if self.engaged_ms >= MIN_ENGAGED_MS && !self.page.is_empty() {
            let page = core::mem::take(&mut self.page);
            let mut obj = self.event(b"engagement", &page, now);
            obj.num(b"engaged_ms", self.engaged_ms);
            self.queue.push(obj.finish());
            self.page = page;
        }
        self.engaged_ms = 0;
    }

    /// The page became hidden (or is being left) or visible again. Returns whether the queue
    /// must be sent now, by `sendBeacon`.
    pub fn visibility(&mut self, now: u64, hidden: bool) -> bool {
        if hidden {
            self.leave(now);
            self.visible_since = None;
        } else if self.visible_since.is_none() {
            self.visible_since = Some(now);
        }
        hidden
    }

    /// A custom event `name` with `props` (a JSON object already within the limits, see
    /// [`props::Props`]) on the page `href`.
    pub fn custom(&mut self, now: u64, href: &[u8], name: &[u8], props: Option<Vec<u8>>) {
        let (Some(url), Some(name)) = (self.tracked(href), props::name(name)) else {
            return;
        };
        let mut obj = self.event(b"event", &url, now);
        obj.str(b"name", name);
        if let Some(p) = props {
            obj.raw(b"props", &p);
        }
        obj.bool(b"user", self.user);
        self.queue.push(obj.finish());
    }

    /// A click on a link to `link` from the page `href`. Returns whether it was an outbound
    /// link, whose event must be sent now (by `sendBeacon`: the page may be going away).
    pub fn click(&mut self, now: u64, href: &[u8], link: &[u8]) -> bool {
        let host = url::host(link);
        if host.is_empty() || host.eq_ignore_ascii_case(url::host(href)) {
            return false;
        }
        let mut p = props::Props::default();
        p.add(b"url", link, props::Kind::Str);
        let before = self.queue.pending();
        self.custom(now, href, OUTBOUND, p.finish());
        self.queue.pending() > before
    }

    /// `tally('user', logged_in)`.
    pub fn set_user(&mut self, logged_in: bool) {
        self.user = logged_in;
    }
}

/// `tally('pageview', {url})`: `url` made absolute against the page's `href` (`/path` keeps
/// the page's origin; anything that is not a URL means the page itself).
pub fn resolve(href: &[u8], given: &[u8]) -> Vec<u8> {
    if url::parts(given).is_some() {
        return Vec::from(given);
    }
    match url::parts(href) {
        Some(p) if given.starts_with(b"/") && !given.starts_with(b"//") => {
            let mut out = Vec::from(p.origin);
            out.extend_from_slice(given);
            out
        }
        _ => Vec::from(href),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_732_380_000_000;

    fn tracker(spa: bool, exclude: &str) -> Tracker {
        let config = Config {
            site: b"example.com".to_vec(),
            spa,
            exclude: exclude.as_bytes().to_vec(),
        };
        Tracker::new(config, 7, 1440, T0, false)
    }

    fn events(t: &mut Tracker) -> Vec<String> {
        let Some((body, n)) = t.queue.next(b"example.com") else {
            return Vec::new();
        };
        t.queue.sent(n);
        let body = String::from_utf8(body).expect("utf-8");
        let list = &body[body.find('[').expect("events") + 1..body.len() - 2];
        let mut ev: Vec<String> = list.split("},{").map(|e| format!("{{{e}}}")).collect();
        if let Some(first) = ev.first_mut() {
            first.remove(0);
        }
        if let Some(last) = ev.last_mut() {
            last.pop();
        }
        ev
    }

    #[test]
    fn records_the_page_view_with_referrer_and_screen() {
        let mut t = tracker(true, "");
        t.pageview(
            T0,
            b"https://example.com/blog/hello?utm_source=news&token=x#top",
            b"https://news.ycombinator.com/item?id=1",
        );
        let ev = events(&mut t);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].starts_with("{\"id\":\"01JDCY9ZR0"), "{}", ev[0]);
        assert!(ev[0].ends_with(concat!(
            r#""kind":"pageview","url":"https://example.com/blog/hello?utm_source=news","#,
            r#""ts":1732380000000,"referrer":"https://news.ycombinator.com/item","#,
            r#""screen":1440,"user":false}"#
        )));
    }

    #[test]
    fn counts_spa_navigations_once_per_url() {
        let mut t = tracker(true, "");
        t.pageview(T0, b"https://example.com/", b"");
        t.navigate(T0 + 10, b"https://example.com/#section");
        t.navigate(T0 + 2000, b"https://example.com/about");
        t.navigate(T0 + 2500, b"https://example.com/about");
        t.navigate(T0 + 3000, b"https://example.com/");
        let ev = events(&mut t);
        let kinds: Vec<_> = ev
            .iter()
            .map(|e| (e.contains("pageview"), e.contains("engaged_ms")))
            .collect();
        let (view, engaged) = ((true, false), (false, true));
        assert_eq!(kinds, [view, engaged, view, engaged, view]);
        assert!(ev[1]
            .ends_with(r#""url":"https://example.com/","ts":1732380002000,"engaged_ms":2000}"#));
        assert!(ev[2].contains("\"url\":\"https://example.com/about\""));

        let mut off = tracker(false, "");
        off.pageview(T0, b"https://example.com/", b"");
        off.navigate(T0 + 5000, b"https://example.com/about");
        assert_eq!(events(&mut off).len(), 1);
    }

    #[test]
    fn skips_excluded_pages() {
        let mut t = tracker(true, "/admin/*");
        t.pageview(T0, b"https://example.com/admin/users", b"");
        t.custom(T0, b"https://example.com/admin/users", b"Saved", None);
        t.visibility(T0 + 5000, true);
        assert!(events(&mut t).is_empty());
        t.visibility(T0 + 6000, false);
        t.navigate(T0 + 6000, b"https://example.com/pricing");
        assert_eq!(events(&mut t).len(), 1);
    }

    #[test]
    fn measures_visible_time_only() {
        let mut t = tracker(true, "");
        t.pageview(T0, b"https://example.com/a", b"");
        events(&mut t);
        assert!(t.visibility(T0 + 3000, true));
        assert!(!t.visibility(T0 + 60_000, false));
        t.visibility(T0 + 62_000, true);
        t.visibility(T0 + 62_500, true);
        let ev = events(&mut t);
        assert_eq!(ev.len(), 2);
        assert!(ev[0].contains(r#""kind":"engagement","url":"https://example.com/a""#));
        assert!(ev[0].ends_with(r#""engaged_ms":3000}"#));
        assert!(ev[1].ends_with(r#""engaged_ms":2000}"#));
        t.visibility(T0 + 70_000, false);
        t.visibility(T0 + 70_500, true);
        assert!(events(&mut t).is_empty(), "under {MIN_ENGAGED_MS} ms");
    }

    #[test]
    fn records_custom_events_and_the_user_flag() {
        let mut t = tracker(true, "");
        t.set_user(true);
        t.custom(
            T0,
            b"https://example.com/p",
            b" Signup ",
            Some(br#"{"plan":"pro"}"#.to_vec()),
        );
        t.custom(T0, b"https://example.com/p", b"  ", None);
        let ev = events(&mut t);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].contains(r#""name":"Signup","props":{"plan":"pro"},"user":true"#));
    }

    #[test]
    fn records_outbound_clicks_only() {
        let mut t = tracker(true, "");
        let page = b"https://example.com/";
        assert!(!t.click(T0, page, b"https://example.com/about"));
        assert!(!t.click(T0, page, b"mailto:a@example.com"));
        assert!(!t.click(T0, page, b"javascript:void(0)"));
        assert!(t.click(T0, page, b"https://other.org/x?q=1"));
        let ev = events(&mut t);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].contains(
            r#""name":"Outbound Link: Click","props":{"url":"https://other.org/x?q=1"}"#
        ));
    }

    #[test]
    fn resolves_manual_page_view_urls() {
        let page = b"https://example.com/app?x=1";
        assert_eq!(
            resolve(page, b"/virtual/step-2"),
            b"https://example.com/virtual/step-2"
        );
        assert_eq!(
            resolve(page, b"https://example.com/b"),
            b"https://example.com/b"
        );
        assert_eq!(resolve(page, b""), page);
        assert_eq!(resolve(page, b"//evil.org/x"), page);
    }

    #[test]
    fn honours_opt_outs() {
        let site = b"https://example.com/";
        assert!(!opted_out(0, site));
        for flag in [
            opt_out::DNT,
            opt_out::GPC,
            opt_out::WEBDRIVER,
            opt_out::IGNORE,
        ] {
            assert!(opted_out(flag, site));
            assert!(opted_out(flag | opt_out::ALLOW_LOCAL, site));
        }
        assert!(opted_out(0, b"http://localhost:8000/"));
        assert!(opted_out(0, b"file:///index.html"));
        assert!(!opted_out(opt_out::ALLOW_LOCAL, b"http://localhost:8000/"));
    }
}
