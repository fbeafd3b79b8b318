//! Tally's ingest server: it collects events from browsers (`POST /api/event`) and from the
//! edge worker (signed batches), deduplicates them by their browser-made id, commits them in
//! batches, and serves the stats API, the tracker and the admin page.
//!
//! The data flow, and where each part lives:
//!
//! - [`config`]: flags and environment → a validated [`config::Config`].
//! - [`http`]: the router (`http::router`), one error type, the handlers.
//! - [`enrich`]: a validated wire event + what the request tells → the row to store.
//! - [`pipeline`]: the bounded queue and the group-committing writer.
//! - [`store`]: SQLite / PostgreSQL, migrations, the batched idempotent insert.
//! - [`rollup`]: the background worker that counts events into visits and rollups.
//! - [`stats`]: the stats queries (CONTRACT §4) over rollups and raw events.
//! - [`maintenance`]: salt rotation, replay-guard expiry, retention, cache refresh.
//! - [`app`]: the state handlers share.
//! - [`trace`]: the event trace, the pipeline view and the drop counters (CONTRACT §8).
//! - [`monitors`]: monitors, their persisted state and their notifications (CONTRACT §7).
//! - [`demo`]: sample traffic for `ingest-server demo` and the stats benchmark.
//!
//! [`serve`] ties them together: it takes a bound listener and a shutdown future, so tests
//! run real servers on port 0.

pub mod app;
pub mod config;
pub mod demo;
pub mod enrich;
pub mod http;
pub mod maintenance;
pub mod memory;
pub mod metrics;
pub mod monitors;
pub mod pipeline;
pub mod rollup;
pub mod stats;
pub mod store;
pub mod trace;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::store::Store;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs the server on `listener` until `shutdown` resolves; then stops accepting, lets
/// in-flight requests finish, writes every queued event, and returns.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Store::open(&config.database_url)
        .await
        .with_context(|| "opening the database")?;
    store.days.keep_at_most(config.digest_cache_bytes);
    let metrics = Arc::new(metrics::Metrics::with_store(&store));
    let (pipeline, writer) =
        Pipeline::start(store.clone(), metrics.clone(), config.pipeline.clone());
    let app = App::new(config, store.clone(), pipeline, metrics)?;
    app.sites.reload(&store).await?;
    let maintenance = tokio::spawn(maintenance::run(app.clone()));
    let roller = tokio::spawn(rollup::run(store.clone()));
    let checkpointer = tokio::spawn(maintenance::checkpoints(store.clone()));
    let digester = tokio::spawn(stats::days::run(store.clone()));
    let drops = app.drops.clone();
    let drop_flusher = tokio::spawn(trace::drops::run(drops.clone(), store.clone()));
    let monitor_tasks = app.monitors.configured().then(|| {
        [
            tokio::spawn(monitors::evaluate(app.clone())),
            tokio::spawn(monitors::deliver(app.clone())),
            tokio::spawn(monitors::reload_on_hangup(app.monitors.clone())),
        ]
    });
    let monitors_app = app.clone();

    tracing::info!(addr = %listener.local_addr()?, "serving");
    let router = http::router(app);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    tracing::info!("stopped accepting; writing queued events");
    maintenance.abort();
    roller.abort();
    checkpointer.abort();
    digester.abort();
    drop_flusher.abort();
    for task in monitor_tasks.iter().flatten() {
        task.abort();
    }
    monitors::release(&monitors_app).await;
    drop(monitors_app);
    // The router (and with it every pipeline handle) is gone: the writer drains and stops.
    writer.await.context("the writer task failed")?;
    drops.flush(&store).await;
    store.close().await;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
