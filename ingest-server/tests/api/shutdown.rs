//! Graceful shutdown under load: every request answered 202 is stored.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{body, new_id, pageview, try_post_events, Kind, TestDb, TestServer};

async fn shutdown_loses_nothing(kind: Kind) {
    let db = TestDb::new(kind).await;
    let store = db.store().await;
    let (site, _) = store.add_site("example.com").await.expect("site");
    let server = TestServer::start(&db.url, &[]).await;
    let base = server.base.clone();
    let mut senders = Vec::new();
    for _ in 0..8 {
        let base = base.clone();
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut acked = 0u64;
            for _ in 0..200 {
                let events: Vec<Value> = (0..5)
                    .map(|_| pageview(&new_id(), "https://example.com/"))
                    .collect();
                match tokio::time::timeout(
                    Duration::from_secs(5),
                    try_post_events(&client, &base, body("example.com", &events)),
                )
                .await
                {
                    Ok(Ok(r)) if r.status().as_u16() == 202 => {
                        let v: Value = r.json().await.expect("json");
                        acked += v["accepted"].as_u64().expect("accepted");
                    }
                    _ => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.stop().await.expect("exits cleanly");
    let mut acked = 0;
    for s in senders {
        acked += s.await.expect("sender");
    }
    let stored = store.count_events(site.id).await.expect("count") as u64;
    assert!(acked > 0, "the load ran before the stop");
    assert_eq!(
        stored, acked,
        "every acknowledged event is stored, and nothing else"
    );
}

#[tokio::test]
async fn shutdown_loses_nothing_sqlite() {
    shutdown_loses_nothing(Kind::Sqlite).await;
}

#[tokio::test]
async fn shutdown_loses_nothing_postgres() {
    shutdown_loses_nothing(Kind::Postgres).await;
}
