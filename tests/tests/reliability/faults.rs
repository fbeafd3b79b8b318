//! Faults under concurrent load: every event answered `202` is stored exactly once, whatever
//! happens to the server or its database, and re-delivering everything changes no count.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tally_tests::bench::ingest::UA;
use tally_tests::harness::{
    client, debug_binary, drop_pg, fresh_pg, new_ids, page_body, resend_all, rss_mib, sigterm,
    stored_ids, wait_exit, Ledger, Load, Spawn, SqliteDb,
};

use crate::{EDGE_SECRET, SERIAL};

const CLIENTS: usize = 16;
const PER_REQUEST: usize = 10;

/// What the database holds against what the clients saw.
struct Check {
    sent: usize,
    acked: usize,
    stored: usize,
    lost: usize,
    stored_twice: usize,
    never_sent: usize,
}

fn check(ledger: &Ledger, stored: &HashMap<String, i64>) -> Check {
    let sent = ledger.sent_ids();
    Check {
        sent: sent.len(),
        acked: ledger.acked.len(),
        stored: stored.len(),
        lost: ledger
            .acked
            .iter()
            .filter(|id| !stored.contains_key(*id))
            .count(),
        stored_twice: stored.values().filter(|&&n| n != 1).count(),
        never_sent: stored
            .keys()
            .filter(|id| !sent.contains(id.as_str()))
            .count(),
    }
}

fn assert_nothing_lost(what: &str, c: &Check) {
    println!(
        "{what}: sent {} / acknowledged {} / counted {} (lost {}, stored twice {}, never sent {})",
        c.sent, c.acked, c.stored, c.lost, c.stored_twice, c.never_sent
    );
    assert_eq!(c.lost, 0, "{what}: acknowledged events were lost");
    assert_eq!(c.stored_twice, 0, "{what}: events stored twice");
    assert_eq!(
        c.never_sent, 0,
        "{what}: events stored that were never sent"
    );
    assert!(c.acked > 0, "{what}: nothing was acknowledged");
}

/// `kill -9` in the middle of concurrent load, restart on the same database, then re-send
/// every body (acknowledged or not).
async fn kill_9_under_load(database_url: &str, what: &str) {
    let spawn = Spawn::new(&debug_binary(), database_url);
    let mut server = spawn.start().await.expect("server starts");
    let load = Load::start(&server.base, CLIENTS, PER_REQUEST);
    load.until_acked(3_000, Duration::from_secs(120)).await;
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    let ledger = load.finish().await;
    drop(server);

    let restarted = spawn.start().await.expect("server restarts");
    let stored = stored_ids(database_url).await.expect("read events");
    let c = check(&ledger, &stored);
    println!("{what}: answers {:?}", ledger.statuses);
    assert_nothing_lost(&format!("{what}, after kill -9 and restart"), &c);

    let newly = resend_all(&restarted.base, &ledger).await.expect("re-sent");
    let after = stored_ids(database_url).await.expect("read events");
    let c2 = check(&ledger, &after);
    println!(
        "{what}: every body re-sent: {newly} newly accepted, counted {} of {} distinct ids sent",
        c2.stored, c2.sent
    );
    assert_eq!(c2.stored, c2.sent, "{what}: every id sent is stored once");
    assert_eq!(c2.stored_twice, 0);
    assert_eq!(
        newly as usize,
        c2.sent - c.stored,
        "only missing ids are new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_sqlite() {
    let _serial = SERIAL.lock().await;
    let db = SqliteDb::new();
    kill_9_under_load(&db.url, "kill -9, SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_postgres() {
    let _serial = SERIAL.lock().await;
    let url = fresh_pg("kill9")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    kill_9_under_load(&url, "kill -9, PostgreSQL").await;
    drop_pg(&url).await.expect("drop the test database");
}

/// SIGTERM under load: the server exits 0 and every acknowledged event is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_0_with_everything_acknowledged_stored() {
    let _serial = SERIAL.lock().await;
    let db = SqliteDb::new();
    let spawn = Spawn::new(&debug_binary(), &db.url);
    let mut server = spawn.start().await.expect("server starts");
    let load = Load::start(&server.base, CLIENTS, PER_REQUEST);
    load.until_acked(3_000, Duration::from_secs(120)).await;
    sigterm(server.child.id()).expect("SIGTERM");
    let status = wait_exit(&mut server.child, Duration::from_secs(60)).await;
    let ledger = load.finish().await;
    println!("SIGTERM: exit {status:?}, answers {:?}", ledger.statuses);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status 0 after SIGTERM"
    );
    let stored = stored_ids(&db.url).await.expect("read events");
    let c = check(&ledger, &stored);
    assert_nothing_lost("SIGTERM, SQLite", &c);
    assert_eq!(c.stored, c.acked, "a clean stop answers every stored event");
}

