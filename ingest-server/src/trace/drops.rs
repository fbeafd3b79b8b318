//! Drop counters: handlers add to an in-memory map (a lock and a hash insert, no I/O, never
//! an error), and a background task flushes it every second into the `drops` table with one
//! upsert, so a flood of bots or refused requests costs the database nothing per request.
//!
//! Keys are (site id or 0, minute, reason): site ids come from registered sites and reasons
//! are static, so the map stays small; it is capped anyway while the database is away.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::store::Store;

/// One minute in milliseconds: the counters' bucket.
pub const BUCKET_MS: i64 = 60_000;
/// How long the counters are kept: longer than the longest monitor window (7 days).
pub const KEEP_MS: i64 = 8 * 86_400_000;
/// How often the counters are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Most keys kept in memory while writes fail.
const MAX_PENDING: usize = 100_000;

/// A row of the `drops` table to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropRow {
    pub site_id: i64,
    pub bucket: i64,
    pub reason: &'static str,
    pub n: i64,
}

/// Counts of dropped events waiting to be written.
#[derive(Debug, Default)]
pub struct DropCounter {
    pending: Mutex<HashMap<(i64, i64, &'static str), i64>>,
}

impl DropCounter {
    /// Counts `n` events of `site_id` (0 when unknown) dropped for `reason` at `now_ms`.
    pub fn record(&self, site_id: i64, reason: &'static str, n: u64, now_ms: i64) {
        if n == 0 {
            return;
        }
        let bucket = now_ms - now_ms.rem_euclid(BUCKET_MS);
        if let Ok(mut map) = self.pending.lock() {
            if map.len() < MAX_PENDING || map.contains_key(&(site_id, bucket, reason)) {
                *map.entry((site_id, bucket, reason)).or_default() += n as i64;
            }
        }
    }

    /// Takes every pending count.
    pub fn take(&self) -> Vec<DropRow> {
        let Ok(mut map) = self.pending.lock() else {
            return Vec::new();
        };
        map.drain()
            .map(|((site_id, bucket, reason), n)| DropRow {
                site_id,
                bucket,
                reason,
                n,
            })
            .collect()
    }

    /// Puts counts back after a failed write.
    fn restore(&self, rows: Vec<DropRow>) {
        if let Ok(mut map) = self.pending.lock() {
            for r in rows {
                if map.len() < MAX_PENDING || map.contains_key(&(r.site_id, r.bucket, r.reason)) {
                    *map.entry((r.site_id, r.bucket, r.reason)).or_default() += r.n;
                }
            }
        }
    }

    /// Writes the pending counts; on failure keeps them for the next flush and logs.
    pub async fn flush(&self, store: &Store) {
        let rows = self.take();
        if rows.is_empty() {
            return;
        }
        if let Err(e) = store.add_drops(&rows).await {
            tracing::warn!(error = %e, "writing drop counters; will retry");
            self.restore(rows);
        }
    }
}

/// Flushes `counter` every [`FLUSH_EVERY`] until the task is aborted.
pub async fn run(counter: std::sync::Arc<DropCounter>, store: Store) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        counter.flush(&store).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_site_minute_and_reason() {
        let c = DropCounter::default();
        c.record(1, "bot", 2, 120_001);
        c.record(1, "bot", 3, 179_999);
        c.record(1, "bot", 1, 180_000);
        c.record(0, "rate_limited", 1, 120_500);
        c.record(1, "invalid", 0, 120_500);
        let mut rows = c.take();
        rows.sort_by_key(|r| (r.site_id, r.bucket, r.reason));
        assert_eq!(
            rows,
            vec![
                DropRow {
                    site_id: 0,
                    bucket: 120_000,
                    reason: "rate_limited",
                    n: 1
                },
                DropRow {
                    site_id: 1,
                    bucket: 120_000,
                    reason: "bot",
                    n: 5
                },
                DropRow {
                    site_id: 1,
                    bucket: 180_000,
                    reason: "bot",
                    n: 1
                },
            ]
        );
        assert!(c.take().is_empty());
        c.restore(rows);
        assert_eq!(c.take().iter().map(|r| r.n).sum::<i64>(), 7);
    }
}
