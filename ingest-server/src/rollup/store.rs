//! The reads and writes of a rollup round, and the event / visit row mappings the raw stats
//! queries share.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::model::{floor_day, Acc, Counts, Ev, EvKind, Text, Visit, Visitor, DAY_MS};
use crate::store::{Dialect, Store, StoreError};

/// The columns [`ev_from_row`] reads, in order.
pub const EV_COLUMNS: &str = "seq, site_id, kind, ts, visitor, path, referrer, utm_source, \
    utm_medium, utm_campaign, country, browser, os, device, logged_in, name, props";

/// An event row (selected with [`EV_COLUMNS`]); `None` for an unknown kind.
pub fn ev_from_row(row: &AnyRow) -> Result<Option<Ev>, StoreError> {
    let kind: String = row.try_get(2)?;
    let Some(kind) = EvKind::parse(&kind) else {
        return Ok(None);
    };
    let props: Option<String> = row.try_get(16)?;
    Ok(Some(Ev {
        seq: row.try_get(0)?,
        site_id: row.try_get(1)?,
        kind,
        ts: row.try_get(3)?,
        visitor: row.try_get(4)?,
        path: row.try_get::<&str, _>(5)?.into(),
        referrer: any_text(row, 6)?,
        utm_source: any_text(row, 7)?,
        utm_medium: any_text(row, 8)?,
        utm_campaign: any_text(row, 9)?,
        country: any_text(row, 10)?,
        browser: any_text(row, 11)?,
        os: any_text(row, 12)?,
        device: any_text(row, 13)?,
        logged_in: row.try_get::<Option<i64>, _>(14)?.unwrap_or(0) != 0,
        name: any_text(row, 15)?,
        props: Ev::parse_props(props.as_deref()),
    }))
}

/// A text column read by rusqlite, without a `String` of its own when it is short.
fn text(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<Text>> {
    Ok(row.get_ref(i)?.as_str_or_null()?.map(Text::from))
}

/// A text column read by sqlx, as [`text`].
fn any_text(row: &AnyRow, i: usize) -> Result<Option<Text>, sqlx::Error> {
    Ok(row.try_get::<Option<&str>, _>(i)?.map(Text::from))
}

/// [`ev_from_row`] for a row read by rusqlite.
pub fn ev_from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Ev>> {
    let kind: String = row.get(2)?;
    let Some(kind) = EvKind::parse(&kind) else {
        return Ok(None);
    };
    let props: Option<String> = row.get(16)?;
    Ok(Some(Ev {
        seq: row.get(0)?,
        site_id: row.get(1)?,
        kind,
        ts: row.get(3)?,
        visitor: row.get(4)?,
        path: row.get_ref(5)?.as_str()?.into(),
        referrer: text(row, 6)?,
        utm_source: text(row, 7)?,
        utm_medium: text(row, 8)?,
        utm_campaign: text(row, 9)?,
        country: text(row, 10)?,
        browser: text(row, 11)?,
        os: text(row, 12)?,
        device: text(row, 13)?,
        logged_in: row.get::<_, Option<i64>>(14)?.unwrap_or(0) != 0,
        name: text(row, 15)?,
        props: Ev::parse_props(props.as_deref()),
    }))
}

/// The oldest events not counted yet, in `seq` order, and the numbers of all of them
/// (events of an unknown kind are counted with the rest, and count for nothing).
/// PostgreSQL: the events not flagged.
pub async fn unrolled(
    conn: &mut AnyConnection,
    limit: i64,
) -> Result<(Vec<Ev>, Vec<i64>), StoreError> {
    let sql = format!("SELECT {EV_COLUMNS} FROM events WHERE rolled = 0 ORDER BY seq LIMIT $1");
    let rows = sqlx::query(&sql).bind(limit).fetch_all(&mut *conn).await?;
    let mut events = Vec::with_capacity(rows.len());
    let mut seqs = Vec::with_capacity(rows.len());
    for row in &rows {
        seqs.push(row.try_get(0)?);
        if let Some(ev) = ev_from_row(row)? {
            events.push(ev);
        }
    }
    Ok((events, seqs))
}

/// [`unrolled`] for SQLite: the events numbered above `after` (the rollup mark).
pub fn unrolled_sqlite(
    conn: &rusqlite::Connection,
    after: i64,
    limit: i64,
) -> Result<(Vec<Ev>, Vec<i64>), StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EV_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let mut rows = stmt.query(rusqlite::params![after, limit])?;
    let mut events = Vec::new();
    let mut seqs = Vec::new();
    while let Some(row) = rows.next()? {
        seqs.push(row.get(0)?);
        if let Some(ev) = ev_from_sqlite(row)? {
            events.push(ev);
        }
    }
    Ok((events, seqs))
}

