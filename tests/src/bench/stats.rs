//! Stats query latency on a year of traffic (default 10 million events), on SQLite and on
//! PostgreSQL (127.0.0.1:5432; skipped when unreachable or with `TALLY_BENCH_PG=0`).
//!
//! 1. Generates the events over 365 days with `ingest_server::demo::Generator` (thousands of
//!    Zipf-distributed pages, hundreds of referrers, ~100 countries, UTM on a fraction of
//!    visits, custom events with props, daily visitor ids) and inserts them in large
//!    transactions through `Store::insert_events`.
//! 2. Runs the rollup to completion (the same code as the background worker, in bigger
//!    chunks) and reports its rate.
//! 3. Runs each stats query (the `ingest_server::stats` functions the HTTP handlers call)
//!    over the last 7 days, 30 days and 12 months, `REPS` times, and reports p50 / p95.
//!    Filtered queries that the rollups cannot answer count from day digests
//!    (`ingest_server::stats::days`): the time the first of them takes to build the digests
//!    of the whole year is reported, then each query with the decoded digests dropped
//!    before every repetition and 20 new events of today stored and counted (as under live
//!    traffic; today's events are kept in memory as the server keeps them, and only the new
//!    ones read), over 12 months once more with the past days kept decoded between
//!    repetitions (as the server keeps them, `TALLY_DIGEST_CACHE_MB`), once more with
//!    nothing in memory, and one count of the raw events for comparison; then how long the
//!    background builder takes to build today after a start.
//!
//! `TALLY_BENCH_STATS_EVENTS` overrides the number of events (e.g. 200000 for a quick run);
//! `TALLY_BENCH_STATS_ONLY=TEXT` runs only the measurements whose label contains `TEXT`, or
//! one of `TEXT|TEXT…` (e.g. `12mo` or `filter[page]`; the digests are built anew only when
//! the label of that step matches, else the stored ones are used);
//! `TALLY_BENCH_EVERY_REP=1` prints the time of each repetition of each query, in order;
//! `TALLY_BENCH_FILTERED_REPS` overrides how often each filtered query is repeated (10; more
//! for a profile of one query);
//! `TALLY_BENCH_SQLITE=0` / `TALLY_BENCH_PG=0` skip a database; `TALLY_BENCH_SQLITE_PATH`
//! keeps the SQLite database at that path for a closer look afterwards; a path that already
//! holds the benchmark's events is queried again without generating them anew.

use std::time::Instant;

use anyhow::Context;
use ingest_server::demo::{day_factor, Generator, Profile};
use ingest_server::rollup::model::DAY_MS;
use ingest_server::stats::{self, Dim, Params};
use ingest_server::store::{NewEvent, Store};

use super::Row;

const REPS: usize = 25;
const FILTERED_REPS: usize = 10;
const DAYS: i64 = 365;

