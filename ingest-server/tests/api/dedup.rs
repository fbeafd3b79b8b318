//! Deduplication and storage, the same checks on SQLite and on PostgreSQL.

use futures_util::future::join_all;
use serde_json::Value;

use crate::helpers::{body, new_id, pageview, post_events, Kind, TestDb, TestServer};

/// One batch re-sent ten times at once, through two servers sharing one database: every
/// event is counted once, and the answers add up to exactly one acceptance per event.
async fn resent_through_two_servers(kind: Kind) {
    let db = TestDb::new(kind).await;
    let store = db.store().await;
    let (site, _) = store.add_site("example.com").await.expect("site");
    let a = TestServer::start(&db.url, &[]).await;
    let b = TestServer::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    let events: Vec<Value> = (0..50)
        .map(|i| pageview(&new_id(), &format!("https://example.com/p/{i}")))
        .collect();
    let payload = body("example.com", &events);
    let sends = (0..10).map(|i| {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        post_events(&client, base, payload.clone())
    });
    let mut accepted = 0;
    let mut duplicates = 0;
    for response in join_all(sends).await {
        assert_eq!(response.status().as_u16(), 202);
        let v: Value = response.json().await.expect("json");
        accepted += v["accepted"].as_u64().expect("accepted");
        duplicates += v["duplicates"].as_u64().expect("duplicates");
    }
    assert_eq!((accepted, duplicates), (50, 450));
    assert_eq!(store.count_events(site.id).await.expect("count"), 50);
    a.stop().await.expect("stop a");
    b.stop().await.expect("stop b");
}

#[tokio::test]
async fn resent_batch_counts_once_sqlite() {
    resent_through_two_servers(Kind::Sqlite).await;
}

#[tokio::test]
async fn resent_batch_counts_once_postgres() {
    resent_through_two_servers(Kind::Postgres).await;
}

async fn storage_basics(kind: Kind) {
    let db = TestDb::new(kind).await;
    let store = db.store().await;
    // Migrations are idempotent.
    store.migrate().await.expect("migrate again");
    let (site, new) = store.add_site("example.com").await.expect("site");
    assert!(new);
    let (again, new) = store.add_site("example.com").await.expect("site");
    assert!(!new);
    assert_eq!(site, again);

    let key = store.create_key(Some("ci")).await.expect("key");
    assert!(store.key_is_valid(&key).await.expect("check"));
    assert!(!store.key_is_valid("tally_nope").await.expect("check"));

    let day = tally_core::visitor::DAY_MS;
    let t0 = 20_000 * day + 5;
    let s0 = store.salt_for(t0).await.expect("salt");
    assert_eq!(s0, store.salt_for(t0 + 1000).await.expect("salt"));
    let s1 = store.salt_for(t0 + day).await.expect("salt");
    assert_ne!(s0, s1);
    assert_eq!(s0.len(), 32);
    // On day 1 nothing is old; on day 2 day 0's salt (started 48 h ago) goes.
    assert_eq!(store.delete_old_salts(t0 + day).await.expect("delete"), 0);
    assert_eq!(
        store.delete_old_salts(t0 + 2 * day).await.expect("delete"),
        1
    );

    assert!(store
        .remember_signature("v1=ab", 1_000)
        .await
        .expect("nonce"));
    assert!(!store
        .remember_signature("v1=ab", 2_000)
        .await
        .expect("nonce"));
    assert_eq!(
        store
            .forget_signatures(1_000_000, 1_000)
            .await
            .expect("forget"),
        1
    );
}

#[tokio::test]
async fn storage_basics_sqlite() {
    storage_basics(Kind::Sqlite).await;
}

#[tokio::test]
async fn storage_basics_postgres() {
    storage_basics(Kind::Postgres).await;
}
