//! The wasm's whole interface (wasm32 only): the memory (exported as `m`, see build.sh), and
//! one C-ABI function `c` that forwards to [`Tracker::call`]. No imports, no wasm-bindgen:
//! `t.js` instantiates the module with `WebAssembly.instantiateStreaming(fetch(url))` and
//! talks to it through the I/O buffer (see the crate's documentation). wasm-bindgen's glue
//! alone would be over the size budget (README.md, "Size").
//!
//! The state is one zero-initialised static (no allocator), so it takes no bytes in the
//! binary. This is the crate's only unsafe code: wasm runs the module on one thread, and
//! `c` never calls back into JavaScript, so no two `&mut` to the state ever exist at once.
#![allow(unsafe_code)]

use crate::Tracker;

static mut TRACKER: Tracker = Tracker::new();

#[no_mangle]
pub extern "C" fn c(op: u32, len: usize, a: f64, now: f64) -> u32 {
    // SAFETY: see the module's comment: calls never overlap.
    let tracker = unsafe { &mut *core::ptr::addr_of_mut!(TRACKER) };
    tracker.call(op, len, a, now)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