const VISIT_COLUMNS: &str = "visitor, started_at, last_at, pageviews, events, entry_page, \
    exit_page, referrer, utm_source, utm_medium, utm_campaign, country, browser, os, device, \
    logged_in, pages, marks";

fn hashes(s: &str) -> Vec<u64> {
    s.split_ascii_whitespace()
        .filter_map(|h| h.parse().ok())
        .collect()
}

fn hashes_text(h: &[u64]) -> String {
    let mut s = String::with_capacity(h.len() * 21);
    for (i, x) in h.iter().enumerate() {
        let _ = write!(s, "{}{x}", if i == 0 { "" } else { " " });
    }
    s
}

fn visit_from_row(row: &AnyRow) -> Result<(i64, Visit), StoreError> {
    let pages: String = row.try_get(16)?;
    let marks: String = row.try_get(17)?;
    Ok((
        row.try_get(0)?,
        Visit {
            started_at: row.try_get(1)?,
            last_at: row.try_get(2)?,
            pageviews: row.try_get(3)?,
            events: row.try_get(4)?,
            entry_page: row.try_get::<&str, _>(5)?.into(),
            exit_page: row.try_get::<&str, _>(6)?.into(),
            referrer: any_text(row, 7)?,
            utm_source: any_text(row, 8)?,
            utm_medium: any_text(row, 9)?,
            utm_campaign: any_text(row, 10)?,
            country: any_text(row, 11)?,
            browser: any_text(row, 12)?,
            os: any_text(row, 13)?,
            device: any_text(row, 14)?,
            logged_in: row.try_get::<i64, _>(15)? != 0,
            pages: hashes(&pages),
            marks: hashes(&marks),
        },
    ))
}

/// [`visit_from_row`] for a row read by rusqlite.
fn visit_from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Visit)> {
    let pages: String = row.get(16)?;
    let marks: String = row.get(17)?;
    Ok((
        row.get(0)?,
        Visit {
            started_at: row.get(1)?,
            last_at: row.get(2)?,
            pageviews: row.get(3)?,
            events: row.get(4)?,
            entry_page: row.get_ref(5)?.as_str()?.into(),
            exit_page: row.get_ref(6)?.as_str()?.into(),
            referrer: text(row, 7)?,
            utm_source: text(row, 8)?,
            utm_medium: text(row, 9)?,
            utm_campaign: text(row, 10)?,
            country: text(row, 11)?,
            browser: text(row, 12)?,
            os: text(row, 13)?,
            device: text(row, 14)?,
            logged_in: row.get::<_, i64>(15)? != 0,
            pages: hashes(&pages),
            marks: hashes(&marks),
        },
    ))
}

/// The visitors of a round, by (site, visitor id).
pub type Visitors = HashMap<(i64, i64), Visitor>;

