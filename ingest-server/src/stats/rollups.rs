//! Reads of the rollups: their cost grows with the number of distinct values in the range
//! (a few monthly, daily and hourly rows per value for any range, see [`pieces`]), never with
//! the number of events.

use std::collections::HashMap;

use sqlx::Row;

use super::range::{next_bucket, pieces, Piece};
use crate::rollup::Counts;
use crate::store::{Dialect, Store, StoreError};

const SUMS: &str = "CAST(COALESCE(SUM(pageviews), 0) AS BIGINT), \
    CAST(COALESCE(SUM(unique_pageviews), 0) AS BIGINT), \
    CAST(COALESCE(SUM(visitors), 0) AS BIGINT), CAST(COALESCE(SUM(visits), 0) AS BIGINT), \
    CAST(COALESCE(SUM(bounces), 0) AS BIGINT), CAST(COALESCE(SUM(duration_ms), 0) AS BIGINT), \
    CAST(COALESCE(SUM(events), 0) AS BIGINT)";

fn counts(row: &sqlx::any::AnyRow, first: usize) -> Result<Counts, StoreError> {
    Ok(Counts {
        pageviews: row.try_get(first)?,
        unique_pageviews: row.try_get(first + 1)?,
        visitors: row.try_get(first + 2)?,
        visits: row.try_get(first + 3)?,
        bounces: row.try_get(first + 4)?,
        duration_ms: row.try_get(first + 5)?,
        events: row.try_get(first + 6)?,
    })
}

/// The columns of `counts`, negated for a subtracted piece.
fn count_columns(sign: i64) -> &'static str {
    if sign < 0 {
        "-pageviews AS pageviews, -unique_pageviews AS unique_pageviews, \
         -visitors AS visitors, -visits AS visits, -bounces AS bounces, \
         -duration_ms AS duration_ms, -events AS events"
    } else {
        "pageviews, unique_pageviews, visitors, visits, bounces, duration_ms, events"
    }
}

fn signed(c: Counts, sign: i64) -> Counts {
    if sign < 0 {
        -c
    } else {
        c
    }
}

fn piece_cond(p: &Piece) -> String {
    format!(
        "grain = {} AND bucket >= {} AND bucket < {}",
        p.grain, p.start, p.end
    )
}

