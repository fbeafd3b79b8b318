//! Background upkeep: reload the site cache, hand freed memory back to the system, delete
//! salts older than 48 h, forget old edge signatures and quiet rate-limit entries, prune raw
//! events past retention.

use crate::app::{App, SITE_REFRESH};
use crate::http::edge::SIGNATURE_MEMORY_MS;

/// Runs until the task is aborted.
pub async fn run(app: App) {
    let mut tick = tokio::time::interval(SITE_REFRESH);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        if let Err(e) = app.sites.reload(&app.store).await {
            tracing::warn!(error = %e, "reloading sites");
        }
        // It takes about a millisecond, during which allocations wait: off the runtime.
        let _ = tokio::task::spawn_blocking(crate::memory::release).await;
        // Every minute.
        if n.is_multiple_of(6) {
            if let Err(e) = once_a_minute(&app).await {
                tracing::warn!(error = %e, "maintenance");
            }
        }
        n += 1;
    }
}

/// SQLite's write-ahead log copied back into the database every second (see
/// [`Store::checkpoint`](crate::store::Store::checkpoint)). Runs until the task is aborted.
pub async fn checkpoints(store: crate::store::Store) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %e, "checkpointing the write-ahead log");
        }
    }
}

async fn once_a_minute(app: &App) -> Result<(), crate::store::StoreError> {
    let now = crate::now_ms();
    let salts = app.store.delete_old_salts(now).await?;
    if salts > 0 {
        tracing::info!(salts, "deleted old visitor salts");
    }
    app.store
        .forget_signatures(now, SIGNATURE_MEMORY_MS)
        .await?;
    app.forget_quiet_ips();
    let cutoff = now - i64::from(app.config.retention_days) * 86_400_000;
    let pruned = app.store.prune_events(cutoff).await?;
    if pruned > 0 {
        tracing::info!(events = pruned, "pruned raw events past retention");
    }
    let visits = app.store.prune_visits(cutoff).await?;
    if visits > 0 {
        tracing::info!(visits, "pruned visits past retention");
    }
    if pruned > 0 {
        app.store.prune_digests(cutoff).await?;
    }
    app.store
        .prune_drops(now - crate::trace::drops::KEEP_MS)
        .await?;
    app.store
        .prune_monitor_rows(now - crate::monitors::KEEP_MS)
        .await?;
    Ok(())
}
