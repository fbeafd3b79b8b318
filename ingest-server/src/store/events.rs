//! Raw events: the batched, idempotent insert and the reads of single events.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde::Serialize;
use sqlx::Row;

use super::{Dialect, Store, StoreError};

/// An event ready to be stored: validated, cleaned and enriched.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: String,
    pub site_id: i64,
    /// `pageview`, `event` or `engagement`.
    pub kind: &'static str,
    pub ts: i64,
    pub client_ts: i64,
    pub edge_at: Option<i64>,
    pub batch: Option<String>,
    pub received_at: i64,
    pub visitor: i64,
    pub path: String,
    pub referrer: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub country: Option<String>,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub device: Option<String>,
    pub screen: Option<i64>,
    pub logged_in: Option<bool>,
    pub name: Option<String>,
    /// A JSON object of string values, sensitive values already redacted.
    pub props: Option<String>,
    pub engaged_ms: Option<i64>,
}

const COLUMNS: &[&str] = &[
    "id",
    "site_id",
    "kind",
    "ts",
    "client_ts",
    "edge_at",
    "batch",
    "received_at",
    "stored_at",
    "visitor",
    "path",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "country",
    "browser",
    "os",
    "device",
    "screen",
    "logged_in",
    "name",
    "props",
    "engaged_ms",
];

/// Rows per PostgreSQL INSERT statement, largest first: a batch is written as statements of these
/// sizes only (250 keeps the bound parameters under every database's limit), so that each
/// connection keeps at most this many insert statements prepared, whatever the batch sizes.
const STATEMENT_ROWS: [usize; 4] = [250, 50, 10, 1];

/// `events` cut into pieces of [`STATEMENT_ROWS`] sizes, largest first.
fn statement_chunks<'a, T>(mut events: &'a [T]) -> impl Iterator<Item = &'a [T]> + 'a {
    std::iter::from_fn(move || {
        let size = STATEMENT_ROWS.into_iter().find(|&n| n <= events.len())?;
        let (chunk, rest) = events.split_at(size);
        events = rest;
        Some(chunk)
    })
}

/// PostgreSQL's insert statement of `rows` rows (one of [`STATEMENT_ROWS`]), built once.
fn cached_insert_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<(usize, String)>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| STATEMENT_ROWS.map(|n| (n, insert_sql(n))).to_vec());
    all.iter()
        .find(|(n, _)| *n == rows)
        .map(|(_, sql)| sql.as_str())
        .unwrap_or_default()
}

/// PostgreSQL's multi-row insert, returning the ids that were new.
fn insert_sql(rows: usize) -> String {
    let mut sql = format!("INSERT INTO events ({}) VALUES ", COLUMNS.join(", "));
    let mut n = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..COLUMNS.len() {
            n += 1;
            let sep = if c == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}${n}");
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id");
    sql
}

/// The single-row insert the SQLite writer prepares once and steps for every event.
fn sqlite_insert_sql() -> String {
    let params: Vec<String> = (1..=COLUMNS.len()).map(|n| format!("?{n}")).collect();
    format!(
        "INSERT INTO events ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING",
        COLUMNS.join(", "),
        params.join(", ")
    )
}

/// Writes `events` in one transaction on SQLite's own writer connection: one prepared
/// statement stepped once per event, each step telling whether its row was new.
pub(super) fn insert_sqlite(
    conn: &mut rusqlite::Connection,
    events: &[NewEvent],
    stored_at: i64,
) -> rusqlite::Result<Vec<bool>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut inserted = Vec::with_capacity(events.len());
    {
        let mut stmt = tx.prepare_cached(&sqlite_insert_sql())?;
        for e in events {
            let changed = stmt.execute(rusqlite::params![
                e.id,
                e.site_id,
                e.kind,
                e.ts,
                e.client_ts,
                e.edge_at,
                e.batch,
                e.received_at,
                stored_at,
                e.visitor,
                e.path,
                e.referrer,
                e.utm_source,
                e.utm_medium,
                e.utm_campaign,
                e.utm_term,
                e.utm_content,
                e.country,
                e.browser,
                e.os,
                e.device,
                e.screen,
                e.logged_in.map(i64::from),
                e.name,
                e.props,
                e.engaged_ms,
            ])?;
            inserted.push(changed == 1);
        }
    }
    tx.commit()?;
    Ok(inserted)
}

