//! The web-sys glue: the functions `t.js` calls, each a thin adapter that reads what the
//! browser knows, hands it to [`Tracker`], and sends what is queued. Every export returns
//! the delay after which `t.js` should call [`flush`] (0: none needed), so timers stay in JS.

use alloc::string::String;

use js_sys::{Array, Date, Math, Object, Reflect, JSON};
use lol_alloc::{FreeListAllocator, LockedAllocator};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::props::{Props, Value};
use crate::queue::FLUSH_MS;
use crate::tracker::{resolve, Config, Tracker};
use crate::url;

#[global_allocator]
static ALLOCATOR: LockedAllocator<FreeListAllocator> =
    LockedAllocator::new(FreeListAllocator::new());

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

struct State {
    tracker: Tracker,
    api: String,
}

static STATE: spin::Mutex<Option<State>> = spin::Mutex::new(None);

fn now() -> u64 {
    Date::now() as u64
}

fn window() -> web_sys::Window {
    web_sys::window().unwrap_or_else(|| core::arch::wasm32::unreachable())
}

fn href() -> String {
    window().location().href().unwrap_or_default()
}

/// Whether this visit must not be tracked at all (CONTRACT §1).
fn opted_out(w: &web_sys::Window, href: &str, allow_local: bool) -> bool {
    let nav = w.navigator();
    let flag =
        |name: &str| Reflect::get(&nav, &JsValue::from_str(name)).is_ok_and(|v| v.is_truthy());
    let ignored = w
        .local_storage()
        .ok()
        .flatten()
        .and_then(|s| s.get_item("tally_ignore").ok().flatten())
        .is_some_and(|v| v == "true");
    nav.do_not_track() == "1"
        || flag("globalPrivacyControl")
        || flag("webdriver")
        || ignored
        || (!allow_local && url::is_local(href))
}

/// Runs `f` on the tracker, if tracking started; returns when to flush next.
fn with(f: impl FnOnce(&mut State, u64, &str)) -> u32 {
    let mut guard = STATE.lock();
    let Some(state) = guard.as_mut() else {
        return 0;
    };
    f(state, now(), &href());
    let q = &state.tracker.queue;
    if q.pending() > 0 && !q.in_flight() {
        FLUSH_MS
    } else {
        0
    }
}

/// Sends the whole queue by `sendBeacon`, which outlives the page.
fn beacon(state: &mut State) {
    let nav = window().navigator();
    while let Some((body, n)) = state.tracker.queue.next(&state.tracker.config.site) {
        if nav.send_beacon_with_opt_str(&state.api, Some(&body)) != Ok(true) {
            break;
        }
        state.tracker.queue.sent(n);
    }
}

/// Starts tracking this page: the page view of the load. Returns -1 when this visit is not
/// tracked (then `t.js` wires nothing), or the flush delay.
#[wasm_bindgen]
pub fn start(site: String, api: String, spa: bool, exclude: String, allow_local: bool) -> i32 {
    let w = window();
    let href = href();
    if opted_out(&w, &href, allow_local) {
        return -1;
    }
    let doc = w.document();
    let hidden = doc.as_ref().is_some_and(|d| d.hidden());
    let referrer = doc.map(|d| d.referrer()).unwrap_or_default();
    let screen = w.screen().and_then(|s| s.width()).unwrap_or(0);
    let seed = ((Math::random() * 4294967296.0) as u64) << 32 ^ now();
    let config = Config { site, spa, exclude };
    let mut tracker = Tracker::new(config, seed, screen.max(0) as u32, now(), hidden);
    tracker.pageview(now(), &href, &referrer);
    *STATE.lock() = Some(State { tracker, api });
    with(|_, _, _| ()) as i32
}

/// A replayed or direct `tally(command, a, b)` call.
#[wasm_bindgen]
pub fn cmd(command: JsValue, a: JsValue, b: JsValue) -> u32 {
    with(|s, now, href| match command.as_string().as_deref() {
        Some("event") => {
            let props = b.dyn_ref::<Object>().and_then(read_props);
            let name = a.as_string().unwrap_or_default();
            s.tracker.custom(now, href, &name, props);
        }
        Some("pageview") => {
            let given = Reflect::get(&a, &JsValue::from_str("url"))
                .ok()
                .and_then(|u| u.as_string())
                .unwrap_or_default();
            s.tracker.leave(now);
            s.tracker.pageview(now, &resolve(href, &given), "");
        }
        Some("user") => s.tracker.set_user(a.is_truthy()),
        _ => {}
    })
}

/// The props object of a custom event, within the limits of CONTRACT §1.
fn read_props(obj: &Object) -> Option<String> {
    let mut props = Props::default();
    for entry in Object::entries(obj).iter() {
        let entry: Array = entry.unchecked_into();
        let (key, value) = (entry.get(0).as_string().unwrap_or_default(), entry.get(1));
        let text = value.as_string();
        let number = match value.as_f64() {
            Some(n) if n.is_finite() => JSON::stringify(&value).ok().map(String::from),
            _ => None,
        };
        let v = match (&text, &number, value.as_bool()) {
            (Some(s), _, _) => Some(Value::Str(s)),
            (_, Some(n), _) => Some(Value::Num(n)),
            (_, _, Some(b)) => Some(Value::Bool(b)),
            _ => None,
        };
        props.add(&key, v);
    }
    props.finish()
}

/// The URL changed without a load (history API, `popstate`, `hashchange`).
#[wasm_bindgen]
pub fn nav() -> u32 {
    with(|s, now, href| s.tracker.navigate(now, href))
}

/// The page became hidden or visible, or is being left (`pagehide`: `hidden` true).
#[wasm_bindgen]
pub fn vis(hidden: bool) -> u32 {
    with(|s, now, _| {
        if s.tracker.visibility(now, hidden) {
            beacon(s);
        }
    })
}

/// A click on a link to `link`.
#[wasm_bindgen]
pub fn click(link: String) -> u32 {
    with(|s, now, href| {
        if s.tracker.click(now, href, &link) {
            beacon(s);
        }
    })
}

/// Sends the next batch with `fetch(…, {keepalive: true})`; `t.js` reports its status to
/// [`done`]. Returns the fetch promise, or `undefined` when there is nothing to send.
#[wasm_bindgen]
pub fn flush() -> JsValue {
    let mut guard = STATE.lock();
    let Some(s) = guard.as_mut() else {
        return JsValue::UNDEFINED;
    };
    if s.tracker.queue.in_flight() {
        return JsValue::UNDEFINED;
    }
    let Some((body, n)) = s.tracker.queue.next(&s.tracker.config.site) else {
        return JsValue::UNDEFINED;
    };
    let init = Object::new();
    for (key, value) in [
        ("method", JsValue::from_str("POST")),
        ("body", JsValue::from_str(&body)),
        ("keepalive", JsValue::TRUE),
    ] {
        let _ = Reflect::set(&init, &JsValue::from_str(key), &value);
    }
    s.tracker.queue.start(n);
    window()
        .fetch_with_str_and_init(&s.api, init.unchecked_ref())
        .into()
}

/// The `fetch` of [`flush`] ended with `status` (0: network error). Returns the delay until
/// the next try or batch.
#[wasm_bindgen]
pub fn done(status: u16) -> u32 {
    let mut guard = STATE.lock();
    guard.as_mut().map_or(0, |s| s.tracker.queue.done(status))
}
