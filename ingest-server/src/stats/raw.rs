//! Filtered queries, answered from the raw events of the range: they are sessionised again
//! with the rollup worker's own rules ([`crate::rollup::model`]), then filtered and counted.
//! Correct for any combination of filters; the cost grows with the events in the range.
//!
//! A filter on a visit-level dimension keeps the events of the visits that have that value;
//! a filter on `page`, `event` or `prop:NAME` keeps the events that have it, and the visits
//! (for visits, bounce rate, duration) that contain at least one such event.

use std::collections::{HashMap, HashSet};

use super::params::{Dim, DimKind};
use crate::rollup::model::{
    floor_day, user_value, Counts, Ev, EvKind, Visit, Visitor, DIRECT, VISIT_GAP_MS,
};
use crate::rollup::store::{ev_from_row, ev_from_sqlite, EV_COLUMNS};
use crate::store::{Dialect, Store, StoreError};

/// The events of a range with the visits they belong to.
#[derive(Default)]
pub struct Raw {
    index: HashMap<(i64, i64), usize>,
    pub(crate) visitors: Vec<Visitor>,
    /// The events past the forgotten ones, in the order applied; and, at the same index,
    /// where each one's visit is: (index in `visitors`, slot of its visit). Two vectors, so
    /// that the events read are kept where they were read into, not moved again.
    pub(crate) events: Vec<Ev>,
    pub(crate) places: Vec<(usize, usize)>,
    /// How many events came before `events` and were forgotten ([`Raw::forget_events`]).
    pub(crate) forgotten: usize,
}

impl Raw {
    /// How many events were loaded.
    pub fn len(&self) -> usize {
        self.forgotten + self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the events loaded so far, keeping their visits (which later events may join)
    /// and their count: for a day not over, once a digest `Builder` took them in (it keeps
    /// what it needs of them in a tenth of the memory). Counting from a `Raw` (not through
    /// a `Builder`) then no longer sees them.
    pub(crate) fn forget_events(&mut self) {
        self.forgotten += self.events.len();
        self.events = Vec::new();
        self.places = Vec::new();
    }

    /// The events from index `from` of those not forgotten, each with where its visit is.
    pub(crate) fn events_from(&self, from: usize) -> impl Iterator<Item = (&Ev, usize, usize)> {
        let places = self.places[from..].iter();
        self.events[from..]
            .iter()
            .zip(places)
            .map(|(ev, &(vi, si))| (ev, vi, si))
    }
}

/// The SQL condition (with its bound values) that an event of a visit passing `filter` is
/// sure to meet on at least one event of the same visitor: the rows are pre-filtered by
/// visitor in SQL, and filtered exactly after sessionising. `None` where there is none cheap
/// (props).
fn prefilter(dim: &Dim, value: &str) -> Option<(String, Vec<String>)> {
    let column = |c: &str| Some((format!("{c} = ?"), vec![value.to_string()]));
    match dim.as_str() {
        "page" | "entry_page" | "exit_page" => column("path"),
        "event" => Some((
            "kind = 'event' AND name = ?".into(),
            vec![value.to_string()],
        )),
        "referrer" if value == DIRECT => Some(("referrer IS NULL".into(), Vec::new())),
        c @ ("referrer" | "utm_source" | "utm_medium" | "utm_campaign" | "country" | "browser"
        | "os" | "device") => column(c),
        "user" => Some((
            if value == user_value(true) {
                "logged_in = 1".into()
            } else {
                "(logged_in IS NULL OR logged_in = 0)".into()
            },
            Vec::new(),
        )),
        _ => None,
    }
}

/// Loads and sessionises the events of `[from, to)`, with a look-back to the start of the
/// UTC day of `from` (visitor days and visits that began earlier). With `filters`, only the
/// events of visitors that may pass them are read.
pub async fn load(
    store: &Store,
    site_id: i64,
    from: i64,
    to: i64,
    filters: &[(Dim, String)],
) -> Result<Raw, StoreError> {
    let since = floor_day(from) - VISIT_GAP_MS;
    let mut sql =
        format!("SELECT {EV_COLUMNS} FROM events WHERE site_id = ? AND ts >= ? AND ts < ?");
    let mut values: Vec<String> = Vec::new();
    for (dim, value) in filters {
        if let Some((cond, v)) = prefilter(dim, value) {
            sql.push_str(&format!(
                " AND visitor IN (SELECT visitor FROM events WHERE site_id = ? AND ts >= ? \
                 AND ts < ? AND {cond})"
            ));
            values.push(String::new());
            values.extend(v);
        }
    }
    if store.dialect == Dialect::Sqlite {
        // Read and sessionised on a blocking thread, with a connection of its own.
        return store
            .sqlite_read(move |conn| {
                let mut params: Vec<rusqlite::types::Value> =
                    vec![site_id.into(), since.into(), to.into()];
                for v in values {
                    // An empty marker stands for the sub-query's own (site, since, to).
                    if v.is_empty() {
                        params.extend([site_id.into(), since.into(), to.into()]);
                    } else {
                        params.push(v.into());
                    }
                }
                let mut stmt = conn.prepare(&sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                let mut evs = Vec::new();
                while let Some(row) = rows.next()? {
                    if let Some(ev) = ev_from_sqlite(row)? {
                        evs.push(ev);
                    }
                }
                Ok(sessionise(evs))
            })
            .await;
    }
    // Number the placeholders for PostgreSQL.
    let mut numbered = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            numbered.push_str(&format!("${n}"));
        } else {
            numbered.push(ch);
        }
    }
    let mut query = sqlx::query(&numbered)
        .persistent(false)
        .bind(site_id)
        .bind(since)
        .bind(to);
    for v in &values {
        if v.is_empty() {
            query = query.bind(site_id).bind(since).bind(to);
        } else {
            query = query.bind(v.as_str());
        }
    }
    let rows = query.fetch_all(&store.pool).await?;
    let mut evs = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(ev) = ev_from_row(row)? {
            evs.push(ev);
        }
    }
    Ok(sessionise(evs))
}

