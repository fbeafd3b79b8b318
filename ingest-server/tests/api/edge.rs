//! The edge channel: signed batches are stored; forged, modified, stale and replayed ones
//! are refused and change nothing.

use serde_json::{json, Value};
use tally_core::edge::{sign, BATCH_PATH, SIGNATURE_HEADER, TIMESTAMP_HEADER};

use crate::helpers::{new_id, Kind, TestDb, TestServer, EDGE_SECRET};

fn edge_event(id: &str) -> Value {
    json!({"site": "example.com", "id": id, "kind": "pageview", "url": "https://example.com/from-edge?utm_medium=social",
           "ts": 1_700_000_000_000i64, "visitor": "00000000000000ff", "country": "FR", "browser": "Firefox",
           "os": "Linux", "device": "desktop", "edge_at": ingest_server::now_ms() - 500})
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    body: &str,
    ts: i64,
    signature: &str,
) -> (u16, Value) {
    let r = client
        .post(format!("{base}{BATCH_PATH}"))
        .header(TIMESTAMP_HEADER, ts.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn signed_batches_are_stored_once_and_forgeries_refused() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = db.store().await;
    let (site, _) = store.add_site("example.com").await.expect("site");
    let server = TestServer::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    let now = ingest_server::now_ms() / 1000;
    let ids = [new_id(), new_id()];
    let body =
        json!({"batch": "b-1", "events": [edge_event(&ids[0]), edge_event(&ids[1])]}).to_string();

    let sig = sign(EDGE_SECRET.as_bytes(), now, body.as_bytes());
    assert_eq!(
        post(&client, &server.base, &body, now, &sig).await,
        (200, json!({"accepted": 2, "duplicates": 0}))
    );
    // The exact same request again is a replay.
    let (status, value) = post(&client, &server.base, &body, now, &sig).await;
    assert_eq!(status, 401);
    assert!(value["error"].as_str().expect("message").contains("replay"));
    // A retry, signed afresh, is welcome and counts nothing twice.
    let sig2 = sign(EDGE_SECRET.as_bytes(), now + 1, body.as_bytes());
    assert_eq!(
        post(&client, &server.base, &body, now + 1, &sig2).await,
        (200, json!({"accepted": 0, "duplicates": 2}))
    );

    let other = json!({"batch": "b-2", "events": [edge_event(&new_id())]}).to_string();
    let forged = sign(b"not-the-secret-at-all", now, other.as_bytes());
    assert_eq!(
        post(&client, &server.base, &other, now, &forged).await.0,
        401
    );
    let modified = other.replace("from-edge", "tampered");
    let sig_other = sign(EDGE_SECRET.as_bytes(), now, other.as_bytes());
    assert_eq!(
        post(&client, &server.base, &modified, now, &sig_other)
            .await
            .0,
        401
    );
    let stale = now - 3600;
    let sig_stale = sign(EDGE_SECRET.as_bytes(), stale, other.as_bytes());
    assert_eq!(
        post(&client, &server.base, &other, stale, &sig_stale)
            .await
            .0,
        401
    );
    let unsigned = client
        .post(format!("{}{BATCH_PATH}", server.base))
        .body(other.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(unsigned.status().as_u16(), 401);

    assert_eq!(store.count_events(site.id).await.expect("count"), 2);
    let e = store
        .event_by_id(&ids[0])
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(
        (
            e.country.as_deref(),
            e.browser.as_deref(),
            e.batch.as_deref()
        ),
        (Some("FR"), Some("Firefox"), Some("b-1"))
    );
    assert_eq!(
        (e.visitor.as_str(), e.path.as_str(), e.utm_medium.as_deref()),
        ("00000000000000ff", "/from-edge", Some("social"))
    );
    assert!(e.edge_at.expect("edge time") <= e.received_at);
    server.stop().await.expect("clean stop");
}

/// The edge has already answered the browser for every event of a batch, and sending it
/// again cannot make a refused event acceptable: such an event is dropped and counted alone,
/// and the rest of its batch is stored. A batch that is not a batch at all is refused whole.
#[tokio::test]
async fn a_refused_event_is_dropped_alone_and_a_malformed_batch_whole() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = db.store().await;
    let (site, _) = store.add_site("example.com").await.expect("site");
    let server = TestServer::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    let now = ingest_server::now_ms() / 1000;
    let good = new_id();
    let mut bad_visitor = edge_event(&new_id());
    bad_visitor["visitor"] = json!("not-hex");
    // A URL the edge lets through but the server's cleaning refuses (no such port).
    let mut bad_url = edge_event(&new_id());
    bad_url["url"] = json!("https://example.com:99999/x");
    let mut foreign = edge_event(&new_id());
    foreign["url"] = json!("https://elsewhere.test/x");
    let body = json!({"batch": "b", "events": [bad_visitor, edge_event(&good), bad_url, foreign]})
        .to_string();
    let sig = sign(EDGE_SECRET.as_bytes(), now, body.as_bytes());
    assert_eq!(
        post(&client, &server.base, &body, now, &sig).await,
        (200, json!({"accepted": 1, "duplicates": 0}))
    );
    assert_eq!(store.count_events(site.id).await.expect("count"), 1);
    assert!(store.event_by_id(&good).await.expect("query").is_some());
    let metrics = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"tally_events_rejected_total{reason="invalid"} 3"#),
        "{metrics}"
    );

    for (body, error) in [
        ("{not json".to_string(), "malformed batch"),
        (
            json!({"batch": "c", "events": (0..=tally_core::edge::MAX_BATCH_EVENTS)
                .map(|_| edge_event(&new_id()))
                .collect::<Vec<_>>()})
            .to_string(),
            "events: at most",
        ),
    ] {
        let ts = now + 1;
        let sig = sign(EDGE_SECRET.as_bytes(), ts, body.as_bytes());
        let (status, value) = post(&client, &server.base, &body, ts, &sig).await;
        assert_eq!(status, 400, "{value}");
        assert!(
            value["error"].as_str().expect("message").contains(error),
            "{value}"
        );
    }
    assert_eq!(store.count_events(site.id).await.expect("count"), 1);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn sites_list_is_signed() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = db.store().await;
    store.add_site("example.com").await.expect("site");
    store.add_site("other.org").await.expect("site");
    let server = TestServer::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    let now = ingest_server::now_ms() / 1000;
    let get = |ts: i64, sig: String| {
        client
            .get(format!("{}/api/edge/sites", server.base))
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, sig)
            .send()
    };
    let ok = get(now, sign(EDGE_SECRET.as_bytes(), now, b""))
        .await
        .expect("request");
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(
        ok.json::<Value>().await.expect("json"),
        json!({"sites": ["example.com", "other.org"]})
    );
    let forged = get(now, sign(b"wrong", now, b"")).await.expect("request");
    assert_eq!(forged.status().as_u16(), 401);
    server.stop().await.expect("clean stop");
}
