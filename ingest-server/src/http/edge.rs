//! The edge worker's channel (see `tally_core::edge` for the protocol): signed batches of
//! already-enriched events, and the list of registered sites.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use tally_core::edge::{self, EdgeBatch, MAX_SKEW_S};
use tally_core::visitor::visitor_from_hex;

use super::collect::{read_body, write};
use super::error::ApiError;
use crate::app::App;
use crate::enrich::{to_new_event, Refusal, Sender};
use crate::pipeline::Outcome;
use crate::store::events::NewEvent;

/// Checks the request's signature and, for writes, that it was not seen before.
async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    write: bool,
) -> Result<(), ApiError> {
    let Some(secret) = &app.config.edge_secret else {
        return Err(ApiError::NotFound(
            "the edge channel is off: TALLY_EDGE_SECRET is not set".into(),
        ));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header(edge::SIGNATURE_HEADER);
    let now = crate::now_ms();
    edge::verify(
        secret,
        header(edge::TIMESTAMP_HEADER),
        signature,
        body,
        now / 1000,
    )
    .map_err(|e| {
        app.metrics.reject("edge_auth", 1);
        tracing::warn!(reason = %e, "edge request refused");
        ApiError::Unauthorized(e.to_string())
    })?;
    let signature = signature.unwrap_or_default();
    if write && !app.store.remember_signature(signature, now).await? {
        app.metrics.reject("edge_replay", 1);
        tracing::warn!("replayed edge request refused");
        return Err(ApiError::Unauthorized(
            "request was already received (replay)".into(),
        ));
    }
    Ok(())
}

/// How long accepted signatures are remembered: longer than the allowed clock skew both ways.
pub const SIGNATURE_MEMORY_MS: i64 = 2 * MAX_SKEW_S * 1000 + 60_000;

pub async fn batch(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Outcome>, ApiError> {
    let received_at = crate::now_ms();
    let body = read_body(&headers, body, edge::MAX_BATCH_BYTES).await?;
    authenticate(&app, &headers, &body, true).await?;
    let batch: EdgeBatch = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("malformed batch: {e}")))?;
    if batch.events.len() > edge::MAX_BATCH_EVENTS {
        return Err(ApiError::BadRequest(format!(
            "events: at most {} per batch",
            edge::MAX_BATCH_EVENTS
        )));
    }
    // The edge has already answered the browser for each of these events, and sending the
    // batch again cannot make a refused one acceptable: an event refused here (a page URL
    // that passed the edge's checks but not this server's cleaning, say) is dropped and
    // counted alone, so that it never takes the rest of its batch to the dead-letter queue.
    let mut events = Vec::with_capacity(batch.events.len());
    let mut unknown = 0u64;
    let mut refused: Vec<(i64, String)> = Vec::new();
    for (i, e) in batch.events.into_iter().enumerate() {
        let site = e.site.trim().to_ascii_lowercase();
        let Some(site_id) = app.sites.id(&app.store, &site).await? else {
            // The site was removed after the edge accepted the event: drop it, counted.
            unknown += 1;
            continue;
        };
        match edge_event(&app, e, site, site_id, i, received_at, &batch.batch) {
            Ok(event) => events.push(event),
            Err(reason) => refused.push((site_id, reason)),
        }
    }
    if unknown > 0 {
        app.metrics.reject("unknown_site", unknown);
        app.record_drop(0, "unknown_site", unknown);
    }
    for (site_id, reason) in &refused {
        app.metrics.reject("invalid", 1);
        app.record_drop(*site_id, "invalid", 1);
        tracing::warn!(batch = %batch.batch, %reason, "edge event refused");
    }
    let (outcome, site_ids) = write_by_site(&app, events).await?;
    // After the write: a batch that failed is retried, and its drops would count twice.
    record_edge_drops(&app, &batch.dropped).await?;
    if let Err(e) = app
        .store
        .record_edge_batch(&site_ids, &batch.batch, received_at)
        .await
    {
        tracing::warn!(error = %e, "recording the last edge batch");
    }
    tracing::info!(batch = %batch.batch, accepted = outcome.accepted, duplicates = outcome.duplicates, "edge batch stored");
    Ok(Json(outcome))
}

