//! Ingest throughput and latency against the real release binary, over loopback HTTP.
//!
//! - batched: concurrent clients posting bodies of 50 events to `/api/event`, SQLite and
//!   PostgreSQL; the figure is events acknowledged (`202`) per second;
//! - single: one event per request; requests per second;
//! - baseline: the same single-event load against an axum handler that reads the body and
//!   answers `202` without doing anything (`bench noop-server`), in its own process too;
//! - latency: an open-loop load at a fixed rate (default 10,000 req/s) of single-event
//!   requests, latency measured from each request's scheduled start (so a stalled server
//!   cannot hide its queueing), p50 / p99;
//! - memory: the server's peak RSS (`VmHWM`) after all of it.
//!
//! The load generator runs on the same 2-core machine as the server, so every figure is a
//! lower bound of what the server does on its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;

use super::Row;

pub const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seconds each throughput phase lasts.
    pub seconds: u64,
    /// Seconds the fixed-rate latency phase lasts (longer than a throughput phase: at
    /// 10,000 requests/s one stall of the machine of 100 ms holds up 1,000 requests, which
    /// over 10 s would be the whole 99th percentile).
    pub latency_seconds: u64,
    /// Concurrent client connections.
    pub concurrency: usize,
    /// Target rate of the latency phase.
    pub rate: u64,
    /// Run the PostgreSQL phase (needs the server on 127.0.0.1:5432).
    pub postgres: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            seconds: 10,
            latency_seconds: 30,
            concurrency: 128,
            rate: 10_000,
            postgres: true,
        }
    }
}

/// The workspace root (the bench runs from anywhere inside it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Builds and returns the release `ingest-server` binary.
pub fn release_binary() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    // The `cargo` on PATH (rustup's proxy), so the workspace's toolchain is used for every crate.
    let status = Command::new("cargo")
        .args(["build", "--release", "-q", "-p", "ingest-server"])
        .current_dir(&root)
        .status()
        .context("cargo build")?;
    anyhow::ensure!(status.success(), "building ingest-server failed");
    Ok(root.join("target/release/ingest-server"))
}

/// A child process serving on a free loopback port; killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Peak resident memory of the process, in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_ready(base: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("server at {base} did not start")
}

/// Starts the ingest server on `database_url` with one registered site, `example.com`.
pub async fn start_ingest(
    binary: &Path,
    database_url: &str,
    extra_env: &[(&str, &str)],
) -> anyhow::Result<Server> {
    let status = Command::new(binary)
        .args(["--database-url", database_url, "site", "add", "example.com"])
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "site add failed");
    let port = free_port()?;
    let mut cmd = Command::new(binary);
    cmd.args([
        "--database-url",
        database_url,
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--rate-limit",
        "0",
        "serve",
    ])
    .env("TALLY_LOG", "warn")
    .stdout(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let server = Server {
        child: cmd.spawn().context("spawning ingest-server")?,
        base: format!("http://127.0.0.1:{port}"),
    };
    wait_ready(&server.base).await?;
    Ok(server)
}

/// Starts the no-op baseline (`bench noop-server`) as a child process.
pub async fn start_noop() -> anyhow::Result<Server> {
    let port = free_port()?;
    // This very binary; if it was rebuilt while running, the fresh copy at the same path.
    let exe = std::env::current_exe()
        .ok()
        .filter(|p| p.exists())
        .unwrap_or_else(|| workspace_root().join("target/release/bench"));
    let server = Server {
        child: Command::new(exe)
            .args(["noop-server", "--listen", &format!("127.0.0.1:{port}")])
            .spawn()
            .context("spawning the no-op server")?,
        base: format!("http://127.0.0.1:{port}"),
    };
    wait_ready(&server.base).await?;
    Ok(server)
}

