//! The signed requests to the ingest server (tally-core's `edge` channel), and the cached list
//! of registered sites (refreshed in the background, the last known list kept while the
//! ingest server is unreachable).

use std::cell::RefCell;
use std::pin::pin;
use std::time::Duration;

use futures_util::future::{select, Either};
use tally_core::edge::{sign, BATCH_PATH, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use tally_edge_model::sites::{self, SiteCache, SITES_PATH};
use wasm_bindgen::JsValue;
use worker::{Context, Delay, Env, Error, Fetch, Headers, Method, Request, RequestInit, Result};

use crate::config::Config;
use crate::http::now_ms;

/// How long the first fetch of the sites list may hold up a request.
const SITES_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a batch POST may take before it counts as failed and is retried.
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

thread_local! {
    static SITES: RefCell<SiteCache> = RefCell::new(SiteCache::default());
}

/// Sends a signed request and returns the answer's status and body.
async fn signed(
    cfg: &Config,
    method: Method,
    path: &str,
    body: String,
    timeout: Duration,
) -> Result<(u16, Vec<u8>)> {
    let ts = now_ms() / 1000;
    let headers = Headers::new();
    headers.set(TIMESTAMP_HEADER, &ts.to_string())?;
    headers.set(SIGNATURE_HEADER, &sign(&cfg.secret, ts, body.as_bytes()))?;
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if !body.is_empty() {
        init.headers.set("Content-Type", "application/json")?;
        init.with_body(Some(JsValue::from_str(&body)));
    }
    let req = Request::new_with_init(&format!("{}{}", cfg.ingest_url, path), &init)?;
    let call = async {
        let mut resp = Fetch::Request(req).send().await?;
        let bytes = resp.bytes().await?;
        Ok::<_, Error>((resp.status_code(), bytes))
    };
    match select(pin!(call), pin!(Delay::from(timeout))).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(Error::RustError(format!("{path}: timed out"))),
    }
}

/// Posts one batch body; the status decides (see `forward::Delivery`).
pub async fn post_batch(cfg: &Config, body: Vec<u8>) -> Result<u16> {
    let body = String::from_utf8(body).map_err(|e| Error::RustError(e.to_string()))?;
    let (status, answer) = signed(cfg, Method::Post, BATCH_PATH, body, BATCH_TIMEOUT).await?;
    if !(200..300).contains(&status) {
        let answer = String::from_utf8_lossy(&answer);
        worker::console_warn!("ingest answered {}: {:.200}", status, answer);
    }
    Ok(status)
}

async fn fetch_sites(env: &Env) -> Option<Vec<String>> {
    let cfg = Config::from_env(env).ok()?;
    match signed(&cfg, Method::Get, SITES_PATH, String::new(), SITES_TIMEOUT).await {
        Ok((200, body)) => sites::parse(&body),
        Ok((status, _)) => {
            worker::console_warn!("sites list: ingest answered {}", status);
            None
        }
        Err(e) => {
            worker::console_warn!("sites list: {}", e);
            None
        }
    }
}

/// The registered sites, or `None` when no list was ever fetched. A stale list is returned
/// at once and refreshed in the background; only the very first fetch is awaited.
pub async fn sites(env: &Env, ctx: &Context) -> Option<Vec<String>> {
    let now = now_ms();
    let (list, due) = SITES.with(|c| {
        let c = c.borrow();
        (c.list().map(<[String]>::to_vec), c.refresh_due(now))
    });
    if !due {
        return list;
    }
    // Claim the refresh, so that concurrent requests do not all start one.
    SITES.with(|c| c.borrow_mut().record(None, now));
    let env = env.clone();
    let refresh = async move {
        if let Some(fresh) = fetch_sites(&env).await {
            SITES.with(|c| c.borrow_mut().record(Some(fresh), now_ms()));
        }
    };
    if list.is_some() {
        ctx.wait_until(refresh);
        return list;
    }
    refresh.await;
    SITES.with(|c| c.borrow().list().map(<[String]>::to_vec))
}