/// The stored visits a round needs, as queries: a fresh [`Visitor`] for every (site,
/// visitor) of `events`, and per site the visits that may matter (those that started since
/// the UTC day before the oldest event), as SQL selecting [`VISIT_COLUMNS`] with the site
/// and that start as parameters 1 and 2.
fn visit_queries(events: &[Ev]) -> (Visitors, Vec<(i64, i64, String)>) {
    let mut out: HashMap<(i64, i64), Visitor> = HashMap::new();
    let mut per_site: BTreeMap<i64, (i64, Vec<i64>)> = BTreeMap::new();
    for ev in events {
        out.entry((ev.site_id, ev.visitor)).or_insert_with(|| {
            let entry = per_site.entry(ev.site_id).or_insert((ev.ts, Vec::new()));
            entry.1.push(ev.visitor);
            Visitor::new(ev.site_id, ev.visitor)
        });
        if let Some(entry) = per_site.get_mut(&ev.site_id) {
            entry.0 = entry.0.min(ev.ts);
        }
    }
    let mut queries = Vec::new();
    for (site_id, (min_ts, visitors)) in per_site {
        let since = floor_day(min_ts) - DAY_MS;
        for part in visitors.chunks(500) {
            let mut list = String::with_capacity(part.len() * 20);
            for (i, v) in part.iter().enumerate() {
                let _ = write!(list, "{}{v}", if i == 0 { "" } else { "," });
            }
            queries.push((
                site_id,
                since,
                format!(
                    "SELECT {VISIT_COLUMNS} FROM visits WHERE site_id = $1 AND started_at >= $2 \
                     AND visitor IN ({list})"
                ),
            ));
        }
    }
    (out, queries)
}

/// A [`Visitor`] for every (site, visitor) of `events`, with the stored visits that may
/// matter (see [`visit_queries`]).
pub async fn load_visitors(
    conn: &mut AnyConnection,
    events: &[Ev],
) -> Result<Visitors, StoreError> {
    let (mut out, queries) = visit_queries(events);
    for (site_id, since, sql) in queries {
        // A literal list: never the same statement twice, so it is not kept prepared.
        let rows = sqlx::query(&sql)
            .persistent(false)
            .bind(site_id)
            .bind(since)
            .fetch_all(&mut *conn)
            .await?;
        for row in &rows {
            let (visitor, visit) = visit_from_row(row)?;
            if let Some(v) = out.get_mut(&(site_id, visitor)) {
                v.load(visit);
            }
        }
    }
    Ok(out)
}

/// [`load_visitors`] for SQLite.
pub fn load_visitors_sqlite(
    conn: &rusqlite::Connection,
    events: &[Ev],
) -> Result<Visitors, StoreError> {
    let (mut out, queries) = visit_queries(events);
    for (site_id, since, sql) in queries {
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params![site_id, since])?;
        while let Some(row) = rows.next()? {
            let (visitor, visit) = visit_from_sqlite(row)?;
            if let Some(v) = out.get_mut(&(site_id, visitor)) {
                v.load(visit);
            }
        }
    }
    Ok(out)
}

/// The first instant of the UTC month of `ts`.
pub fn month_start(ts: i64) -> i64 {
    DateTime::from_timestamp_millis(ts)
        .and_then(|d| NaiveDate::from_ymd_opt(d.year(), d.month(), 1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
        .unwrap_or(ts)
}

/// `VALUES` tuples of `rows` × `columns` placeholders. SQLite gets plain `?`: with numbered
/// ones its driver looks every parameter up by name, in time quadratic in the statement size.
fn values(dialect: Dialect, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 6);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns {
            let sep = if c == 0 { "" } else { ", " };
            let _ = match dialect {
                Dialect::Sqlite => write!(sql, "{sep}?"),
                Dialect::Postgres => write!(sql, "{sep}${}", r * columns + c + 1),
            };
        }
        sql.push(')');
    }
    sql
}

/// Rows of one grain: 0 hour, 1 UTC day, 2 UTC month.
pub type RollupKey = (i64, i64, String, i64, String);

