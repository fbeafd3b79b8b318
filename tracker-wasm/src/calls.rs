//! The calls `t.js` makes into the wasm: one entry point, [`Tracker::call`], taking an
//! operation, the length of its text arguments in [`crate::input::Input::io`], a number and
//! the time. On wasm32 `src/abi.rs` exports it as the C-ABI function `c`; natively the tests
//! drive it exactly as `t.js` does.
//!
//! | op | text arguments | `a` | returns |
//! | --- | --- | --- | --- |
//! | [`START`] | see [`crate::tracker::start`] | `screen.width` | [`FLUSH`] / [`BEACON`] bits |
//! | [`NAV`] | the page's URL | | bits |
//! | [`VIS`] | | hidden (1) or visible (0) | bits |
//! | [`CLICK`] | the link's URL, its `href` | | bits |
//! | [`EVENT`] | name, then per prop key, type, value (see [`crate::props::write`]) | | bits |
//! | [`PAGEVIEW`] | the given URL resolved against the page | | bits |
//! | [`USER`] | | logged in (1) or not (0) | bits |
//! | [`BEACON_BODY`] | | the previous body was accepted (1) | body length |
//! | [`FETCH_BODY`] | | | body length |
//! | [`DONE`] | | HTTP status (0: network error) | ms until the next try |
//!
//! A URL is five fields, its parts as the browser parsed them (see [`crate::tracker`]).
//! Flags are the page's values as text, where a `1` or a `t` means set: `hidden` and
//! `allow-local` are `true` / `false`; the opt-outs are `navigator.doNotTrack`,
//! `navigator.globalPrivacyControl`, `navigator.webdriver` and `localStorage.tally_ignore`
//! joined by commas (`1,true,false,` …: none of the values that mean "not set" holds a `1`
//! or a `t`: `0`, `unspecified`, `false`, `undefined`, `null`, empty).

use crate::tracker::{How, Tracker};

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

/// Events wait: send them in [`crate::queue::FLUSH_MS`] by `fetch`.
pub const FLUSH: u32 = 1;
/// Send the queue now by `sendBeacon`.
pub const BEACON: u32 = 2;

impl Tracker {
    /// One call of `t.js`: `op` with `len` bytes of text arguments, the number `a`, at time
    /// `now` (ms since 1970). Nothing happens before tracking started.
    pub fn call(&mut self, op: u32, len: usize, a: f64, now: f64) -> u32 {
        let (now, set) = (now as u64, a != 0.0);
        if op != START && !self.started() {
            return 0;
        }
        self.input.split(len);
        let mut beacon = false;
        match op {
            START => self.start(a as u64, now),
            NAV => self.pageview(now, 0, How::Navigation),
            VIS => beacon = self.visibility(now, set),
            CLICK => beacon = self.click(now),
            EVENT => _ = self.custom(now),
            PAGEVIEW => self.manual_pageview(now),
            USER => self.set_user(set),
            BEACON_BODY => return self.queue.beacon(set, &mut self.input.io) as u32,
            FETCH_BODY => return self.queue.fetch(&mut self.input.io) as u32,
            DONE => return self.queue.done(a as u32),
            _ => {}
        }
        if beacon {
            BEACON
        } else {
            self.queue.pending() as u32 * FLUSH
        }
    }
}