/// Applies events (any order; sorted here by time) to fresh visitors.
pub fn sessionise(evs: Vec<Ev>) -> Raw {
    let mut raw = Raw::default();
    raw.append(evs);
    raw
}

impl Raw {
    /// Applies more events (sorted here by time) after those applied so far. Applied in
    /// that order, like the rollup worker applies events in arrival order: an event older
    /// than one already applied joins the visit it falls in, or starts one.
    pub fn append(&mut self, mut evs: Vec<Ev>) {
        evs.sort_by_key(|e| (e.ts, e.seq));
        self.places.reserve(evs.len());
        // Events that join no visit (an engagement after its visit ended) are not kept.
        let mut kept = Vec::with_capacity(evs.len());
        for ev in &evs {
            let visitors = &mut self.visitors;
            let vi = *self
                .index
                .entry((ev.site_id, ev.visitor))
                .or_insert_with(|| {
                    visitors.push(Visitor::new(ev.site_id, ev.visitor));
                    visitors.len() - 1
                });
            let slot = self.visitors[vi].apply(ev, None);
            if let Some(slot) = slot {
                self.places.push((vi, slot));
            }
            kept.push(slot.is_some());
        }
        if kept.contains(&false) {
            let mut kept = kept.into_iter();
            evs.retain(|_| kept.next().unwrap_or(false));
        }
        if self.events.is_empty() {
            self.events = evs;
        } else {
            self.events.append(&mut evs);
        }
    }
}

fn value_of<'a>(dim: &Dim, ev: &'a Ev, visit: &'a Visit) -> Option<&'a str> {
    match dim.kind() {
        DimKind::Event => ev.event_value(dim.as_str()),
        DimKind::Visit | DimKind::Exit => visit.value(dim.as_str()),
    }
}