impl Store {
    /// Writes `events` in one transaction; returns, for each event, whether it was new. Ids
    /// already stored (or repeated earlier within `events`) are left alone: the duplicates.
    pub async fn insert_events(&self, events: Vec<NewEvent>) -> Result<Vec<bool>, StoreError> {
        let stored_at = crate::now_ms();
        match self.dialect {
            Dialect::Sqlite => {
                self.sqlite_write("events", move |conn| {
                    Ok(insert_sqlite(conn, &events, stored_at)?)
                })
                .await
            }
            Dialect::Postgres => self.insert_postgres(&events, stored_at).await,
        }
    }

    /// PostgreSQL: multi-row inserts of fixed sizes, the new ids returned.
    async fn insert_postgres(
        &self,
        events: &[NewEvent],
        stored_at: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let mut new_ids = HashSet::with_capacity(events.len());
        let mut tx = self.pool.begin().await?;
        for chunk in statement_chunks(events) {
            let mut query = sqlx::query(cached_insert_sql(chunk.len()));
            for e in chunk {
                query = query
                    .bind(e.id.as_str())
                    .bind(e.site_id)
                    .bind(e.kind)
                    .bind(e.ts)
                    .bind(e.client_ts)
                    .bind(e.edge_at)
                    .bind(e.batch.as_deref())
                    .bind(e.received_at)
                    .bind(stored_at)
                    .bind(e.visitor)
                    .bind(e.path.as_str())
                    .bind(e.referrer.as_deref())
                    .bind(e.utm_source.as_deref())
                    .bind(e.utm_medium.as_deref())
                    .bind(e.utm_campaign.as_deref())
                    .bind(e.utm_term.as_deref())
                    .bind(e.utm_content.as_deref())
                    .bind(e.country.as_deref())
                    .bind(e.browser.as_deref())
                    .bind(e.os.as_deref())
                    .bind(e.device.as_deref())
                    .bind(e.screen)
                    .bind(e.logged_in.map(i64::from))
                    .bind(e.name.as_deref())
                    .bind(e.props.as_deref())
                    .bind(e.engaged_ms);
            }
            for row in query.fetch_all(&mut *tx).await? {
                new_ids.insert(row.try_get::<String, _>(0)?);
            }
        }
        tx.commit().await?;
        // An id repeated within `events` is new for its first occurrence only.
        Ok(events.iter().map(|e| new_ids.remove(&e.id)).collect())
    }

    /// The stored events of a site, oldest first (for `ingest-server events` and tests).
    pub async fn site_events(
        &self,
        site_id: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {} FROM events WHERE site_id = $1 ORDER BY ts, seq LIMIT $2",
            StoredEvent::COLUMNS
        );
        let rows = sqlx::query(&sql)
            .bind(site_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(StoredEvent::from_row).collect()
    }

    /// One stored event by id.
    pub async fn event_by_id(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let sql = format!("SELECT {} FROM events WHERE id = $1", StoredEvent::COLUMNS);
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(StoredEvent::from_row).transpose()
    }

    /// Deletes raw events older than `cutoff_ms` among the oldest 10,000 stored (walking the
    /// primary key, so no index on time alone is needed); called every minute. Only events
    /// the rollup worker has counted are deleted; rollups are never touched. On SQLite the
    /// newest event is always kept: its `seq` is what keeps new rows numbered above the
    /// rollup mark.
    pub async fn prune_events(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let counted = match self.dialect {
            Dialect::Sqlite => {
                "oldest.seq <= (SELECT upto FROM rollup_lock WHERE id = 1) \
                 AND oldest.seq < (SELECT MAX(seq) FROM events)"
            }
            Dialect::Postgres => "oldest.rolled = 1",
        };
        let columns = match self.dialect {
            Dialect::Sqlite => "seq, ts",
            Dialect::Postgres => "seq, ts, rolled",
        };
        let result = sqlx::query(&format!(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM \
             (SELECT {columns} FROM events ORDER BY seq LIMIT 10000) oldest \
             WHERE oldest.ts < $1 AND {counted})"
        ))
        .bind(cutoff_ms)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Number of stored events of a site.
    pub async fn count_events(&self, site_id: i64) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM events WHERE site_id = $1")
            .bind(site_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }
}