/// The no-op baseline: reads the body and answers like the collector would, doing nothing.
pub async fn serve_noop(listen: &str) -> anyhow::Result<()> {
    use axum::routing::{get, post};
    let router = axum::Router::new()
        .route(
            "/api/event",
            post(|body: axum::body::Bytes| async move {
                let n = body.len().min(1);
                (
                    axum::http::StatusCode::ACCEPTED,
                    axum::Json(serde_json::json!({"accepted": n, "duplicates": 0})),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, router).await?;
    Ok(())
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A fresh ULID-shaped id: time in the high bits, a process-wide counter in the low ones.
pub fn event_id() -> String {
    const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut v: u128 = (u128::from(ms) << 80)
        | (u128::from(std::process::id()) << 48)
        | u128::from(SEQ.fetch_add(1, Ordering::Relaxed));
    let mut out = [b'0'; 26];
    for slot in out.iter_mut().rev() {
        *slot = CROCKFORD[(v & 31) as usize];
        v >>= 5;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request body of `n` page views of example.com.
pub fn body(n: usize) -> String {
    let mut s = String::from(r#"{"site":"example.com","events":["#);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"id":"{}","kind":"pageview","url":"https://example.com/page/{}","referrer":"https://news.ycombinator.com/","screen":1440,"ts":1732380000000}}"#,
            event_id(),
            i % 40
        ));
    }
    s.push_str("]}");
    s
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default()
}

async fn post(client: &reqwest::Client, url: &str, body: String) -> Option<u64> {
    let r = client
        .post(url)
        .header("content-type", "text/plain;charset=UTF-8")
        .header("user-agent", UA)
        .body(body)
        .send()
        .await
        .ok()?;
    if r.status().as_u16() != 202 {
        return None;
    }
    let v: serde_json::Value = r.json().await.ok()?;
    v["accepted"].as_u64()
}

/// Closed-loop load: `concurrency` clients posting `per_request` events for `seconds`.
/// Returns (requests acknowledged per second, events accepted per second).
pub async fn closed_loop(
    base: &str,
    per_request: usize,
    concurrency: usize,
    seconds: u64,
) -> (f64, f64) {
    let url = format!("{base}/api/event");
    let requests = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    let client = client();
    for _ in 0..concurrency {
        let (client, url, requests, events) = (
            client.clone(),
            url.clone(),
            requests.clone(),
            events.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                if let Some(n) = post(&client, &url, body(per_request)).await {
                    requests.fetch_add(1, Ordering::Relaxed);
                    events.fetch_add(n, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    (
        requests.load(Ordering::Relaxed) as f64 / secs,
        events.load(Ordering::Relaxed) as f64 / secs,
    )
}

/// What [`open_loop`] measured: latency from each request's scheduled start.
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Requests answered per second.
    pub achieved: f64,
    pub errors: u64,
}

impl Latency {
    fn row(&self, rate: u64, what: &str) -> Row {
        Row::new(
            format!(
                "latency at {rate} req/s (achieved {:.0}/s, {} errors), {what}",
                self.achieved, self.errors
            ),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.1} ms",
                self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms
            ),
        )
    }
}

/// Open-loop load at `rate` single-event requests per second for `seconds`; latency in µs
/// from each request's scheduled start.
pub async fn open_loop(base: &str, rate: u64, seconds: u64) -> Latency {
    let url = format!("{base}/api/event");
    let hist = Arc::new(std::sync::Mutex::new(
        Histogram::<u64>::new(3).expect("histogram"),
    ));
    let errors = Arc::new(AtomicU64::new(0));
    let client = client();
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    // At most this many requests in flight (and connections open); a request that has to
    // wait for a slot still has its latency counted from its scheduled start.
    let slots = Arc::new(tokio::sync::Semaphore::new(1024));
    // Requests are released by a thread of their own, with the system's sleep: tokio's
    // timer ticks once a millisecond, so pacing 10,000 requests a second with it released
    // them in bursts of ten, up to a tick late, and that lateness counted as latency.
    let runtime = tokio::runtime::Handle::current();
    let (pacer_hist, pacer_errors) = (hist.clone(), errors.clone());
    let pacer = std::thread::spawn(move || {
        let (hist, errors) = (pacer_hist, pacer_errors);
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            let scheduled = started + interval.mul_f64(i as f64);
            let now = Instant::now();
            if scheduled > now {
                std::thread::sleep(scheduled - now);
            }
            let (client, url, hist, errors, slots) = (
                client.clone(),
                url.clone(),
                hist.clone(),
                errors.clone(),
                slots.clone(),
            );
            tasks.push(runtime.spawn(async move {
                let Ok(_slot) = slots.acquire().await else {
                    return;
                };
                let ok = post(&client, &url, body(1)).await.is_some();
                let micros = scheduled.elapsed().as_micros() as u64;
                if ok {
                    if let Ok(mut h) = hist.lock() {
                        let _ = h.record(micros.max(1));
                    }
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        tasks
    });
    let tasks = tokio::task::spawn_blocking(move || pacer.join())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let h = hist
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| Histogram::new(3).expect("histogram"));
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Latency {
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: h.max() as f64 / 1000.0,
        achieved: h.len() as f64 / secs,
        errors: errors.load(Ordering::Relaxed),
    }
}

/// A histogram of the server's `/metrics`, by name and the labels that follow `le` (`""`
/// or `,route="…"`): (upper bound in seconds, cumulative count) per bucket.
async fn buckets(base: &str, name: &str, labels: &str) -> anyhow::Result<Vec<(f64, u64)>> {
    let prefix = format!("{name}_bucket{{le=\"");
    let suffix = format!("\"{labels}}} ");
    let text = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((le, count)) = rest.split_once(&suffix) else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse()?
        };
        out.push((le, count.trim().parse()?));
    }
    Ok(out)
}

/// The observations between two snapshots of [`buckets`]: how many, the buckets holding the
/// median and the 99th percentile, and the bucket of the slowest.
fn bucket_summary(before: &[(f64, u64)], after: &[(f64, u64)]) -> String {
    // A series created during the phase had nothing before it.
    let diff: Vec<(f64, u64)> = after
        .iter()
        .enumerate()
        .map(|(i, (le, a))| (*le, a.saturating_sub(before.get(i).map_or(0, |b| b.1))))
        .collect();
    if diff.last().is_none_or(|d| d.1 == 0) {
        return "0".into();
    }
    let total = diff.last().map_or(0, |d| d.1);
    let at = |q: f64| {
        let want = (total as f64 * q).ceil() as u64;
        diff.iter()
            .find(|d| d.1 >= want)
            .map_or(f64::INFINITY, |d| d.0 * 1000.0)
    };
    format!(
        "{total}, p50 <= {:.1} ms, p99 <= {:.1} ms, slowest <= {:.1} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

/// Waits until the server's rollup worker has counted every stored event; returns the
/// backlog found at the start and the seconds it took.
pub async fn wait_for_rollups(database_url: &str) -> anyhow::Result<(i64, f64)> {
    let store = ingest_server::store::Store::connect(database_url).await?;
    let started = Instant::now();
    let backlog = store.unrolled_count().await?;
    while store.unrolled_count().await? > 0 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the rollup worker did not catch up in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    store.close().await;
    Ok((backlog, secs))
}

/// A fresh PostgreSQL database for a benchmark run.
pub async fn fresh_postgres(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let admin = ingest_server::store::Store::connect(admin_url).await?;
    sqlx_exec(&admin, &format!("DROP DATABASE IF EXISTS {name}")).await?;
    sqlx_exec(&admin, &format!("CREATE DATABASE {name}")).await?;
    admin.close().await;
    let prefix = admin_url
        .rsplit_once('/')
        .map(|(p, _)| p)
        .unwrap_or(admin_url);
    Ok(format!("{prefix}/{name}"))
}

async fn sqlx_exec(store: &ingest_server::store::Store, sql: &str) -> anyhow::Result<()> {
    sqlx::query(sql).execute(&store.pool).await?;
    Ok(())
}

/// Runs every ingest benchmark and returns the report rows.
pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Row>> {
    let binary = release_binary()?;
    let dir = tempfile::tempdir()?;
    let mut rows = Vec::new();
    let s = settings.seconds;
    let c = settings.concurrency;

    // The baseline varies from run to run on a shared machine: the best of two runs.
    let noop = start_noop().await?;
    let (first, _) = closed_loop(&noop.base, 1, c, s).await;
    let (second, _) = closed_loop(&noop.base, 1, c, s).await;
    let noop_rps = first.max(second);
    rows.push(Row::new(
        "no-op axum handler, requests/s (baseline, best of two runs)",
        format!("{noop_rps:.0}"),
    ));
    // The floor of the latency figures: the load generator and loopback alone.
    let latency = open_loop(&noop.base, settings.rate, settings.latency_seconds).await;
    rows.push(latency.row(settings.rate, "no-op baseline"));
    drop(noop);

    let sqlite_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let server = start_ingest(&binary, &sqlite_url, &[]).await?;
    let (_, batched) = closed_loop(&server.base, 50, c, s).await;
    rows.push(Row::new(
        "ingest, batches of 50, SQLite: events/s",
        format!("{batched:.0}"),
    ));
    let (single, _) = closed_loop(&server.base, 1, c, s).await;
    rows.push(Row::new(
        "ingest, single-event requests/s, SQLite",
        format!("{single:.0}"),
    ));
    rows.push(Row::new(
        "single-event / no-op baseline",
        format!("{:.2}", single / noop_rps),
    ));
    // The bursts above leave a backlog for the rollup worker; the latency phase measures
    // the steady state, so it starts once the backlog is counted (how long that took is a
    // figure of its own).
    let (backlog, secs) = wait_for_rollups(&sqlite_url).await?;
    rows.push(Row::new(
        "rollup backlog after the bursts, SQLite: events, seconds to count",
        format!(
            "{backlog} events, {secs:.1} s ({:.0} events/s)",
            backlog as f64 / secs
        ),
    ));
    // What the server timed during the phase, from /metrics: the requests (arrival to
    // answer), the commits, and how long each holder kept SQLite's write gate (a commit
    // waits for the holder before it).
    let histograms: [(&str, &str, &str); 5] = [
        (
            "that phase as the server timed it (arrival to answer): requests, buckets",
            "tally_request_seconds",
            ",route=\"/api/event\"",
        ),
        (
            "commits during that phase: count, buckets",
            "tally_commit_seconds",
            "",
        ),
        (
            "write gate held by the event writer during that phase: count, buckets",
            "tally_write_gate_seconds",
            ",holder=\"events\"",
        ),
        (
            "write gate held by the rollup worker during that phase: count, buckets",
            "tally_write_gate_seconds",
            ",holder=\"rollups\"",
        ),
        (
            "write gate held by checkpoints during that phase: count, buckets",
            "tally_write_gate_seconds",
            ",holder=\"checkpoint\"",
        ),
    ];
    let mut before = Vec::new();
    for (_, name, labels) in histograms {
        before.push(buckets(&server.base, name, labels).await?);
    }
    let latency = open_loop(&server.base, settings.rate, settings.latency_seconds).await;
    rows.push(latency.row(settings.rate, "SQLite"));
    for ((what, name, labels), before) in histograms.into_iter().zip(before) {
        let after = buckets(&server.base, name, labels).await?;
        rows.push(Row::new(what, bucket_summary(&before, &after)));
    }
    if let Some(rss) = server.peak_rss_mib() {
        rows.push(Row::new(
            "ingest server peak RSS after the SQLite runs",
            format!("{rss:.1} MiB"),
        ));
    }
    drop(server);

    if settings.postgres {
        let admin = std::env::var("TALLY_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let url = fresh_postgres(&admin, "tally_bench_ingest").await?;
        let server = start_ingest(&binary, &url, &[]).await?;
        let (_, batched) = closed_loop(&server.base, 50, c, s).await;
        rows.push(Row::new(
            "ingest, batches of 50, PostgreSQL: events/s",
            format!("{batched:.0}"),
        ));
        let (single, _) = closed_loop(&server.base, 1, c, s).await;
        rows.push(Row::new(
            "ingest, single-event requests/s, PostgreSQL",
            format!("{single:.0}"),
        ));
    }
    Ok(rows)
}
