//! Tally's edge worker (Cloudflare Workers, workers-rs): the thin platform glue around
//! `tally-core` (validation, UA parsing, the visitor hash, the edge signature) and
//! `tally-edge-model` (`model/`: enrichment, access, retries, salts, batches).
//!
//! - [`collect`]: `POST /api/event`: rate limit, validate, check the site, enrich, queue, `202`.
//! - [`consumer`]: the queue consumer: signed batches to the ingest server, and retries.
//! - [`ingest`]: the signed requests to the ingest server, and the cached list of sites.
//! - [`salt_keeper`]: the `SaltKeeper` durable object (daily salts).
//! - [`config`], [`http`]: configuration from the environment, response helpers.
//!
//! The tracker assets (`/t.js`, its wasm) are served by the platform from `build/assets`.

use worker::{event, Context, Env, MessageBatch, Method, Request, Response, Result};

mod collect;
mod config;
mod consumer;
mod http;
mod ingest;
mod salt_keeper;

pub use salt_keeper::SaltKeeper;

// A small free-list allocator instead of the default dlmalloc: a few KB less wasm.
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let path = tally_edge_model::access::path_of(&req.inner().url()).to_string();
    let result = match (req.method(), path.as_str()) {
        (Method::Post, "/api/event") => collect::post_event(req, &env, &ctx).await,
        (Method::Options, "/api/event") => collect::preflight(&req, &env, &ctx).await,
        (_, "/api/event") => http::error(405, "method not allowed"),
        _ => http::error(404, "not found"),
    };
    result.or_else(|e| {
        console_error(&format!("{path}: {e}"));
        http::error(500, "internal error")
    })
}

#[event(queue)]
async fn queue(batch: MessageBatch<String>, env: Env, _ctx: Context) -> Result<()> {
    consumer::consume(batch, &env).await
}

fn console_error(msg: &str) {
    worker::console_error!("{}", msg);
}
