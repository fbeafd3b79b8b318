//! The rollup worker: a background task that counts stored events into visits and rollups.
//!
//! The ingest writer only inserts raw events (its throughput is untouched). This worker takes
//! the events not yet counted (`rolled = 0`, a partial index) in `seq` order, a chunk at a
//! time, and in ONE transaction: loads the visits of the chunk's visitors, applies the events
//! ([`model`], pure), upserts the rollup rows (`n = n + excluded.n`, hourly, daily and monthly
//! grains), upserts the visits and marks the events counted. A crash anywhere rolls the whole
//! chunk back, so every event is counted exactly once.
//!
//! Only one roller may run at a time per database: on SQLite the transaction starts by writing
//! `rollup_lock` (taking the write lock); on PostgreSQL it takes
//! `pg_try_advisory_xact_lock` and skips the round when another server holds it.
//!
//! Limits: an event that arrives more than a day after its visitor's earlier events (the
//! edge retries for longer) starts a new visit; events of one visitor are applied in arrival
//! order, so one that arrives late but belongs before the visit's start joins that visit
//! without moving its start.
//!
//! - [`model`]: events → visits → contributions (pure).
//! - [`store`]: the reads and writes of one round.

pub mod model;
pub mod store;

use std::time::Duration;

use crate::store::{Dialect, Store, StoreError};

pub use model::Counts;

/// Events counted per round by the background worker.
pub const CHUNK: i64 = 5_000;
/// The advisory lock key of the roller on PostgreSQL.
const PG_LOCK_KEY: i64 = 0x7a11_7011;

/// The result of one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// This many events were counted (0: nothing was waiting).
    Rolled(u64),
    /// Another roller holds the lock.
    Busy,
}

/// Counts up to `limit` waiting events in one transaction.
pub async fn roll_chunk(store: &Store, limit: i64) -> Result<Round, StoreError> {
    let mut tx = store.pool.begin().await?;
    match store.dialect {
        Dialect::Sqlite => {
            sqlx::query("UPDATE rollup_lock SET at = $1 WHERE id = 1")
                .bind(crate::now_ms())
                .execute(&mut *tx)
                .await?;
        }
        Dialect::Postgres => {
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(PG_LOCK_KEY)
                .fetch_one(&mut *tx)
                .await?;
            if !got {
                tx.rollback().await?;
                return Ok(Round::Busy);
            }
        }
    }
    let (events, seqs) = store::unrolled(&mut tx, limit).await?;
    if seqs.is_empty() {
        tx.rollback().await?;
        return Ok(Round::Rolled(0));
    }
    let mut visitors = store::load_visitors(&mut tx, &events).await?;
    let mut acc = model::Acc::default();
    for ev in &events {
        if let Some(v) = visitors.get_mut(&(ev.site_id, ev.visitor)) {
            v.apply(ev, Some(&mut acc));
        }
    }
    let mut changed = Vec::new();
    for v in visitors.values_mut() {
        for visit in v.flush(&mut acc) {
            changed.push((v.site_id, v.visitor, visit));
        }
    }
    store::upsert_rollups(&mut tx, store.dialect, &acc).await?;
    store::upsert_visits(&mut tx, store.dialect, &changed).await?;
    store::mark_rolled(&mut tx, &seqs).await?;
    tx.commit().await?;
    Ok(Round::Rolled(seqs.len() as u64))
}

/// Counts every waiting event, in chunks of `chunk`; returns how many were counted. Waits
/// for another roller that holds the lock.
pub async fn roll_up_all(store: &Store, chunk: i64) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        match roll_chunk(store, chunk).await? {
            Round::Rolled(0) => return Ok(total),
            Round::Rolled(n) => total += n,
            Round::Busy => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Counts every waiting event now (for tests, the demo and the benchmark).
pub async fn roll_up_now(store: &Store) -> Result<u64, StoreError> {
    roll_up_all(store, CHUNK).await
}

/// The background worker: a round every 250 ms; while chunks come full, the next round
/// follows after twice the time the last one took, so that the roller holds SQLite's write
/// lock at most a third of the time and the ingest writer keeps its throughput (under a
/// sustained flood the rollups lag and catch up afterwards). Runs until aborted.
pub async fn run(store: Store) {
    loop {
        let started = std::time::Instant::now();
        let pause = match roll_chunk(&store, CHUNK).await {
            Ok(Round::Rolled(n)) if n as i64 >= CHUNK => {
                (started.elapsed() * 2).max(Duration::from_millis(10))
            }
            Ok(_) => Duration::from_millis(250),
            Err(e) => {
                tracing::warn!(error = %e, "rolling up events");
                Duration::from_secs(1)
            }
        };
        tokio::time::sleep(pause).await;
    }
}
