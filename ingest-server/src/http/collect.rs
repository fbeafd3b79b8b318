//! `POST /api/event`: the browser → collector endpoint of CONTRACT §2.
//!
//! Order of checks: rate limit (429), body size (413), body shape (400), site registered and
//! `Origin` / page URLs on it (403), bot (dropped, still 202), then the write pipeline (503 when
//! full or when the database fails). Nothing is written unless every event passed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use tally_core::visitor::visitor_id;
use tally_core::wire::{self, WireError};

use super::error::ApiError;
use crate::app::App;
use crate::enrich::{to_new_event, Refusal, Sender};
use crate::metrics::Source;
use crate::pipeline::Outcome;
use crate::store::NewEvent;

/// The client's IP: from the trusted header when one is configured, else the connection.
/// Used for the rate limit and the visitor hash, never stored or logged.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<App> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let from_header = app.config.ip_header.as_ref().and_then(|name| {
            parts
                .headers
                .get(name)?
                .to_str()
                .ok()?
                .split(',')
                .next()?
                .trim()
                .parse()
                .ok()
        });
        let from_conn = || {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        };
        Ok(ClientIp(
            from_header
                .or_else(from_conn)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

/// Reads a body of at most `limit` bytes.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || ApiError::PayloadTooLarge(format!("body is larger than {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    to_bytes(body, limit).await.map_err(|_| too_large())
}

pub async fn collect(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Outcome>), ApiError> {
    let received_at = crate::now_ms();
    if let Err(retry_after) = app.rate_limit(ip) {
        app.metrics.reject("rate_limited", 1);
        app.record_drop(0, "rate_limited", 1);
        return Err(ApiError::RateLimited { retry_after });
    }
    let body = read_body(&headers, body, wire::MAX_BODY_BYTES)
        .await
        .inspect_err(|_| {
            app.metrics.reject("too_large", 1);
            app.record_drop(0, "too_large", 1);
        })?;
    let batch = wire::parse_batch(&body).map_err(|e| {
        app.metrics.reject("invalid", 1);
        app.record_drop(0, "invalid", 1);
        match e {
            WireError::TooLarge => ApiError::PayloadTooLarge(e.to_string()),
            other => ApiError::BadRequest(other.to_string()),
        }
    })?;
    let n = batch.events.len() as u64;
    let Some(site_id) = app.sites.id(&app.store, &batch.site).await? else {
        app.metrics.reject("unknown_site", n);
        app.record_drop(0, "unknown_site", n);
        return Err(ApiError::Forbidden(format!(
            "site {} is not registered",
            batch.site
        )));
    };
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = url_host(origin);
        if !host.is_some_and(|h| wire::host_belongs_to_site(&h, &batch.site)) {
            app.metrics.reject("foreign_origin", n);
            app.record_drop(site_id, "foreign_origin", n);
            return Err(ApiError::Forbidden(format!(
                "origin {origin} does not belong to site {}",
                batch.site
            )));
        }
    }

    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let screen = batch.events.iter().find_map(|e| e.screen);
    let Some(agent) = app.agent(ua, screen) else {
        app.metrics.bots.inc_by(n);
        app.record_drop(site_id, "bot", n);
        return Ok((StatusCode::ACCEPTED, Json(Outcome::default())));
    };
    let salt = app.salt(received_at).await?;
    let sender = Sender {
        site_id,
        visitor: visitor_id(&salt, &batch.site, &ip.to_string(), ua),
        site: batch.site,
        country: app.country(&headers, ip),
        browser: agent.browser,
        os: agent.os,
        device: agent.device.as_str().to_string(),
        received_at,
        edge: None,
    };
    let events = batch
        .events
        .into_iter()
        .enumerate()
        .map(|(i, e)| to_new_event(e, i, &sender, &app.config.redact))
        .collect::<Result<Vec<NewEvent>, Refusal>>()
        .map_err(|refusal| {
            app.metrics.reject("invalid", n);
            app.record_drop(site_id, "invalid", n);
            refusal_error(refusal)
        })?;
    let outcome = write(&app, events, "browser").await?;
    app.record_drop(site_id, "duplicate", outcome.duplicates as u64);
    Ok((StatusCode::ACCEPTED, Json(outcome)))
}

pub fn refusal_error(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Invalid(m) => ApiError::BadRequest(m),
        Refusal::ForeignPage(m) => ApiError::Forbidden(m),
    }
}

/// Hands events to the pipeline and waits for their commit.
pub async fn write(
    app: &App,
    events: Vec<NewEvent>,
    source: &'static str,
) -> Result<Outcome, ApiError> {
    let n = events.len() as u64;
    let outcome = match app.pipeline.write(events).await {
        Err(_overloaded) => {
            app.metrics.reject("overloaded", n);
            return Err(ApiError::Unavailable {
                message: "the server is overloaded, retry later".into(),
                retry_after: 1,
            });
        }
        Ok(Err(_failed)) => {
            app.metrics.reject("storage_failed", n);
            return Err(ApiError::Unavailable {
                message: "the database is unavailable, retry later".into(),
                retry_after: 2,
            });
        }
        Ok(Ok(outcome)) => outcome,
    };
    let label = Source { source };
    app.metrics
        .accepted
        .get_or_create(&label)
        .inc_by(outcome.accepted as u64);
    app.metrics
        .duplicates
        .get_or_create(&label)
        .inc_by(outcome.duplicates as u64);
    Ok(outcome)
}

/// The host of an `Origin` header value (`https://www.example.com:8443` → `www.example.com`).
pub fn url_host(origin: &str) -> Option<String> {
    let rest = origin.split_once("://")?.1;
    let host = rest.split(['/', ':']).next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_hosts() {
        assert_eq!(
            url_host("https://www.example.com:8443").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            url_host("http://Example.com").as_deref(),
            Some("example.com")
        );
        assert_eq!(url_host("null"), None);
        assert_eq!(url_host("https://"), None);
    }
}
