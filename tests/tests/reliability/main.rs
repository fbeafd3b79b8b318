//! Tally's reliability and security suite over the real `ingest-server` binary: faults
//! (`kill -9`, SIGTERM, PostgreSQL restarts, redelivery, overload), hostile input over HTTP,
//! and the security of keys, headers and logs. Each test prints its figures (events sent /
//! acknowledged / counted) — `cargo test -p tally-tests --test reliability -- --nocapture` —
//! and asserts them. `docs/reliability.md` lists the figures and the long-running versions.

mod faults;
mod hostile;
mod security;

/// Tests that put load on the machine or restart PostgreSQL run one at a time, so that each
/// sees the machine to itself and no test's database disappears under it.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const EDGE_SECRET: &str = "reliability-edge-secret-0123";
