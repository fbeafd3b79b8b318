//! `POST /api/event` through the router, without a socket.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use ingest_server::app::App;
use ingest_server::config::Config;
use ingest_server::metrics::Metrics;
use ingest_server::pipeline::Pipeline;
use ingest_server::store::Store;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::helpers::{body, new_id, pageview, Kind, TestDb, UA_CHROME, UA_IPHONE};

struct Fixture {
    router: Router,
    store: Store,
    _db: TestDb,
}

async fn fixture(extra: &[&str]) -> Fixture {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = db.store().await;
    store.add_site("example.com").await.expect("site");
    let mut args = vec!["--database-url", db.url.as_str()];
    args.extend_from_slice(extra);
    let config = Config::from_args(args).expect("config");
    let metrics = Arc::new(Metrics::with_store(&store));
    let (pipeline, _writer) =
        Pipeline::start(store.clone(), metrics.clone(), config.pipeline.clone());
    let app = App::new(config, store.clone(), pipeline, metrics).expect("app");
    app.sites.reload(&store).await.expect("sites");
    Fixture {
        router: ingest_server::http::router(app),
        store,
        _db: db,
    }
}

async fn send(
    router: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = router.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, value)
}

fn event_request(body: impl Into<Body>, ua: &str, origin: Option<&str>) -> Request<Body> {
    let mut r = Request::post("/api/event")
        .header("content-type", "text/plain;charset=UTF-8")
        .header("user-agent", ua);
    if let Some(origin) = origin {
        r = r.header("origin", origin);
    }
    r.body(body.into()).expect("request")
}

async fn stored(store: &Store) -> i64 {
    let site = store
        .site("example.com")
        .await
        .expect("query")
        .expect("site");
    store.count_events(site.id).await.expect("count")
}

