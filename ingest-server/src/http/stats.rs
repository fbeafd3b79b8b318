//! `/api/stats/*` (CONTRACT §4): parse the query, call `crate::stats`, serialise. Every route
//! needs the stats key (`401` without it), checked before the parameters.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::auth::StatsKey;
use super::error::ApiError;
use crate::app::App;
use crate::stats::{self, Params, StatsError};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/stats/summary", get(summary))
        .route("/api/stats/timeseries", get(timeseries))
        .route("/api/stats/breakdown", get(breakdown))
        .route("/api/stats/realtime", get(realtime))
        .route("/api/stats/export", get(export))
}

impl From<StatsError> for ApiError {
    fn from(err: StatsError) -> Self {
        match err {
            StatsError::Param(e) => ApiError::BadRequest(e.to_string()),
            StatsError::Store(e) => ApiError::storage(e),
            StatsError::Csv(e) => ApiError::Internal(anyhow::anyhow!(e)),
        }
    }
}

/// The parsed query pairs (`filter[country]=DE` keys included).
fn pairs(query: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The site id and validated parameters of a stats request.
async fn resolve(app: &App, query: Option<String>) -> Result<(i64, Params), ApiError> {
    let params = stats::parse(&pairs(query), crate::now_ms())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let site_id = app
        .sites
        .id(&app.store, &params.site)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("site: {} is not registered", params.site)))?;
    Ok((site_id, params))
}

async fn summary(
    _key: StatsKey,
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> Result<Json<stats::Summary>, ApiError> {
    let (site, p) = resolve(&app, query).await?;
    Ok(Json(stats::summary(&app.store, site, &p).await?))
}

async fn timeseries(
    _key: StatsKey,
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<stats::Point>>, ApiError> {
    let (site, p) = resolve(&app, query).await?;
    Ok(Json(stats::timeseries(&app.store, site, &p).await?))
}

async fn breakdown(
    _key: StatsKey,
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<stats::BreakdownRow>>, ApiError> {
    let (site, p) = resolve(&app, query).await?;
    let dim = p
        .dim
        .clone()
        .ok_or_else(|| ApiError::BadRequest("dim: is required".into()))?;
    Ok(Json(stats::breakdown(&app.store, site, &p, &dim).await?))
}

async fn realtime(
    _key: StatsKey,
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (site, _) = resolve(&app, query).await?;
    let visitors = stats::realtime(&app.store, site, crate::now_ms()).await?;
    Ok(Json(serde_json::json!({ "visitors": visitors })))
}

async fn export(
    _key: StatsKey,
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let format = pairs(query.clone())
        .into_iter()
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v);
    if format.as_deref().is_some_and(|f| f != "csv") {
        return Err(ApiError::BadRequest("format: only csv is supported".into()));
    }
    let (site, p) = resolve(&app, query).await?;
    let body = stats::export_csv(&app.store, site, &p).await?;
    let name = format!(
        "attachment; filename=\"tally-{}-{}.csv\"",
        p.site.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-',
            "_"
        ),
        chrono::DateTime::from_timestamp_millis(p.from)
            .map(|d| d.format("%Y%m%d").to_string())
            .unwrap_or_default()
    );
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
