//! Filtered queries, counted from one [`Digest`] per site and UTC day of the range.
//!
//! A digest is built from the day's raw events the first time a filtered query needs it
//! ([`super::raw::sessionise`], then [`Digest::build`]) and, once the day is over, stored in
//! `digests` so that later queries read it instead of the events. The rollup worker moves a
//! day's `digest_days.gen` whenever it counts an event of that day (also a late one, days
//! after), and a digest is used only while its `gen` is the day's: a digest is built from
//! the events and the `gen` of one snapshot, so an event stored after it was read moves the
//! `gen` past it once counted. A filtered answer is therefore as current as an unfiltered
//! one (both follow the rollup worker). A day that is over and has no `gen` has no counted
//! event: it is neither read nor built.
//!
//! Decoded digests are kept in memory for the queries that follow (an admin page view asks
//! eight at once): the first query that needs a day builds or reads it, the others wait for
//! it. At most [`KEPT_BYTES`] of them are kept (`TALLY_DIGEST_CACHE_MB`), the least
//! recently used dropped first, and none longer than [`MAX_AGE`] after its last use: an idle
//! server holds none. A query reads its days [`CHUNK_DAYS`] at a time, so a year holds at
//! most that many days in memory beyond the kept ones. A year of a site with 10 million
//! events a year takes about 150 MiB; kept, the filters someone clicks through over that
//! year are counted without reading the database again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Row;

use super::digest::{count_day, flatten, Acc, Builder, Counted, Digest, Layout, Want, HEAD};
use super::params::Dim;
use super::raw;
use crate::rollup::model::{floor_day, Counts, DAY_MS};
use crate::rollup::store::{ev_from_row, ev_from_sqlite, EV_COLUMNS};
use crate::store::{Dialect, Store, StoreError};

/// How long a decoded digest is kept after its last use.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// How many bytes of decoded digests are kept in memory at most, by default.
pub const KEPT_BYTES: usize = 256 << 20;
/// How long what is kept of a day not over (its visits, and what its digest needs of its
/// events: about 330 bytes an event, 25 MiB for the benchmark's 78,000 events of today,
/// where building today from nothing takes 50–110 ms) is kept after a query last used it.
/// Meanwhile the background builder keeps it up to date ([`refresh_open`]).
pub const OPEN_MAX_AGE: Duration = Duration::from_secs(3600);
/// A site whose day not over has at least this many events has it built by the background
/// builder, from the start and without waiting for a query, and kept whether queries use it
/// or not ([`DayCache::keep_open_from`]): building so many events from nothing (about 1 ms
/// per 1,000) would otherwise fall on the first filtered query after a start or a pause.
pub const OPEN_KEEP_EVENTS: usize = 20_000;
/// How often the background builder brings the kept days not over up to date.
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);
/// How many days a query reads and counts at a time.
pub const CHUNK_DAYS: usize = 16;

/// A decoded digest (or the pieces of it that queries read so far) and the `gen` it was
/// built at.
#[derive(Default)]
struct Slot {
    digest: Option<(i64, Arc<Digest>)>,
    used: Option<Instant>,
}

type Cell = Arc<tokio::sync::Mutex<Slot>>;

/// A day not over yet, as far as it was read.
struct Open {
    day: i64,
    gen: i64,
    /// SQLite: the largest event `seq` of the snapshot it was last read in.
    upto: i64,
    /// PostgreSQL: the `seq` of every event read.
    seen: std::collections::HashSet<i64>,
    raw: raw::Raw,
    /// What its digest was built from so far: the next build looks at the new events only.
    builder: Builder,
    digest: Arc<Digest>,
    used: Instant,
}

type OpenCell = Arc<tokio::sync::Mutex<Option<Open>>>;

/// The decoded digests (one per [`Store`] and its clones).
pub struct DayCache {
    slots: Mutex<HashMap<(i64, i64), Cell>>,
    /// Per site, the day not over yet (see [`open_digest`]).
    open: Mutex<HashMap<i64, OpenCell>>,
    built: AtomicU64,
    read: AtomicU64,
    read_bytes: AtomicU64,
    open_events: AtomicU64,
    /// How many bytes of digests are kept at most ([`KEPT_BYTES`] unless set).
    kept_bytes: AtomicUsize,
    /// From how many events a day not over is kept unused ([`OPEN_KEEP_EVENTS`] unless set).
    keep_open_from: AtomicUsize,
    /// How many bytes the kept digests held at the last trim (`/metrics`).
    pub held: prometheus_client::metrics::gauge::Gauge,
}

impl Default for DayCache {
    fn default() -> DayCache {
        DayCache {
            slots: Mutex::default(),
            open: Mutex::default(),
            built: AtomicU64::new(0),
            read: AtomicU64::new(0),
            read_bytes: AtomicU64::new(0),
            open_events: AtomicU64::new(0),
            kept_bytes: AtomicUsize::new(KEPT_BYTES),
            keep_open_from: AtomicUsize::new(OPEN_KEEP_EVENTS),
            held: Default::default(),
        }
    }
}

impl std::fmt::Debug for DayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DayCache")
            .field("built", &self.built())
            .field("read", &self.read())
            .finish_non_exhaustive()
    }
}