/// The stored row for event number `i` of an edge batch, or why it is refused (the
/// message names the field, never its value).
fn edge_event(
    app: &App,
    e: edge::EdgeEvent,
    site: String,
    site_id: i64,
    i: usize,
    received_at: i64,
    batch: &str,
) -> Result<NewEvent, String> {
    let bad = |field: &str, reason: &str| format!("events[{i}].{field}: {reason}");
    let mut event = e.event;
    event
        .validate()
        .map_err(|(field, reason)| bad(field, &reason))?;
    let visitor =
        visitor_from_hex(&e.visitor).ok_or_else(|| bad("visitor", "must be 16 hex digits"))?;
    let device = tally_core::agent::Device::parse(&e.device)
        .ok_or_else(|| bad("device", "must be desktop, mobile or tablet"))?;
    let sender = Sender {
        site_id,
        site,
        visitor,
        country: e.country.as_deref().and_then(crate::enrich::country_code),
        browser: e.browser,
        os: e.os,
        device: device.as_str().to_string(),
        received_at,
        edge: Some((e.edge_at.min(received_at), batch.to_string())),
    };
    to_new_event(event, i, &sender, &app.config.redact).map_err(|refusal| match refusal {
        Refusal::Invalid(m) | Refusal::ForeignPage(m) => m,
    })
}

/// Adds what the edge dropped to the drop counters and metrics, under the site when the edge
/// named a registered one (bots), else under no site. Unknown reasons are ignored.
async fn record_edge_drops(app: &App, dropped: &[edge::EdgeDrop]) -> Result<(), ApiError> {
    for d in dropped {
        let Some(reason) = edge::EDGE_DROP_REASONS
            .iter()
            .find(|r| **r == d.reason)
            .copied()
        else {
            continue;
        };
        let site = d.site.trim().to_ascii_lowercase();
        let site_id = match site.is_empty() {
            true => 0,
            false => app.sites.id(&app.store, &site).await?.unwrap_or(0),
        };
        if reason == "bot" {
            app.metrics.bots.inc_by(d.n);
        } else {
            app.metrics.reject(reason, d.n);
        }
        app.record_drop(site_id, reason, d.n);
    }
    Ok(())
}

/// Writes a batch's events, one pipeline job per site so that duplicates are counted per site
/// (the jobs usually share one commit). Returns the outcome and the sites of the batch.
async fn write_by_site(
    app: &App,
    events: Vec<crate::store::NewEvent>,
) -> Result<(Outcome, Vec<i64>), ApiError> {
    let mut by_site: std::collections::BTreeMap<i64, Vec<crate::store::NewEvent>> =
        std::collections::BTreeMap::new();
    for e in events {
        by_site.entry(e.site_id).or_default().push(e);
    }
    let sites: Vec<i64> = by_site.keys().copied().collect();
    let mut jobs = tokio::task::JoinSet::new();
    for (site_id, events) in by_site {
        let app = app.clone();
        jobs.spawn(async move { (site_id, write(&app, events, "edge").await) });
    }
    let mut total = Outcome::default();
    let mut failed = None;
    while let Some(done) = jobs.join_next().await {
        match done {
            Ok((site_id, Ok(outcome))) => {
                app.record_drop(site_id, "duplicate", outcome.duplicates as u64);
                total.accepted += outcome.accepted;
                total.duplicates += outcome.duplicates;
            }
            Ok((_, Err(e))) => failed = Some(e),
            Err(e) => failed = Some(ApiError::Internal(e.into())),
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok((total, sites)),
    }
}

pub async fn sites(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authenticate(&app, &headers, b"", false).await?;
    let sites: Vec<String> = app
        .store
        .sites()
        .await?
        .into_iter()
        .map(|s| s.domain)
        .collect();
    Ok(Json(json!({ "sites": sites })))
}