fn pg_admin_url() -> String {
    std::env::var("TALLY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Runs the stats benchmark on SQLite, then PostgreSQL.
pub async fn run(events: u64) -> anyhow::Result<Vec<Row>> {
    let events = std::env::var("TALLY_BENCH_STATS_EVENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(events);
    let mut rows = Vec::new();
    let dir = tempfile::tempdir()?;
    if std::env::var("TALLY_BENCH_SQLITE").as_deref() != Ok("0") {
        let path = std::env::var("TALLY_BENCH_SQLITE_PATH")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| dir.path().join("stats.db"));
        let url = format!("sqlite://{}", path.display());
        rows.extend(run_on("sqlite", &url, events).await?);
    }
    if std::env::var("TALLY_BENCH_PG").as_deref() != Ok("0") {
        match Store::connect(&pg_admin_url()).await {
            Ok(admin) => {
                let name = format!("tally_bench_stats_{}", std::process::id());
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&admin.pool)
                    .await?;
                let base = pg_admin_url();
                let url = format!(
                    "{}/{name}",
                    base.rsplit_once('/').map(|p| p.0).unwrap_or(&base)
                );
                let result = run_on("postgres", &url, events).await;
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&admin.pool)
                    .await;
                rows.extend(result?);
            }
            Err(e) => eprintln!("stats bench: PostgreSQL not reachable ({e}); skipped"),
        }
    }
    Ok(rows)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

/// Loads a year of traffic: returns the number of events stored.
async fn load(store: &Store, site_id: i64, events: u64, now: i64) -> anyhow::Result<u64> {
    let today = now.div_euclid(DAY_MS) * DAY_MS;
    let profile = Profile {
        pages: 5_000,
        referrer_hosts: 300,
    };
    let mut generator = Generator::new(site_id, &profile, 0x5eed);
    let factors: Vec<f64> = (0..DAYS)
        .map(|ago| day_factor(today - ago * DAY_MS, 0.002, ago))
        .collect();
    let scale = events as f64 / factors.iter().sum::<f64>();
    let mut stored = 0u64;
    let mut pending: Vec<NewEvent> = Vec::new();
    for ago in (0..DAYS).rev() {
        let day = today - ago * DAY_MS;
        pending.extend(generator.day(day, (factors[ago as usize] * scale) as usize, now));
        if pending.len() >= 50_000 || ago == 0 {
            let inserted = store.insert_events(std::mem::take(&mut pending)).await?;
            stored += inserted.iter().filter(|&&new| new).count() as u64;
        }
        if ago % 60 == 0 {
            eprintln!("  {stored} events stored ({ago} days to go)");
        }
    }
    Ok(stored)
}

fn params(site: &str, range: &str, extra: &[(&str, &str)], now: i64) -> anyhow::Result<Params> {
    let today = chrono::DateTime::from_timestamp_millis(now)
        .context("now")?
        .date_naive();
    let days = match range {
        "7d" => 7,
        "30d" => 30,
        _ => 365,
    };
    let from = today - chrono::Days::new(days - 1);
    let mut pairs = vec![
        ("site".to_string(), site.to_string()),
        ("from".to_string(), from.to_string()),
        ("to".to_string(), today.to_string()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Ok(stats::parse(&pairs, now)?)
}

/// A named query with its extra parameters.
type Case = (&'static str, Query, &'static [(&'static str, &'static str)]);

#[derive(Clone, Copy)]
enum Query {
    Summary,
    Timeseries,
    Breakdown(&'static str),
    Realtime,
    /// A filtered view of the admin page: the summary, the timeseries and the breakdown of
    /// each panel's first tab, at once (sharing the days they read).
    View,
    /// A filtered summary of this period counted from the raw events (the reference).
    RawSummary,
}

/// The dimensions of the admin page's panels, first tab each.
const VIEW_DIMS: [&str; 6] = ["referrer", "page", "country", "browser", "event", "user"];

async fn once(store: &Store, site: i64, q: Query, p: &Params, now: i64) -> anyhow::Result<()> {
    match q {
        Query::Summary => {
            stats::summary(store, site, p).await?;
        }
        Query::Timeseries => {
            stats::timeseries(store, site, p).await?;
        }
        Query::Breakdown(dim) => {
            let dim = Dim::parse(dim).context("dim")?;
            stats::breakdown(store, site, p, &dim).await?;
        }
        Query::Realtime => {
            stats::realtime(store, site, now).await?;
        }
        Query::View => {
            let dims: Vec<Dim> = VIEW_DIMS.iter().filter_map(|d| Dim::parse(d)).collect();
            let breakdowns = dims.iter().map(|d| stats::breakdown(store, site, p, d));
            let (summary, series, breakdowns) = tokio::join!(
                stats::summary(store, site, p),
                stats::timeseries(store, site, p),
                futures_util::future::join_all(breakdowns)
            );
            summary?;
            series?;
            for b in breakdowns {
                b?;
            }
        }
        Query::RawSummary => {
            stats::raw_totals(store, site, &p.filters, p.from, p.to).await?;
        }
    }
    Ok(())
}

/// What a repetition starts from.
#[derive(Clone, Copy, PartialEq)]
enum Start {
    /// Nothing kept in memory.
    Cold,
    /// Under live traffic: 20 new events of today stored and counted since the last query,
    /// the decoded days that are over dropped (read back from the database), today's events
    /// kept as the server keeps them (`stats::days`).
    Live,
    /// Under live traffic as [`Start::Live`], the days that are over kept decoded as the
    /// server keeps them (`TALLY_DIGEST_CACHE_MB`): as when someone clicks through the page.
    Warm,
}

/// Stores and counts 20 events of now (two visits on `/pricing` and `/`).
/// Numbers the live events of a run: each id is new, in every measurement of the run (an
/// id seen before would be a duplicate, not stored, and the repetition would not be live).
static LIVE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

async fn live_events(store: &Store, site: i64) -> anyhow::Result<()> {
    let now = ingest_server::now_ms();
    let events = (0..20)
        .map(|i| {
            let seq = LIVE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            NewEvent {
                id: format!("live-{}-{seq}", std::process::id()),
                site_id: site,
                kind: "pageview",
                ts: now,
                client_ts: now,
                edge_at: None,
                batch: None,
                received_at: now,
                visitor: 1_000_000_000 + (seq as i64 / 10),
                path: if i % 2 == 0 { "/pricing" } else { "/" }.into(),
                referrer: None,
                utm_source: None,
                utm_medium: None,
                utm_campaign: None,
                utm_term: None,
                utm_content: None,
                country: Some("US".into()),
                browser: Some("Firefox".into()),
                os: Some("Linux".into()),
                device: Some("mobile".into()),
                screen: None,
                logged_in: Some(false),
                name: None,
                props: None,
                engaged_ms: None,
            }
        })
        .collect();
    store.insert_events(events).await?;
    ingest_server::rollup::roll_up_now(store).await?;
    Ok(())
}

async fn measure(
    store: &Store,
    site: i64,
    q: Query,
    p: &Params,
    now: i64,
    reps: usize,
) -> anyhow::Result<(f64, f64)> {
    measure_from(store, site, q, p, now, reps, Start::Cold).await
}

async fn measure_from(
    store: &Store,
    site: i64,
    q: Query,
    p: &Params,
    now: i64,
    reps: usize,
    start: Start,
) -> anyhow::Result<(f64, f64)> {
    once(store, site, q, p, now).await?; // warm-up
    let mut ms = Vec::with_capacity(reps);
    for _ in 0..reps {
        // Each repetition reads for itself: days decoded by the one before are not reused
        // (see `stats::days`).
        match start {
            Start::Cold => store.days.clear(),
            Start::Live => {
                live_events(store, site).await?;
                store.days.clear_closed();
            }
            Start::Warm => live_events(store, site).await?,
        }
        let built = store.days.built();
        let t = Instant::now();
        once(store, site, q, p, now).await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        // Under live traffic, today's digest is built again at every repetition.
        if start != Start::Cold && !matches!(q, Query::RawSummary) {
            anyhow::ensure!(
                store.days.built() > built,
                "a live repetition built nothing"
            );
        }
    }
    if std::env::var_os("TALLY_BENCH_EVERY_REP").is_some() {
        eprintln!("    each repetition, in order: {ms:.1?} ms");
    }
    ms.sort_by(f64::total_cmp);
    Ok((percentile(&ms, 0.5), percentile(&ms, 0.95)))
}

async fn run_on(db: &str, url: &str, events: u64) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let store = Store::open(url).await?;
    let (site, _) = store.add_site("bench.example").await?;
    let now = ingest_server::now_ms();
    let filled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM events LIMIT 1) t")
        .fetch_one(&store.pool)
        .await?;
    if filled > 0 {
        eprintln!("stats bench ({db}): querying the events already stored");
    } else {
        generate(db, &store, site.id, events, now, &mut rows).await?;
    }
    queries(db, &store, site.id, now, &mut rows).await?;
    store.close().await;
    Ok(rows)
}

/// Generates, stores and rolls up the events of the benchmark.
async fn generate(
    db: &str,
    store: &Store,
    site_id: i64,
    events: u64,
    now: i64,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    eprintln!("stats bench ({db}): generating and inserting {events} events over {DAYS} days");
    let t = Instant::now();
    let stored = load(store, site_id, events, now).await?;
    let secs = t.elapsed().as_secs_f64();
    eprintln!("  inserted in {secs:.0} s");
    rows.push(Row::new(
        format!("stats {db}: insert {stored} events (365 days)"),
        format!("{secs:.0} s ({:.0} events/s)", stored as f64 / secs),
    ));
    eprintln!("stats bench ({db}): rolling up");
    let t = Instant::now();
    // A database busy with the bulk load (checkpoints, autovacuum) may time out a round;
    // the background worker would retry it, so does the benchmark.
    let mut rolled = 0;
    for attempt in 1.. {
        match ingest_server::rollup::roll_up_all(store, 20_000).await {
            Ok(n) => {
                rolled += n;
                break;
            }
            Err(e) if attempt < 5 => eprintln!("  rollup round failed ({e}); retrying"),
            Err(e) => return Err(e.into()),
        }
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!("  rolled up in {secs:.0} s");
    rows.push(Row::new(
        format!("stats {db}: rollup of {rolled} events"),
        format!("{secs:.0} s ({:.0} events/s)", rolled as f64 / secs),
    ));
    // The server copies the write-ahead log into the database every second; the bulk load
    // here ran without it, so the queries would otherwise read every page through the log.
    store.checkpoint().await?;
    // PostgreSQL's planner needs statistics of the bulk-loaded tables, which autovacuum
    // gathers only later; without them it joins the raw filters' sub-selects by nested loops.
    if store.dialect == ingest_server::store::Dialect::Postgres {
        sqlx::query("ANALYZE").execute(&store.pool).await?;
    }
    Ok(())
}

/// Runs each query and records its figures.
async fn queries(
    db: &str,
    store: &Store,
    site_id: i64,
    now: i64,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    eprintln!("stats bench ({db}): queries");
    let only = std::env::var("TALLY_BENCH_STATS_ONLY").ok();
    let wanted = |label: &str| {
        only.as_deref()
            .is_none_or(|o| o.split('|').any(|o| label.contains(o)))
    };
    let queries: [Case; 10] = [
        ("summary", Query::Summary, &[]),
        ("timeseries day", Query::Timeseries, &[("interval", "day")]),
        (
            "timeseries day Europe/Berlin",
            Query::Timeseries,
            &[("interval", "day"), ("tz", "Europe/Berlin")],
        ),
        ("breakdown page", Query::Breakdown("page"), &[]),
        ("breakdown entry_page", Query::Breakdown("entry_page"), &[]),
        ("breakdown referrer", Query::Breakdown("referrer"), &[]),
        ("breakdown country", Query::Breakdown("country"), &[]),
        ("breakdown event", Query::Breakdown("event"), &[]),
        (
            "summary filter[country]=DE",
            Query::Summary,
            &[("filter[country]", "DE")],
        ),
        ("realtime", Query::Realtime, &[]),
    ];
    for (name, q, extra) in queries {
        for range in ["7d", "30d", "12mo"] {
            if matches!(q, Query::Realtime) && range != "7d" {
                continue;
            }
            let label = if matches!(q, Query::Realtime) {
                format!("stats {db}: realtime p50 / p95")
            } else {
                format!("stats {db}: {name} {range} p50 / p95")
            };
            if !wanted(&label) {
                continue;
            }
            let p = params("bench.example", range, extra, now)?;
            let (p50, p95) = measure(store, site_id, q, &p, now, REPS).await?;
            eprintln!("  {label:<70} {p50:.1} / {p95:.1} ms");
            rows.push(Row::new(label, format!("{p50:.1} / {p95:.1} ms")));
        }
    }
    // Filters that the rollups cannot answer: counted from day digests. The first such query
    // over the year builds them all (stored ones are dropped first, so a database kept from an
    // earlier run measures the same).
    let label = format!("stats {db}: first filtered query of 12 months, building the day digests");
    if wanted(&label) {
        build_digests(store, site_id, now, label, rows).await?;
    }
    // As the server does every second: a database opened again may still have its last
    // digests in the write-ahead log, which readers would then read page by page from there.
    store.checkpoint().await?;
    let filtered: [Case; 5] = [
        (
            "summary filter[page]=/pricing",
            Query::Summary,
            &[("filter[page]", "/pricing")],
        ),
        (
            "timeseries day filter[page]=/pricing",
            Query::Timeseries,
            &[("filter[page]", "/pricing"), ("interval", "day")],
        ),
        (
            "breakdown page filter[country]=US&filter[device]=mobile",
            Query::Breakdown("page"),
            &[("filter[country]", "US"), ("filter[device]", "mobile")],
        ),
        (
            "admin view filter[page]=/pricing: 8 queries at once",
            Query::View,
            &[("filter[page]", "/pricing"), ("interval", "day")],
        ),
        (
            "summary filter[page]=/pricing from the raw events (reference)",
            Query::RawSummary,
            &[("filter[page]", "/pricing")],
        ),
    ];
    let ranges = [
        ("7d", Start::Live, ""),
        ("30d", Start::Live, ""),
        ("12mo", Start::Live, ""),
        ("12mo", Start::Warm, ", past days kept in memory"),
    ];
    for (name, q, extra) in filtered {
        for (range, start, how) in ranges {
            if matches!(q, Query::RawSummary) && range == "12mo" {
                continue;
            }
            let label = format!("stats {db}: {name} {range}{how} p50 / p95");
            if !wanted(&label) {
                continue;
            }
            let p = params("bench.example", range, extra, now)?;
            let (p50, p95) =
                measure_from(store, site_id, q, &p, now, filtered_reps(), start).await?;
            eprintln!("  {label:<70} {p50:.1} / {p95:.1} ms");
            rows.push(Row::new(label, format!("{p50:.1} / {p95:.1} ms")));
        }
    }
    // What the kept days hold after the 12-month queries (they are kept as the server keeps
    // them), and this process's own resident memory with them (`RssAnon`: not the pages of
    // the mapped database files, which are the system's file cache).
    let label = format!("stats {db}: day digests kept in memory after the filtered 12mo queries");
    if wanted(&label) && store.days.kept_bytes() > 0 {
        // What was freed handed back first, as the server does every few seconds.
        ingest_server::memory::release();
        let rss = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("RssAnon:"))?;
                line.split_whitespace().nth(1)?.parse::<f64>().ok()
            })
            .map_or_else(String::new, |kib| {
                format!(", the benchmark's anonymous RSS {:.0} MiB", kib / 1024.0)
            });
        let figure = format!(
            "{:.1} MiB{rss}",
            store.days.kept_bytes() as f64 / 1_048_576.0
        );
        eprintln!("  {label:<70} {figure}");
        rows.push(Row::new(label, figure));
    }
    // The first filtered query after a start: today's events so far read whole.
    let label =
        format!("stats {db}: summary filter[page]=/pricing 30d, nothing in memory p50 / p95");
    if wanted(&label) {
        let p = params("bench.example", "30d", &[("filter[page]", "/pricing")], now)?;
        let (p50, p95) = measure(store, site_id, Query::Summary, &p, now, filtered_reps()).await?;
        eprintln!("  {label:<70} {p50:.1} / {p95:.1} ms");
        rows.push(Row::new(label, format!("{p50:.1} / {p95:.1} ms")));
    }
    // What the server does instead right after a start, before any query: the background
    // builder's first round builds today (a busy site's) and keeps it.
    let label = format!("stats {db}: today built by the background builder after a start");
    if !wanted(&label) {
        return Ok(());
    }
    let mut ms = Vec::new();
    let mut events = 0;
    for _ in 0..filtered_reps() {
        store.days.clear();
        let read = store.days.open_events_read();
        let t = Instant::now();
        ingest_server::stats::days::refresh_open(store).await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        events = store.days.open_events_read() - read;
        anyhow::ensure!(events > 0, "the background builder built nothing");
    }
    ms.sort_by(f64::total_cmp);
    let figure = format!(
        "{:.1} / {:.1} ms ({events} events)",
        percentile(&ms, 0.5),
        percentile(&ms, 0.95)
    );
    eprintln!("  {label:<70} {figure}");
    rows.push(Row::new(label, figure));
    Ok(())
}

/// How often each filtered query is repeated.
fn filtered_reps() -> usize {
    std::env::var("TALLY_BENCH_FILTERED_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(FILTERED_REPS)
}

/// Drops the stored digests and measures the first filtered query over 12 months, which
/// builds them all.
async fn build_digests(
    store: &Store,
    site_id: i64,
    now: i64,
    label: String,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM digests")
        .execute(&store.pool)
        .await?;
    store.days.clear();
    let p = params(
        "bench.example",
        "12mo",
        &[("filter[page]", "/pricing")],
        now,
    )?;
    let t = Instant::now();
    once(store, site_id, Query::Summary, &p, now).await?;
    let secs = t.elapsed().as_secs_f64();
    // The server checkpoints the write-ahead log every second; without it, every digest
    // just stored would be read from the log.
    store.checkpoint().await?;
    let (days, bytes): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM digests")
            .fetch_one(&store.pool)
            .await?;
    let figure = format!(
        "{secs:.1} s ({days} days stored, {:.1} MiB)",
        bytes as f64 / 1_048_576.0
    );
    eprintln!("  {label:<70} {figure}");
    rows.push(Row::new(label, figure));
    Ok(())
}