/// The installed PostgreSQL cluster's version (`/etc/postgresql/VERSION/main`).
fn pg_cluster() -> Option<String> {
    std::fs::read_dir("/etc/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|v| std::path::Path::new(&format!("/etc/postgresql/{v}/main")).exists())
}

fn pg_ctl(version: &str, action: &str) -> bool {
    Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", "--mode", "fast"])
        .args([version, "main", action])
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts the cluster again however the test ends.
struct RestartOnDrop(String);

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        if !pg_ctl(&self.0, "start") {
            let _ = pg_ctl(&self.0, "restart");
        }
    }
}

/// `/healthz` answers seen while polling.
#[derive(Default)]
struct Health {
    unhealthy: Vec<serde_json::Value>,
}

async fn healthz(client: &reqwest::Client, base: &str) -> Option<(u16, serde_json::Value)> {
    let r = client.get(format!("{base}/healthz")).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.unwrap_or_default()))
}

/// PostgreSQL stopped for a few seconds under load, then started: the server says it is
/// unhealthy, answers `503` (never `202` for what it could not store), and recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_load() {
    let _serial = SERIAL.lock().await;
    let Some(version) = pg_cluster() else {
        println!("PostgreSQL restart: no cluster under /etc/postgresql, skipped");
        return;
    };
    let url = fresh_pg("restart")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    let server = Spawn::new(&debug_binary(), &url)
        .start()
        .await
        .expect("server starts");
    let http = client();
    let load = Load::start(&server.base, 8, PER_REQUEST);
    load.until_acked(1_000, Duration::from_secs(60)).await;

    let mut health = Health::default();
    let guard = RestartOnDrop(version.clone());
    assert!(pg_ctl(&version, "stop"), "pg_ctlcluster stop");
    let down = std::time::Instant::now();
    // While it is down: /healthz says so, and requests get 503.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        if let Some((503, body)) = healthz(&http, &server.base).await {
            health.unhealthy.push(body);
        }
        if !health.unhealthy.is_empty() && load.seen("503") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let acked_while_down = load.acked();
    drop(guard);
    println!(
        "PostgreSQL restart: down for {:.1} s",
        down.elapsed().as_secs_f64()
    );

    // Back by itself: healthy again, and acknowledging again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut healthy_again = false;
    while tokio::time::Instant::now() < deadline {
        if let Some((200, _)) = healthz(&http, &server.base).await {
            healthy_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    load.until_acked(acked_while_down + 1_000, Duration::from_secs(60))
        .await;
    let ledger = load.finish().await;
    let stored = stored_ids(&url).await.expect("read events");
    let c = check(&ledger, &stored);
    println!("PostgreSQL restart: answers {:?}", ledger.statuses);
    println!(
        "PostgreSQL restart: /healthz while down: {:?}",
        health.unhealthy.first()
    );
    assert_nothing_lost("PostgreSQL restart", &c);
    assert!(!health.unhealthy.is_empty(), "/healthz answered 503");
    let named = health.unhealthy.iter().any(|b| {
        b["database"].as_str().is_some_and(|s| s != "ok")
            || b["writer"].as_str().is_some_and(|s| s != "ok")
    });
    assert!(named, "/healthz names the failing part");
    assert!(
        ledger.count("503") > 0,
        "requests got 503 while it was down"
    );
    assert_eq!(ledger.missing_retry_after, 0, "every 503 has Retry-After");
    let server_errors: u64 = ledger
        .statuses
        .iter()
        .filter(|(s, _)| s.starts_with('5') && s.as_str() != "503")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(server_errors, 0, "no 5xx other than 503");
    assert!(healthy_again, "/healthz is 200 again without a restart");
    assert!(
        ledger.acked.len() >= acked_while_down + 1_000,
        "events are acknowledged again after PostgreSQL is back"
    );
    drop(server);
    drop_pg(&url).await.expect("drop the test database");
}

/// Overload: a small queue and more load than the writer takes. Some requests get `503` with
/// `Retry-After`, memory stays bounded, and what was acknowledged is exactly what is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_503_with_retry_after_and_stays_bounded() {
    let _serial = SERIAL.lock().await;
    let db = SqliteDb::new();
    let server = Spawn::new(&debug_binary(), &db.url)
        .arg("--queue-capacity", "200")
        .start()
        .await
        .expect("server starts");
    let load = Load::start(&server.base, 64, 50);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    tokio::time::sleep(Duration::from_secs(4)).await;
    while load.seen("503") < 50 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ledger = load.finish().await;
    let (rss, peak) = rss_mib(server.child.id()).unwrap_or_default();
    let stored = stored_ids(&db.url).await.expect("read events");
    let c = check(&ledger, &stored);
    println!("overload: answers {:?}", ledger.statuses);
    println!("overload: RSS {rss:.1} MiB, peak {peak:.1} MiB");
    assert_nothing_lost("overload, queue of 200 events", &c);
    assert!(ledger.count("503") > 0, "some requests were refused");
    assert_eq!(ledger.missing_retry_after, 0, "every 503 has Retry-After");
    assert_eq!(ledger.count("500"), 0);
    assert_eq!(c.stored, c.acked, "stored = acknowledged");
    assert!(peak < 150.0, "peak RSS {peak:.1} MiB stays under 150 MiB");
}

