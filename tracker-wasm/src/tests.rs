//! The tracker driven through [`Tracker::call`] exactly as `t.js` drives it.

use super::*;

const T0: f64 = 1_732_380_000_000.0;

/// The four fields of an http(s) URL on `host`.
fn url(host: &str, path: &str, search: &str) -> Vec<String> {
    vec![
        host.into(),
        format!("https://{host}"),
        path.into(),
        search.into(),
    ]
}

/// A page with the tracker: the wasm's state, and the queue `t.js` keeps (the events the
/// calls wrote, each as `,{…}`).
struct Page {
    t: Box<Tracker>,
    q: String,
}

impl core::ops::Deref for Page {
    type Target = Tracker;
    fn deref(&self) -> &Tracker {
        &self.t
    }
}

impl core::ops::DerefMut for Page {
    fn deref_mut(&mut self) -> &mut Tracker {
        &mut self.t
    }
}

/// Calls `op` as `t.js` does, queues the events written, and returns the [`BEACON`] bit.
fn call(p: &mut Page, op: u32, fields: &[String], a: f64, now: f64) -> u32 {
    let text = fields.join("\0");
    p.t.m[IN..IN + text.len()].copy_from_slice(text.as_bytes());
    let r = p.t.call(op, text.len(), a, now);
    let n = (r >> 1) as usize;
    let out = String::from_utf8(p.t.m[OUT..IN + n].to_vec()).expect("utf-8");
    p.q.push_str(&out);
    r & BEACON
}

/// `tally(command, a, b)`: `url` is what `a.url` resolves to (the page's own URL without
/// one), `name` is `a` as text, `props` per prop of `b` its key, and its value after its type.
fn tally(
    p: &mut Page,
    command: &str,
    url: Vec<String>,
    name: &str,
    props: &[String],
    now: f64,
) -> u32 {
    let mut f = vec![command.to_string()];
    f.extend(url);
    f.push(name.into());
    f.extend_from_slice(props);
    let a = !name.is_empty() && name != "false";
    call(p, TALLY, &f, a as u8 as f64, now)
}

/// `tally('event', name, props)` on example.com.
fn event(p: &mut Page, name: &str, props: &[String], now: f64) -> u32 {
    tally(p, "event", url("example.com", "/", ""), name, props, now)
}

struct Start {
    exclude: &'static str,
    page: Vec<String>,
    referrer: Vec<String>,
    hidden: bool,
}

/// The start of a page `t.js` tracks (it starts nothing on a page it does not track), 1440
/// pixels wide.
fn start_with(s: Start) -> Page {
    let mut p = Page {
        t: Box::<Tracker>::default(),
        q: String::new(),
    };
    let mut f: Vec<String> = vec![s.exclude.into()];
    f.extend(s.page);
    f.extend(s.referrer);
    // `screen.width + Math.random()`
    call(&mut p, START, &f, 1440.123456789, T0);
    // Then whether the page is visible, as `t.js` tells it after the start: a page opened
    // hidden sends its page view at once.
    let beacon = call(&mut p, VIS, &[], f64::from(u8::from(s.hidden)), T0);
    assert_eq!(beacon, u32::from(s.hidden) * BEACON);
    p
}

fn start(exclude: &'static str, page: Vec<String>) -> Page {
    start_with(Start {
        exclude,
        page,
        referrer: url("news.ycombinator.com", "/item", "?id=1"),
        hidden: false,
    })
}

/// The events queued so far, one JSON object each; then the queue is emptied as when
/// `sendBeacon` took it.
fn events(p: &mut Page) -> Vec<String> {
    let q = std::mem::take(&mut p.q);
    p.t.call(TAKE, 0, 1.0, 0.0);
    if q.is_empty() {
        return Vec::new();
    }
    let list = q
        .strip_prefix(",{")
        .unwrap_or_else(|| panic!("events: {q}"));
    list.split(",{\"url\"")
        .enumerate()
        .map(|(i, e)| {
            if i == 0 {
                format!("{{{e}")
            } else {
                format!("{{\"url\"{e}")
            }
        })
        .collect()
}

