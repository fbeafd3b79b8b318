//! `POST /api/event` (CONTRACT §2) at the edge: rate limit, validate (tally-core), check the
//! site and origin, enrich (visitor hash, country, browser/OS/device; bots dropped), queue,
//! and answer `202` only once the queue holds the events.

use tally_core::wire::{parse_batch, WireError, MAX_BODY_BYTES};
use tally_edge_model::access::{self, Forbidden};
use tally_edge_model::enrich::{enrich, Connection};
use tally_edge_model::forward::message_body;
use worker::{Context, Env, Request, Response, Result};

use crate::config::{EVENTS_QUEUE, RATE_LIMITER};
use crate::http::{self, now_ms};
use crate::{ingest, salt_keeper};

/// Seconds a rate-limited client is told to wait (the limiter's period).
const RATE_LIMIT_RETRY_AFTER: &str = "60";

pub async fn post_event(mut req: Request, env: &Env, ctx: &Context) -> Result<Response> {
    let origin = req.headers().get("Origin")?;
    let sites = ingest::sites(env, ctx).await;
    let cors = access::cors_origin(origin.as_deref(), sites.as_deref()).map(str::to_string);
    let mut resp = collect(&mut req, env, origin.as_deref(), sites.as_deref()).await?;
    if let Some(cors) = cors {
        let h = resp.headers_mut();
        h.set("Access-Control-Allow-Origin", &cors)?;
        h.set("Vary", "Origin")?;
    }
    Ok(resp)
}

async fn collect(
    req: &mut Request,
    env: &Env,
    origin: Option<&str>,
    sites: Option<&[String]>,
) -> Result<Response> {
    let headers = req.headers();
    let ip = headers.get("CF-Connecting-IP")?.unwrap_or_default();
    let user_agent = headers.get("User-Agent")?.unwrap_or_default();
    let declared_len = headers
        .get("Content-Length")?
        .and_then(|v| v.trim().parse::<usize>().ok());

    if let Ok(limiter) = env.rate_limiter(RATE_LIMITER) {
        if !limiter.limit(ip.clone()).await?.success {
            let mut resp = http::error(429, "too many requests")?;
            resp.headers_mut()
                .set("Retry-After", RATE_LIMIT_RETRY_AFTER)?;
            return Ok(resp);
        }
    }
    if declared_len.is_some_and(|n| n > MAX_BODY_BYTES) {
        return http::error(413, &WireError::TooLarge.to_string());
    }
    let body = req.bytes().await?;
    let batch = match parse_batch(&body) {
        Ok(batch) => batch,
        Err(e @ WireError::TooLarge) => return http::error(413, &e.to_string()),
        Err(e) => return http::error(400, &e.to_string()),
    };
    if let Err(e) = access::check(&batch, origin, sites) {
        if matches!(e, Forbidden::UnknownSite) {
            worker::console_log!("refused: unknown site");
        }
        return http::error(403, &e.to_string());
    }

    let country = req.cf().and_then(|cf| cf.country());
    let now = now_ms();
    let conn = Connection {
        ip: &ip,
        user_agent: &user_agent,
        country: country.as_deref(),
    };
    // The bot check runs before the salt is needed; enrich() repeats it cheaply.
    if tally_core::agent::is_bot(&user_agent) {
        let n = batch.events.len();
        worker::console_log!("dropped {} events from a bot", n);
        return accepted(0);
    }
    let salt = salt_keeper::today(env, now).await?;
    let enriched = enrich(batch, &conn, &salt, now);
    if enriched.events.is_empty() {
        worker::console_log!("dropped {} events from a bot", enriched.bots);
        return accepted(0);
    }
    let n = enriched.events.len();
    let queued = env
        .queue(EVENTS_QUEUE)?
        .send(message_body(&enriched.events, now))
        .await;
    if let Err(e) = queued {
        worker::console_error!("queue send failed: {}", e);
        let mut resp = http::error(503, "overloaded, try again")?;
        resp.headers_mut().set("Retry-After", "5")?;
        return Ok(resp);
    }
    accepted(n)
}

/// The edge cannot know duplicates (the ingest server deduplicates by id), so `duplicates`
/// is always 0 here.
fn accepted(n: usize) -> Result<Response> {
    http::raw_json(202, format!("{{\"accepted\":{n},\"duplicates\":0}}"))
}

/// CORS preflight for clients that send `application/json` instead of `text/plain`.
pub async fn preflight(req: &Request, env: &Env, ctx: &Context) -> Result<Response> {
    let origin = req.headers().get("Origin")?;
    let sites = ingest::sites(env, ctx).await;
    match access::cors_origin(origin.as_deref(), sites.as_deref()) {
        Some(origin) => {
            let mut resp = Response::empty()?.with_status(204);
            let h = resp.headers_mut();
            h.set("Access-Control-Allow-Origin", origin)?;
            h.set("Access-Control-Allow-Methods", "POST, OPTIONS")?;
            h.set("Access-Control-Allow-Headers", "Content-Type")?;
            h.set("Access-Control-Max-Age", "86400")?;
            h.set("Vary", "Origin")?;
            Ok(resp)
        }
        None => http::error(403, "origin: is not a registered site"),
    }
}