impl DayCache {
    /// How many digests were built from raw events so far.
    pub fn built(&self) -> u64 {
        self.built.load(Ordering::Relaxed)
    }

    /// Keeps at most `bytes` of decoded digests (0: none beyond the queries that use them).
    pub fn keep_at_most(&self, bytes: usize) {
        self.kept_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Keeps the day not over of every site with at least `events` events of it built and up
    /// to date, used or not (see [`OPEN_KEEP_EVENTS`]).
    pub fn keep_open_from(&self, events: usize) {
        self.keep_open_from.store(events, Ordering::Relaxed);
    }

    /// How many sites' days not over are kept.
    pub fn open_kept(&self) -> usize {
        self.open.lock().map_or(0, |open| open.len())
    }

    /// How many bytes the decoded digests kept hold.
    pub fn kept_bytes(&self) -> usize {
        let Ok(slots) = self.slots.lock() else {
            return 0;
        };
        slots
            .values()
            .filter_map(|cell| {
                let slot = cell.try_lock().ok()?;
                slot.digest.as_ref().map(|(_, d)| d.held_bytes())
            })
            .sum()
    }

    /// How many stored digests were read so far.
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// How many bytes of stored digests' pieces were read so far (their heads not counted).
    pub fn read_bytes(&self) -> u64 {
        self.read_bytes.load(Ordering::Relaxed)
    }

    /// How many events of days not over were read so far.
    pub fn open_events_read(&self) -> u64 {
        self.open_events.load(Ordering::Relaxed)
    }

    /// Forgets every decoded digest and the events of the days not over (the next query
    /// reads the database again).
    pub fn clear(&self) {
        self.clear_closed();
        if let Ok(mut open) = self.open.lock() {
            open.clear();
        }
    }

    /// Forgets the decoded digests of the days that are over (read again from the
    /// database by the next query), and keeps the days not over.
    pub fn clear_closed(&self) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.clear();
        }
    }

    fn open_cell(&self, site_id: i64) -> OpenCell {
        match self.open.lock() {
            Ok(mut open) => open.entry(site_id).or_default().clone(),
            Err(_) => OpenCell::default(),
        }
    }

    /// How many decoded digests are kept.
    pub fn kept(&self) -> usize {
        let Ok(slots) = self.slots.lock() else {
            return 0;
        };
        slots
            .values()
            .filter(|c| c.try_lock().is_ok_and(|s| s.digest.is_some()))
            .count()
    }

    fn cells(&self, site_id: i64, days: &[i64]) -> Vec<Cell> {
        let Ok(mut slots) = self.slots.lock() else {
            return days.iter().map(|_| Cell::default()).collect();
        };
        days.iter()
            .map(|day| slots.entry((site_id, *day)).or_default().clone())
            .collect()
    }

    /// Drops, as of `now`, the digests unused for [`MAX_AGE`], then the least recently used
    /// ones beyond the kept bytes, and the days not over unused for [`OPEN_MAX_AGE`] but
    /// those with [`OPEN_KEEP_EVENTS`]. What a query is using is left alone.
    pub fn trim(&self, now: Instant) {
        let big = self.keep_open_from.load(Ordering::Relaxed);
        if let Ok(mut open) = self.open.lock() {
            open.retain(|_, cell| {
                cell.try_lock().map_or(true, |o| {
                    o.as_ref().is_some_and(|o| {
                        now.duration_since(o.used) < OPEN_MAX_AGE || o.digest.events() >= big
                    })
                })
            });
        }
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        let mut kept: Vec<((i64, i64), Instant, usize)> = Vec::new();
        slots.retain(|key, cell| {
            let Ok(slot) = cell.try_lock() else {
                return true;
            };
            match (&slot.digest, slot.used) {
                (Some((_, d)), Some(used)) if now.duration_since(used) < MAX_AGE => {
                    kept.push((*key, used, d.held_bytes()));
                    true
                }
                _ => false,
            }
        });
        kept.sort_by_key(|(_, used, _)| std::cmp::Reverse(*used));
        let (mut total, most) = (0, self.kept_bytes.load(Ordering::Relaxed));
        let mut held = 0;
        for (key, _, bytes) in kept {
            total += bytes;
            if total > most {
                slots.remove(&key);
            } else {
                held = total;
            }
        }
        self.held.set(i64::try_from(held).unwrap_or(i64::MAX));
    }
}

