//! The browser tracker: the wasm half of `t.js` (CONTRACT §1 and §2).
//!
//! `t.js` (see `js/loader.js`) is a thin loader: it reads the `data-*` attributes, the page's
//! URL (as the parts the browser parsed) and the privacy signals, wires the page's events
//! (history, visibility, clicks, timers), replays the `window.tally` queue stub and sends the
//! bodies this crate writes. Everything else is decided here, in plain, natively tested Rust
//! without an allocator:
//!
//! - [`calls`]: the calls `t.js` makes, one entry point ([`tracker::Tracker::call`]);
//! - [`input`]: their text arguments, NUL-joined fields in a buffer shared with `t.js`;
//! - [`tracker`]: the state machine (which page views, events and engagement to record, URL
//!   cleaning, opt-outs);
//! - [`queue`]: the event queue (one request body written in place), the JSON writer, the
//!   retry policy;
//! - [`glob`], [`props`], [`id`]: `data-exclude` globs, prop limits, ULIDs.
//!
//! `abi` (wasm32 only) exports [`tracker::Tracker::call`] as a C-ABI function over a static
//! state. On wasm32 the crate is `no_std` with an aborting panic handler, and nothing in it
//! can panic, so that neither `std` nor `core::fmt` ends up in the binary (see README.md for
//! the size budget).
#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

pub mod calls;
pub mod glob;
pub mod id;
pub mod input;
pub mod props;
pub mod queue;
pub mod tracker;

#[cfg(all(target_arch = "wasm32", not(test)))]
mod abi;