/// [`aggregate`] on a blocking thread (over a busy range it is a good part of a second of
/// CPU, which must not hold up the request handlers sharing a runtime thread). `starts` are
/// the first instants of the buckets, ascending; without them everything is bucket 0.
pub async fn aggregate_off_thread(
    raw: std::sync::Arc<Raw>,
    from: i64,
    to: i64,
    filters: Vec<(Dim, String)>,
    group: Option<Dim>,
    starts: Option<Vec<i64>>,
) -> Result<HashMap<(usize, String), Counts>, StoreError> {
    tokio::task::spawn_blocking(move || {
        let bucket_of = |ts: i64| match &starts {
            Some(starts) => starts.partition_point(|s| *s <= ts).checked_sub(1),
            None => Some(0),
        };
        aggregate(&raw, from, to, &filters, group.as_ref(), &bucket_of)
    })
    .await
    .map_err(|e| StoreError::ReadStopped(e.to_string()))
}

/// Counts per (bucket, value of `group`) of what passes `filters` in `[from, to)`. Without
/// `group`, the value is `""`. `bucket_of` places an instant in a bucket.
pub fn aggregate(
    raw: &Raw,
    from: i64,
    to: i64,
    filters: &[(Dim, String)],
    group: Option<&Dim>,
    bucket_of: &dyn Fn(i64) -> Option<usize>,
) -> HashMap<(usize, String), Counts> {
    let visit_filters: Vec<&(Dim, String)> = filters
        .iter()
        .filter(|(d, _)| d.kind() != DimKind::Event)
        .collect();
    let event_filters: Vec<&(Dim, String)> = filters
        .iter()
        .filter(|(d, _)| d.kind() == DimKind::Event)
        .collect();
    let visit_ok = |v: &Visit| {
        visit_filters
            .iter()
            .all(|(d, want)| v.value(d.as_str()) == Some(want.as_str()))
    };
    let by_page = group.is_some_and(|d| d.as_str() == "page");
    // Keys borrow the events' own strings: nothing is allocated per event.
    let mut out: HashMap<(usize, &str), Counts> = HashMap::new();
    let mut matched: HashSet<(usize, usize)> = HashSet::new();
    let mut seen_visitors: HashSet<(i64, i64, &str)> = HashSet::new();
    let mut seen_pages: HashSet<(usize, usize, &str, &str)> = HashSet::new();
    for (ev, vi, si) in raw.events_from(0) {
        if ev.kind == EvKind::Engagement {
            continue;
        }
        let visit = &raw.visitors[vi].slots[si].visit;
        if !visit_ok(visit)
            || !event_filters
                .iter()
                .all(|(d, want)| ev.event_value(d.as_str()) == Some(want.as_str()))
        {
            continue;
        }
        matched.insert((vi, si));
        if ev.ts < from || ev.ts >= to {
            continue;
        }
        let Some(b) = bucket_of(ev.ts) else { continue };
        let g = match group {
            None => Some(""),
            Some(d) => value_of(d, ev, visit),
        };
        let Some(g) = g else { continue };
        let c = out.entry((b, g)).or_default();
        let pageview = ev.kind == EvKind::Pageview;
        if pageview {
            c.pageviews += 1;
            if seen_pages.insert((vi, si, ev.path.as_str(), g)) {
                c.unique_pageviews += 1;
                if by_page {
                    c.visits += 1;
                }
            }
        } else {
            c.events += 1;
        }
        let counts_visitor = pageview || !by_page;
        let visitor = raw.visitors[vi].visitor;
        if counts_visitor && seen_visitors.insert((visitor, floor_day(visit.started_at), g)) {
            c.visitors += 1;
        }
    }
    for (vi, v) in raw.visitors.iter().enumerate() {
        for (si, slot) in v.slots.iter().enumerate() {
            let visit = &slot.visit;
            if visit.started_at < from
                || visit.started_at >= to
                || !visit_ok(visit)
                || (!event_filters.is_empty() && !matched.contains(&(vi, si)))
            {
                continue;
            }
            let g = match group {
                None => Some(""),
                Some(d) if d.kind() == DimKind::Event => None,
                Some(d) => visit.value(d.as_str()),
            };
            let (Some(g), Some(b)) = (g, bucket_of(visit.started_at)) else {
                continue;
            };
            let c = out.entry((b, g)).or_default();
            c.visits += 1;
            c.bounces += i64::from(visit.is_bounce());
            c.duration_ms += visit.duration_ms();
        }
    }
    out.into_iter()
        .map(|((b, g), c)| ((b, g.to_string()), c))
        .collect()
}