/// The counts of one (dimension, value) over `[from, to)`; dimension `""` is the site total.
pub async fn totals(
    store: &Store,
    site_id: i64,
    dim: &str,
    value: &str,
    from: i64,
    to: i64,
) -> Result<Counts, StoreError> {
    let parts = pieces(from, to);
    if parts.is_empty() {
        return Ok(Counts::default());
    }
    let sql = parts
        .iter()
        .map(|p| {
            format!(
                "SELECT {SUMS} FROM rollups WHERE site_id = $1 AND dim = $2 AND value = $3 AND {}",
                piece_cond(p)
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let rows = sqlx::query(&sql)
        .bind(site_id)
        .bind(dim)
        .bind(value)
        .fetch_all(&store.pool)
        .await?;
    let mut total = Counts::default();
    for (row, p) in rows.iter().zip(&parts) {
        total += signed(counts(row, 0)?, p.sign);
    }
    Ok(total)
}

/// The values of `dim` over `[from, to)` with their counts, most visitors first, at most
/// `limit`.
pub async fn breakdown(
    store: &Store,
    site_id: i64,
    dim: &str,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<Vec<(String, Counts)>, StoreError> {
    let parts = pieces(from, to);
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    if store.dialect == Dialect::Sqlite {
        let dim = dim.to_string();
        return store
            .sqlite_read(move |conn| breakdown_sqlite(conn, site_id, &dim, &parts, limit))
            .await;
    }
    let inner = parts
        .iter()
        .map(|p| {
            format!(
                "SELECT value, {} FROM rollups WHERE site_id = $1 AND dim = $2 AND {}",
                count_columns(p.sign),
                piece_cond(p)
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let sql = format!(
        "SELECT value, {SUMS}, CAST(SUM(visitors) AS BIGINT) AS v, \
         CAST(SUM(pageviews) AS BIGINT) AS pv FROM ({inner}) t \
         GROUP BY value \
         HAVING SUM(visitors) <> 0 OR SUM(pageviews) <> 0 OR SUM(visits) <> 0 OR SUM(events) <> 0 \
         ORDER BY v DESC, pv DESC, value LIMIT {limit}"
    );
    let rows = sqlx::query(&sql)
        .bind(site_id)
        .bind(dim)
        .fetch_all(&store.pool)
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get::<String, _>(0)?, counts(row, 1)?)))
        .collect()
}

/// SQLite: [`breakdown`] summed here rather than by `GROUP BY` (whose temporary B-tree and
/// sort took twice as long as reading the rows: a 12-month page breakdown reads about
/// 70,000 of them), with prepared statements on a connection of the reading thread.
fn breakdown_sqlite(
    conn: &rusqlite::Connection,
    site_id: i64,
    dim: &str,
    parts: &[Piece],
    limit: usize,
) -> Result<Vec<(String, Counts)>, StoreError> {
    // The pieces are read in one snapshot: a round of the roller committed between two of
    // them would be counted in one piece and not in the piece subtracted from it.
    let tx = conn.unchecked_transaction()?;
    let mut stmt = tx.prepare_cached(
        "SELECT value, pageviews, unique_pageviews, visitors, visits, bounces, duration_ms, \
         events FROM rollups WHERE site_id = ?1 AND grain = ?2 AND dim = ?3 \
         AND bucket >= ?4 AND bucket < ?5",
    )?;
    // Looked up once per row read (70,000 for a year of pages): a fast hasher.
    let mut sums: HashMap<String, Counts, foldhash::fast::RandomState> = HashMap::default();
    for p in parts {
        let mut rows = stmt.query(rusqlite::params![site_id, p.grain, dim, p.start, p.end])?;
        while let Some(row) = rows.next()? {
            let c = signed(
                Counts {
                    pageviews: row.get(1)?,
                    unique_pageviews: row.get(2)?,
                    visitors: row.get(3)?,
                    visits: row.get(4)?,
                    bounces: row.get(5)?,
                    duration_ms: row.get(6)?,
                    events: row.get(7)?,
                },
                p.sign,
            );
            let value = row.get_ref(0)?.as_str().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
            })?;
            match sums.get_mut(value) {
                Some(sum) => *sum += c,
                None => {
                    sums.insert(value.to_string(), c);
                }
            }
        }
    }
    let mut out: Vec<(String, Counts)> = sums
        .into_iter()
        .filter(|(_, c)| c.visitors != 0 || c.pageviews != 0 || c.visits != 0 || c.events != 0)
        .collect();
    super::sort_rows(&mut out);
    out.truncate(limit);
    Ok(out)
}

/// The counts of one (dimension, value) per bucket; `starts` are the buckets' first
/// instants (ascending), the last bucket ends at `to`.
pub async fn series(
    store: &Store,
    site_id: i64,
    dim: &str,
    value: &str,
    starts: &[i64],
    to: i64,
) -> Result<Vec<Counts>, StoreError> {
    let mut out = vec![Counts::default(); starts.len()];
    // Which series buckets each rollup row counts towards, and with which sign: neighbouring
    // buckets may share a row (one adds the hour that the other subtracts).
    let mut wants: HashMap<(i64, i64), Vec<(usize, i64)>> = HashMap::new();
    for (i, s) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(to);
        for p in pieces(*s, end) {
            for b in p.buckets() {
                wants.entry((p.grain, b)).or_default().push((i, p.sign));
            }
        }
    }
    let mut by_grain: [Vec<i64>; 3] = Default::default();
    for &(grain, bucket) in wants.keys() {
        if let Some(list) = by_grain.get_mut(grain as usize) {
            list.push(bucket);
        }
    }
    let mut selects = Vec::new();
    for (grain, list) in by_grain.iter_mut().enumerate() {
        list.sort_unstable();
        let (Some(&first), Some(&last)) = (list.first(), list.last()) else {
            continue;
        };
        let grain = grain as i64;
        let contiguous = list.windows(2).all(|w| next_bucket(grain, w[0]) == w[1]);
        let buckets = if contiguous {
            format!("bucket >= {first} AND bucket <= {last}")
        } else {
            let list: Vec<String> = list.iter().map(i64::to_string).collect();
            format!("bucket IN ({})", list.join(","))
        };
        selects.push(format!(
            "SELECT grain, bucket, pageviews, unique_pageviews, visitors, visits, bounces, \
             duration_ms, events FROM rollups WHERE site_id = $1 AND dim = $2 \
             AND value = $3 AND grain = {grain} AND {buckets}"
        ));
    }
    if selects.is_empty() {
        return Ok(out);
    }
    let rows = sqlx::query(&selects.join(" UNION ALL "))
        .persistent(false)
        .bind(site_id)
        .bind(dim)
        .bind(value)
        .fetch_all(&store.pool)
        .await?;
    for row in &rows {
        let key: (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let c = counts(row, 2)?;
        for &(i, sign) in wants.get(&key).map(Vec::as_slice).unwrap_or_default() {
            out[i] += signed(c, sign);
        }
    }
    Ok(out)
}

/// The `prop:NAME` dimensions with data in `[from, to)` (by month), for the export.
pub async fn prop_dims(
    store: &Store,
    site_id: i64,
    from: i64,
    to: i64,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT dim FROM rollups WHERE site_id = $1 AND grain = 2 \
         AND bucket >= $2 AND bucket < $3 AND dim LIKE 'prop:%' ORDER BY dim",
    )
    .bind(site_id)
    .bind(crate::rollup::store::month_start(from))
    .bind(to)
    .fetch_all(&store.pool)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}