/// The hourly contributions of `acc`, also summed per UTC day and month.
pub fn expand(acc: &Acc) -> HashMap<RollupKey, Counts> {
    let mut rows: HashMap<RollupKey, Counts> = HashMap::with_capacity(acc.map.len() * 2);
    let mut months: HashMap<i64, i64> = HashMap::new();
    for (k, c) in &acc.map {
        let day = floor_day(k.hour);
        let month = *months.entry(day).or_insert_with(|| month_start(day));
        for (grain, bucket) in [(0, k.hour), (1, day), (2, month)] {
            *rows
                .entry((k.site_id, grain, k.dim.to_string(), bucket, k.value.clone()))
                .or_default() += *c;
        }
    }
    rows
}

const ROLLUP_INSERT: &str = "INSERT INTO rollups (site_id, grain, dim, bucket, value, \
    pageviews, unique_pageviews, visitors, visits, bounces, duration_ms, events) VALUES ";
const ROLLUP_CONFLICT: &str = " ON CONFLICT (site_id, grain, dim, bucket, value) DO UPDATE SET \
    pageviews = rollups.pageviews + excluded.pageviews, \
    unique_pageviews = rollups.unique_pageviews + excluded.unique_pageviews, \
    visitors = rollups.visitors + excluded.visitors, \
    visits = rollups.visits + excluded.visits, \
    bounces = rollups.bounces + excluded.bounces, \
    duration_ms = rollups.duration_ms + excluded.duration_ms, \
    events = rollups.events + excluded.events";
const VISIT_INSERT: &str = "INSERT INTO visits (site_id, visitor, started_at, last_at, \
    pageviews, events, entry_page, exit_page, referrer, utm_source, utm_medium, utm_campaign, \
    country, browser, os, device, logged_in, pages, marks) VALUES ";
const VISIT_CONFLICT: &str = " ON CONFLICT (site_id, visitor, started_at) DO UPDATE SET \
    last_at = excluded.last_at, pageviews = excluded.pageviews, \
    events = excluded.events, exit_page = excluded.exit_page, \
    pages = excluded.pages, marks = excluded.marks";

