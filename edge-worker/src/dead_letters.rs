//! Dead letters: batches the ingest server did not accept within the retry span arrive on the
//! dead-letter queue, whose consumer (this worker) parks each message in the `EdgeStore`
//! durable object (instance "dead-letters"), where it stays, without expiry, until an operator
//! replays it with a signed `POST /api/edge/replay` (README: `node scripts/replay.mjs`). Replay moves the parked
//! messages back onto the main queue; duplicates are harmless, events keep their ids.

use serde::{Deserialize, Serialize};
use tally_core::edge::{verify, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use wasm_bindgen::JsValue;
use worker::{
    Env, ListOptions, MessageBatch, MessageExt, Method, Request, RequestInit, Response, Result,
    Storage,
};

use crate::config::{Config, REPLAY_QUEUE, STORE_OBJECT};
use crate::http::{self, now_ms};

/// Parked messages moved back per replay request (an operator repeats until none remain).
const REPLAY_LIMIT: usize = 200;
const PREFIX: &str = "dl:";

#[derive(Serialize, Deserialize)]
struct Parked {
    key: String,
    body: String,
}

fn stub(env: &Env) -> Result<worker::Stub> {
    env.durable_object(STORE_OBJECT)?
        .get_by_name("dead-letters")
}

async fn call(env: &Env, method: Method, path: &str, body: Option<String>) -> Result<Response> {
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some(body) = body {
        init.with_body(Some(JsValue::from_str(&body)));
    }
    let req = Request::new_with_init(&format!("https://dead-letters{path}"), &init)?;
    let resp = stub(env)?.fetch_with_request(req).await?;
    if resp.status_code() != 200 {
        return Err(worker::Error::RustError(format!(
            "dead letters {path}: {}",
            resp.status_code()
        )));
    }
    Ok(resp)
}

/// The dead-letter queue's consumer: park every message, then acknowledge.
pub async fn park(batch: MessageBatch<String>, env: &Env) -> Result<()> {
    let parked: Vec<Parked> = batch
        .raw_iter()
        .map(|m| Parked {
            key: format!("{PREFIX}{}", m.id()),
            body: m.body().as_string().unwrap_or_default(),
        })
        .collect();
    let n = parked.len();
    match call(
        env,
        Method::Post,
        "/park",
        Some(serde_json::to_string(&parked)?),
    )
    .await
    {
        Ok(_) => {
            worker::console_error!("{} queued requests dead-lettered; replay them", n);
            batch.ack_all();
        }
        Err(e) => {
            worker::console_error!("parking dead letters failed: {}", e);
            batch.retry_all();
        }
    }
    Ok(())
}

/// `POST /api/edge/replay`, signed like the edge → ingest channel (over the request body):
/// moves up to [`REPLAY_LIMIT`] parked messages back onto the main queue.
pub async fn replay(mut req: Request, env: &Env) -> Result<Response> {
    let Ok(cfg) = Config::from_env(env) else {
        return http::error(500, "not configured");
    };
    let body = req.bytes().await?;
    let ts = req.headers().get(TIMESTAMP_HEADER)?;
    let sig = req.headers().get(SIGNATURE_HEADER)?;
    if let Err(e) = verify(
        &cfg.secret,
        ts.as_deref(),
        sig.as_deref(),
        &body,
        now_ms() / 1000,
    ) {
        return http::error(401, &e.to_string());
    }
    let path = format!("/take?limit={}", REPLAY_LIMIT + 1);
    let mut parked: Vec<Parked> = call(env, Method::Get, &path, None).await?.json().await?;
    let remaining = parked.len() > REPLAY_LIMIT;
    parked.truncate(REPLAY_LIMIT);
    let queue = env.queue(REPLAY_QUEUE)?;
    let mut done = Vec::new();
    for p in &parked {
        if let Err(e) = queue.send(p.body.clone()).await {
            worker::console_error!("replay: queue send failed: {}", e);
            break;
        }
        done.push(p.key.clone());
    }
    if !done.is_empty() {
        call(
            env,
            Method::Post,
            "/delete",
            Some(serde_json::to_string(&done)?),
        )
        .await?;
    }
    let remaining = remaining || done.len() < parked.len();
    http::raw_json(
        200,
        format!("{{\"replayed\":{},\"remaining\":{remaining}}}", done.len()),
    )
}

/// The `EdgeStore` object's dead-letter requests: `/park`, `/take?limit=N`, `/delete`.
pub async fn serve(storage: Storage, mut req: Request, path: &str, url: &str) -> Result<Response> {
    match path {
        "/park" => {
            let parked: Vec<Parked> = req.json().await?;
            for p in parked {
                storage.put(&p.key, &p.body).await?;
            }
            Response::ok("parked")
        }
        "/take" => {
            let limit = tally_edge_model::access::query_param(url, "limit")
                .and_then(|v| v.parse().ok())
                .unwrap_or(REPLAY_LIMIT);
            let map = storage
                .list_with_options(ListOptions::new().prefix(PREFIX).limit(limit))
                .await?;
            let mut out = Vec::new();
            for entry in map.entries() {
                let pair = js_sys::Array::from(&entry?);
                out.push(Parked {
                    key: pair.get(0).as_string().unwrap_or_default(),
                    body: pair.get(1).as_string().unwrap_or_default(),
                });
            }
            Response::from_json(&out)
        }
        "/delete" => {
            let keys: Vec<String> = req.json().await?;
            for chunk in keys.chunks(128) {
                storage.delete_multiple(chunk.to_vec()).await?;
            }
            Response::ok("deleted")
        }
        _ => Response::error("not found", 404),
    }
}
