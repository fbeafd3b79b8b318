//! The queries behind the trace and the pipeline view: drop counters, the last edge batch, and
//! the last hour of hop times.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sqlx::Row;

use super::drops::DropRow;
use super::{HopTimes, HourCounts};
use crate::store::{Store, StoreError};

/// Rows per drop upsert statement.
const DROP_ROWS_PER_STATEMENT: usize = 200;

impl Store {
    /// Adds drop counts (`n = n + excluded.n`), one statement per 200 rows.
    pub async fn add_drops(&self, rows: &[DropRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(DROP_ROWS_PER_STATEMENT) {
            let mut sql = String::from("INSERT INTO drops (site_id, bucket, reason, n) VALUES ");
            for i in 0..chunk.len() {
                let b = i * 4;
                let sep = if i == 0 { "" } else { ", " };
                let _ = write!(sql, "{sep}(${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4);
            }
            sql.push_str(
                " ON CONFLICT (site_id, bucket, reason) DO UPDATE SET n = drops.n + excluded.n",
            );
            // Statements of every length would fill each connection's statement cache.
            let mut query = sqlx::query(&sql).persistent(false);
            for r in chunk {
                query = query
                    .bind(r.site_id)
                    .bind(r.bucket)
                    .bind(r.reason)
                    .bind(r.n);
            }
            query.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Drops by reason since `since_ms`: of `site_id` and of requests whose site is not known
    /// (site 0: unknown sites, rate-limited or unreadable requests), or of every site when
    /// `site_id` is `None`. Whole minutes: the minute holding `since_ms` counts.
    pub async fn drops_since(
        &self,
        site_id: Option<i64>,
        since_ms: i64,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let bucket = since_ms - since_ms.rem_euclid(super::drops::BUCKET_MS);
        let rows = match site_id {
            Some(site) => {
                sqlx::query(
                    "SELECT reason, CAST(SUM(n) AS BIGINT) FROM drops \
                     WHERE (site_id = $1 OR site_id = 0) AND bucket >= $2 GROUP BY reason",
                )
                .bind(site)
                .bind(bucket)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT reason, CAST(SUM(n) AS BIGINT) FROM drops \
                     WHERE bucket >= $1 GROUP BY reason",
                )
                .bind(bucket)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect()
    }

    /// Records that batch `batch` arrived from the edge at `at`, for each of `site_ids` and for
    /// site 0 (any site).
    pub async fn record_edge_batch(
        &self,
        site_ids: &[i64],
        batch: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let mut ids = vec![0];
        ids.extend(site_ids.iter().copied().filter(|id| *id != 0));
        ids.sort_unstable();
        ids.dedup();
        let mut sql = String::from("INSERT INTO edge_batches (site_id, batch, at) VALUES ");
        for (i, _) in ids.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}(${}, $1, $2)", i + 3);
        }
        sql.push_str(
            " ON CONFLICT (site_id) DO UPDATE SET batch = excluded.batch, at = excluded.at \
             WHERE edge_batches.at <= excluded.at",
        );
        let mut query = sqlx::query(&sql).persistent(false).bind(batch).bind(at);
        for id in ids {
            query = query.bind(id);
        }
        query.execute(&self.pool).await?;
        Ok(())
    }

    /// The last batch from the edge holding events of `site_id` (0: any site), and its time.
    pub async fn last_edge_batch(&self, site_id: i64) -> Result<Option<(String, i64)>, StoreError> {
        let row = sqlx::query("SELECT batch, at FROM edge_batches WHERE site_id = $1")
            .bind(site_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Events of `site_id` first received since `since_ms`: how many, and how many through
    /// the edge.
    pub async fn stored_since(
        &self,
        site_id: i64,
        since_ms: i64,
    ) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*), COUNT(edge_at) FROM events WHERE site_id = $1 AND ts >= $2",
        )
        .bind(site_id)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// The hop times of the latest `limit` events of `site_id` first received since `since_ms`.
    pub async fn hop_times(
        &self,
        site_id: i64,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<HopTimes>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_ts, edge_at, received_at, stored_at FROM events \
             WHERE site_id = $1 AND ts >= $2 ORDER BY ts DESC LIMIT $3",
        )
        .bind(site_id)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HopTimes {
                    client_ts: r.try_get(0)?,
                    edge_at: r.try_get(1)?,
                    received_at: r.try_get(2)?,
                    stored_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// The counts of the pipeline view for `site_id` since `since_ms`.
    pub async fn hour_counts(&self, site_id: i64, since_ms: i64) -> Result<HourCounts, StoreError> {
        let (stored, via_edge) = self.stored_since(site_id, since_ms).await?;
        Ok(HourCounts {
            stored,
            via_edge,
            dropped: self.drops_since(Some(site_id), since_ms).await?,
        })
    }

    /// Deletes drop counters older than `cutoff_ms`.
    pub async fn prune_drops(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM drops WHERE bucket < $1")
            .bind(cutoff_ms)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}