/// The rows `acc` adds to, without those it leaves as they are, in the order of the
/// rollups' primary key: written in that order, each upsert finds its page next to the last
/// one's instead of anywhere in the table.
pub fn rollup_rows(acc: &Acc) -> Vec<(RollupKey, Counts)> {
    let mut rows: Vec<(RollupKey, Counts)> = expand(acc)
        .into_iter()
        .filter(|(_, c)| !c.is_zero())
        .collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// Adds `acc` to the rollups.
pub async fn upsert_rollups(
    conn: &mut AnyConnection,
    dialect: Dialect,
    acc: &Acc,
) -> Result<(), StoreError> {
    let rows = rollup_rows(acc);
    const PER_STATEMENT: usize = 1_000;
    for part in rows.chunks(PER_STATEMENT) {
        let mut sql = String::from(ROLLUP_INSERT);
        sql.push_str(&values(dialect, part.len(), 12));
        sql.push_str(ROLLUP_CONFLICT);
        let mut q = sqlx::query(&sql).persistent(false);
        for ((site, grain, dim, bucket, value), c) in part {
            q = q
                .bind(*site)
                .bind(*grain)
                .bind(dim.as_str())
                .bind(*bucket)
                .bind(value.as_str())
                .bind(c.pageviews)
                .bind(c.unique_pageviews)
                .bind(c.visitors)
                .bind(c.visits)
                .bind(c.bounces)
                .bind(c.duration_ms)
                .bind(c.events);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// [`upsert_rollups`] for SQLite: one prepared single-row upsert, stepped per row (a
/// statement of many rows is parsed anew every time, which costs more than the steps).
pub fn upsert_rollups_sqlite(
    conn: &rusqlite::Connection,
    rows: &[(RollupKey, Counts)],
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(&format!(
        "{ROLLUP_INSERT}(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12){ROLLUP_CONFLICT}"
    ))?;
    for ((site, grain, dim, bucket, value), c) in rows {
        stmt.execute(rusqlite::params![
            site,
            grain,
            dim,
            bucket,
            value,
            c.pageviews,
            c.unique_pageviews,
            c.visitors,
            c.visits,
            c.bounces,
            c.duration_ms,
            c.events,
        ])?;
    }
    Ok(())
}

/// Inserts or updates visits (keyed by site, visitor and start).
pub async fn upsert_visits(
    conn: &mut AnyConnection,
    dialect: Dialect,
    visits: &[(i64, i64, Visit)],
) -> Result<(), StoreError> {
    const COLUMNS: usize = 19;
    for part in visits.chunks(200) {
        let mut sql = String::from(VISIT_INSERT);
        sql.push_str(&values(dialect, part.len(), COLUMNS));
        sql.push_str(VISIT_CONFLICT);
        let mut q = sqlx::query(&sql).persistent(false);
        for (site, visitor, v) in part {
            q = q
                .bind(*site)
                .bind(*visitor)
                .bind(v.started_at)
                .bind(v.last_at)
                .bind(v.pageviews)
                .bind(v.events)
                .bind(v.entry_page.as_str())
                .bind(v.exit_page.as_str())
                .bind(v.referrer.as_deref())
                .bind(v.utm_source.as_deref())
                .bind(v.utm_medium.as_deref())
                .bind(v.utm_campaign.as_deref())
                .bind(v.country.as_deref())
                .bind(v.browser.as_deref())
                .bind(v.os.as_deref())
                .bind(v.device.as_deref())
                .bind(i64::from(v.logged_in))
                .bind(hashes_text(&v.pages))
                .bind(hashes_text(&v.marks));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// [`upsert_visits`] for SQLite, one prepared single-row upsert stepped per visit.
pub fn upsert_visits_sqlite(
    conn: &rusqlite::Connection,
    visits: &[(i64, i64, Visit)],
) -> rusqlite::Result<()> {
    let params: Vec<String> = (1..=19).map(|n| format!("?{n}")).collect();
    let mut stmt = conn.prepare_cached(&format!(
        "{VISIT_INSERT}({}){VISIT_CONFLICT}",
        params.join(", ")
    ))?;
    for (site, visitor, v) in visits {
        stmt.execute(rusqlite::params![
            site,
            visitor,
            v.started_at,
            v.last_at,
            v.pageviews,
            v.events,
            v.entry_page.as_str(),
            v.exit_page.as_str(),
            v.referrer.as_deref(),
            v.utm_source.as_deref(),
            v.utm_medium.as_deref(),
            v.utm_campaign.as_deref(),
            v.country.as_deref(),
            v.browser.as_deref(),
            v.os.as_deref(),
            v.device.as_deref(),
            i64::from(v.logged_in),
            hashes_text(&v.pages),
            hashes_text(&v.marks),
        ])?;
    }
    Ok(())
}

/// Runs of consecutive numbers in `seqs` (any order), as inclusive ranges.
pub fn runs(seqs: &[i64]) -> Vec<(i64, i64)> {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for s in sorted {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == s => *end = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// PostgreSQL: marks exactly the events `seqs` as counted. Ranges are built from the selected numbers
/// only, so an event committed meanwhile in a gap (PostgreSQL sequences) stays waiting.
pub async fn mark_rolled(conn: &mut AnyConnection, seqs: &[i64]) -> Result<(), StoreError> {
    for part in runs(seqs).chunks(200) {
        let cond = part
            .iter()
            .map(|(a, b)| format!("(seq BETWEEN {a} AND {b})"))
            .collect::<Vec<_>>()
            .join(" OR ");
        sqlx::query(&format!("UPDATE events SET rolled = 1 WHERE {cond}"))
            .persistent(false)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The (site, UTC day) of each of `events`, sorted, each once.
pub fn days_of(events: &[Ev]) -> Vec<(i64, i64)> {
    let mut days: Vec<(i64, i64)> = events
        .iter()
        .map(|e| (e.site_id, floor_day(e.ts)))
        .collect();
    days.sort_unstable();
    days.dedup();
    days
}

const TOUCH_DAY: &str = "INSERT INTO digest_days (site_id, day, gen) VALUES ($1, $2, 1) \
    ON CONFLICT (site_id, day) DO UPDATE SET gen = digest_days.gen + 1";

/// Moves the `gen` of `days`: their stored digests no longer count (`stats::days`).
pub async fn touch_days(conn: &mut AnyConnection, days: &[(i64, i64)]) -> Result<(), StoreError> {
    for (site, day) in days {
        sqlx::query(TOUCH_DAY)
            .bind(site)
            .bind(day)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// [`touch_days`] on SQLite's writer connection.
pub fn touch_days_sqlite(
    tx: &rusqlite::Transaction<'_>,
    days: &[(i64, i64)],
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(&TOUCH_DAY.replace('$', "?"))?;
    for (site, day) in days {
        stmt.execute(rusqlite::params![site, day])?;
    }
    Ok(())
}

impl Store {
    /// Deletes visits that started before `cutoff_ms` (raw data past retention; rollups stay).
    pub async fn prune_visits(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM visits WHERE started_at < $1")
            .bind(cutoff_ms)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    /// Events stored but not counted yet.
    pub async fn unrolled_count(&self) -> Result<i64, StoreError> {
        let sql = match self.dialect {
            Dialect::Sqlite => {
                "SELECT COUNT(*) FROM events WHERE seq > (SELECT upto FROM rollup_lock WHERE id = 1)"
            }
            Dialect::Postgres => "SELECT COUNT(*) FROM events WHERE rolled = 0",
        };
        let row = sqlx::query(sql).fetch_one(&self.pool).await?;
        Ok(row.try_get(0)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_exactly_the_numbers_given() {
        assert_eq!(runs(&[5, 3, 4, 9, 10, 12]), vec![(3, 5), (9, 10), (12, 12)]);
        assert!(runs(&[]).is_empty());
    }

    #[test]
    fn hashes_round_trip() {
        let h = vec![1, u64::MAX, 42];
        assert_eq!(hashes(&hashes_text(&h)), h);
    }

    #[test]
    fn rollup_rows_come_in_key_order_with_each_grain() {
        let mut acc = Acc::default();
        let hour = 1_794_909_600_000; // 2026-11-17T10:00:00Z
        let one = Counts {
            pageviews: 1,
            ..Counts::default()
        };
        for (dim, value, h) in [
            ("page", "/b", hour),
            ("country", "DE", hour + 3_600_000),
            ("page", "/a", hour),
            ("", "", hour),
            ("page", "/a", hour - 3_600_000),
        ] {
            acc.add(2, dim, value, h, one);
        }
        acc.add(1, "page", "/z", hour, one);
        acc.add(1, "page", "/y", hour, Counts::default());
        let rows = rollup_rows(&acc);
        let keys: Vec<&RollupKey> = rows.iter().map(|(k, _)| k).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        // Six hourly rows (the zero one left out) and their days and months: /a's two
        // hours share a day.
        assert_eq!(rows.iter().filter(|r| r.0 .1 == 0).count(), 6);
        assert_eq!(rows.iter().filter(|r| r.0 .1 == 1).count(), 5);
        let a_day = rows
            .iter()
            .find(|((site, grain, dim, _, value), _)| {
                (*site, *grain, dim.as_str(), value.as_str()) == (2, 1, "page", "/a")
            })
            .map(|r| r.1.pageviews);
        assert_eq!(a_day, Some(2));
        assert_eq!(rows.first().map(|r| r.0 .0), Some(1));
    }

    #[test]
    fn month_start_is_the_first_of_the_utc_month() {
        // 2026-11-17T10:00:00Z → 2026-11-01T00:00:00Z
        assert_eq!(month_start(1_794_909_600_000), 1_793_491_200_000);
    }
}