/// The `gen` of each day of `[first, to)` that has one (the others are at 0).
async fn gens(
    store: &Store,
    site_id: i64,
    first: i64,
    to: i64,
) -> Result<HashMap<i64, i64>, StoreError> {
    let rows = sqlx::query(
        "SELECT day, gen FROM digest_days WHERE site_id = $1 AND day >= $2 AND day < $3",
    )
    .bind(site_id)
    .bind(first)
    .bind(to)
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// A day's digest as loaded: its `gen`, whether it was built (not read), how many bytes
/// of its stored pieces were read, and whether it was built in place of a stored digest of
/// the same `gen` that could not be read (another format, or damaged).
struct Loaded {
    gen: i64,
    digest: Digest,
    built: bool,
    read: usize,
    replaces: bool,
}

fn build(day: i64, evs: Vec<crate::rollup::model::Ev>) -> Digest {
    Digest::build(day, &raw::sessionise(evs))
}

/// A day to load, with what is in memory of it: its `gen` and digest.
type Wanted = (i64, Option<(i64, Arc<Digest>)>);

/// SQLite: reads or builds the digests of `days`, in one read transaction (one snapshot of
/// the events and the `gen`s). Of a stored digest only what `want` says is read, with
/// SQLite's incremental blob reads, and only those missing from the one in memory (a
/// filter on the page reads less than half of a day's bytes).
fn load_sqlite(
    conn: &rusqlite::Connection,
    site_id: i64,
    days: &[Wanted],
    want: &Want,
) -> Result<Vec<Loaded>, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let mut gen_stmt =
        tx.prepare_cached("SELECT gen FROM digest_days WHERE site_id = ?1 AND day = ?2")?;
    let mut stored_stmt =
        tx.prepare_cached("SELECT gen, rowid FROM digests WHERE site_id = ?1 AND day = ?2")?;
    let mut events_stmt = tx.prepare_cached(&format!(
        "SELECT {EV_COLUMNS} FROM events WHERE site_id = ?1 AND ts >= ?2 AND ts < ?3"
    ))?;
    let mut blob: Option<rusqlite::blob::Blob<'_>> = None;
    let mut out = Vec::with_capacity(days.len());
    for (day, have) in days {
        use rusqlite::OptionalExtension;
        let day = *day;
        let gen: i64 = gen_stmt
            .query_row(rusqlite::params![site_id, day], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let stored: Option<(i64, i64)> = stored_stmt
            .query_row(rusqlite::params![site_id, day], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let current = stored.filter(|(g, _)| *g == gen);
        if let Some((_, rowid)) = current {
            let b = match blob.as_mut() {
                Some(b) => {
                    b.reopen(rowid)?;
                    b
                }
                None => blob.insert(tx.blob_open(
                    rusqlite::DatabaseName::Attached("day_digests"),
                    "digests",
                    "data",
                    rowid,
                    true,
                )?),
            };
            let mut head = [0_u8; HEAD];
            let layout = match b.len() >= HEAD {
                true => {
                    b.read_at_exact(&mut head, 0)?;
                    Layout::read(&head, b.len())
                }
                false => None,
            };
            if let Some(layout) = layout {
                let have = have.as_ref().filter(|(g, _)| *g == gen);
                let mut read = 0;
                let path = want.path.as_deref();
                let have = have.map(|(_, d)| &**d);
                let digest = Digest::read(layout, want.needs_of(day), path, have, |at, buf| {
                    read += buf.len();
                    b.raw_read_at_exact(buf, at)
                })?;
                if let Some(digest) = digest {
                    out.push(Loaded {
                        gen,
                        digest,
                        built: false,
                        read,
                        replaces: false,
                    });
                    continue;
                }
            }
        }
        let mut rows = events_stmt.query(rusqlite::params![site_id, day, day + DAY_MS])?;
        let mut evs = Vec::new();
        while let Some(row) = rows.next()? {
            evs.extend(ev_from_sqlite(row)?);
        }
        out.push(Loaded {
            gen,
            digest: build(day, evs),
            built: true,
            read: 0,
            replaces: current.is_some(),
        });
    }
    drop((blob, gen_stmt, stored_stmt, events_stmt));
    tx.rollback()?;
    if out.iter().any(|l| l.built) {
        crate::store::drop_read_map(conn)?;
    }
    Ok(out)
}

/// PostgreSQL: as [`load_sqlite`], in one repeatable-read transaction: the `gen`s and stored
/// digests of all of `days` in one query (a round trip per day was most of the time), then
/// the events of the days without a current digest.
async fn load_postgres(
    store: &Store,
    site_id: i64,
    days: &[i64],
) -> Result<Vec<Loaded>, StoreError> {
    let mut tx = store.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    // Days as a literal list of numbers (the `Any` driver binds no arrays).
    let list = days
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rows = sqlx::query(&format!(
        "SELECT x.day, COALESCE(d.gen, 0), g.gen, g.data \
         FROM (SELECT unnest(ARRAY[{list}]::BIGINT[]) AS day) x \
         LEFT JOIN digest_days d ON d.site_id = $1 AND d.day = x.day \
         LEFT JOIN digests g ON g.site_id = $1 AND g.day = x.day"
    ))
    .persistent(false)
    .bind(site_id)
    .fetch_all(&mut *tx)
    .await?;
    type Found = (i64, Option<(Digest, usize)>, bool);
    let mut found: HashMap<i64, Found> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let (day, gen): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let stored: Option<i64> = row.try_get(2)?;
        let current = stored == Some(gen);
        let digest = match current {
            true => {
                let data: Vec<u8> = row.try_get(3)?;
                Digest::decode(&data).map(|d| (d, data.len().saturating_sub(HEAD)))
            }
            false => None,
        };
        found.insert(day, (gen, digest, current));
    }
    drop(rows);
    let mut out = Vec::with_capacity(days.len());
    for &day in days {
        let (gen, stored, current) = found.remove(&day).unwrap_or((0, None, false));
        if let Some((digest, read)) = stored {
            out.push(Loaded {
                gen,
                digest,
                built: false,
                read,
                replaces: false,
            });
            continue;
        }
        let rows = sqlx::query(&format!(
            "SELECT {EV_COLUMNS} FROM events WHERE site_id = $1 AND ts >= $2 AND ts < $3"
        ))
        .persistent(false)
        .bind(site_id)
        .bind(day)
        .bind(day + DAY_MS)
        .fetch_all(&mut *tx)
        .await?;
        let mut evs = Vec::with_capacity(rows.len());
        for row in &rows {
            evs.extend(ev_from_row(row)?);
        }
        drop(rows);
        let digest = tokio::task::spawn_blocking(move || build(day, evs))
            .await
            .map_err(|e| StoreError::ReadStopped(e.to_string()))?;
        out.push(Loaded {
            gen,
            digest,
            built: true,
            read: 0,
            replaces: current,
        });
    }
    tx.rollback().await?;
    Ok(out)
}

/// A stored digest is replaced by one of a later `gen`, or of the same `gen` when it could
/// not be read (`$6` = 1: another format, or damaged); never by another build of the same
/// `gen` otherwise, so that the pieces of one stored form that queries read at different
/// times belong together.
const STORE_DIGEST: &str = "INSERT INTO digests (site_id, day, gen, events, data) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (site_id, day) DO UPDATE SET gen = excluded.gen, \
    events = excluded.events, data = excluded.data WHERE excluded.gen > digests.gen \
    OR (excluded.gen = digests.gen AND $6 = 1)";

/// Stores the digest of a day that is over (one short write each: on SQLite, the event
/// writer waits for one at most).
async fn store_digest(store: &Store, site_id: i64, l: &Loaded) -> Result<(), StoreError> {
    let (day, gen, events) = (l.digest.day, l.gen, l.digest.events() as i64);
    let (data, replaces) = (l.digest.encode(), i64::from(l.replaces));
    if store.dialect == Dialect::Sqlite {
        return store
            .sqlite_write("digests", move |conn| {
                conn.prepare_cached(&STORE_DIGEST.replace('$', "?"))?
                    .execute(rusqlite::params![site_id, day, gen, events, data, replaces])?;
                Ok(())
            })
            .await;
    }
    sqlx::query(STORE_DIGEST)
        .bind(site_id)
        .bind(day)
        .bind(gen)
        .bind(events)
        .bind(data)
        .bind(replaces)
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// The digests of `days` as stored, or built from the events where none is current. On
/// SQLite, `split` reads the two halves of `days` at once, on two connections: reading and
/// decoding the digests is most of a filtered query's time, and each day is read whole in
/// one transaction either way.
async fn fetch(
    store: &Store,
    site_id: i64,
    mut days: Vec<Wanted>,
    want: Want,
    split: bool,
) -> Result<Vec<Loaded>, StoreError> {
    match store.dialect {
        Dialect::Sqlite if split && days.len() >= 2 => {
            let second = days.split_off(days.len().div_ceil(2));
            let other = want.clone();
            let (mut first, second) = tokio::try_join!(
                store.sqlite_read(move |conn| load_sqlite(conn, site_id, &days, &want)),
                store.sqlite_read(move |conn| load_sqlite(conn, site_id, &second, &other)),
            )?;
            first.extend(second);
            Ok(first)
        }
        Dialect::Sqlite => {
            store
                .sqlite_read(move |conn| load_sqlite(conn, site_id, &days, &want))
                .await
        }
        Dialect::Postgres => {
            let days: Vec<i64> = days.into_iter().map(|(day, _)| day).collect();
            load_postgres(store, site_id, &days).await
        }
    }
}

/// How many days the background builder builds per round.
pub const WARM_DAYS: i64 = 8;

/// The background builder: stores the digests of the days that are over and have none, or
/// a stale one, newest first, so that filtered queries find them ready (after an upgrade, a
/// late event, and every night for the day just over). After each round of [`WARM_DAYS`]
/// days it pauses twice as long as the round took (it takes at most a third of a core); 30 s
/// when nothing is left. Every [`REFRESH_EVERY`], and first of all, it brings the days not
/// over up to date ([`refresh_open`]). Runs until aborted.
pub async fn run(store: Store) {
    // Today's days first: they are what a query would build from nothing.
    let mut refreshed: Option<Instant> = None;
    loop {
        if refreshed.is_none_or(|at| at.elapsed() >= REFRESH_EVERY) {
            if let Err(e) = refresh_open(&store).await {
                tracing::warn!(error = %e, "bringing today's kept events up to date");
            }
            refreshed = Some(Instant::now());
        }
        let started = Instant::now();
        let pause = match warm(&store, WARM_DAYS).await {
            Ok(0) => Duration::from_secs(60),
            Ok(_) => (started.elapsed() * 2).max(Duration::from_millis(100)),
            Err(e) => {
                tracing::warn!(error = %e, "building day digests");
                Duration::from_secs(60)
            }
        };
        tokio::time::sleep(pause.min(REFRESH_EVERY)).await;
    }
}

/// Brings the events kept of the day not over, of every site a query kept them for, up to
/// date, and builds it for the sites with at least [`OPEN_KEEP_EVENTS`] events of it that
/// have none kept (after a start, or at midnight): a query after a long pause then reads
/// only what came since the last round, not hours of events. A site's kept day that is
/// over gives way to today's. This is no use by a query: what no query used for
/// [`OPEN_MAX_AGE`] is dropped first, unless it is that big. Returns how many sites' days
/// it brought up to date.
pub async fn refresh_open(store: &Store) -> Result<usize, StoreError> {
    store.days.trim(Instant::now());
    let Ok(mut sites) = store
        .days
        .open
        .lock()
        .map(|o| o.keys().copied().collect::<Vec<i64>>())
    else {
        return Ok(0);
    };
    let today = floor_day(crate::now_ms());
    // Each site's events of today counted up to the threshold at most (the time index).
    let big = store.days.keep_open_from.load(Ordering::Relaxed);
    let busy: Vec<i64> = sqlx::query_scalar(
        "SELECT s.id FROM sites s WHERE (SELECT COUNT(*) FROM (SELECT 1 FROM events e \
         WHERE e.site_id = s.id AND e.ts >= $1 AND e.ts < $2 LIMIT $3) x) >= $3",
    )
    .bind(today)
    .bind(today + DAY_MS)
    .bind(i64::try_from(big).unwrap_or(i64::MAX))
    .fetch_all(&store.pool)
    .await?;
    for site_id in busy {
        if !sites.contains(&site_id) {
            sites.push(site_id);
        }
    }
    for site_id in &sites {
        let gen = gens(store, *site_id, today, today + DAY_MS).await?;
        let gen = gen.get(&today).copied().unwrap_or(0);
        open_digest(store, *site_id, today, gen, false).await?;
    }
    Ok(sites.len())
}

/// Builds and stores the digests of up to `limit` days that are over and have no current
/// one, newest first; returns how many it stored.
pub async fn warm(store: &Store, limit: i64) -> Result<usize, StoreError> {
    let today = floor_day(crate::now_ms());
    let rows = sqlx::query(
        "SELECT d.site_id, d.day FROM digest_days d LEFT JOIN digests g \
         ON g.site_id = d.site_id AND g.day = d.day \
         WHERE d.day < $1 AND (g.gen IS NULL OR g.gen <> d.gen) \
         ORDER BY d.day DESC LIMIT $2",
    )
    .bind(today)
    .bind(limit)
    .fetch_all(&store.pool)
    .await?;
    let mut by_site: HashMap<i64, Vec<i64>> = HashMap::new();
    for row in &rows {
        by_site
            .entry(row.try_get(0)?)
            .or_default()
            .push(row.try_get(1)?);
    }
    let mut stored = 0;
    for (site_id, mut days) in by_site {
        days.sort_unstable();
        let days = days.into_iter().map(|day| (day, None)).collect();
        for l in fetch(store, site_id, days, Want::ALL, false).await? {
            if l.built {
                store.days.built.fetch_add(1, Ordering::Relaxed);
                store_digest(store, site_id, &l).await?;
                stored += 1;
            }
        }
    }
    Ok(stored)
}

/// The digests of `days` (ascending), from memory, the database or the events.
async fn digests(
    store: &Store,
    site_id: i64,
    days: &[i64],
    gens: &HashMap<i64, i64>,
    want: &Want,
    now_ms: i64,
) -> Result<Vec<Arc<Digest>>, StoreError> {
    let cache = &store.days;
    // Locked in ascending order by every query: two queries never wait for each other's.
    let mut slots = Vec::with_capacity(days.len());
    for cell in cache.cells(site_id, days) {
        slots.push(cell.lock_owned().await);
    }
    let current = |i: usize, slot: &Slot| {
        let gen = gens.get(&days[i]).copied().unwrap_or(0);
        slot.digest
            .as_ref()
            .is_some_and(|(g, d)| *g == gen && want.met_by(d))
    };
    let missing: Vec<(usize, i64)> = slots
        .iter()
        .enumerate()
        .filter(|(i, s)| !current(*i, s))
        .map(|(i, _)| (i, days[i]))
        .collect();
    if !missing.is_empty() {
        // What is in memory of a day is passed on: pieces read by another query are not
        // read again. A second query that needs other pieces of the same days reads all the
        // rest: the admin page asks for a breakdown by each dimension at once, and one more
        // read of every day is what costs, more than the bytes.
        let wanted: Vec<Wanted> = missing
            .iter()
            .map(|(i, day)| (*day, slots[*i].digest.clone()))
            .collect();
        let partial = wanted.iter().any(|(day, have)| {
            let gen = gens.get(day).copied().unwrap_or(0);
            have.as_ref().is_some_and(|(g, _)| *g == gen)
        });
        let want = match partial {
            true => Want {
                needs: Want::ALL.needs,
                path: want.path.clone(),
                counted: None,
            },
            false => want.clone(),
        };
        let loaded = fetch(store, site_id, wanted, want, true).await?;
        for ((i, day), l) in missing.into_iter().zip(loaded) {
            let counter = if l.built { &cache.built } else { &cache.read };
            counter.fetch_add(1, Ordering::Relaxed);
            cache.read_bytes.fetch_add(l.read as u64, Ordering::Relaxed);
            if l.built && day + DAY_MS <= now_ms {
                store_digest(store, site_id, &l).await?;
            }
            slots[i].digest = Some((l.gen, Arc::new(l.digest)));
        }
        // Dropped once unused for long enough even if no other query comes.
        let days = store.days.clone();
        tokio::spawn(async move {
            tokio::time::sleep(MAX_AGE).await;
            days.trim(Instant::now());
        });
    }
    let now = Instant::now();
    let out = slots
        .iter_mut()
        .filter_map(|s| {
            s.used = Some(now);
            s.digest.as_ref().map(|(_, d)| d.clone())
        })
        .collect();
    drop(slots);
    cache.trim(now);
    Ok(out)
}

/// The digest of a day not over yet. Its events are kept in memory, sessionised, and when
/// its `gen` moved only the events stored since are read and applied in arrival order,
/// like the rollup worker does; then the digest is built again from them. Once the day is
/// over, its digest is built from all its events in time order.
///
/// On SQLite events are numbered in commit order, so the new ones are those past the
/// largest `seq` seen. On PostgreSQL numbers are taken before commits, which can finish in
/// another order: the day's numbers are read (an index scan) and the events whose number
/// was not seen yet are fetched.
/// A query `uses` it (what no query used for [`OPEN_MAX_AGE`] is dropped).
async fn open_digest(
    store: &Store,
    site_id: i64,
    day: i64,
    gen: i64,
    uses: bool,
) -> Result<Arc<Digest>, StoreError> {
    let cell = store.days.open_cell(site_id);
    let mut open = cell.lock_owned().await;
    let now = Instant::now();
    if let Some(o) = open.as_mut().filter(|o| o.day == day && o.gen == gen) {
        if uses {
            o.used = now;
        }
        return Ok(o.digest.clone());
    }
    let previous = open.take();
    let used = match (uses, &previous) {
        (false, Some(o)) => o.used,
        _ => now,
    };
    let kept = previous.filter(|o| o.day == day);
    let since = kept.as_ref().map(|o| o.upto);
    let mut new_numbers = Vec::new();
    let (gen, upto, evs) = match store.dialect {
        Dialect::Sqlite => open_sqlite(store, site_id, day, since).await?,
        Dialect::Postgres => {
            let seen = kept.as_ref().map(|o| &o.seen);
            let (gen, numbers, evs) = open_postgres(store, site_id, day, seen).await?;
            new_numbers = numbers;
            (gen, 0, evs)
        }
    };
    store
        .days
        .open_events
        .fetch_add(evs.len() as u64, Ordering::Relaxed);
    let (mut raw, mut seen, mut builder) =
        kept.map(|o| (o.raw, o.seen, o.builder)).unwrap_or_default();
    seen.extend(new_numbers);
    let (raw, builder, digest) = tokio::task::spawn_blocking(move || {
        raw.append(evs);
        let digest = Arc::new(builder.build(day, &raw));
        // The builder keeps what it needs of them (their visits stay, for later events).
        raw.forget_events();
        (raw, builder, digest)
    })
    .await
    .map_err(|e| StoreError::ReadStopped(e.to_string()))?;
    store.days.built.fetch_add(1, Ordering::Relaxed);
    if since.is_none() {
        // Dropped once unused for long enough even if no other query comes.
        let days = store.days.clone();
        tokio::spawn(async move {
            tokio::time::sleep(OPEN_MAX_AGE).await;
            days.trim(Instant::now());
        });
    }
    *open = Some(Open {
        day,
        gen,
        upto,
        seen,
        raw,
        builder,
        digest: digest.clone(),
        used,
    });
    Ok(digest)
}

/// SQLite: the `gen` of `day`, the largest `seq`, and the day's events numbered up to it
/// (past `since`, when given), as of one snapshot. The whole day so far is read in two
/// halves at once, on two connections (stepping through the rows and making the events is
/// most of the time): each reads the events numbered up to the `seq` of the snapshot the
/// `gen` was read in, and later snapshots hold exactly those (SQLite numbers events in
/// commit order, and a day not over is never pruned). The halves are split at the time of
/// the site's event numbered halfway between its first of the day and that `seq`: events
/// are numbered about in the order of their time, so each half holds about as many, however
/// the day's traffic was spread over its hours.
async fn open_sqlite(
    store: &Store,
    site_id: i64,
    day: i64,
    since: Option<i64>,
) -> Result<(i64, i64, Vec<crate::rollup::model::Ev>), StoreError> {
    let end = day + DAY_MS;
    let (gen, upto, evs, mid) = store
        .sqlite_read(move |conn| {
            use rusqlite::OptionalExtension;
            let tx = conn.unchecked_transaction()?;
            let gen: i64 = tx
                .prepare_cached("SELECT gen FROM digest_days WHERE site_id = ?1 AND day = ?2")?
                .query_row(rusqlite::params![site_id, day], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            let upto: i64 = tx
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")?
                .query_row([], |r| r.get(0))?;
            if let Some(since) = since {
                // Past a `seq`: the rows by number (not through the time index).
                let evs = open_rows(&tx, site_id, (day, end), (since, upto))?;
                return Ok((gen, upto, Some(evs), day));
            }
            let first: Option<i64> = tx
                .prepare_cached(
                    "SELECT seq FROM events INDEXED BY events_site_ts WHERE site_id = ?1 \
                     AND ts >= ?2 AND ts < ?3 ORDER BY ts LIMIT 1",
                )?
                .query_row(rusqlite::params![site_id, day, end], |r| r.get(0))
                .optional()?;
            let mid: Option<i64> = match first {
                Some(first) => tx
                    .prepare_cached(
                        "SELECT ts FROM events NOT INDEXED WHERE seq >= ?1 AND seq <= ?2 \
                         AND site_id = ?3 AND ts >= ?4 AND ts < ?5 LIMIT 1",
                    )?
                    .query_row(
                        rusqlite::params![first + (upto - first) / 2, upto, site_id, day, end],
                        |r| r.get(0),
                    )
                    .optional()?,
                None => None,
            };
            let mid = mid.unwrap_or(day + (crate::now_ms().clamp(day, end) - day) / 2);
            Ok((gen, upto, None, mid))
        })
        .await?;
    if let Some(evs) = evs {
        return Ok((gen, upto, evs));
    }
    let (mut first, second) = tokio::try_join!(
        store.sqlite_read(move |conn| open_rows(conn, site_id, (day, mid), (-1, upto))),
        store.sqlite_read(move |conn| open_rows(conn, site_id, (mid, end), (-1, upto))),
    )?;
    first.extend(second);
    Ok((gen, upto, first))
}

/// SQLite: the events of a site in `[from, to)` numbered in `(after, upto]`, in time order;
/// with `after` at -1 through the time index, else by number.
fn open_rows(
    conn: &rusqlite::Connection,
    site_id: i64,
    (from, to): (i64, i64),
    (after, upto): (i64, i64),
) -> Result<Vec<crate::rollup::model::Ev>, StoreError> {
    let sql = match after {
        -1 => format!(
            "SELECT {EV_COLUMNS} FROM events WHERE site_id = ?1 AND ts >= ?2 \
             AND ts < ?3 AND ?4 = ?4 AND seq <= ?5"
        ),
        _ => format!(
            "SELECT {EV_COLUMNS} FROM events NOT INDEXED WHERE seq > ?4 AND seq <= ?5 \
             AND site_id = ?1 AND ts >= ?2 AND ts < ?3"
        ),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params![site_id, from, to, after, upto])?;
    let mut evs = Vec::new();
    while let Some(row) = rows.next()? {
        evs.extend(ev_from_sqlite(row)?);
    }
    Ok(evs)
}

/// PostgreSQL: the `gen` of `day`, the numbers of its events not in `seen` (all of them
/// without it) and those events, in one repeatable-read snapshot.
async fn open_postgres(
    store: &Store,
    site_id: i64,
    day: i64,
    seen: Option<&std::collections::HashSet<i64>>,
) -> Result<(i64, Vec<i64>, Vec<crate::rollup::model::Ev>), StoreError> {
    let mut tx = store.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let gen: i64 = sqlx::query("SELECT gen FROM digest_days WHERE site_id = $1 AND day = $2")
        .bind(site_id)
        .bind(day)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .unwrap_or(0);
    let in_day = "site_id = $1 AND ts >= $2 AND ts < $3";
    let mut evs = Vec::new();
    let mut read = |rows: Vec<sqlx::any::AnyRow>| -> Result<(), StoreError> {
        for row in &rows {
            evs.extend(ev_from_row(row)?);
        }
        Ok(())
    };
    let numbers: Vec<i64> = sqlx::query_scalar(&format!("SELECT seq FROM events WHERE {in_day}"))
        .bind(site_id)
        .bind(day)
        .bind(day + DAY_MS)
        .fetch_all(&mut *tx)
        .await?;
    let new: Vec<i64> = match seen {
        None => numbers,
        Some(seen) => numbers.into_iter().filter(|n| !seen.contains(n)).collect(),
    };
    if seen.is_none() {
        read(
            sqlx::query(&format!("SELECT {EV_COLUMNS} FROM events WHERE {in_day}"))
                .persistent(false)
                .bind(site_id)
                .bind(day)
                .bind(day + DAY_MS)
                .fetch_all(&mut *tx)
                .await?,
        )?;
    } else {
        // Numbers from the database, written as integer literals.
        for chunk in new.chunks(1_000) {
            let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
            let sql = format!(
                "SELECT {EV_COLUMNS} FROM events WHERE seq IN ({})",
                list.join(",")
            );
            read(
                sqlx::query(&sql)
                    .persistent(false)
                    .fetch_all(&mut *tx)
                    .await?,
            )?;
        }
    }
    tx.rollback().await?;
    Ok((gen, new, evs))
}

/// Counts per (bucket, value of `group`) of what passes `filters` in `[from, to)`, from the
/// day digests. `starts` are the first instants of the buckets, ascending; without them
/// everything is bucket 0.
pub async fn aggregate(
    store: &Store,
    site_id: i64,
    from: i64,
    to: i64,
    filters: &[(Dim, String)],
    group: Option<&Dim>,
    starts: Option<&[i64]>,
) -> Result<HashMap<(usize, String), Counts>, StoreError> {
    let first = floor_day(from);
    let days: Vec<i64> = (0..)
        .map(|i| first + i * DAY_MS)
        .take_while(|d| *d < to)
        .collect();
    let gens = gens(store, site_id, first, to).await?;
    let now_ms = crate::now_ms();
    let filters: Arc<[(Dim, String)]> = filters.into();
    let group = group.cloned();
    let counted = Counted {
        from,
        to,
        starts: starts.map(Into::into),
    };
    let want = Want {
        counted: Some(counted.clone()),
        ..Want::of(&filters, group.as_ref())
    };
    // The day not over yet is read in part (see `open_digest`).
    let open = match days.last() {
        Some(&last) if last + DAY_MS > now_ms => Some(last),
        _ => None,
    };
    // A day that is over and has no `gen` has no counted event: nothing to read or build.
    let closed: Vec<i64> = days[..days.len() - usize::from(open.is_some())]
        .iter()
        .copied()
        .filter(|day| gens.contains_key(day))
        .collect();
    let mut chunks: Vec<Option<&[i64]>> = closed.chunks(CHUNK_DAYS).map(Some).collect();
    if open.is_some() {
        chunks.push(None);
    }
    // Each chunk is counted on a blocking thread while the next one is read: on two cores,
    // the database's copy of the digests and the counting overlap. Two chunks are counted
    // at once, each into its own sums: when the days are in memory already there is nothing
    // to read, and counting takes both cores.
    let mut counting: [Option<tokio::task::JoinHandle<Acc>>; 2] = [None, None];
    let mut sums = [Acc::default(), Acc::default()];
    for (k, chunk) in chunks.into_iter().enumerate() {
        let loaded = match (chunk, open) {
            (Some(chunk), _) => digests(store, site_id, chunk, &gens, &want, now_ms).await?,
            (None, Some(day)) => {
                let gen = gens.get(&day).copied().unwrap_or(0);
                vec![open_digest(store, site_id, day, gen, true).await?]
            }
            (None, None) => Vec::new(),
        };
        let slot = k % 2;
        if let Some(previous) = counting[slot].take() {
            sums[slot] = previous
                .await
                .map_err(|e| StoreError::ReadStopped(e.to_string()))?;
        }
        let (filters, group, counted) = (filters.clone(), group.clone(), counted.clone());
        let mut acc = std::mem::take(&mut sums[slot]);
        counting[slot] = Some(tokio::task::spawn_blocking(move || {
            let bucket_of = |ts: i64| counted.bucket(ts);
            for d in &loaded {
                count_day(d, from, to, &filters, group.as_ref(), &bucket_of, &mut acc);
            }
            acc
        }));
    }
    for (slot, task) in counting.into_iter().enumerate() {
        if let Some(task) = task {
            sums[slot] = task
                .await
                .map_err(|e| StoreError::ReadStopped(e.to_string()))?;
        }
    }
    let [mut out, other] = sums;
    merge(&mut out, other);
    Ok(flatten(out))
}

/// Adds the sums of `other` to `out`.
fn merge(out: &mut Acc, other: Acc) {
    for (b, values) in other {
        let bucket = out.entry(b).or_default();
        if bucket.is_empty() {
            *bucket = values;
            continue;
        }
        for (value, c) in values {
            *bucket.entry(value).or_default() += c;
        }
    }
}

impl Store {
    /// Deletes the digests of days that begin before `cutoff_ms` (their raw events are
    /// being pruned; a later query builds what is left of them again).
    pub async fn prune_digests(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let mut n = 0;
        for table in ["digests", "digest_days"] {
            n += sqlx::query(&format!("DELETE FROM {table} WHERE day < $1"))
                .bind(cutoff_ms)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(cache: &DayCache, day: i64, used: Instant) {
        let cell = cache.cells(1, &[day]).remove(0);
        let mut slot = cell.try_lock().expect("free");
        let digest = Digest::build(day, &raw::Raw::default());
        slot.digest = Some((0, Arc::new(digest)));
        slot.used = Some(used);
    }

    #[test]
    fn unused_digests_are_dropped_after_max_age() {
        let cache = DayCache::default();
        let now = Instant::now();
        put(&cache, 0, now);
        put(&cache, DAY_MS, now);
        cache.trim(now + MAX_AGE / 2);
        assert_eq!(cache.kept(), 2);
        cache.trim(now + MAX_AGE);
        assert_eq!(cache.kept(), 0);
    }

    #[test]
    fn the_least_recently_used_go_beyond_the_kept_bytes() {
        let cache = DayCache::default();
        let now = Instant::now();
        for i in 0..3 {
            put(&cache, i * DAY_MS, now + Duration::from_secs(i as u64));
        }
        let each = cache.kept_bytes() / 3;
        cache.keep_at_most(2 * each);
        cache.trim(now + Duration::from_secs(3));
        assert_eq!(cache.kept(), 2);
        let slots = cache.slots.lock().expect("slots");
        assert!(!slots.contains_key(&(1, 0)), "the oldest use is dropped");
    }
}
