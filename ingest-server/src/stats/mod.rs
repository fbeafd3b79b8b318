//! The stats queries of CONTRACT §4, as plain functions over the [`Store`] (the HTTP handlers
//! in `http::stats` only parse, call and serialise).
//!
//! - Unfiltered queries, and summary / timeseries with one filter on a visit-level dimension
//!   (entry page, referrer, UTM, country, browser, OS, device, user), read the rollups only
//!   ([`rollups`]).
//! - Other filtered queries count from day digests: each UTC day's events, sessionised once
//!   and stored in columns ([`digest`], [`days`]).
//! - Realtime counts the distinct visitors of the raw events of the last 5 minutes.
//!
//! Visitors are exact over whole UTC days (a visitor id lives one UTC day and is counted
//! once per value in the hour it first appears); range edges inside a UTC day (a `tz` other
//! than UTC, or RFC 3339 bounds) use hourly rollups, so visitors there are a close
//! approximation. Bounds are rounded down to the hour.
//!
//! What reads what (`cargo run --release -p tally-tests --bin bench -- stats` measures it): a
//! range is read as a few rollup pieces, some subtracted ([`range::pieces`]: 30 days from the
//! 3rd are a month less two days plus two days; a day in Europe/Berlin is a UTC day less an
//! hour plus an hour), so a summary reads a handful of rows, a daily timeseries about three
//! per day in any zone, and a breakdown about that many per value of its dimension.
//! Filtered queries other than the rollup shortcut read one digest per day of the range and
//! compare numbers, so their cost grows with the traffic in the range, at a small fraction
//! of a read of its raw events ([`raw`], kept as the reference the tests hold them to). The
//! queries of one filtered view (summary, timeseries, breakdowns) share the decoded days.

pub mod days;
pub mod digest;
pub mod params;
pub mod range;
pub mod raw;
pub mod rollups;

use serde::Serialize;

pub use params::{parse, Dim, DimKind, Interval, ParamError, Params};

use crate::rollup::model::VISIT_DIMS;
use crate::rollup::Counts;
use crate::store::{Store, StoreError};

/// Why a stats query failed.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing CSV: {0}")]
    Csv(String),
}

/// Bounces per visit, 0..1, four decimals.
fn bounce_rate(c: &Counts) -> f64 {
    if c.visits <= 0 {
        return 0.0;
    }
    (c.bounces as f64 / c.visits as f64 * 10_000.0).round() / 10_000.0
}

/// Mean visit duration in seconds, one decimal.
fn duration_s(c: &Counts) -> f64 {
    if c.visits <= 0 {
        return 0.0;
    }
    (c.duration_ms as f64 / c.visits as f64 / 100.0).round() / 10.0
}

/// `GET /api/stats/summary`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub pageviews: i64,
    pub visitors: i64,
    pub visits: i64,
    pub bounce_rate: f64,
    pub visit_duration_s: f64,
    pub events: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Box<Summary>>,
}

impl Summary {
    fn of(c: &Counts) -> Summary {
        Summary {
            pageviews: c.pageviews,
            visitors: c.visitors,
            visits: c.visits,
            bounce_rate: bounce_rate(c),
            visit_duration_s: duration_s(c),
            events: c.events,
            previous: None,
        }
    }
}

/// One bucket of `GET /api/stats/timeseries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Point {
    pub t: String,
    pub pageviews: i64,
    pub visitors: i64,
    pub visits: i64,
}

/// One row of `GET /api/stats/breakdown`; the fields that mean something for the dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakdownRow {
    pub value: String,
    pub visitors: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pageviews: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique_pageviews: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visits: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounce_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visit_duration_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<i64>,
}

impl BreakdownRow {
    pub fn of(dim: &Dim, value: String, c: &Counts) -> BreakdownRow {
        let mut row = BreakdownRow {
            value,
            visitors: c.visitors,
            pageviews: None,
            unique_pageviews: None,
            visits: None,
            bounce_rate: None,
            visit_duration_s: None,
            events: Some(c.events),
        };
        match (dim.as_str(), dim.kind()) {
            ("page", _) => {
                row.pageviews = Some(c.pageviews);
                row.unique_pageviews = Some(c.unique_pageviews);
                row.visits = Some(c.visits);
            }
            (_, DimKind::Event) => {}
            (_, DimKind::Exit) => {
                row.visits = Some(c.visits);
                row.bounce_rate = Some(bounce_rate(c));
                row.visit_duration_s = Some(duration_s(c));
                row.events = None;
            }
            (_, DimKind::Visit) => {
                row.pageviews = Some(c.pageviews);
                row.visits = Some(c.visits);
                row.bounce_rate = Some(bounce_rate(c));
                row.visit_duration_s = Some(duration_s(c));
            }
        }
        row
    }
}

