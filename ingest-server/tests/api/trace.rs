//! The event trace and the pipeline view (CONTRACT §8): every hop of an event that came
//! through the edge, drop counts equal to what was sent, and edge replays that count nothing.

use serde_json::{json, Value};
use tally_core::edge::{sign, BATCH_PATH, SIGNATURE_HEADER, TIMESTAMP_HEADER};

use crate::helpers::{
    body, new_id, pageview, post_events, Kind, TestDb, TestServer, EDGE_SECRET, UA_CHROME,
};

pub fn edge_event(site: &str, id: &str, client_ts: i64, edge_at: i64) -> Value {
    json!({"site": site, "id": id, "kind": "pageview", "url": format!("https://{site}/from-edge"),
           "ts": client_ts, "visitor": "00000000000000ff", "country": "FR", "browser": "Firefox",
           "os": "Linux", "device": "desktop", "edge_at": edge_at})
}

/// Sends a signed edge batch; returns the status and the answer.
pub async fn send_edge_batch(
    client: &reqwest::Client,
    base: &str,
    batch: &str,
    events: &[Value],
) -> (u16, Value) {
    send_edge_body(client, base, json!({"batch": batch, "events": events})).await
}

/// Signs and posts an edge batch given whole.
pub async fn send_edge_body(client: &reqwest::Client, base: &str, batch: Value) -> (u16, Value) {
    // The replay guard remembers signatures; every batch here has a different body.
    let ts = ingest_server::now_ms() / 1000;
    let body = batch.to_string();
    let r = client
        .post(format!("{base}{BATCH_PATH}"))
        .header(TIMESTAMP_HEADER, ts.to_string())
        .header(
            SIGNATURE_HEADER,
            sign(EDGE_SECRET.as_bytes(), ts, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

pub async fn get_json(client: &reqwest::Client, url: &str, key: &str) -> (u16, Value) {
    let r = client
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn trace_of_an_edge_event(kind: Kind) {
    let db = TestDb::new(kind).await;
    let store = db.store().await;
    store.add_site("example.com").await.expect("site");
    let key = store.create_key(None).await.expect("key");
    let server = TestServer::start(&db.url, &[]).await;
    let client = reqwest::Client::new();

    let id = new_id();
    let now = ingest_server::now_ms();
    let (status, _) = send_edge_batch(
        &client,
        &server.base,
        "batch-42",
        &[edge_event("example.com", &id, now - 3000, now - 1000)],
    )
    .await;
    assert_eq!(status, 200);

    let url = format!("{}/api/trace/{id}", server.base);
    let (status, hops) = get_json(&client, &url, &key).await;
    assert_eq!(status, 200, "{hops}");
    let hops = hops.as_array().expect("an array of hops");
    let names: Vec<&str> = hops
        .iter()
        .map(|h| h["hop"].as_str().expect("hop"))
        .collect();
    assert_eq!(names, ["browser", "edge", "ingest", "stored"]);
    assert_eq!(hops[1]["batch"], "batch-42");
    assert!(hops
        .iter()
        .filter(|h| h["hop"] != "edge")
        .all(|h| h.get("batch").is_none()));
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(hops[i]["at"].as_str().expect("at"))
            .expect("RFC 3339")
            .timestamp_millis()
    };
    assert_eq!(at(0), now - 3000);
    assert_eq!(at(1), now - 1000);
    assert!(at(2) >= at(1) && at(3) >= at(2), "{hops:?}");
    assert_eq!(hops[1]["after_ms"], 2000);
    assert_eq!(hops[2]["after_ms"].as_i64(), Some(at(2) - at(1)));
    assert_eq!(hops[3]["after_ms"].as_i64(), Some(at(3) - at(2)));

    // A browser event has no edge hop.
    let direct = new_id();
    let r = post_events(
        &client,
        &server.base,
        body("example.com", &[pageview(&direct, "https://example.com/")]),
    )
    .await;
    assert_eq!(r.status().as_u16(), 202);
    let (_, hops) = get_json(
        &client,
        &format!("{}/api/trace/{direct}", server.base),
        &key,
    )
    .await;
    let names: Vec<&str> = hops
        .as_array()
        .expect("hops")
        .iter()
        .map(|h| h["hop"].as_str().expect("hop"))
        .collect();
    assert_eq!(names, ["browser", "ingest", "stored"]);

    let (status, err) = get_json(&client, &format!("{}/api/trace/NOPE", server.base), &key).await;
    assert_eq!(status, 404);
    assert!(err["error"].as_str().expect("message").contains("NOPE"));
    let (status, _) = get_json(&client, &url, "tally_wrong").await;
    assert_eq!(status, 401);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn trace_shows_every_hop_sqlite() {
    trace_of_an_edge_event(Kind::Sqlite).await;
}

#[tokio::test]
async fn trace_shows_every_hop_postgres() {
    trace_of_an_edge_event(Kind::Postgres).await;
}

/// POSTs `body` to `/api/event` as `ua` from `ip` (the server trusts X-Forwarded-For here).
async fn post_as(client: &reqwest::Client, base: &str, ua: &str, ip: &str, body: String) -> u16 {
    client
        .post(format!("{base}/api/event"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("user-agent", ua)
        .header("x-forwarded-for", ip)
        .body(body)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

async fn pipeline_counts_what_was_sent(kind: Kind) {
    let db = TestDb::new(kind).await;
    let store = db.store().await;
    store.add_site("example.com").await.expect("site");
    let key = store.create_key(None).await.expect("key");
    let server = TestServer::start(
        &db.url,
        &["--rate-limit", "12", "--ip-header", "X-Forwarded-For"],
    )
    .await;
    let client = reqwest::Client::new();
    let base = server.base.as_str();
    let page = |id: &str| pageview(id, "https://example.com/p");

    // 3 stored, then 2 of them again (duplicates) with 1 new.
    let ids: Vec<String> = (0..4).map(|_| new_id()).collect();
    let first = body(
        "example.com",
        &[page(&ids[0]), page(&ids[1]), page(&ids[2])],
    );
    assert_eq!(
        post_as(&client, base, UA_CHROME, "10.0.0.1", first).await,
        202
    );
    let again = body(
        "example.com",
        &[page(&ids[0]), page(&ids[1]), page(&ids[3])],
    );
    assert_eq!(
        post_as(&client, base, UA_CHROME, "10.0.0.1", again).await,
        202
    );
    // 4 events from a bot.
    let bots: Vec<Value> = (0..4).map(|_| page(&new_id())).collect();
    let bot_ua = "Googlebot/2.1 (+http://www.google.com/bot.html)";
    assert_eq!(
        post_as(
            &client,
            base,
            bot_ua,
            "10.0.0.2",
            body("example.com", &bots)
        )
        .await,
        202
    );
    // A malformed body (1 request, site unknown) and 2 events of a page on another site.
    assert_eq!(
        post_as(&client, base, UA_CHROME, "10.0.0.3", "{not json".into()).await,
        400
    );
    let foreign = body(
        "example.com",
        &[pageview(&new_id(), "https://evil.test/"), page(&new_id())],
    );
    assert_eq!(
        post_as(&client, base, UA_CHROME, "10.0.0.3", foreign).await,
        403
    );
    // 3 events for a site that is not registered.
    let unknown: Vec<Value> = (0..3)
        .map(|_| pageview(&new_id(), "https://nope.test/"))
        .collect();
    assert_eq!(
        post_as(
            &client,
            base,
            UA_CHROME,
            "10.0.0.4",
            body("nope.test", &unknown)
        )
        .await,
        403
    );
    // One client over its rate limit (a burst of 10 requests of bot traffic, then 429s).
    let mut limited = 0;
    let mut bot_events = 4;
    for _ in 0..14 {
        match post_as(
            &client,
            base,
            bot_ua,
            "10.0.0.5",
            body("example.com", &[page(&new_id())]),
        )
        .await
        {
            429 => limited += 1,
            202 => bot_events += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(limited >= 3, "{limited} requests were limited");
    // Through the edge: 2 stored, then the same two again (a replay), and 1 of an unknown site.
    let now = ingest_server::now_ms();
    let edge_ids = [new_id(), new_id()];
    let edge_events: Vec<Value> = edge_ids
        .iter()
        .map(|id| edge_event("example.com", id, now - 200, now - 100))
        .collect();
    let (status, outcome) = send_edge_batch(&client, base, "e-1", &edge_events).await;
    assert_eq!(
        (status, outcome),
        (200, json!({"accepted": 2, "duplicates": 0}))
    );
    let mut replay = edge_events.clone();
    replay.push(edge_event("unknown.test", &new_id(), now, now));
    let (status, outcome) = send_edge_batch(&client, base, "e-2", &replay).await;
    assert_eq!(
        (status, outcome),
        (200, json!({"accepted": 0, "duplicates": 2}))
    );

    // What the edge dropped: 5 bot events on the site, 2 requests over the edge's rate limit,
    // 3 bot events of a site that is not registered (counted with no site, like refused
    // requests, so every site's view shows them), and a reason the server does not know.
    let drops = json!({"batch": "e-3", "events": [], "dropped": [
        {"site": "example.com", "reason": "bot", "n": 5},
        {"site": "", "reason": "rate_limited", "n": 2},
        {"site": "other.test", "reason": "bot", "n": 3},
        {"site": "", "reason": "no-such-reason", "n": 99}]});
    let (status, outcome) = send_edge_body(&client, base, drops).await;
    assert_eq!(
        (status, outcome),
        (200, json!({"accepted": 0, "duplicates": 0}))
    );
    let (bot_events, limited) = (bot_events + 5 + 3, limited + 2);

    // Drop counters are written every second.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (status, p) = get_json(
        &client,
        &format!("{base}/api/pipeline?site=example.com"),
        &key,
    )
    .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        p["dropped"],
        json!({"bot": bot_events, "invalid": 3, "duplicate": 4, "excluded": 0,
               "rate_limited": limited, "unknown_site": 4}),
        "{p}"
    );
    let hop = |name: &str| -> Value {
        p["hops"]
            .as_array()
            .expect("hops")
            .iter()
            .find(|h| h["hop"] == name)
            .cloned()
            .expect("hop present")
    };
    let stored = 4 + 2;
    let dropped = bot_events + 3 + 4 + limited + 4;
    assert_eq!(hop("stored")["events"], stored);
    assert_eq!(hop("edge")["events"], 2);
    assert_eq!(hop("ingest")["events"], stored + dropped);
    assert_eq!(hop("browser")["events"], stored + dropped);
    assert!(hop("browser")["lag_p50_ms"].is_null());
    // Edge events took 100 ms from the browser to the edge.
    assert_eq!(hop("edge")["lag_p50_ms"], 100);
    assert!(hop("stored")["lag_p99_ms"].as_i64().expect("lag") >= 0);
    let last = p["last_edge_batch"].as_str().expect("last edge batch");
    let last = chrono::DateTime::parse_from_rfc3339(last).expect("RFC 3339");
    assert!((ingest_server::now_ms() - last.timestamp_millis()).abs() < 60_000);

    let (status, _) = get_json(
        &client,
        &format!("{base}/api/pipeline?site=other.test"),
        &key,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get_json(&client, &format!("{base}/api/pipeline"), &key).await;
    assert_eq!(status, 400);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn pipeline_drop_counts_match_sqlite() {
    pipeline_counts_what_was_sent(Kind::Sqlite).await;
}

#[tokio::test]
async fn pipeline_drop_counts_match_postgres() {
    pipeline_counts_what_was_sent(Kind::Postgres).await;
}

/// Replaying the edge's dead letters (the same events in new signed batches) twice changes
/// no count.
#[tokio::test]
async fn replaying_dead_letters_twice_counts_nothing_twice() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = db.store().await;
    let (site, _) = store.add_site("example.com").await.expect("site");
    let key = store.create_key(None).await.expect("key");
    let server = TestServer::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    let now = ingest_server::now_ms();
    let events: Vec<Value> = (0..5)
        .map(|_| edge_event("example.com", &new_id(), now - 500, now - 400))
        .collect();
    let (status, outcome) = send_edge_batch(&client, &server.base, "dlq-1", &events).await;
    assert_eq!(
        (status, outcome),
        (200, json!({"accepted": 5, "duplicates": 0}))
    );
    let pipeline_url = format!("{}/api/pipeline?site=example.com", server.base);
    let (_, before) = get_json(&client, &pipeline_url, &key).await;
    for replay in ["dlq-replay-1", "dlq-replay-2"] {
        let (status, outcome) = send_edge_batch(&client, &server.base, replay, &events).await;
        assert_eq!(
            (status, outcome),
            (200, json!({"accepted": 0, "duplicates": 5}))
        );
    }
    assert_eq!(store.count_events(site.id).await.expect("count"), 5);
    let (_, after) = get_json(&client, &pipeline_url, &key).await;
    let stored = |p: &Value| p["hops"][3]["events"].clone();
    assert_eq!(stored(&before), json!(5));
    assert_eq!(stored(&after), json!(5));
    assert_eq!(after["dropped"]["duplicate"], 10);
    server.stop().await.expect("clean stop");
}
