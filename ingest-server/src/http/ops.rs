//! Operator endpoints: `/healthz`, `/metrics` and the site list.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::auth::StatsKey;
use super::error::ApiError;
use crate::app::App;

/// `200` when the database answers and the writer commits; else `503` naming the failing part.
pub async fn healthz(State(app): State<App>) -> impl IntoResponse {
    let database = match tokio::time::timeout(Duration::from_secs(2), app.store.ping()).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database");
            "unreachable".to_string()
        }
        Err(_) => "timed out".to_string(),
    };
    let writer = app.pipeline.health.problem().unwrap_or("ok").to_string();
    let healthy = database == "ok" && writer == "ok";
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "database": database,
        "writer": writer,
        "queue_depth": app.pipeline.depth(),
    });
    (status, Json(body))
}

/// `GET /metrics`: the counters, and the gauges read now (the writer's queue, the events
/// the rollup worker has still to count; when the database does not answer that within a
/// second, the backlog keeps its last value).
pub async fn metrics(State(app): State<App>) -> impl IntoResponse {
    app.metrics.queue_depth.set(app.pipeline.depth() as i64);
    match tokio::time::timeout(Duration::from_secs(1), app.store.unrolled_count()).await {
        Ok(Ok(n)) => {
            app.metrics.rollup_backlog.set(n);
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: counting the rollup backlog"),
        Err(_) => tracing::warn!("metrics: counting the rollup backlog timed out"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
}

/// `GET /api/sites`: the registered sites, for the admin page's picker.
pub async fn sites(State(app): State<App>, _key: StatsKey) -> Result<impl IntoResponse, ApiError> {
    let sites = app.store.sites().await?;
    Ok(Json(json!(sites
        .into_iter()
        .map(|s| json!({ "domain": s.domain }))
        .collect::<Vec<_>>())))
}