/// The rollup (dimension, value) that answers a summary or timeseries with these filters,
/// if any: the site total, or the one visit-level filter.
fn rollup_source(filters: &[(Dim, String)]) -> Option<(&str, &str)> {
    match filters {
        [] => Some(("", "")),
        [(d, v)] if VISIT_DIMS.contains(&d.as_str()) => Some((d.as_str(), v.as_str())),
        _ => None,
    }
}

async fn totals(
    store: &Store,
    site_id: i64,
    filters: &[(Dim, String)],
    from: i64,
    to: i64,
) -> Result<Counts, StoreError> {
    if let Some((dim, value)) = rollup_source(filters) {
        return rollups::totals(store, site_id, dim, value, from, to).await;
    }
    let map = days::aggregate(store, site_id, from, to, filters, None, None).await?;
    Ok(map.into_values().fold(Counts::default(), |mut a, c| {
        a += c;
        a
    }))
}

/// The totals of `[from, to)` computed from the raw events (public so that tests can hold
/// the rollups and the day digests against it).
pub async fn raw_totals(
    store: &Store,
    site_id: i64,
    filters: &[(Dim, String)],
    from: i64,
    to: i64,
) -> Result<Counts, StoreError> {
    let data = std::sync::Arc::new(raw::load(store, site_id, from, to, filters).await?);
    let map = raw::aggregate_off_thread(data, from, to, filters.to_vec(), None, None).await?;
    Ok(map.into_values().fold(Counts::default(), |mut a, c| {
        a += c;
        a
    }))
}

/// The summary of `[from, to)`, with the preceding period of equal length.
pub async fn summary(store: &Store, site_id: i64, p: &Params) -> Result<Summary, StatsError> {
    let len = p.to - p.from;
    // The two periods are read at once (on two connections; a raw read each on a core).
    let (current, previous) = tokio::try_join!(
        totals(store, site_id, &p.filters, p.from, p.to),
        totals(store, site_id, &p.filters, p.from - len, p.from)
    )?;
    let mut out = Summary::of(&current);
    out.previous = Some(Box::new(Summary::of(&previous)));
    Ok(out)
}

/// One row per bucket of `p.interval` in the range, zero-filled.
pub async fn timeseries(store: &Store, site_id: i64, p: &Params) -> Result<Vec<Point>, StatsError> {
    let buckets = range::buckets(p.from, p.to, p.tz, p.interval).ok_or_else(|| ParamError {
        param: "interval".into(),
        message: format!(
            "too many buckets for this range (at most {})",
            range::MAX_BUCKETS
        ),
    })?;
    let starts: Vec<i64> = buckets.iter().map(|(s, _)| *s).collect();
    let counts = match rollup_source(&p.filters) {
        Some((dim, value)) => rollups::series(store, site_id, dim, value, &starts, p.to).await?,
        None => {
            let map = days::aggregate(
                store,
                site_id,
                p.from,
                p.to,
                &p.filters,
                None,
                Some(&starts),
            )
            .await?;
            let mut out = vec![Counts::default(); starts.len()];
            for ((b, _), c) in map {
                out[b] += c;
            }
            out
        }
    };
    Ok(buckets
        .into_iter()
        .zip(counts)
        .map(|((_, t), c)| Point {
            t,
            pageviews: c.pageviews,
            visitors: c.visitors,
            visits: c.visits,
        })
        .collect())
}

/// Most visitors first, then page views, events, and by value.
fn sort_rows(rows: &mut [(String, Counts)]) {
    rows.sort_by(|a, b| {
        b.1.visitors
            .cmp(&a.1.visitors)
            .then(b.1.pageviews.cmp(&a.1.pageviews))
            .then(b.1.events.cmp(&a.1.events))
            .then(a.0.cmp(&b.0))
    });
}

/// The values of `dim` in the range, most visitors first, at most `p.limit`.
pub async fn breakdown(
    store: &Store,
    site_id: i64,
    p: &Params,
    dim: &Dim,
) -> Result<Vec<BreakdownRow>, StatsError> {
    let mut rows = if p.filters.is_empty() {
        rollups::breakdown(store, site_id, dim.as_str(), p.from, p.to, p.limit).await?
    } else {
        days::aggregate(store, site_id, p.from, p.to, &p.filters, Some(dim), None)
            .await?
            .into_iter()
            .map(|((_, v), c)| (v, c))
            .collect()
    };
    sort_rows(&mut rows);
    rows.truncate(p.limit);
    Ok(rows
        .into_iter()
        .map(|(value, c)| BreakdownRow::of(dim, value, &c))
        .collect())
}