#[test]
fn records_the_page_view_with_referrer_and_screen() {
    let page = url("example.com", "/blog/hello", "?utm_source=news&token=x");
    let mut t = start_with(Start {
        exclude: "",
        page,
        referrer: url("news.ycombinator.com", "/item", "?id=1"),
        hidden: false,
    });
    let ev = events(&mut t);
    assert_eq!(ev.len(), 1);
    assert!(
        ev[0].starts_with(concat!(
            r#"{"url":"https://example.com/blog/hello?utm_source=news","#,
            r#""id":"01JDCY9ZR0"#
        )),
        "{}",
        ev[0]
    );
    assert!(
        ev[0].ends_with(concat!(
            r#""ts":1732380000000,"kind":"pageview","screen":1440,"#,
            r#""referrer":"https://news.ycombinator.com/item"}"#
        )),
        "{}",
        ev[0]
    );
}

#[test]
fn cuts_long_urls_and_keeps_the_referrer() {
    // Cleaning the page's URL takes as much room as the input: it must not reach it.
    let path = format!("/{}", "a".repeat(60_000));
    let mut t = start_with(Start {
        exclude: "",
        page: url("example.com", &path, "?utm_source=x"),
        referrer: url("news.ycombinator.com", "/item", "?id=1"),
        hidden: false,
    });
    let ev = events(&mut t);
    let page = format!("https://example.com{}", &path[..MAX_URL - 19]);
    assert!(
        ev[0].contains(&format!(r#""url":"{page}","#)),
        "{}",
        &ev[0][..80]
    );
    assert!(ev[0].contains(r#""referrer":"https://news.ycombinator.com/item""#));
}

#[test]
fn counts_spa_navigations_once_per_url() {
    let mut t = start("", url("example.com", "/", ""));
    for (dt, path) in [
        (10.0, "/"),
        (2000.0, "/about"),
        (2500.0, "/about"),
        (3000.0, "/"),
    ] {
        call(&mut t, NAV, &url("example.com", path, ""), 0.0, T0 + dt);
    }
    let ev = events(&mut t);
    let kinds: Vec<_> = ev
        .iter()
        .map(|e| (e.contains("pageview"), e.contains("engaged_ms")))
        .collect();
    let (view, engaged) = ((true, false), (false, true));
    assert_eq!(kinds, [view, engaged, view, engaged, view]);
    assert!(
        ev[1].starts_with(r#"{"url":"https://example.com/","#),
        "{}",
        ev[1]
    );
    assert!(ev[1].ends_with(r#""ts":1732380002000,"kind":"engagement","engaged_ms":2000}"#));
    assert!(ev[2].contains(r#""url":"https://example.com/about","#));
    assert!(!ev[2].contains("referrer"));
}

#[test]
fn skips_excluded_pages() {
    let mut t = start(
        "/admin/*, /preview/*",
        url("example.com", "/admin/users", ""),
    );
    event(&mut t, "Saved", &[], T0);
    call(&mut t, VIS, &[], 1.0, T0 + 5000.0);
    assert!(events(&mut t).is_empty());
    call(&mut t, VIS, &[], 0.0, T0 + 6000.0);
    call(
        &mut t,
        NAV,
        &url("example.com", "/preview/x", ""),
        0.0,
        T0 + 6000.0,
    );
    assert!(events(&mut t).is_empty());
    call(
        &mut t,
        NAV,
        &url("example.com", "/pricing", ""),
        0.0,
        T0 + 6000.0,
    );
    assert_eq!(events(&mut t).len(), 1);

    // The time on an excluded page is not the next page's.
    let mut t = start("/admin/*", url("example.com", "/admin/users", ""));
    call(&mut t, NAV, &url("example.com", "/", ""), 0.0, T0 + 4000.0);
    call(&mut t, VIS, &[], 1.0, T0 + 7000.0);
    let ev = events(&mut t);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(ev[1].ends_with(r#""engaged_ms":3000}"#), "{ev:?}");
}

#[test]
fn measures_visible_time_only() {
    let mut t = start("", url("example.com", "/a", ""));
    events(&mut t);
    assert_eq!(call(&mut t, VIS, &[], 1.0, T0 + 3000.0), BEACON);
    call(&mut t, VIS, &[], 0.0, T0 + 60_000.0);
    call(&mut t, VIS, &[], 1.0, T0 + 62_000.0);
    call(&mut t, VIS, &[], 1.0, T0 + 62_500.0);
    let ev = events(&mut t);
    assert_eq!(ev.len(), 2);
    assert!(ev[0].contains(r#""kind":"engagement""#));
    assert!(ev[0].ends_with(r#""engaged_ms":3000}"#));
    assert!(ev[1].ends_with(r#""engaged_ms":2000}"#));
    call(&mut t, VIS, &[], 0.0, T0 + 70_000.0);
    call(&mut t, VIS, &[], 1.0, T0 + 70_500.0);
    assert!(events(&mut t).is_empty(), "under {MIN_ENGAGED_MS} ms");

    let mut hidden = start_with(Start {
        exclude: "",
        page: url("example.com", "/", ""),
        referrer: url("example.com", "/", ""),
        hidden: true,
    });
    // Opened hidden: the page view is queued (and sent at once, see `start_with`).
    assert_eq!(hidden.q.matches("\"kind\":\"pageview\"").count(), 1);
    call(&mut hidden, VIS, &[], 0.0, T0 + 10_000.0);
    call(&mut hidden, VIS, &[], 1.0, T0 + 11_500.0);
    let ev = events(&mut hidden);
    assert!(ev[1].ends_with(r#""engaged_ms":1500}"#), "{ev:?}");

    // The clock set back while the page was visible: no time, then it counts again.
    let mut t = start("", url("example.com", "/", ""));
    events(&mut t);
    call(&mut t, VIS, &[], 1.0, T0 - 5000.0);
    assert!(events(&mut t).is_empty());
    call(&mut t, VIS, &[], 0.0, T0 + 1000.0);
    call(&mut t, VIS, &[], 1.0, T0 + 3000.0);
    let ev = events(&mut t);
    assert!(
        ev.len() == 1 && ev[0].ends_with(r#""engaged_ms":2000}"#),
        "{ev:?}"
    );
}

#[test]
fn writes_crockford_digits() {
    let digits: Vec<u8> = (0..32).map(crate::crockford).collect();
    assert_eq!(digits, b"0123456789ABCDEFGHJKMNPQRSTVWXYZ");
}

#[test]
fn makes_a_ulid_per_event() {
    fn ids(p: &mut Page) -> Vec<String> {
        events(p)
            .iter()
            .map(|e| {
                let at = e.find(r#""id":""#).expect("an id") + 6;
                e[at..at + 26].to_string()
            })
            .collect()
    }
    let mut t = start("", url("example.com", "/", ""));
    for i in 0..30 {
        event(&mut t, "E", &[], T0 + f64::from(i / 10));
    }
    let first = ids(&mut t);
    assert_eq!(first.len(), 31);
    for id in &first {
        assert!(
            id.bytes()
                .all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b)),
            "{id}"
        );
        // The time of the event, to the 32 ms of the tenth character.
        assert!(id.starts_with("01JDCY9ZR"), "{id}");
    }
    // Another page load in the same millisecond, with another `Math.random()`.
    let mut other = Page {
        t: Box::<Tracker>::default(),
        q: String::new(),
    };
    let mut f = vec![String::new()];
    f.extend(url("example.com", "/", ""));
    f.extend(url("example.com", "/", ""));
    f.push("false".into());
    call(&mut other, START, &f, 1_440.987_654, T0);
    for _ in 0..30 {
        event(&mut other, "E", &[], T0);
    }
    let second = ids(&mut other);
    let all: std::collections::HashSet<_> = first.iter().chain(&second).collect();
    assert_eq!(all.len(), 62, "every id differs: {first:?} {second:?}");
}

#[test]
fn records_custom_events_and_the_user_flag() {
    let mut t = start("", url("example.com", "/p", "?utm_campaign=x&q=1"));
    tally(
        &mut t,
        "user",
        url("example.com", "/p", ""),
        "true",
        &[],
        T0,
    );
    let props: Vec<String> = ["plan", "rpro", "n", "mNaN", "seats", "u3"]
        .map(String::from)
        .into();
    event(&mut t, "Signup", &props, T0);
    event(&mut t, "  ", &[], T0);
    // Unknown commands, and commands that only start like known ones, do nothing.
    tally(&mut t, "events", url("example.com", "/", ""), "X", &[], T0);
    tally(&mut t, "", url("example.com", "/", ""), "X", &[], T0);
    let ev = events(&mut t);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(ev[1].contains(r#""url":"https://example.com/p?utm_campaign=x","#));
    assert!(ev[1].ends_with(
        r#""ts":1732380000000,"kind":"event","name":"Signup","props":{"plan":"pro","seats":3},"user":true}"#
    ));
    tally(
        &mut t,
        "user",
        url("example.com", "/p", ""),
        "false",
        &[],
        T0,
    );
    event(&mut t, "Logout", &[], T0);
    assert!(events(&mut t)[0].ends_with(r#""name":"Logout"}"#));
}

#[test]
fn records_outbound_clicks_only() {
    let mut t = start("", url("example.com", "/", ""));
    events(&mut t);
    // `tally('click', link, {url: link.href})`: the link's URL, the link as text (its
    // `href`), and its `href` as prop `url`.
    let click = |t: &mut Page, link: Vec<String>, href: &str| {
        let props = ["url".into(), format!("r{href}")];
        tally(t, "click", link, href, &props, T0)
    };
    assert_eq!(
        click(
            &mut t,
            url("example.com", "/about", ""),
            "https://example.com/about"
        ),
        0
    );
    // A click outside any link: `tally('click', null)`, with the page's own URL.
    assert_eq!(click(&mut t, url("example.com", "/", ""), "null"), 0);
    let mut mailto = url("", "", "");
    mailto[1] = "null".into();
    assert_eq!(click(&mut t, mailto, "mailto:a@example.com"), 0);
    assert!(t.q.is_empty());
    assert_eq!(
        click(
            &mut t,
            url("other.org", "/x", "?q=1"),
            "https://other.org/x?q=1"
        ),
        BEACON
    );
    let ev = events(&mut t);
    assert_eq!(ev.len(), 1);
    assert!(ev[0]
        .contains(r#""name":"Outbound Link: Click","props":{"url":"https://other.org/x?q=1"}"#));
}

#[test]
fn records_manual_page_views() {
    let mut t = start("", url("example.com", "/app", ""));
    let obj = "[object Object]";
    tally(
        &mut t,
        "pageview",
        url("example.com", "/virtual/step-2", "?utm_medium=x&a=b"),
        obj,
        &[],
        T0 + 1500.0,
    );
    tally(
        &mut t,
        "pageview",
        url("evil.org", "/x", ""),
        obj,
        &[],
        T0 + 2000.0,
    );
    event(&mut t, "Next", &[], T0 + 2500.0);
    let ev = events(&mut t);
    assert_eq!(ev.len(), 4, "{ev:?}");
    assert!(ev[1].contains(r#""engaged_ms":1500"#));
    let step = r#""url":"https://example.com/virtual/step-2?utm_medium=x""#;
    assert!(ev[2].contains(step), "{}", ev[2]);
    assert!(ev[3].contains(step));
}

/// What the wasm receives for a number `t.js` leaves out.
const NO_ARG: f64 = f64::NAN;

#[test]
fn sends_by_fetch_and_retries() {
    // The timer's TAKE passes no number (`x.c(4)`): the wasm gets NaN, which is not "set".
    let mut t = start("", url("example.com", "/", ""));
    assert_eq!(t.call(TAKE, 0, NO_ARG, 0.0), 1, "the page view");
    event(&mut t, "Later", &[], T0);
    assert_eq!(t.call(TAKE, 0, NO_ARG, 0.0), 0, "one in flight");
    assert_eq!(t.call(DONE, 0, 503.0, 0.0), 2 * FLUSH_MS, "sent again");
    assert_eq!(t.call(TAKE, 0, NO_ARG, 0.0), 0, "still in flight");
    let waits: Vec<u32> = [0.0, 408.0, 429.0, 500.0, 0.0, 0.0, 0.0]
        .into_iter()
        .map(|status| t.call(DONE, 0, status, 0.0))
        .collect();
    assert_eq!(waits, [4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    assert_eq!(t.call(DONE, 0, 202.0, 0.0), 0, "done");
    assert_eq!(t.call(TAKE, 0, NO_ARG, 0.0), 1, "the event that waited");
    assert_eq!(t.call(DONE, 0, 400.0, 0.0), 0, "refused: dropped");
    assert_eq!(t.call(TAKE, 0, NO_ARG, 0.0), 0, "nothing left");
    event(&mut t, "Again", &[], T0);
    assert_eq!(t.call(TAKE, 0, NO_ARG, 0.0), 1);
    assert_eq!(
        t.call(DONE, 0, 503.0, 0.0),
        2 * FLUSH_MS,
        "the backoff starts over"
    );
}

#[test]
fn does_nothing_before_start() {
    let mut t = Page {
        t: Box::<Tracker>::default(),
        q: String::new(),
    };
    event(&mut t, "Signup", &[], T0);
    assert!(t.q.is_empty());
    assert_eq!(t.call(TAKE, 0, 0.0, 0.0), 0);
}

#[test]
fn matches_exclude_globs() {
    for (path, excluded) in [
        ("/blog/2024/draft", true),
        ("/axxbyyc", true),
        ("/axxbyy", false),
        ("/xbyc", false),
        ("/drafts", false),
        ("/exact", true),
        ("/exact/", false),
        ("/admin", false),
        ("/admin/", true),
        ("/admin/users/5", true),
        ("/blog/admin/x", false),
    ] {
        let t = start(
            "*/draft, /a*b*c,,/exact /admin/*",
            url("example.com", path, ""),
        );
        assert_eq!(t.q.is_empty(), excluded, "{path}");
    }
}

#[test]
fn enforces_prop_limits() {
    let mut t = start("", url("example.com", "/", ""));
    events(&mut t);
    let (key, value) = ("é".repeat(64), "€".repeat(300));
    let mut fields: Vec<String> = vec![];
    for (k, kind, v) in [
        ("", "o", "true"),
        (&*"k".repeat(65), "o", "true"),
        ("big", "u", "1e+21"),
        ("neg", "u", "-0.5"),
        ("nested", "j", "[object Object]"),
        ("nan", "m", "NaN"),
        ("inf", "m", "-Infinity"),
        ("f", "n", "x=>1"),
        ("none", "d", "undefined"),
        ("bigint", "g", "10"),
        ("q", "r", "a\"b\\c\n"),
        (&key, "r", &value),
    ] {
        fields.extend([k.to_string(), format!("{kind}{v}")]);
    }
    for i in 0..40u8 {
        let k = String::from_utf8(vec![b'a' + i / 26, b'a' + i % 26]).expect("ascii");
        fields.extend([k, "u1".into()]);
    }
    event(&mut t, &"n".repeat(130), &fields, T0);
    let ev = events(&mut t);
    let e = &ev[0];
    assert!(
        e.contains(&format!("\"name\":\"{}\"", "n".repeat(MAX_NAME))),
        "{e}"
    );
    assert!(e.contains(r#""props":{"big":1e+21,"neg":-0.5,"q":"a\"b\\c ","#));
    assert!(e.contains(&format!("\"{key}\":\"{}\"", "€".repeat(MAX_VALUE))));
    assert!(!e.contains(&"k".repeat(65)) && !e.contains("nan") && !e.contains("nested"));
    assert!(!e.contains("bigint") && !e.contains("none") && !e.contains("\"f\""));
    assert!(
        e.contains("\"az\":1") && !e.contains("\"ba\""),
        "30 props at most"
    );
}

#[test]
fn holds_one_request_at_most() {
    let mut t = start("", url("example.com", "/", ""));
    for i in 0..60 {
        event(&mut t, &format!("e{i}"), &[], T0);
    }
    assert_eq!(events(&mut t).len(), MAX_EVENTS as usize);
    let big = "x".repeat(MAX_VALUE);
    let fields: Vec<String> = (0..30)
        .flat_map(|i| [format!("k{i}"), format!("r{big}")])
        .collect();
    for _ in 0..10 {
        event(&mut t, "E", &fields, T0);
    }
    let n = t.q.len();
    assert!((MAX_BODY / 2..=MAX_BODY).contains(&n), "{n}");
    assert!(t.q.ends_with("}"));
    // While a fetch is in flight, the queue fills up and then drops events.
    assert_eq!(t.call(TAKE, 0, 0.0, 0.0), 1);
    t.q.clear();
    for i in 0..60 {
        event(&mut t, &format!("e{i}"), &[], T0);
    }
    assert_eq!(t.call(TAKE, 0, 0.0, 0.0), 0);
    assert_eq!(events(&mut t).len(), MAX_EVENTS as usize);
}
