//! Static files: the tracker (`/t.js` and its wasm, from `TALLY_TRACKER_DIR`) and the admin
//! page (`/`, from `TALLY_WWW_DIR`), compressed, with cache and security headers.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;

use crate::app::App;

/// The admin page's Content-Security-Policy: no inline scripts, no framing.
pub const ADMIN_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

pub fn router(app: &App) -> Router<App> {
    let files = ServeDir::new(&app.config.tracker_dir)
        .append_index_html_on_directories(false)
        .fallback(ServeDir::new(&app.config.www_dir));
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn(headers))
        .layer(CompressionLayer::new())
}

fn is_tracker_file(path: &str) -> bool {
    path == "/t.js" || (path.ends_with(".wasm") && !path[1..].contains('/'))
}

async fn headers(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if is_tracker_file(&path) {
        // Loaded by other sites' pages: readable cross-origin. The wasm's name carries its
        // content hash, so it never changes; t.js keeps its name and is cached briefly.
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            "cross-origin-resource-policy",
            HeaderValue::from_static("cross-origin"),
        );
        let cache = if path.ends_with(".wasm") {
            "public, max-age=31536000, immutable"
        } else {
            "public, max-age=3600"
        };
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    } else if path == "/demo" || path.starts_with("/demo/") {
        // The demo site stands for a customer's site: it carries the inline snippet and
        // runs the tracker's wasm, so it does not get the admin page's policy.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    } else {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(ADMIN_CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_files() {
        assert!(is_tracker_file("/t.js"));
        assert!(is_tracker_file("/t.1a2b3c4d.wasm"));
        assert!(!is_tracker_file("/vendor/x.wasm"));
        assert!(!is_tracker_file("/index.html"));
    }
}
