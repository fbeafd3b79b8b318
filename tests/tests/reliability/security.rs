//! Who gets in: the stats key on every read route, keys stored hashed, the edge channel's
//! signatures, CORS, per-IP rate limits, the admin page's headers, and what never reaches
//! logs or storage.

use std::time::Duration;

use serde_json::json;
use tally_tests::bench::ingest::UA;
use tally_tests::harness::{client, debug_binary, new_ids, stored_ids, Spawn, SqliteDb};

use crate::{EDGE_SECRET, SERIAL};

/// Every route of CONTRACT §4, §7 and §8 that needs the stats key.
const KEYED_ROUTES: &[&str] = &[
    "/api/stats/summary?site=example.com",
    "/api/stats/timeseries?site=example.com&interval=day",
    "/api/stats/breakdown?site=example.com&dim=page",
    "/api/stats/realtime?site=example.com",
    "/api/stats/export?site=example.com&format=csv",
    "/api/monitors",
    "/api/trace/01JD3Z6Q8R9S0T1V2W3X4Y5Z6A",
    "/api/pipeline?site=example.com",
    "/api/sites",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_keyed_route_answers_401_without_a_valid_key() {
    let db = SqliteDb::new();
    let spawn = Spawn::new(&debug_binary(), &db.url);
    let server = spawn.start().await.expect("server starts");
    let key = spawn
        .run(&["key", "create"])
        .expect("key")
        .trim()
        .to_string();
    let http = client();
    let mut wrong = key.clone();
    wrong.pop();
    wrong.push(if key.ends_with('x') { 'y' } else { 'x' });
    let mut failures = Vec::new();
    for route in KEYED_ROUTES {
        let url = format!("{}{route}", server.base);
        let attempts: [(&str, Option<String>); 5] = [
            ("no key", None),
            ("wrong key", Some(format!("Bearer {wrong}"))),
            ("empty key", Some("Bearer ".into())),
            ("key without Bearer", Some(key.clone())),
            ("basic auth", Some(format!("Basic {key}"))),
        ];
        let mut seen = Vec::new();
        for (what, header) in attempts {
            let mut req = http.get(&url);
            if let Some(h) = header {
                req = req.header("authorization", h);
            }
            let status = req.send().await.expect("answer").status().as_u16();
            seen.push(status);
            if status != 401 {
                failures.push(format!("{route} with {what}: {status}"));
            }
        }
        let with_key = http
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .expect("answer")
            .status()
            .as_u16();
        println!("auth: {route}: without a valid key {seen:?}, with the key {with_key}");
        if with_key == 401 {
            failures.push(format!("{route} refuses the valid key"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_stored_hashed() {
    let db = SqliteDb::new();
    let spawn = Spawn::new(&debug_binary(), &db.url);
    let server = spawn.start().await.expect("server starts");
    let key = spawn
        .run(&["key", "create"])
        .expect("key")
        .trim()
        .to_string();
    let ok = client()
        .get(format!("{}/api/sites", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("answer");
    assert_eq!(ok.status().as_u16(), 200, "the key works");
    let bytes = db.bytes();
    let found = bytes
        .windows(key.len().min(16))
        .any(|w| w == &key.as_bytes()[..key.len().min(16)]);
    println!(
        "keys: {} bytes of database searched for the key ({} characters): found {found}",
        bytes.len(),
        key.len()
    );
    assert!(key.len() >= 16, "keys are long");
    assert!(!found, "no part of the plaintext key is stored");
}

async fn post_signed(
    http: &reqwest::Client,
    base: &str,
    body: &str,
    ts: i64,
    secret: &[u8],
) -> u16 {
    let sig = tally_core::edge::sign(secret, ts, body.as_bytes());
    http.post(format!("{base}{}", tally_core::edge::BATCH_PATH))
        .header(tally_core::edge::TIMESTAMP_HEADER, ts.to_string())
        .header(tally_core::edge::SIGNATURE_HEADER, sig)
        .body(body.to_string())
        .send()
        .await
        .expect("answer")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_batches_forged_modified_stale_or_replayed_are_refused() {
    let db = SqliteDb::new();
    let server = Spawn::new(&debug_binary(), &db.url)
        .arg("--edge-secret", EDGE_SECRET)
        .start()
        .await
        .expect("server starts");
    let http = client();
    let id = new_ids(1).remove(0);
    let now = ingest_server::now_ms();
    let batch = json!({"batch": "b1", "events": [{"site": "example.com", "id": id, "kind": "pageview",
        "url": "https://example.com/", "ts": now, "visitor": "0123456789abcdef", "browser": "Firefox",
        "os": "Linux", "device": "desktop", "edge_at": now}]})
    .to_string();
    let secret = EDGE_SECRET.as_bytes();
    let ts = now / 1000;
    let forged = post_signed(&http, &server.base, &batch, ts, b"not the shared secret").await;
    let stale = post_signed(&http, &server.base, &batch, ts - 3_600, secret).await;
    let sig = tally_core::edge::sign(secret, ts, batch.as_bytes());
    let modified = http
        .post(format!("{}{}", server.base, tally_core::edge::BATCH_PATH))
        .header(tally_core::edge::TIMESTAMP_HEADER, ts.to_string())
        .header(tally_core::edge::SIGNATURE_HEADER, &sig)
        .body(batch.replace("https://example.com/", "https://example.com/x"))
        .send()
        .await
        .expect("answer")
        .status()
        .as_u16();
    let unsigned = http
        .post(format!("{}{}", server.base, tally_core::edge::BATCH_PATH))
        .body(batch.clone())
        .send()
        .await
        .expect("answer")
        .status()
        .as_u16();
    let genuine = post_signed(&http, &server.base, &batch, ts, secret).await;
    let replayed = post_signed(&http, &server.base, &batch, ts, secret).await;
    let stored = stored_ids(&db.url).await.expect("read");
    println!(
        "edge channel: forged {forged}, stale {stale}, modified {modified}, unsigned {unsigned}, \
         genuine {genuine}, replayed {replayed}; stored {}",
        stored.len()
    );
    assert_eq!(
        [forged, stale, modified, unsigned, genuine, replayed],
        [401, 401, 401, 401, 200, 401]
    );
    assert_eq!(stored.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_only_for_registered_sites_and_per_ip_rate_limit() {
    let db = SqliteDb::new();
    let server = Spawn::new(&debug_binary(), &db.url)
        .arg("--rate-limit", "5")
        .arg("--ip-header", "X-Forwarded-For")
        .start()
        .await
        .expect("server starts");
    let http = client();
    let preflight = |origin: &'static str| {
        http.request(
            reqwest::Method::OPTIONS,
            format!("{}/api/event", server.base),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .header("x-forwarded-for", "192.0.2.200")
        .send()
    };
    let allowed = preflight("https://www.example.com").await.expect("answer");
    let allowed = allowed
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let foreign = preflight("https://evil.test").await.expect("answer");
    let foreign = foreign
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    println!("CORS: www.example.com → {allowed:?}, evil.test → {foreign:?}");
    assert_eq!(allowed.as_deref(), Some("https://www.example.com"));
    assert_eq!(foreign, None);

    // A page of another origin posting for example.com is refused.
    let body = json!({"site": "example.com", "events": [{"id": new_ids(1)[0], "kind": "pageview",
        "url": "https://example.com/", "ts": ingest_server::now_ms()}]})
    .to_string();
    let cross = http
        .post(format!("{}/api/event", server.base))
        .header("origin", "https://evil.test")
        .header("user-agent", UA)
        .header("x-forwarded-for", "192.0.2.201")
        .body(body)
        .send()
        .await
        .expect("answer")
        .status()
        .as_u16();
    assert_eq!(cross, 403);

    // Per client IP: the sixth request of a minute is refused, another IP's is not.
    let send = |ip: &'static str| {
        let body =
            json!({"site": "example.com", "events": [{"id": new_ids(1)[0], "kind": "pageview",
            "url": "https://example.com/", "ts": ingest_server::now_ms()}]})
            .to_string();
        http.post(format!("{}/api/event", server.base))
            .header("user-agent", UA)
            .header("x-forwarded-for", ip)
            .body(body)
            .send()
    };
    let mut statuses = Vec::new();
    let mut retry_after = true;
    for _ in 0..8 {
        let r = send("203.0.113.7").await.expect("answer");
        if r.status().as_u16() == 429 {
            retry_after &= r.headers().contains_key("retry-after");
        }
        statuses.push(r.status().as_u16());
    }
    let other = send("203.0.113.8").await.expect("answer").status().as_u16();
    println!("rate limit 5/min: one IP {statuses:?}, another IP {other}");
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 5);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 3);
    assert!(retry_after, "429 carries Retry-After");
    assert_eq!(other, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_page_security_headers() {
    let db = SqliteDb::new();
    let server = Spawn::new(&debug_binary(), &db.url)
        .start()
        .await
        .expect("server starts");
    let r = client()
        .get(format!("{}/", server.base))
        .send()
        .await
        .expect("answer");
    let h = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (csp, nosniff, frame, referrer) = (
        h("content-security-policy"),
        h("x-content-type-options"),
        h("x-frame-options"),
        h("referrer-policy"),
    );
    println!("admin page {}: CSP {csp:?}; nosniff {nosniff:?}; X-Frame-Options {frame:?}; Referrer-Policy {referrer:?}", r.status());
    assert_eq!(r.status().as_u16(), 200);
    let script_src = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .or_else(|| {
            csp.split(';')
                .map(str::trim)
                .find(|d| d.starts_with("default-src"))
        })
        .unwrap_or_default();
    assert!(!script_src.is_empty(), "CSP restricts scripts");
    assert!(!script_src.contains("'unsafe-inline'") && !script_src.contains("'unsafe-eval'"));
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(nosniff, "nosniff");
    assert_eq!(frame, "DENY");
}

/// Events carrying an IP, a distinctive User-Agent, sensitive URL parameters, a sensitive
/// referrer, an email in the path and sensitive props, with the server logging at `debug`:
/// none of it appears in the log or in the database files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_sensitive_in_logs_or_storage() {
    let _serial = SERIAL.lock().await;
    let db = SqliteDb::new();
    let log = db.dir.path().join("server.log");
    let spawn = Spawn::new(&debug_binary(), &db.url)
        .arg("--ip-header", "X-Forwarded-For")
        .arg("--edge-secret", EDGE_SECRET)
        .env("TALLY_LOG", "debug")
        .log_to(&log);
    let server = spawn.start().await.expect("server starts");
    let key = spawn
        .run(&["key", "create"])
        .expect("key")
        .trim()
        .to_string();
    const IP: &str = "198.51.100.77";
    let ua = format!("{UA} Zqxbrowserbuild/77.1");
    let ts = ingest_server::now_ms();
    let ids = new_ids(3);
    let body = json!({"site": "example.com", "events": [
        {"id": ids[0], "kind": "pageview", "ts": ts,
         "url": "https://example.com/account/alice.secret@example.org/settings?password=Hunter2pw&token=tokQ7Z9&session=sessK4M2&utm_source=newsletter",
         "referrer": "https://mail.example.net/reset?auth=authV8N1&email=bob.secret%40example.org"},
        {"id": ids[1], "kind": "event", "name": "Signup", "ts": ts, "url": "https://example.com/signup",
         "props": {"plan": "pro", "email": "carol.secret@example.org", "api_key": "keyR5T6", "password": "pwdL3J8"}},
        {"id": ids[2], "kind": "engagement", "engaged_ms": 1000, "ts": ts, "url": "https://example.com/?secret=sekW2E4"}
    ]})
    .to_string();
    let http = client();
    let r = http
        .post(format!("{}/api/event", server.base))
        .header("user-agent", &ua)
        .header("x-forwarded-for", IP)
        .header("content-type", "text/plain;charset=UTF-8")
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 202);
    // Reads that carry the key, and a trace of a stored event.
    for path in [
        "/api/stats/summary?site=example.com".to_string(),
        format!("/api/trace/{}", ids[0]),
        "/api/pipeline?site=example.com".to_string(),
    ] {
        let _ = http
            .get(format!("{}{path}", server.base))
            .bearer_auth(&key)
            .send()
            .await;
    }
    // A wrong key and a forged edge batch are logged as refusals, with nothing of theirs.
    let _ = http
        .get(format!("{}/api/sites", server.base))
        .bearer_auth("wrongkeyP0O9I8U7")
        .send()
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(server);

    let secrets = [
        IP,
        "Zqxbrowserbuild",
        "alice.secret",
        "bob.secret",
        "carol.secret",
        "Hunter2pw",
        "tokQ7Z9",
        "sessK4M2",
        "authV8N1",
        "keyR5T6",
        "pwdL3J8",
        "sekW2E4",
        &key,
        "wrongkeyP0O9I8U7",
        EDGE_SECRET,
    ];
    let logged = std::fs::read(&log).unwrap_or_default();
    let stored = db.bytes();
    let mut leaks = Vec::new();
    for s in secrets {
        let find = |hay: &[u8]| hay.windows(s.len()).any(|w| w == s.as_bytes());
        if find(&logged) {
            leaks.push(format!("{s} in the log"));
        }
        if find(&stored) {
            leaks.push(format!("{s} in the database"));
        }
    }
    let visible_utm = stored.windows(10).any(|w| w == b"newsletter");
    println!(
        "logs and storage: {} log bytes at debug, {} database bytes searched for {} sensitive strings: {:?}",
        logged.len(),
        stored.len(),
        secrets.len(),
        leaks
    );
    assert!(visible_utm, "the check can see what is stored (utm_source)");
    assert!(leaks.is_empty(), "leaked: {leaks:#?}");
}