/// One edge event for example.com, as the edge worker forwards it.
fn edge_event(e: &serde_json::Value) -> serde_json::Value {
    let mut e = e.clone();
    let obj = e.as_object_mut().expect("object");
    obj.insert("site".into(), "example.com".into());
    obj.insert("visitor".into(), "0123456789abcdef".into());
    obj.insert("browser".into(), "Firefox".into());
    obj.insert("os".into(), "Linux".into());
    obj.insert("device".into(), "desktop".into());
    obj.insert("edge_at".into(), ingest_server::now_ms().into());
    e
}

/// POSTs a freshly signed edge batch; returns (status, accepted).
pub async fn post_edge(client: &reqwest::Client, base: &str, body: &str) -> (u16, u64) {
    let ts = ingest_server::now_ms() / 1000;
    let sig = tally_core::edge::sign(EDGE_SECRET.as_bytes(), ts, body.as_bytes());
    let Ok(r) = client
        .post(format!("{base}{}", tally_core::edge::BATCH_PATH))
        .header("content-type", "application/json")
        .header(tally_core::edge::TIMESTAMP_HEADER, ts.to_string())
        .header(tally_core::edge::SIGNATURE_HEADER, sig)
        .body(body.to_string())
        .send()
        .await
    else {
        return (0, 0);
    };
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    (status, v["accepted"].as_u64().unwrap_or(0))
}