/// A stored event as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub id: String,
    pub kind: String,
    pub ts: i64,
    pub client_ts: i64,
    pub edge_at: Option<i64>,
    pub batch: Option<String>,
    pub received_at: i64,
    pub stored_at: i64,
    /// The visitor id as 16 hex digits.
    pub visitor: String,
    pub path: String,
    pub referrer: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub country: Option<String>,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub device: Option<String>,
    pub screen: Option<i64>,
    pub user: Option<bool>,
    pub name: Option<String>,
    pub props: Option<serde_json::Value>,
    pub engaged_ms: Option<i64>,
}

impl StoredEvent {
    const COLUMNS: &'static str =
        "id, kind, ts, client_ts, edge_at, batch, received_at, stored_at, \
        visitor, path, referrer, utm_source, utm_medium, utm_campaign, utm_term, utm_content, \
        country, browser, os, device, screen, logged_in, name, props, engaged_ms";

    fn from_row(row: &sqlx::any::AnyRow) -> Result<StoredEvent, StoreError> {
        let props: Option<String> = row.try_get("props")?;
        Ok(StoredEvent {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            ts: row.try_get("ts")?,
            client_ts: row.try_get("client_ts")?,
            edge_at: row.try_get("edge_at")?,
            batch: row.try_get("batch")?,
            received_at: row.try_get("received_at")?,
            stored_at: row.try_get("stored_at")?,
            visitor: tally_core::visitor::visitor_to_hex(row.try_get("visitor")?),
            path: row.try_get("path")?,
            referrer: row.try_get("referrer")?,
            utm_source: row.try_get("utm_source")?,
            utm_medium: row.try_get("utm_medium")?,
            utm_campaign: row.try_get("utm_campaign")?,
            utm_term: row.try_get("utm_term")?,
            utm_content: row.try_get("utm_content")?,
            country: row.try_get("country")?,
            browser: row.try_get("browser")?,
            os: row.try_get("os")?,
            device: row.try_get("device")?,
            screen: row.try_get("screen")?,
            user: row.try_get::<Option<i64>, _>("logged_in")?.map(|v| v != 0),
            name: row.try_get("name")?,
            props: props.and_then(|p| serde_json::from_str(&p).ok()),
            engaged_ms: row.try_get("engaged_ms")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_numbers_every_parameter() {
        let n = COLUMNS.len();
        let sql = insert_sql(2);
        assert!(sql.contains(&format!("${}", 2 * n)));
        assert!(!sql.contains(&format!("${}", 2 * n + 1)));
        assert!(sql.ends_with("ON CONFLICT (id) DO NOTHING RETURNING id"));
        assert!(STATEMENT_ROWS[0] * COLUMNS.len() < 32_766);
        assert_eq!(cached_insert_sql(10), insert_sql(10));
        let single = sqlite_insert_sql();
        assert!(single.contains(&format!("?{n})")) && !single.contains(&format!("?{}", n + 1)));
    }

    #[test]
    fn batches_are_cut_into_statements_of_fixed_sizes() {
        for n in [0, 1, 9, 10, 11, 61, 250, 311, 1000, 1234] {
            let events: Vec<usize> = (0..n).collect();
            let sizes: Vec<usize> = statement_chunks(&events).map(<[usize]>::len).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n);
            assert!(
                sizes.iter().all(|s| STATEMENT_ROWS.contains(s)),
                "{sizes:?}"
            );
            assert!(
                sizes.windows(2).all(|w| w[0] >= w[1]),
                "largest first: {sizes:?}"
            );
            let rows: Vec<usize> = statement_chunks(&events).flatten().copied().collect();
            assert_eq!(rows, events, "every event once, in order");
        }
    }
}
