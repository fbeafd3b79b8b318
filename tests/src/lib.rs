//! End-to-end tests and benchmarks of Tally over its real parts.
//!
//! - [`bench`]: the benchmarks behind `cargo run --release -p tally-tests --bin bench`,
//!   one module per part, each printing rows of the report.
//! - [`harness`]: the ingest server as a child process, load that remembers what was
//!   acknowledged, reads of what the database holds (for `tests/reliability/` and the soak).
//! - `tests/`: the end-to-end tests (real ingest server, edge worker under workerd,
//!   headless Chromium); `tests/reliability/`: faults, hostile input and security of the
//!   whole server (see `docs/reliability.md`).

pub mod bench;
pub mod harness;