async fn post_browser(client: &reqwest::Client, base: &str, body: String) -> (u16, u64) {
    let Ok(r) = client
        .post(format!("{base}/api/event"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("user-agent", UA)
        .header("origin", "https://example.com")
        .body(body)
        .send()
        .await
    else {
        return (0, 0);
    };
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    (status, v["accepted"].as_u64().unwrap_or(0))
}

/// The same events delivered 10 times over, by the browser path, by signed edge batches and
/// by both at once, concurrently, in different groupings: stored once, counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_deliveries_by_every_path_count_once() {
    let _serial = SERIAL.lock().await;
    let db = SqliteDb::new();
    let spawn = Spawn::new(&debug_binary(), &db.url).arg("--edge-secret", EDGE_SECRET);
    let server = spawn.start().await.expect("server starts");
    let key = spawn
        .run(&["key", "create"])
        .expect("key")
        .trim()
        .to_string();

    const PAGEVIEWS: usize = 200;
    const CUSTOM: usize = 100;
    let now = ingest_server::now_ms();
    let events: Vec<serde_json::Value> = new_ids(PAGEVIEWS + CUSTOM)
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            if i < PAGEVIEWS {
                serde_json::json!({"id": id, "kind": "pageview", "url": format!("https://example.com/p/{}", i % 9), "ts": now - i as i64, "screen": 1440})
            } else {
                serde_json::json!({"id": id, "kind": "event", "name": "Signup", "props": {"plan": "pro"}, "url": "https://example.com/pricing", "ts": now - i as i64})
            }
        })
        .collect();

    let http = client();
    let mut rounds = tokio::task::JoinSet::new();
    for round in 0..10u64 {
        let (events, http, base) = (events.clone(), http.clone(), server.base.clone());
        rounds.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(round);
            let mut order = events;
            order.shuffle(&mut rng);
            let mut results = Vec::new();
            let mut rest = &order[..];
            while !rest.is_empty() {
                let n = rng.gen_range(1..=50usize).min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                rest = tail;
                // Rounds 0–3: browser; 4–6: edge; 7–9: each chunk by a coin toss.
                let by_edge = match round {
                    0..=3 => false,
                    4..=6 => true,
                    _ => rng.gen_bool(0.5),
                };
                let result = if by_edge {
                    let batch = serde_json::json!({
                        "batch": format!("round-{round}-{}", results.len()),
                        "events": chunk.iter().map(edge_event).collect::<Vec<_>>(),
                    });
                    post_edge(&http, &base, &batch.to_string()).await
                } else {
                    // Round 0 repeats every event inside its own request too.
                    let mut list = chunk.to_vec();
                    if round == 0 && list.len() <= 25 {
                        list.extend(chunk.iter().cloned());
                    }
                    let body = serde_json::json!({"site": "example.com", "events": list});
                    post_browser(&http, &base, body.to_string()).await
                };
                results.push(result);
            }
            results
        });
    }
    let mut accepted = 0u64;
    let mut requests = 0usize;
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    while let Some(done) = rounds.join_next().await {
        for (status, n) in done.expect("round") {
            requests += 1;
            *statuses.entry(status).or_default() += 1;
            accepted += n;
        }
    }
    let stored = stored_ids(&db.url).await.expect("read events");
    let sent: HashSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    println!(
        "10 deliveries: {} events × 10 in {requests} requests ({statuses:?}); accepted {accepted}, counted {}",
        events.len(),
        stored.len()
    );
    assert!(
        statuses.keys().all(|s| *s == 200 || *s == 202),
        "every delivery succeeded: {statuses:?}"
    );
    assert_eq!(accepted as usize, events.len(), "each event accepted once");
    assert_eq!(stored.len(), events.len());
    assert!(stored.keys().all(|id| sent.contains(id.as_str())));
    assert!(stored.values().all(|&n| n == 1));

    // What dashboard users see, once the rollup worker has caught up.
    let url = format!("{}/api/stats/summary?site=example.com", server.base);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut summary = serde_json::Value::Null;
    while tokio::time::Instant::now() < deadline {
        if let Ok(r) = http.get(&url).bearer_auth(&key).send().await {
            summary = r.json().await.unwrap_or_default();
            if summary["pageviews"].as_u64() == Some(PAGEVIEWS as u64)
                && summary["events"].as_u64() == Some(CUSTOM as u64)
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "10 deliveries: stats summary pageviews {} events {} (sent {PAGEVIEWS} / {CUSTOM})",
        summary["pageviews"], summary["events"]
    );
    assert_eq!(summary["pageviews"].as_u64(), Some(PAGEVIEWS as u64));
    assert_eq!(summary["events"].as_u64(), Some(CUSTOM as u64));
}

/// The same body re-sent while the first copy is still queued behind a slow writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_copies_of_one_body_count_once() {
    let _serial = SERIAL.lock().await;
    let db = SqliteDb::new();
    let server = Spawn::new(&debug_binary(), &db.url)
        .arg("--linger-ms", "50")
        .start()
        .await
        .expect("server starts");
    let ids = new_ids(50);
    let body = page_body(&ids);
    let http = client();
    let mut copies = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (http, base, body) = (http.clone(), server.base.clone(), body.clone());
        copies.spawn(async move { post_browser(&http, &base, body).await });
    }
    let mut accepted = 0;
    while let Some(done) = copies.join_next().await {
        let (status, n) = done.expect("copy");
        assert_eq!(status, 202);
        accepted += n;
    }
    let stored = stored_ids(&db.url).await.expect("read events");
    println!(
        "20 concurrent copies: sent 50 × 20, accepted {accepted}, counted {}",
        stored.len()
    );
    assert_eq!(accepted, 50);
    assert_eq!(stored.len(), 50);
}
