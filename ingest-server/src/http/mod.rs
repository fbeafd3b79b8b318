//! The HTTP boundary: [`router`] builds every route over an [`App`]; binding and serving are
//! the caller's (see `crate::serve`), so tests drive the router without a socket.
//!
//! - [`collect`]: `POST /api/event` (CONTRACT §2).
//! - [`edge`]: the edge worker's signed batch endpoint and site list.
//! - [`ops`]: `/healthz`, `/metrics`, `/api/sites`.
//! - [`stats`]: `/api/stats/*` (CONTRACT §4).
//! - [`trace`]: `/api/trace/ID` and `/api/pipeline` (CONTRACT §8).
//! - [`monitors`]: `/api/monitors` (CONTRACT §7).
//! - [`assets`]: the tracker and the admin page.
//! - [`error`], [`auth`]: the error type and the stats key check.

pub mod assets;
pub mod auth;
pub mod collect;
pub mod edge;
pub mod error;
pub mod monitors;
pub mod ops;
pub mod stats;
pub mod trace;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::app::App;
use crate::metrics::Metrics;

pub fn router(app: App) -> Router {
    let sites = app.sites.clone();
    // Beacons are `text/plain` and need no preflight; CORS still has to allow the site's
    // origin for `fetch` to read the answer. Only registered sites' origins are allowed.
    let cors = CorsLayer::new()
        .allow_methods([Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin
                .to_str()
                .ok()
                .and_then(collect::url_host)
                .is_some_and(|host| sites.knows_host(&host))
        }));
    let timed = |route: &'static str| from_fn_with_state((app.metrics.clone(), route), time);
    Router::new()
        .route(
            "/api/event",
            post(collect::collect)
                .layer(cors)
                .layer(timed("/api/event")),
        )
        .route(
            tally_core::edge::BATCH_PATH,
            post(edge::batch).layer(timed(tally_core::edge::BATCH_PATH)),
        )
        .route("/api/edge/sites", get(edge::sites))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .merge(read_api())
        .merge(assets::router(&app))
        .with_state(app)
}

/// Records how long `route` took to answer, from the request's arrival (its body not read
/// yet) to the response (`tally_request_seconds`).
async fn time(
    State((metrics, route)): State<(Arc<Metrics>, &'static str)>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let res = next.run(req).await;
    metrics.observe_request(route, started.elapsed());
    res
}

/// The routes that need the stats key. They answer any origin: the key travels in the
/// `Authorization` header (never a cookie), so an admin page hosted elsewhere can read them
/// and a page without the key cannot.
fn read_api() -> Router<App> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET])
        .allow_headers([header::AUTHORIZATION])
        .expose_headers([header::CONTENT_DISPOSITION]);
    Router::new()
        .route("/api/sites", get(ops::sites))
        .route("/api/trace/{id}", get(trace::trace))
        .route("/api/pipeline", get(trace::pipeline))
        .route("/api/monitors", get(monitors::monitors))
        .merge(stats::routes())
        .layer(cors)
}