/// A breakdown computed from the raw events (public so that tests can hold the rollups and
/// the day digests against it).
pub async fn raw_breakdown(
    store: &Store,
    site_id: i64,
    p: &Params,
    dim: &Dim,
) -> Result<Vec<(String, Counts)>, StoreError> {
    let data = std::sync::Arc::new(raw::load(store, site_id, p.from, p.to, &p.filters).await?);
    let map = raw::aggregate_off_thread(
        data,
        p.from,
        p.to,
        p.filters.clone(),
        Some(dim.clone()),
        None,
    )
    .await?;
    let mut rows: Vec<(String, Counts)> = map.into_iter().map(|((_, v), c)| (v, c)).collect();
    sort_rows(&mut rows);
    Ok(rows)
}

/// The rows of a breakdown from the rollups, sorted like [`raw_breakdown`].
pub async fn rollup_breakdown(
    store: &Store,
    site_id: i64,
    p: &Params,
    dim: &Dim,
) -> Result<Vec<(String, Counts)>, StoreError> {
    let mut rows = rollups::breakdown(
        store,
        site_id,
        dim.as_str(),
        p.from,
        p.to,
        params::MAX_LIMIT * 100,
    )
    .await?;
    sort_rows(&mut rows);
    Ok(rows)
}

/// How far back `realtime` looks.
pub const REALTIME_MS: i64 = 5 * 60 * 1000;

/// Distinct visitors with a page view or custom event in the 5 minutes before `now`.
pub async fn realtime(store: &Store, site_id: i64, now: i64) -> Result<i64, StoreError> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT COUNT(DISTINCT visitor) FROM events WHERE site_id = $1 AND ts >= $2 \
         AND ts <= $3 AND kind <> 'engagement'",
    )
    .bind(site_id)
    .bind(now - REALTIME_MS)
    .bind(now)
    .fetch_one(&store.pool)
    .await?;
    Ok(row.try_get(0)?)
}

/// `GET /api/stats/export?format=csv`: the summary, the timeseries and every breakdown (up
/// to 1,000 rows each) as one CSV table with a `section` column.
pub async fn export_csv(store: &Store, site_id: i64, p: &Params) -> Result<Vec<u8>, StatsError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| StatsError::Csv(e.to_string());
    w.write_record([
        "section",
        "value",
        "visitors",
        "pageviews",
        "unique_pageviews",
        "visits",
        "bounce_rate",
        "visit_duration_s",
        "events",
    ])
    .map_err(csv_err)?;
    let opt = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let optf = |v: Option<f64>| v.map(|n| n.to_string()).unwrap_or_default();
    let s = summary(store, site_id, p).await?;
    w.write_record([
        "summary".to_string(),
        String::new(),
        s.visitors.to_string(),
        s.pageviews.to_string(),
        String::new(),
        s.visits.to_string(),
        s.bounce_rate.to_string(),
        s.visit_duration_s.to_string(),
        s.events.to_string(),
    ])
    .map_err(csv_err)?;
    for point in timeseries(store, site_id, p).await? {
        w.write_record([
            "timeseries".to_string(),
            point.t,
            point.visitors.to_string(),
            point.pageviews.to_string(),
            String::new(),
            point.visits.to_string(),
            String::new(),
            String::new(),
            String::new(),
        ])
        .map_err(csv_err)?;
    }
    let mut dims = Dim::all();
    for name in rollups::prop_dims(store, site_id, p.from, p.to).await? {
        if let Some(d) = Dim::parse(&name) {
            dims.push(d);
        }
    }
    let mut all = p.clone();
    all.limit = params::MAX_LIMIT;
    for dim in dims {
        for row in breakdown(store, site_id, &all, &dim).await? {
            w.write_record([
                dim.as_str().to_string(),
                row.value,
                row.visitors.to_string(),
                opt(row.pageviews),
                opt(row.unique_pageviews),
                opt(row.visits),
                optf(row.bounce_rate),
                optf(row.visit_duration_s),
                opt(row.events),
            ])
            .map_err(csv_err)?;
        }
    }
    w.into_inner().map_err(|e| StatsError::Csv(e.to_string()))
}
