//! `Authorization: Bearer KEY` for the stats, trace, monitor and export routes.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::app::App;

/// Proof that the request carried a valid stats API key.
pub struct StatsKey;

impl FromRequestParts<App> for StatsKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("an API key is required: Authorization: Bearer KEY".into())
            })?;
        // Keys are looked up by their SHA-256, so no comparison ever touches the key itself.
        if app.store.key_is_valid(key).await? {
            Ok(StatsKey)
        } else {
            Err(ApiError::Unauthorized("the API key is not valid".into()))
        }
    }
}
