//! The edge worker's logic, with no `worker` dependency, so that it is tested natively with
//! `cargo test -p tally-edge-model`. The worker crate (`edge-worker/src`) only moves bytes
//! between the platform (requests, the queue, durable objects) and these functions.
//!
//! - [`access`]: is a body's site registered, do its `Origin` and page URLs belong to it, which
//!   origin gets CORS.
//! - [`drops`]: counts of bots and refused requests, for the ingest server's pipeline view.
//! - [`enrich`]: a validated browser batch + what the connection tells → [`EdgeEvent`]s, with
//!   bots dropped and the visitor hashed here, so the IP and UA never leave the edge.
//! - [`forward`]: queue messages → one signed ingest batch, and what an ingest answer means.
//! - [`retry`]: the backoff of failed deliveries.
//! - [`salt`]: the daily salts' storage keys and their expiry.
//! - [`sites`]: the cached list of registered sites.
//!
//! [`EdgeEvent`]: tally_core::edge::EdgeEvent

pub mod access;
pub mod drops;
pub mod enrich;
pub mod forward;
pub mod retry;
pub mod salt;
pub mod sites;