#[tokio::test]
async fn accepts_then_reports_duplicates() {
    let f = fixture(&[]).await;
    let events = [
        pageview(&new_id(), "https://example.com/a"),
        pageview(&new_id(), "https://example.com/b"),
    ];
    let b = body("example.com", &events);
    let (status, headers, value) = send(
        &f.router,
        event_request(b.clone(), UA_CHROME, Some("https://example.com")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(value, json!({"accepted": 2, "duplicates": 0}));
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://example.com"
    );
    let (status, _, value) = send(&f.router, event_request(b, UA_CHROME, None)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(value, json!({"accepted": 0, "duplicates": 2}));
    assert_eq!(stored(&f.store).await, 2);
}

#[tokio::test]
async fn rejections_name_the_problem_and_change_nothing() {
    let f = fixture(&[]).await;
    let good = pageview(&new_id(), "https://example.com/");
    let cases: Vec<(String, Option<&str>, StatusCode, &str)> = vec![
        (
            "not json".into(),
            None,
            StatusCode::BAD_REQUEST,
            "malformed body",
        ),
        (
            body("example.com", &[]),
            None,
            StatusCode::BAD_REQUEST,
            "events: must hold at least one event",
        ),
        (
            body(
                "example.com",
                &[
                    good.clone(),
                    json!({"id": "bad", "kind": "pageview", "url": "https://example.com/", "ts": 1}),
                ],
            ),
            None,
            StatusCode::BAD_REQUEST,
            "events[1].id",
        ),
        (
            body(
                "unknown.org",
                &[pageview(&new_id(), "https://unknown.org/")],
            ),
            None,
            StatusCode::FORBIDDEN,
            "site unknown.org is not registered",
        ),
        (
            body(
                "example.com",
                &[good.clone(), pageview(&new_id(), "https://evil.net/")],
            ),
            None,
            StatusCode::FORBIDDEN,
            "events[1].url: the page is not on site example.com",
        ),
        (
            body("example.com", std::slice::from_ref(&good)),
            Some("https://evil.net"),
            StatusCode::FORBIDDEN,
            "origin https://evil.net does not belong",
        ),
        (
            format!(
                "{{\"site\":\"example.com\",\"events\":[],\"pad\":\"{}\"}}",
                "x".repeat(70_000)
            ),
            None,
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
    ];
    for (b, origin, want_status, want_message) in cases {
        let (status, _, value) = send(&f.router, event_request(b, UA_CHROME, origin)).await;
        assert_eq!(status, want_status, "{value}");
        let message = value["error"].as_str().expect("error message");
        assert!(
            message.contains(want_message),
            "{message:?} should contain {want_message:?}"
        );
    }
    assert_eq!(stored(&f.store).await, 0);
}

#[tokio::test]
async fn bots_are_dropped_uncounted() {
    let f = fixture(&[]).await;
    for ua in ["Googlebot/2.1 (+http://www.google.com/bot.html)", "", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"] {
        let b = body("example.com", &[pageview(&new_id(), "https://example.com/")]);
        let (status, _, value) = send(&f.router, event_request(b, ua, None)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(value["accepted"], 0);
    }
    assert_eq!(stored(&f.store).await, 0);
    let (_, _, _) = send(
        &f.router,
        Request::get("/metrics").body(Body::empty()).expect("req"),
    )
    .await;
    let response = f
        .router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).expect("req"))
        .await
        .expect("metrics");
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf8");
    assert!(text.contains("tally_events_bot_total 3"), "{text}");
}

#[tokio::test]
async fn enrichment_keeps_no_ip_ua_or_secret() {
    let f = fixture(&[
        "--country-header",
        "CF-IPCountry",
        "--ip-header",
        "X-Forwarded-For",
    ])
    .await;
    let id = new_id();
    let events = [
        json!({"id": id, "kind": "event", "name": "Signup", "props": {"plan": "pro", "auth_token": "s3cr3t-t0k3n"},
        "url": "https://www.example.com/pricing?email=a@b.c&utm_campaign=launch", "ts": 1}),
    ];
    let request = Request::post("/api/event")
        .header("user-agent", UA_IPHONE)
        .header("x-forwarded-for", "203.0.113.77")
        .header("cf-ipcountry", "nz")
        .body(Body::from(body("example.com", &events)))
        .expect("request");
    let (status, _, _) = send(&f.router, request).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let e = f
        .store
        .event_by_id(&id)
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(e.country.as_deref(), Some("NZ"));
    assert_eq!(
        (e.browser.as_deref(), e.device.as_deref()),
        (Some("Safari"), Some("mobile"))
    );
    assert_eq!(e.path, "/pricing");
    assert_eq!(e.utm_campaign.as_deref(), Some("launch"));
    let row = serde_json::to_string(&e).expect("json");
    for secret in ["203.0.113.77", "iPhone OS", "s3cr3t-t0k3n", "a@b.c"] {
        assert!(!row.contains(secret), "{secret} leaked into {row}");
    }
}

#[tokio::test]
async fn same_visitor_same_day_different_ua_different_visitor() {
    let f = fixture(&["--ip-header", "X-Forwarded-For"]).await;
    let mut visitors = Vec::new();
    for ua in [UA_CHROME, UA_CHROME, UA_IPHONE] {
        let id = new_id();
        let request = Request::post("/api/event")
            .header("user-agent", ua)
            .header("x-forwarded-for", "198.51.100.4")
            .body(Body::from(body(
                "example.com",
                &[pageview(&id, "https://example.com/")],
            )))
            .expect("request");
        send(&f.router, request).await;
        visitors.push(
            f.store
                .event_by_id(&id)
                .await
                .expect("query")
                .expect("stored")
                .visitor,
        );
    }
    assert_eq!(visitors[0], visitors[1]);
    assert_ne!(visitors[0], visitors[2]);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let f = fixture(&["--rate-limit", "10", "--ip-header", "X-Forwarded-For"]).await;
    let mut statuses = Vec::new();
    for _ in 0..15 {
        let request = Request::post("/api/event")
            .header("user-agent", UA_CHROME)
            .header("x-forwarded-for", "192.0.2.1")
            .body(Body::from(body(
                "example.com",
                &[pageview(&new_id(), "https://example.com/")],
            )))
            .expect("request");
        let (status, headers, _) = send(&f.router, request).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(headers.contains_key("retry-after"));
        }
        statuses.push(status);
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(limited, 5, "{statuses:?}");
    assert_eq!(stored(&f.store).await, 10);
}

#[tokio::test]
async fn preflight_only_for_registered_origins() {
    let f = fixture(&[]).await;
    let preflight = |origin: &str| {
        Request::options("/api/event")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .expect("request")
    };
    let (_, headers, _) = send(&f.router, preflight("https://blog.example.com")).await;
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://blog.example.com"
    );
    let (_, headers, _) = send(&f.router, preflight("https://evil.net")).await;
    assert!(!headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn healthz_and_security_headers() {
    let f = fixture(&[]).await;
    let (status, _, value) = send(
        &f.router,
        Request::get("/healthz").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value["database"], "ok");
    assert_eq!(value["writer"], "ok");
    let (_, headers, _) = send(
        &f.router,
        Request::get("/").body(Body::empty()).expect("req"),
    )
    .await;
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    f.store.close().await;
    let (status, _, value) = send(
        &f.router,
        Request::get("/healthz").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(value["database"], "unreachable");
}

#[tokio::test]
async fn sites_need_a_key() {
    let f = fixture(&[]).await;
    let (status, _, _) = send(
        &f.router,
        Request::get("/api/sites").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send(
        &f.router,
        Request::get("/api/sites")
            .header("authorization", "Bearer nope")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let key = f.store.create_key(None).await.expect("key");
    let (status, _, value) = send(
        &f.router,
        Request::get("/api/sites")
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value, json!([{"domain": "example.com"}]));
}

#[tokio::test]
async fn read_api_is_readable_cross_origin_with_a_key_only() {
    let f = fixture(&[]).await;
    let preflight = Request::options("/api/stats/summary?site=example.com")
        .header("origin", "https://dashboards.example.net")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .body(Body::empty())
        .expect("request");
    let (status, headers, _) = send(&f.router, preflight).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(headers["access-control-allow-origin"], "*");
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    let get = Request::get("/api/stats/summary?site=example.com")
        .header("origin", "https://dashboards.example.net")
        .body(Body::empty())
        .expect("request");
    let (status, headers, _) = send(&f.router, get).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["access-control-allow-origin"], "*");
}

/// `/metrics` after a mix of requests: each counter, the queue depth and the commit
/// histograms hold what was sent.
#[tokio::test]
async fn metrics_count_what_was_sent() {
    let f = fixture(&[]).await;
    let page = |id: &str| pageview(id, "https://example.com/m");
    let ids: Vec<String> = (0..3).map(|_| new_id()).collect();
    let three: Vec<Value> = ids.iter().map(|id| page(id)).collect();
    for (body, ua, status) in [
        (body("example.com", &three), UA_CHROME, 202),
        (body("example.com", &three), UA_CHROME, 202),
        ("{not json".to_string(), UA_CHROME, 400),
        (
            body("nope.test", &[page(&new_id()), page(&new_id())]),
            UA_CHROME,
            403,
        ),
        (
            body("example.com", &[page(&new_id()), page(&new_id())]),
            "Googlebot/2.1 (+http://www.google.com/bot.html)",
            202,
        ),
    ] {
        let (got, _, value) = send(&f.router, event_request(body, ua, None)).await;
        assert_eq!(got.as_u16(), status, "{value}");
    }
    let response = f
        .router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).expect("req"))
        .await
        .expect("metrics");
    assert_eq!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .split(';')
            .next(),
        Some("application/openmetrics-text")
    );
    let bytes = response.into_body().collect().await.expect("body");
    let text = String::from_utf8(bytes.to_bytes().to_vec()).expect("utf8");
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert_eq!(
        value(r#"tally_events_accepted_total{source="browser"}"#),
        3.0
    );
    assert_eq!(
        value(r#"tally_events_duplicate_total{source="browser"}"#),
        3.0
    );
    assert_eq!(
        value(r#"tally_events_rejected_total{reason="invalid"}"#),
        1.0
    );
    assert_eq!(
        value(r#"tally_events_rejected_total{reason="unknown_site"}"#),
        2.0
    );
    assert_eq!(value("tally_events_bot_total"), 2.0);
    assert_eq!(value("tally_queue_depth"), 0.0);
    // No filtered stats query yet: no day digest held.
    assert_eq!(value("tally_digest_cache_bytes"), 0.0);
    // This router runs no rollup worker: the three new events wait to be counted.
    assert_eq!(value("tally_rollup_backlog"), 3.0);
    // Two commits of three events each: the new ones, then their duplicates.
    assert_eq!(value("tally_batch_size_count"), 2.0);
    assert_eq!(value("tally_batch_size_sum"), 6.0);
    assert_eq!(value("tally_commit_seconds_count"), 2.0);
    assert!(value("tally_commit_seconds_sum") > 0.0);
    assert_eq!(value("tally_commit_failures_total"), 0.0);
    // Every collect request is timed, refused ones included; the edge route saw none.
    assert_eq!(
        value(r#"tally_request_seconds_count{route="/api/event"}"#),
        5.0
    );
    assert!(value(r#"tally_request_seconds_sum{route="/api/event"}"#) > 0.0);
    assert!(!text.contains(r#"route="/api/edge/batch""#), "{text}");
    // The event writer took SQLite's write gate once per commit; nothing else wrote yet.
    assert_eq!(
        value(r#"tally_write_gate_seconds_count{holder="events"}"#),
        2.0
    );
    assert!(value(r#"tally_write_gate_seconds_sum{holder="events"}"#) > 0.0);
    assert!(!text.contains(r#"holder="rollups""#), "{text}");
    assert_eq!(stored(&f.store).await, 3);

    // Once they are counted, the backlog reads 0.
    ingest_server::rollup::roll_up_now(&f.store)
        .await
        .expect("roll up");
    let response = f
        .router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).expect("req"))
        .await
        .expect("metrics");
    let bytes = response.into_body().collect().await.expect("body");
    let text = String::from_utf8(bytes.to_bytes().to_vec()).expect("utf8");
    assert!(
        text.lines().any(|l| l == "tally_rollup_backlog 0"),
        "{text}"
    );
    // Counting them wrote once, under the rollup worker's label.
    assert!(
        text.lines()
            .any(|l| l == r#"tally_write_gate_seconds_count{holder="rollups"} 1"#),
        "{text}"
    );
}
