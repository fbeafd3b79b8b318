//! Hostile bodies over HTTP: thousands of malformed, truncated, mutated, oversized, deeply
//! nested, wrongly typed and non-UTF-8 bodies to `/api/event` and `/api/edge/batch` (signed
//! and not). Every answer is a 4xx (or a 2xx for the rare mutation that is still valid), never
//! a 5xx; the server stays up; and the stored events change by exactly what was accepted.
//!
//! The generator is deterministic (seeded), so a failure reproduces; `HOSTILE_SEED` and
//! `HOSTILE_BODIES` change the seed and the count for longer runs.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tally_tests::bench::ingest::UA;
use tally_tests::harness::{debug_binary, new_ids, stored_ids, Spawn, SqliteDb};

use crate::{EDGE_SECRET, SERIAL};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn valid_event(rng: &mut StdRng) -> Value {
    let id = new_ids(1).remove(0);
    let ts = ingest_server::now_ms();
    match rng.gen_range(0..3) {
        0 => json!({"id": id, "kind": "pageview", "url": "https://example.com/a?utm_source=x",
                    "referrer": "https://news.ycombinator.com/", "screen": 1440, "user": false, "ts": ts}),
        1 => {
            json!({"id": id, "kind": "event", "name": "Signup", "props": {"plan": "pro", "n": 3, "ok": true},
                    "url": "https://example.com/pricing", "ts": ts})
        }
        _ => {
            json!({"id": id, "kind": "engagement", "url": "https://example.com/a", "engaged_ms": 4125, "ts": ts})
        }
    }
}

fn valid_body(rng: &mut StdRng) -> Value {
    let n = rng.gen_range(1..=5);
    json!({"site": "example.com", "events": (0..n).map(|_| valid_event(rng)).collect::<Vec<_>>()})
}

fn valid_edge_batch(rng: &mut StdRng) -> Value {
    let n = rng.gen_range(1..=5);
    let events: Vec<Value> = (0..n)
        .map(|_| {
            let mut e = valid_event(rng);
            let o = e.as_object_mut().expect("object");
            o.insert("site".into(), "example.com".into());
            o.insert("visitor".into(), "0123456789abcdef".into());
            o.insert("browser".into(), "Firefox".into());
            o.insert("os".into(), "Linux".into());
            o.insert("device".into(), "desktop".into());
            o.insert("edge_at".into(), ingest_server::now_ms().into());
            e
        })
        .collect();
    json!({"batch": format!("b{}", rng.gen::<u32>()), "events": events})
}

/// Values of the wrong type or shape for any field.
fn wrong_value(rng: &mut StdRng) -> Value {
    let deep = |n: usize| -> Value {
        serde_json::from_str(&format!("{}1{}", "[".repeat(n), "]".repeat(n))).unwrap_or(Value::Null)
    };
    match rng.gen_range(0..22) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(0),
        4 => json!(1e300),
        5 => json!(u64::MAX),
        6 => json!(""),
        7 => json!("not-an-id"),
        8 => json!("javascript:alert(1)"),
        9 => json!([]),
        10 => json!({}),
        11 => json!({"nested": {"object": [1, 2, {"x": null}]}}),
        12 => json!("x".repeat(rng.gen_range(100..5000))),
        13 => json!("<script>alert(1)</script>"),
        14 => json!("\u{0000}\u{202e}\u{fffd}😀"),
        15 => json!(-9_223_372_036_854_775_808i64),
        16 => json!(0.5),
        17 => deep(100),
        18 => json!("ftp://example.com/"),
        19 => json!((0..40)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect::<serde_json::Map<_, _>>()),
        20 => json!({"k".repeat(70): "v"}),
        _ => json!("click"),
    }
}

/// Replaces one field (of the body or of one event) with a wrong value, or removes it.
fn wrongly_typed(rng: &mut StdRng, mut body: Value) -> Value {
    const BODY: &[&str] = &["site", "events"];
    const EVENT: &[&str] = &[
        "id",
        "kind",
        "url",
        "referrer",
        "screen",
        "user",
        "ts",
        "name",
        "props",
        "engaged_ms",
        "visitor",
        "device",
        "browser",
        "edge_at",
        "site",
    ];
    let remove = rng.gen_bool(0.2);
    let value = wrong_value(rng);
    if rng.gen_bool(0.25) {
        let field = BODY.choose(rng).copied().unwrap_or("site");
        if let Some(o) = body.as_object_mut() {
            if remove {
                o.remove(field);
            } else {
                o.insert(field.into(), value);
            }
        }
    } else if let Some(events) = body["events"].as_array_mut() {
        let i = rng.gen_range(0..events.len().max(1));
        let field = EVENT.choose(rng).copied().unwrap_or("id");
        if let Some(o) = events.get_mut(i).and_then(Value::as_object_mut) {
            if remove {
                o.remove(field);
            } else {
                o.insert(field.into(), value);
            }
        }
    }
    body
}

