//! `POST /api/event` (CONTRACT §2) at the edge: rate limit, validate (tally-core), check the
//! site and origin, enrich (visitor hash, country, browser/OS/device; bots dropped), scrub
//! (sensitive values out of the URL, referrer and props), queue, and answer `202` only once
//! the queue holds the events. Bots and refused requests are counted for the pipeline view
//! (`tally_edge_model::drops`).

use std::cell::RefCell;

use tally_core::wire::{parse_batch, WireError, MAX_BODY_BYTES};
use tally_edge_model::access::{self, Forbidden};
use tally_edge_model::drops::{Pending, Refusal};
use tally_edge_model::enrich::{enrich, Connection};
use tally_edge_model::forward::message_body;
use worker::js_sys::{Object, Reflect};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Context, Env, Error, Request, Response, Result};

use crate::config::{self, EVENTS_QUEUE, RATE_LIMITER};
use crate::http::{self, now_ms};
use crate::{ingest, salt_keeper};

/// Seconds a rate-limited client is told to wait (the limiter's period).
const RATE_LIMIT_RETRY_AFTER: &str = "60";

thread_local! {
    /// Refused requests counted in this isolate, handed to the next queue message.
    static REFUSED: RefCell<Pending> = RefCell::default();
}

fn refused(why: Refusal, n: usize) {
    REFUSED.with(|p| p.borrow_mut().add(why, n as u64));
}

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

    if over_rate_limit(env, &ip).await? {
        refused(Refusal::RateLimited, 1);
        let mut resp = http::error(429, "too many requests")?;
        resp.headers_mut()
            .set("Retry-After", RATE_LIMIT_RETRY_AFTER)?;
        return Ok(resp);
    }
    if declared_len.is_some_and(|n| n > MAX_BODY_BYTES) {
        refused(Refusal::Invalid, 1);
        return http::error(413, &WireError::TooLarge.to_string());
    }
    let body = req.bytes().await?;
    let batch = match parse_batch(&body) {
        Ok(batch) => batch,
        Err(e) => {
            refused(Refusal::Invalid, 1);
            let status = if e == WireError::TooLarge { 413 } else { 400 };
            return http::error(status, &e.to_string());
        }
    };
    if let Err(e) = access::check(&batch, origin, sites) {
        let why = if matches!(e, Forbidden::UnknownSite) {
            worker::console_log!("refused: unknown site");
            Refusal::UnknownSite
        } else {
            Refusal::Invalid
        };
        refused(why, batch.events.len());
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
    let site = batch.site.clone();
    let (events, bots) = if tally_core::agent::is_bot(&user_agent) {
        (Vec::new(), batch.events.len())
    } else {
        let salt = salt_keeper::today(env, now).await?;
        let enriched = enrich(batch, &conn, &salt, &config::redact_words(env), now);
        (enriched.events, enriched.bots)
    };
    if bots > 0 {
        worker::console_log!("dropped {} events from a bot", bots);
    }
    let dropped = REFUSED.with(|p| p.borrow_mut().take_json(Some((&site, bots as u64))));
    let queued = env
        .queue(EVENTS_QUEUE)?
        .send(message_body(&events, now, &dropped))
        .await;
    if let Err(e) = queued {
        worker::console_error!("queue send failed: {}", e);
        if bots > 0 {
            return accepted(0);
        }
        let mut resp = http::error(503, "overloaded, try again")?;
        resp.headers_mut().set("Retry-After", "5")?;
        return Ok(resp);
    }
    accepted(events.len())
}

/// Whether the client IP is over the per-IP limit; `false` when the worker has no
/// `RATE_LIMITER` binding. The binding is called directly rather than through
/// `Env::rate_limiter`, whose answer goes through `serde_wasm_bindgen`'s deserializer: with
/// no such call left, that deserializer, and the float formatting its error messages pull
/// in, stay out of the bundle (see README, "Bundle size").
async fn over_rate_limit(env: &Env, ip: &str) -> Result<bool> {
    let limiter = Reflect::get(env, &JsValue::from_str(RATE_LIMITER))?;
    if limiter.is_undefined() {
        return Ok(false);
    }
    let options = Object::new();
    Reflect::set(&options, &JsValue::from_str("key"), &JsValue::from_str(ip))?;
    let promise = limiter
        .unchecked_into::<worker::worker_sys::RateLimiter>()
        .limit(options)?;
    let outcome = JsFuture::from(promise).await?;
    match Reflect::get(&outcome, &JsValue::from_str("success"))?.as_bool() {
        Some(success) => Ok(!success),
        None => Err(Error::RustError(
            "rate limiter: no success in its answer".into(),
        )),
    }
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
