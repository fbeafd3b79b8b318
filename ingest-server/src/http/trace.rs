//! `GET /api/trace/ID` and `GET /api/pipeline?site=SITE` (CONTRACT §8), behind the stats key.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;

use super::auth::StatsKey;
use super::error::ApiError;
use crate::app::App;
use crate::trace::{self, Hop, Pipeline};

/// The pipeline view covers the last hour.
pub const PIPELINE_WINDOW_MS: i64 = 3_600_000;
/// Most events whose hop times are read for the lag percentiles.
const LAG_SAMPLE: i64 = 50_000;

/// The hops an event took, oldest first: `[{"hop", "at", "batch"?, "after_ms"?}, …]`.
pub async fn trace(
    State(app): State<App>,
    _key: StatsKey,
    Path(id): Path<String>,
) -> Result<Json<Vec<Hop>>, ApiError> {
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::BadRequest(
            "the event id must be 1 to 64 characters".into(),
        ));
    }
    let event = app
        .store
        .event_by_id(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no stored event has the id {id}")))?;
    Ok(Json(trace::hops(&event)))
}

#[derive(Debug, Deserialize)]
pub struct PipelineParams {
    site: Option<String>,
}

pub async fn pipeline(
    State(app): State<App>,
    _key: StatsKey,
    Query(params): Query<PipelineParams>,
) -> Result<Json<Pipeline>, ApiError> {
    let domain = params
        .site
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::BadRequest("site: required".into()))?;
    let site_id = app
        .sites
        .id(&app.store, &domain)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("site {domain} is not registered")))?;
    // This server's latest drops first, so that the view is exact here.
    app.drops.flush(&app.store).await;
    let since = crate::now_ms() - PIPELINE_WINDOW_MS;
    let counts = app.store.hour_counts(site_id, since).await?;
    let sample = app.store.hop_times(site_id, since, LAG_SAMPLE).await?;
    let last = app.store.last_edge_batch(site_id).await?.map(|(_, at)| at);
    Ok(Json(trace::pipeline(&counts, &sample, last)))
}
