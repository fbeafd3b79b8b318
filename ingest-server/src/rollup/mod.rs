//! The rollup worker: a background task that counts stored events into visits and rollups.
//!
//! The ingest writer only inserts raw events (its throughput is untouched). This worker takes
//! the events not yet counted in `seq` order, a chunk at a
//! time: loads the visits of the chunk's visitors, applies the events ([`model`], pure), and in
//! ONE transaction upserts the rollup rows (`n = n + excluded.n`, hourly, daily and monthly
//! grains), upserts the visits, moves the `gen` of the days whose digests the events change
//! (`stats::days`) and marks the events counted (PostgreSQL flags each event;
//! SQLite moves one mark, `rollup_lock.upto`, see migration 0004). A crash anywhere rolls the whole
//! chunk back, so every event is counted exactly once.
//!
//! Only one roller may count at a time per database. On SQLite the round reads and counts in
//! a snapshot and writes in a short transaction that first checks and moves the
//! `rollup_lock` stamp (see [`roll_chunk_sqlite`]); on PostgreSQL it takes
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

use std::collections::HashMap;
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

/// Counts up to `limit` waiting events.
pub async fn roll_chunk(store: &Store, limit: i64) -> Result<Round, StoreError> {
    match store.dialect {
        Dialect::Sqlite => roll_chunk_sqlite(store, limit).await,
        Dialect::Postgres => roll_chunk_postgres(store, limit).await,
    }
}

/// The visits and rollup contributions of `events`, applied to `visitors`.
fn count(
    events: &[model::Ev],
    visitors: &mut HashMap<(i64, i64), model::Visitor>,
) -> (model::Acc, Vec<(i64, i64, model::Visit)>) {
    let mut acc = model::Acc::default();
    for ev in events {
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
    (acc, changed)
}

/// SQLite has one writer at a time, and the ingest writer must not wait behind a long
/// transaction. So the round reads (events, visits) in a read transaction, a WAL snapshot
/// that blocks nobody, and counts, on a blocking thread with a connection of its own; only
/// then it writes, in a short transaction on the writer connection, taken through the
/// store's write gate. The write goes ahead only if no other roller wrote since the snapshot
/// (`rollup_lock.at` is unchanged); else the round is `Busy` and its work is thrown away, so
/// nothing is counted twice. Every statement is a prepared rusqlite one: through the pool,
/// each row crossed a channel between threads and each statement of many rows was parsed
/// anew, and the writer waited for all of it.
async fn roll_chunk_sqlite(store: &Store, limit: i64) -> Result<Round, StoreError> {
    let read = store
        .sqlite_roller_read(move |conn| {
            let read = conn.transaction()?;
            let (stamp, upto): (i64, i64) = read
                .prepare_cached("SELECT at, upto FROM rollup_lock WHERE id = 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let (events, seqs) = store::unrolled_sqlite(&read, upto, limit)?;
            let Some(&last) = seqs.last() else {
                return Ok(None);
            };
            let mut visitors = store::load_visitors_sqlite(&read, &events)?;
            read.rollback()?;
            let days = store::days_of(&events);
            let (acc, mut changed) = count(&events, &mut visitors);
            // Expanded into rows and put in key order here, at background priority, so
            // that the write (which holds the write gate) only steps its statements.
            let rows = store::rollup_rows(&acc);
            changed.sort_unstable_by_key(|(site, visitor, v)| (*site, *visitor, v.started_at));
            Ok(Some((stamp, last, seqs.len() as u64, rows, changed, days)))
        })
        .await?;
    let Some((stamp, last, n, rows, changed, days)) = read else {
        return Ok(Round::Rolled(0));
    };
    store
        .sqlite_write("rollups", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // Claims the round and moves the mark past the counted events in one statement.
            let claimed = tx
                .prepare_cached(
                    "UPDATE rollup_lock SET at = ?1, upto = ?2 WHERE id = 1 AND at = ?3",
                )?
                .execute(rusqlite::params![
                    crate::now_ms().max(stamp + 1),
                    last,
                    stamp
                ])?;
            if claimed == 0 {
                return Ok(Round::Busy);
            }
            store::upsert_rollups_sqlite(&tx, &rows)?;
            store::upsert_visits_sqlite(&tx, &changed)?;
            store::touch_days_sqlite(&tx, &days)?;
            tx.commit()?;
            Ok(Round::Rolled(n))
        })
        .await
}

/// PostgreSQL: one transaction holding an advisory lock (readers and writers of other rows
/// are not blocked by it); another server's roller makes the round `Busy`.
async fn roll_chunk_postgres(store: &Store, limit: i64) -> Result<Round, StoreError> {
    let mut tx = store.pool.begin().await?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(PG_LOCK_KEY)
        .fetch_one(&mut *tx)
        .await?;
    if !got {
        tx.rollback().await?;
        return Ok(Round::Busy);
    }
    let (events, seqs) = store::unrolled(&mut tx, limit).await?;
    if seqs.is_empty() {
        tx.rollback().await?;
        return Ok(Round::Rolled(0));
    }
    let mut visitors = store::load_visitors(&mut tx, &events).await?;
    let (acc, changed) = count(&events, &mut visitors);
    store::upsert_rollups(&mut tx, store.dialect, &acc).await?;
    store::upsert_visits(&mut tx, store.dialect, &changed).await?;
    store::touch_days(&mut tx, &store::days_of(&events)).await?;
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

/// How often the background worker looks for new events. Short rounds keep each of its write
/// transactions short: the ingest writer waits for one at most.
pub const ROUND: Duration = Duration::from_millis(50);

/// The background worker: a round every [`ROUND`]; while chunks come full, the next round
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
            Ok(_) => ROUND,
            Err(e) => {
                tracing::warn!(error = %e, "rolling up events");
                Duration::from_secs(1)
            }
        };
        tokio::time::sleep(pause).await;
    }
}
