//! The soak benchmark: a steady open-loop load through `POST /api/event` for minutes, against
//! the release binary on SQLite. Every 10 s it samples the server's resident memory (it must
//! stay flat); at the end it reports latency percentiles (from each request's scheduled start,
//! so a stalled server cannot hide its queueing) and events sent / acknowledged / counted.
//!
//! `cargo run --release -p tally-tests --bin bench -- soak --minutes 10 --rate 5000`
//! (`--batch N` sends N events per request; the default, 1, is one event per request).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sqlx::Row as _;

use super::ingest::release_binary;
use super::Row;
use crate::harness::{client, new_ids, page_body, rss_mib, Spawn, SqliteDb};

/// Settings of one soak run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub minutes: f64,
    /// Events per second.
    pub rate: u64,
    /// Events per request.
    pub batch: usize,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Row>> {
    let binary = release_binary()?;
    let db = SqliteDb::new();
    let server = Spawn::new(&binary, &db.url).start().await?;
    let pid = server.child.id();
    let batch = settings.batch.max(1);
    let request_rate = (settings.rate as f64 / batch as f64).max(1.0);
    let seconds = settings.minutes * 60.0;
    let total = (request_rate * seconds) as u64;
    let interval = Duration::from_secs_f64(1.0 / request_rate);
    println!(
        "soak: {:.1} min at {} events/s ({batch} per request, {request_rate:.0} requests/s), SQLite",
        settings.minutes, settings.rate
    );

    let counters = Arc::new(Counters::default());
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let samples = Arc::new(Mutex::new(Vec::<(u64, f64)>::new()));
    let started = Instant::now();
    let sampler = {
        let (counters, samples) = (counters.clone(), samples.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                let Some((rss, _)) = rss_mib(pid) else { break };
                let t = started.elapsed().as_secs();
                println!(
                    "soak: t={t:>4} s  RSS {rss:6.1} MiB  acknowledged {}",
                    counters.acked.load(Ordering::Relaxed)
                );
                if let Ok(mut s) = samples.lock() {
                    s.push((t, rss));
                }
            }
        })
    };

    const IN_FLIGHT: u32 = 1024;
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT as usize));
    let http = client();
    let url = server.base.clone();
    for i in 0..total {
        let scheduled = started + interval.mul_f64(i as f64);
        let now = Instant::now();
        if scheduled > now {
            tokio::time::sleep(scheduled - now).await;
        }
        // A request waiting for a slot still counts its latency from its scheduled start.
        let slot = slots.clone().acquire_owned().await?;
        let (http, url, counters, hist) =
            (http.clone(), url.clone(), counters.clone(), hist.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let ids = new_ids(batch);
            counters.sent.fetch_add(batch as u64, Ordering::Relaxed);
            let answer = http
                .post(format!("{url}/api/event"))
                .header("content-type", "text/plain;charset=UTF-8")
                .header("user-agent", super::ingest::UA)
                .body(page_body(&ids))
                .send()
                .await;
            match answer {
                Ok(r) if r.status().as_u16() == 202 => {
                    let v: serde_json::Value = r.json().await.unwrap_or_default();
                    counters
                        .acked
                        .fetch_add(v["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
                    let micros = scheduled.elapsed().as_micros() as u64;
                    if let Ok(mut h) = hist.lock() {
                        let _ = h.record(micros.max(1));
                    }
                }
                Ok(_) => {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    // Every request answered.
    let _all = slots.acquire_many(IN_FLIGHT).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let final_rss = rss_mib(pid);
    sampler.abort();

    let store = ingest_server::store::Store::connect(&db.url).await?;
    let counted: i64 = sqlx::query("SELECT COUNT(*) FROM events")
        .fetch_one(&store.pool)
        .await?
        .try_get(0)?;
    store.close().await;
    drop(server);

    let h = hist
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| Histogram::new(3).expect("histogram"));
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let sent = counters.sent.load(Ordering::Relaxed);
    let acked = counters.acked.load(Ordering::Relaxed);
    let rss: Vec<f64> = samples.iter().map(|(_, r)| *r).collect();
    let first = rss.first().copied().unwrap_or_default();
    let last = rss.last().copied().unwrap_or_default();
    let max = rss.iter().copied().fold(0.0, f64::max);
    let over_time = samples
        .iter()
        .map(|(t, r)| format!("{t}s {r:.0}"))
        .collect::<Vec<_>>()
        .join(", ");
    let what = format!(
        "soak {:.1} min, {} events/s target ({batch}/request), SQLite",
        settings.minutes, settings.rate
    );
    Ok(vec![
        Row::new(
            format!("{what}: achieved events/s"),
            format!("{:.0}", acked as f64 / elapsed),
        ),
        Row::new(
            format!("{what}: sent / acknowledged / counted"),
            format!(
                "{sent} / {acked} / {counted} ({} refused, {} failed)",
                counters.refused.load(Ordering::Relaxed),
                counters.failed.load(Ordering::Relaxed)
            ),
        ),
        Row::new(
            format!("{what}: latency"),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
                h.value_at_quantile(0.5) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
                h.max() as f64 / 1000.0
            ),
        ),
        Row::new(
            format!("{what}: RSS first / last / max sample, peak"),
            format!(
                "{first:.1} / {last:.1} / {max:.1} MiB, peak {:.1} MiB",
                final_rss.map(|(_, peak)| peak).unwrap_or_default()
            ),
        ),
        Row::new(format!("{what}: RSS every 10 s (MiB)"), over_time),
    ])
}
