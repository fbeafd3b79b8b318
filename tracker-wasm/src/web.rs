//! The exports `t.js` calls: thin adapters that hand what the page knows to [`Tracker`] and
//! leave the next request body in wasm memory for `t.js` to send.
//!
//! The interface is deliberately narrow (strings in, numbers out, no `JsValue`, no web-sys
//! imports), so that `t.js` can instantiate the wasm-bindgen output with a few lines of glue
//! instead of the generated bindings; see README.md, "Size".
//!
//! Calls that change the queue return what `t.js` must do next, as [`FLUSH`] / [`BEACON`] /
//! [`STOPPED`] bits.

use alloc::string::String;
use alloc::vec::Vec;

use lol_alloc::{FreeListAllocator, LockedAllocator};
use wasm_bindgen::prelude::*;

use crate::props::{Kind, Props};
use crate::tracker::{opted_out, resolve, Config, Tracker};

#[global_allocator]
static ALLOCATOR: LockedAllocator<FreeListAllocator> =
    LockedAllocator::new(FreeListAllocator::new());

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// Send the queue after `FLUSH_MS` with `fetch`.
pub const FLUSH: u32 = 1;
/// Send the queue now with `sendBeacon`.
pub const BEACON: u32 = 2;
/// This visit is not tracked: wire nothing.
pub const STOPPED: u32 = 4;

struct State {
    tracker: Tracker,
    /// Props of the next custom event, added one by one by [`prop`].
    props: Props,
    /// The body [`next`] made, and how many queued events it holds.
    body: Vec<u8>,
    batch: usize,
}

static STATE: spin::Mutex<Option<State>> = spin::Mutex::new(None);

/// Runs `f` on the tracker, if tracking started; returns what `t.js` must do next.
fn with(f: impl FnOnce(&mut State) -> bool) -> u32 {
    let mut guard = STATE.lock();
    let Some(state) = guard.as_mut() else {
        return STOPPED;
    };
    let beacon = f(state);
    let q = &state.tracker.queue;
    if beacon {
        BEACON
    } else if q.pending() > 0 && !q.in_flight() {
        FLUSH
    } else {
        0
    }
}

/// Starts tracking the page `href`, loaded from `referrer`: its page view. `flags` are the
/// [`crate::tracker::opt_out`] bits.
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub fn start(
    site: String,
    exclude: String,
    spa: bool,
    flags: u32,
    href: String,
    referrer: String,
    screen: u32,
    hidden: bool,
    now: f64,
    seed: f64,
) -> u32 {
    if opted_out(flags, href.as_bytes()) {
        return STOPPED;
    }
    let config = Config {
        site: site.into_bytes(),
        spa,
        exclude: exclude.into_bytes(),
    };
    let now = now as u64;
    let seed = ((seed * 4294967296.0) as u64) << 32 ^ now;
    let mut tracker = Tracker::new(config, seed, screen, now, hidden);
    tracker.pageview(now, href.as_bytes(), referrer.as_bytes());
    *STATE.lock() = Some(State {
        tracker,
        props: Props::default(),
        body: Vec::new(),
        batch: 0,
    });
    with(|_| false)
}

/// The URL changed to `href` without a load (history API, `popstate`, `hashchange`).
#[wasm_bindgen]
pub fn nav(href: String, now: f64) -> u32 {
    with(|s| {
        s.tracker.navigate(now as u64, href.as_bytes());
        false
    })
}

/// The page became hidden or visible, or is being left (`pagehide`: `hidden` true).
#[wasm_bindgen]
pub fn vis(hidden: bool, now: f64) -> u32 {
    with(|s| s.tracker.visibility(now as u64, hidden))
}

/// A click on a link to `link` on the page `href`.
#[wasm_bindgen]
pub fn click(href: String, link: String, now: f64) -> u32 {
    with(|s| {
        s.tracker
            .click(now as u64, href.as_bytes(), link.as_bytes())
    })
}

/// One prop of the next custom event: `kind` 0 string, 1 finite number, 2 boolean, else
/// another type (dropped); `value` its text.
#[wasm_bindgen]
pub fn prop(key: String, value: String, kind: u32) {
    let kind = match kind {
        0 => Kind::Str,
        1 => Kind::Num,
        2 => Kind::Bool,
        _ => Kind::Other,
    };
    with(|s| {
        s.props.add(key.as_bytes(), value.as_bytes(), kind);
        false
    });
}

/// `tally('event', name, props)` on the page `href`, with the props given by [`prop`].
#[wasm_bindgen]
pub fn event(href: String, name: String, now: f64) -> u32 {
    with(|s| {
        let props = core::mem::take(&mut s.props).finish();
        s.tracker
            .custom(now as u64, href.as_bytes(), name.as_bytes(), props);
        false
    })
}

/// `tally('pageview', {url})` on the page `href`.
#[wasm_bindgen]
pub fn page(href: String, url: String, now: f64) -> u32 {
    with(|s| {
        let now = now as u64;
        s.tracker.leave(now);
        s.tracker
            .pageview(now, &resolve(href.as_bytes(), url.as_bytes()), b"");
        false
    })
}

/// `tally('user', logged_in)`.
#[wasm_bindgen]
pub fn user(logged_in: bool) {
    with(|s| {
        s.tracker.set_user(logged_in);
        false
    });
}

/// Makes the next request body; returns its length in bytes (0: nothing to send, or, unless
/// `beacon`, a `fetch` is still in flight). The body is at [`body`].
#[wasm_bindgen]
pub fn next(beacon: bool) -> u32 {
    let mut guard = STATE.lock();
    let Some(s) = guard.as_mut() else { return 0 };
    let q = &s.tracker.queue;
    match q.next(&s.tracker.config.site) {
        Some((body, n)) if beacon || !q.in_flight() => {
            (s.body, s.batch) = (body, n);
            s.body.len() as u32
        }
        _ => 0,
    }
}

/// Where the body of [`next`] is in wasm memory.
#[wasm_bindgen]
pub fn body() -> u32 {
    STATE.lock().as_ref().map_or(0, |s| s.body.as_ptr() as u32)
}

/// The body of [`next`] was handed to `sendBeacon` (`fetch`: false), which accepted it.
#[wasm_bindgen]
pub fn sent(fetch: bool) {
    with(|s| {
        if fetch {
            s.tracker.queue.start(s.batch);
        } else {
            s.tracker.queue.sent(s.batch);
        }
        s.batch = 0;
        false
    });
}

/// The `fetch` in flight ended with `status` (0: network error). Returns the delay in ms
/// until the next try or batch (0: none).
#[wasm_bindgen]
pub fn done(status: u32) -> u32 {
    let mut guard = STATE.lock();
    guard
        .as_mut()
        .map_or(0, |s| s.tracker.queue.done(status.min(999) as u16))
}
