//! End-to-end tests and benchmarks of Tally over its real parts.
//!
//! - [`bench`]: the benchmarks behind `cargo run --release -p tally-tests --bin bench`,
//!   one module per part, each printing rows of the report.
//! - `tests/`: the end-to-end tests (real ingest server, edge worker under workerd,
//!   headless Chromium).

pub mod bench;