fn nested(rng: &mut StdRng) -> Vec<u8> {
    let depth = [129, 1_000, 10_000, 100_000][rng.gen_range(0..4)];
    match rng.gen_range(0..4) {
        0 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes(),
        1 => format!(r#"{}1{}"#, r#"{"a":"#.repeat(depth), "}".repeat(depth)).into_bytes(),
        2 => format!(
            r#"{{"site":"example.com","events":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
        .into_bytes(),
        // Unclosed: the parser gives up at its depth limit, not at the end.
        _ => format!(
            r#"{{"site":"example.com","events":[{{"props":{}"#,
            r#"{"a":"#.repeat(depth)
        )
        .into_bytes(),
    }
}

/// One hostile body, by family.
fn hostile(rng: &mut StdRng, family: u32, edge: bool) -> Vec<u8> {
    let valid = |rng: &mut StdRng| {
        if edge {
            valid_edge_batch(rng)
        } else {
            valid_body(rng)
        }
    };
    match family {
        // Random bytes, most of them not UTF-8.
        0 => {
            let n = rng.gen_range(0..2_000);
            (0..n).map(|_| rng.gen()).collect()
        }
        // A valid body cut short.
        1 => {
            let b = valid(rng).to_string().into_bytes();
            let cut = rng.gen_range(0..b.len());
            b[..cut].to_vec()
        }
        // A valid body with a few bytes changed (now and then still valid).
        2 => {
            let mut b = valid(rng).to_string().into_bytes();
            for _ in 0..rng.gen_range(1..=4) {
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
            }
            b
        }
        3 => {
            let body = valid(rng);
            wrongly_typed(rng, body).to_string().into_bytes()
        }
        4 => nested(rng),
        // Over the size limit.
        5 => {
            // Edge batches: one in ten over the 2 MiB limit, the rest only over the URL limit.
            let limit = if edge && rng.gen_ratio(1, 10) {
                tally_core::edge::MAX_BATCH_BYTES
            } else {
                tally_core::wire::MAX_BODY_BYTES
            };
            let mut body = valid(rng);
            let pad = "p".repeat(limit + rng.gen_range(1..4_096));
            body["events"][0]["url"] = json!(format!("https://example.com/{pad}"));
            body.to_string().into_bytes()
        }
        // Invalid UTF-8 inside a string, or a lone surrogate escape.
        6 => {
            let s = valid(rng).to_string();
            let at = s.find("https://").unwrap_or(0) + 8;
            let mut b = s.as_bytes()[..at].to_vec();
            let bad: &[&[u8]] = &[
                b"\xff",
                b"\xc3\x28",
                b"\xed\xa0\x80",
                b"\\ud800",
                b"\\udfff\\ud800",
            ];
            b.extend_from_slice(bad[rng.gen_range(0..bad.len())]);
            b.extend_from_slice(&s.as_bytes()[at..]);
            b
        }
        // JSON that is odd rather than wrong: other top-level types, trailing data, a BOM,
        // too many events.
        7 => {
            let body = valid(rng).to_string();
            let odd = match rng.gen_range(0..10) {
                0 => "null".to_string(),
                1 => "[]".to_string(),
                2 => "\"example.com\"".to_string(),
                3 => "1e999".to_string(),
                4 => format!("{body}{body}"),
                5 => format!("\u{feff}{body}"),
                6 => format!("{body} trailing"),
                7 => body.replacen('{', r#"{"site":"example.com","#, 1),
                8 => {
                    let one = valid(rng)["events"][0].clone();
                    json!({"site": "example.com", "events": vec![one; 1_001]}).to_string()
                }
                _ => String::new(),
            };
            odd.into_bytes()
        }
        // Another site, unregistered or invalid.
        _ => {
            let mut body = valid(rng);
            let site = [
                "evil.test",
                "EXAMPLE.COM.",
                "exa mple.com",
                "xn--80ak6aa92e.com",
            ][rng.gen_range(0..4)];
            if edge {
                for e in body["events"].as_array_mut().into_iter().flatten() {
                    e["site"] = json!(site);
                }
            } else {
                body["site"] = json!(site);
            }
            body.to_string().into_bytes()
        }
    }
}

#[derive(Default, Debug)]
struct Tally {
    statuses: BTreeMap<u16, u64>,
    accepted: u64,
    /// A few (status, body prefix) of the answers that must not happen.
    bad: Vec<(u16, String)>,
}

impl Tally {
    fn record(&mut self, status: u16, accepted: u64, body: &[u8]) {
        *self.statuses.entry(status).or_default() += 1;
        if status == 200 || status == 202 {
            self.accepted += accepted;
        } else if !(400..500).contains(&status) && self.bad.len() < 5 {
            let timed_out = if status == 0 && accepted == 1 {
                "(timed out) "
            } else {
                ""
            };
            let body = String::from_utf8_lossy(body);
            self.bad.push((status, format!("{timed_out}{body}")));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_4xx_and_change_nothing() {
    let _serial = SERIAL.lock().await;
    let seed = env_number("HOSTILE_SEED", 9);
    let count = env_number("HOSTILE_BODIES", 3_000);
    let db = SqliteDb::new();
    let mut server = Spawn::new(&debug_binary(), &db.url)
        .arg("--edge-secret", EDGE_SECRET)
        .start()
        .await
        .expect("server starts");
    let before = stored_ids(&db.url).await.expect("read").len();
    // Pooled keep-alive connections, as browsers use: a refused oversized body must close its
    // connection with `Connection: close`, or the next request sent on it is lost.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let base = server.base.clone();

    let started = std::time::Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    // Collector bodies, then edge batches (two in three signed, the rest unsigned or forged).
    let mut requests: Vec<(bool, u8, Vec<u8>)> = Vec::new();
    for i in 0..count {
        requests.push((false, 0, hostile(&mut rng, (i % 9) as u32, false)));
    }
    for i in 0..count / 2 {
        let signing = (i % 3) as u8;
        requests.push((true, signing, hostile(&mut rng, (i % 9) as u32, true)));
    }
    println!(
        "hostile bodies: generated in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let results: Vec<(bool, u8, u16, u64, Vec<u8>, usize)> =
        futures_util::stream::iter(requests.into_iter().map(|(edge, signing, body)| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let mut req = if edge {
                    let ts = ingest_server::now_ms() / 1000;
                    let sig = match signing {
                        0 | 1 => tally_core::edge::sign(EDGE_SECRET.as_bytes(), ts, &body),
                        _ => tally_core::edge::sign(b"a forged secret, not ours", ts, &body),
                    };
                    http.post(format!("{base}{}", tally_core::edge::BATCH_PATH))
                        .header(tally_core::edge::TIMESTAMP_HEADER, ts.to_string())
                        .header(tally_core::edge::SIGNATURE_HEADER, sig)
                } else {
                    http.post(format!("{base}/api/event"))
                        .header("content-type", "text/plain;charset=UTF-8")
                        .header("user-agent", UA)
                };
                req = req.body(body.clone());
                let (status, accepted) = match req.send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let v: Value = r.json().await.unwrap_or_default();
                        (status, v["accepted"].as_u64().unwrap_or(0))
                    }
                    Err(e) => {
                        let mut chain = format!("{e}");
                        let mut src = std::error::Error::source(&e);
                        while let Some(s) = src {
                            chain.push_str(&format!(": {s}"));
                            src = s.source();
                        }
                        eprintln!("hostile bodies: no answer: {chain} ({} bytes)", body.len());
                        (0, u64::from(e.is_timeout()))
                    }
                };
                let prefix = body[..body.len().min(200)].to_vec();
                (edge, signing, status, accepted, prefix, body.len())
            }
        }))
        .buffer_unordered(16)
        .collect()
        .await;

    println!(
        "hostile bodies: answered in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut collector = Tally::default();
    let mut signed = Tally::default();
    let mut forged = Tally::default();
    for (edge, signing, status, accepted, body, len) in &results {
        let (tally, limit) = match (edge, signing) {
            (false, _) => (&mut collector, tally_core::wire::MAX_BODY_BYTES),
            (true, 2) => (&mut forged, tally_core::edge::MAX_BATCH_BYTES),
            _ => (&mut signed, tally_core::edge::MAX_BATCH_BYTES),
        };
        // An oversized body is refused from its Content-Length, before it is read; the server
        // then closes the connection, and a client still writing may see the reset instead
        // of the 413.
        let status = if *status == 0 && *len > limit {
            413
        } else {
            *status
        };
        tally.record(status, *accepted, body);
    }
    let after = stored_ids(&db.url).await.expect("read").len();
    println!(
        "hostile bodies to /api/event: {count}, answers {:?}, accepted {}",
        collector.statuses, collector.accepted
    );
    println!(
        "hostile edge batches, signed: answers {:?}, accepted {}",
        signed.statuses, signed.accepted
    );
    println!(
        "hostile edge batches, forged signature: answers {:?}",
        forged.statuses
    );
    println!(
        "hostile bodies: stored before {before}, after {after}, accepted in all {}",
        collector.accepted + signed.accepted
    );
    for t in [&collector, &signed, &forged] {
        assert!(
            t.bad.is_empty(),
            "answers other than 2xx / 4xx: {:?}",
            t.bad
        );
    }
    // Oversized bodies are refused (413) before their signature is even checked.
    assert!(
        forged.statuses.keys().all(|s| *s == 401 || *s == 413),
        "a forged batch is refused whatever it holds"
    );
    assert_eq!(forged.accepted, 0);
    assert_eq!(
        after - before,
        (collector.accepted + signed.accepted) as usize,
        "stored events change by exactly what was accepted"
    );
    // Still up and still working.
    assert!(
        server.child.try_wait().expect("child").is_none(),
        "server alive"
    );
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("up");
    assert_eq!(health.status().as_u16(), 200);
    let ok = http
        .post(format!("{base}/api/event"))
        .header("user-agent", UA)
        .body(valid_body(&mut rng).to_string())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("answer");
    assert_eq!(ok.status().as_u16(), 202, "a valid body is still accepted");
}
