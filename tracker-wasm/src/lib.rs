//! The browser tracker: the wasm half of `t.js` (CONTRACT §1 and §2).
//!
//! `t.js` (see `js/loader.js`) is a thin loader: it replays the `window.tally` queue stub,
//! reads the `data-*` attributes and privacy signals, wires the page's events (history, visibility, clicks,
//! timers) and calls into this crate, which decides everything else. The logic is plain,
//! natively tested Rust:
//!
//! - [`tracker`]: the state machine (which page views, events and engagement to record);
//! - [`queue`]: batching, sizing and the retry policy of the event queue;
//! - [`url`], [`glob`], [`props`], [`id`], [`json`]: URL cleaning, `data-exclude` globs,
//!   prop limits, ULIDs and the hand-written JSON of the wire format.
//!
//! `web` (wasm32 only) holds the wasm-bindgen exports around [`tracker::Tracker`]. On wasm32 the crate
//! is `no_std` with a tiny allocator and an aborting panic handler, so that neither `std`'s
//! panic machinery nor `core::fmt` ends up in the binary (see README.md for the size budget).
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

pub mod glob;
pub mod id;
pub mod json;
pub mod props;
pub mod queue;
pub mod tracker;
pub mod url;

#[cfg(target_arch = "wasm32")]
mod web;
