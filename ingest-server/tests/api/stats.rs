//! The stats API (CONTRACT §4) on small fixtures with hand-computed numbers, and the rollups
//! held against a recomputation from the raw events; each on SQLite and on PostgreSQL.

use ingest_server::rollup::{roll_up_all, roll_up_now, Counts};
use ingest_server::stats::{self, days, BreakdownRow, Dim, Params};
use ingest_server::store::{NewEvent, Store};
use serde_json::{json, Value};

use crate::helpers::{Kind, TestDb, TestServer};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// 2026-11-01T00:00:00Z
const NOV_1: i64 = 1_793_491_200_000;
const NOV_2: i64 = NOV_1 + DAY;

fn event(n: &mut u32, kind: &'static str, ts: i64, visitor: i64, path: &str) -> NewEvent {
    *n += 1;
    NewEvent {
        id: format!("fixture-{visitor}-{ts}-{n}"),
        site_id: 0,
        kind,
        ts,
        client_ts: ts,
        edge_at: None,
        batch: None,
        received_at: ts,
        visitor,
        path: path.into(),
        referrer: None,
        utm_source: None,
        utm_medium: None,
        utm_campaign: None,
        utm_term: None,
        utm_content: None,
        country: None,
        browser: None,
        os: None,
        device: None,
        screen: None,
        logged_in: None,
        name: (kind == "event").then(String::new),
        props: None,
        engaged_ms: None,
    }
}

/// Three visitors on 2026-11-02 (UTC) and one on the day before:
/// - A (DE, Chrome, from Google): visit 1 at 10:00 — `/`, `/pricing`, Signup {plan: pro},
///   `/` again, engagement at 10:08:30 (8.5 min, no bounce); 31 min later visit 2 — `/blog`,
///   direct, engagement 30 s later (a bounce).
/// - B (US, Firefox, logged in, from Hacker News with UTM): one page at 23:30 (a bounce; the
///   next day in Berlin).
/// - C (DE, Safari mobile, direct): `/blog` twice 10 min apart, then an outbound click
///   (11 min, no bounce).
/// - D (DE) on Nov 1: one page (the previous period).
fn fixture(site_id: i64) -> Vec<NewEvent> {
    let mut n = 0;
    let mut out = Vec::new();
    let a = |e: &mut NewEvent| {
        e.country = Some("DE".into());
        e.browser = Some("Chrome".into());
        e.os = Some("Windows".into());
        e.device = Some("desktop".into());
        e.logged_in = Some(false);
    };
    let t = NOV_2 + 10 * HOUR;
    let mut e = event(&mut n, "pageview", t, 1, "/");
    e.referrer = Some("Google".into());
    out.push(e);
    out.push(event(&mut n, "pageview", t + 5 * MIN, 1, "/pricing"));
    let mut e = event(&mut n, "event", t + 6 * MIN, 1, "/pricing");
    e.name = Some("Signup".into());
    e.props = Some(r#"{"plan":"pro"}"#.into());
    out.push(e);
    out.push(event(&mut n, "pageview", t + 7 * MIN, 1, "/"));
    let mut e = event(&mut n, "engagement", t + 8 * MIN + 30_000, 1, "/");
    e.engaged_ms = Some(90_000);
    out.push(e);
    out.push(event(&mut n, "pageview", t + 39 * MIN + 30_000, 1, "/blog"));
    out.push(event(&mut n, "engagement", t + 40 * MIN, 1, "/blog"));
    for e in &mut out {
        a(e);
    }
    let mut e = event(
        &mut n,
        "pageview",
        NOV_2 + 23 * HOUR + 30 * MIN,
        2,
        "/pricing",
    );
    e.country = Some("US".into());
    e.browser = Some("Firefox".into());
    e.os = Some("Linux".into());
    e.device = Some("desktop".into());
    e.referrer = Some("Hacker News".into());
    e.utm_source = Some("newsletter".into());
    e.utm_medium = Some("email".into());
    e.utm_campaign = Some("launch, \"big\"\nday".into());
    e.logged_in = Some(true);
    out.push(e);
    let t = NOV_2 + 12 * HOUR;
    let mut c = vec![
        event(&mut n, "pageview", t, 3, "/blog"),
        event(&mut n, "pageview", t + 10 * MIN, 3, "/blog"),
        event(&mut n, "event", t + 11 * MIN, 3, "/blog"),
    ];
    c[2].name = Some("Outbound Link: Click".into());
    c[2].props = Some(r#"{"url":"https://x.com/a,b"}"#.into());
    for e in &mut c {
        e.country = Some("DE".into());
        e.browser = Some("Safari".into());
        e.os = Some("iOS".into());
        e.device = Some("mobile".into());
    }
    out.extend(c);
    let mut d = event(&mut n, "pageview", NOV_1 + 15 * HOUR, 4, "/");
    d.country = Some("DE".into());
    out.push(d);
    for e in &mut out {
        e.site_id = site_id;
    }
    out.sort_by_key(|e| e.ts);
    out
}

struct Env {
    server: TestServer,
    key: String,
    store: Store,
    client: reqwest::Client,
    _db: TestDb,
}

impl Env {
    async fn new(kind: Kind) -> (Env, i64) {
        let db = TestDb::new(kind).await;
        let store = db.store().await;
        let (site, _) = store.add_site("example.com").await.expect("site");
        let key = store.create_key(Some("test")).await.expect("key");
        let server = TestServer::start(&db.url, &[]).await;
        (
            Env {
                server,
                key,
                store,
                client: reqwest::Client::new(),
                _db: db,
            },
            site.id,
        )
    }

    async fn load(&self, events: &[NewEvent]) {
        self.store
            .insert_events(events.to_vec())
            .await
            .expect("insert");
        roll_up_now(&self.store).await.expect("roll up");
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.server.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }
}

const DAY_Q: &str = "site=example.com&from=2026-11-02&to=2026-11-02";

fn rows(v: &Value) -> Vec<(String, i64)> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["value"].as_str().expect("value").to_string(),
                r["visitors"].as_i64().expect("visitors"),
            )
        })
        .collect()
}

fn find<'a>(v: &'a Value, value: &str) -> &'a Value {
    v.as_array()
        .expect("array")
        .iter()
        .find(|r| r["value"] == value)
        .unwrap_or_else(|| panic!("no row {value:?} in {v}"))
}

async fn hand_computed(kind: Kind) {
    let (env, site) = Env::new(kind).await;
    env.load(&fixture(site)).await;

    let s = env.ok(&format!("/api/stats/summary?{DAY_Q}")).await;
    assert_eq!(
        s,
        json!({"pageviews": 7, "visitors": 3, "visits": 4, "bounce_rate": 0.5,
               "visit_duration_s": 300.0, "events": 2,
               "previous": {"pageviews": 1, "visitors": 1, "visits": 1, "bounce_rate": 1.0,
                            "visit_duration_s": 0.0, "events": 0}})
    );

    // Zero-filled days.
    let ts = env
        .ok("/api/stats/timeseries?site=example.com&from=2026-11-01&to=2026-11-03&interval=day")
        .await;
    assert_eq!(
        ts,
        json!([
            {"t": "2026-11-01", "pageviews": 1, "visitors": 1, "visits": 1},
            {"t": "2026-11-02", "pageviews": 7, "visitors": 3, "visits": 4},
            {"t": "2026-11-03", "pageviews": 0, "visitors": 0, "visits": 0}
        ])
    );
    let hours = env
        .ok(&format!("/api/stats/timeseries?{DAY_Q}&interval=hour"))
        .await;
    let hours = hours.as_array().expect("array");
    assert_eq!(hours.len(), 24);
    assert_eq!(
        hours[10],
        json!({"t": "2026-11-02T10:00:00+00:00", "pageviews": 4, "visitors": 1, "visits": 2})
    );
    assert_eq!(hours[11]["pageviews"], 0);
    assert_eq!(hours[12]["pageviews"], 2);
    assert_eq!(hours[23]["visitors"], 1);
    let months = env
        .ok("/api/stats/timeseries?site=example.com&from=2026-10-15&to=2026-12-01&interval=month")
        .await;
    assert_eq!(
        months,
        json!([
            {"t": "2026-10", "pageviews": 0, "visitors": 0, "visits": 0},
            {"t": "2026-11", "pageviews": 8, "visitors": 4, "visits": 5},
            {"t": "2026-12", "pageviews": 0, "visitors": 0, "visits": 0}
        ])
    );

    // Time zones: B's 23:30 UTC page view is on Nov 3 in Berlin.
    let berlin = env
        .ok("/api/stats/timeseries?site=example.com&from=2026-11-02&to=2026-11-03&tz=Europe/Berlin")
        .await;
    assert_eq!(
        berlin,
        json!([
            {"t": "2026-11-02", "pageviews": 6, "visitors": 2, "visits": 3},
            {"t": "2026-11-03", "pageviews": 1, "visitors": 1, "visits": 1}
        ])
    );
    let s = env
        .ok("/api/stats/summary?site=example.com&from=2026-11-02&to=2026-11-02&tz=Europe/Berlin")
        .await;
    assert_eq!(
        (s["pageviews"].as_i64(), s["visits"].as_i64()),
        (Some(6), Some(3))
    );

    // Breakdowns.
    let pages = env
        .ok(&format!("/api/stats/breakdown?{DAY_Q}&dim=page"))
        .await;
    assert_eq!(
        pages,
        json!([
            {"value": "/blog", "visitors": 2, "pageviews": 3, "unique_pageviews": 2, "visits": 2, "events": 1},
            {"value": "/pricing", "visitors": 2, "pageviews": 2, "unique_pageviews": 2, "visits": 2, "events": 1},
            {"value": "/", "visitors": 1, "pageviews": 2, "unique_pageviews": 1, "visits": 1, "events": 0}
        ])
    );
    let limited = env
        .ok(&format!("/api/stats/breakdown?{DAY_Q}&dim=page&limit=1"))
        .await;
    assert_eq!(rows(&limited), vec![("/blog".to_string(), 2)]);
    let entry = env
        .ok(&format!("/api/stats/breakdown?{DAY_Q}&dim=entry_page"))
        .await;
    assert_eq!(
        find(&entry, "/blog"),
        &json!({"value": "/blog", "visitors": 2, "pageviews": 3, "visits": 2,
                "bounce_rate": 0.5, "visit_duration_s": 345.0, "events": 1})
    );
    assert_eq!(find(&entry, "/pricing")["bounce_rate"], 1.0);
    let exit = env
        .ok(&format!("/api/stats/breakdown?{DAY_Q}&dim=exit_page"))
        .await;
    assert_eq!(
        exit,
        json!([
            {"value": "/blog", "visitors": 2, "visits": 2, "bounce_rate": 0.5, "visit_duration_s": 345.0},
            {"value": "/", "visitors": 1, "visits": 1, "bounce_rate": 0.0, "visit_duration_s": 510.0},
            {"value": "/pricing", "visitors": 1, "visits": 1, "bounce_rate": 1.0, "visit_duration_s": 0.0}
        ])
    );
    let referrers = env
        .ok(&format!("/api/stats/breakdown?{DAY_Q}&dim=referrer"))
        .await;
    assert_eq!(
        rows(&referrers),
        vec![
            ("Direct / None".to_string(), 2),
            ("Google".to_string(), 1),
            ("Hacker News".to_string(), 1)
        ]
    );
    assert_eq!(find(&referrers, "Google")["pageviews"], 3);
    let countries = env
        .ok(&format!("/api/stats/breakdown?{DAY_Q}&dim=country"))
        .await;
    assert_eq!(
        countries,
        json!([
            {"value": "DE", "visitors": 2, "pageviews": 6, "visits": 3, "bounce_rate": 0.3333,
             "visit_duration_s": 400.0, "events": 2},
            {"value": "US", "visitors": 1, "pageviews": 1, "visits": 1, "bounce_rate": 1.0,
             "visit_duration_s": 0.0, "events": 0}
        ])
    );
    let browsers = env
        .ok(&format!("/api/stats/breakdown?{DAY_Q}&dim=browser"))
        .await;
    assert_eq!(
        rows(&browsers),
        vec![
            ("Chrome".to_string(), 1),
            ("Safari".to_string(), 1),
            ("Firefox".to_string(), 1)
        ]
    );
    for (dim, value) in [
        ("utm_source", "newsletter"),
        ("utm_medium", "email"),
        ("utm_campaign", "launch, \"big\"\nday"),
        ("os", "Linux"),
        ("device", "mobile"),
    ] {
        let b = env
            .ok(&format!("/api/stats/breakdown?{DAY_Q}&dim={dim}"))
            .await;
        assert_eq!(find(&b, value)["visitors"], 1, "{dim}");
    }
    let users = env
        .ok(&format!("/api/stats/breakdown?{DAY_Q}&dim=user"))
        .await;
    assert_eq!(
        rows(&users),
        vec![("anonymous".to_string(), 2), ("logged-in".to_string(), 1)]
    );
    assert_eq!(find(&users, "anonymous")["visits"], 3);
    let events = env
        .ok(&format!("/api/stats/breakdown?{DAY_Q}&dim=event"))
        .await;
    assert_eq!(
        events,
        json!([
            {"value": "Outbound Link: Click", "visitors": 1, "events": 1},
            {"value": "Signup", "visitors": 1, "events": 1}
        ])
    );
    let plans = env
        .ok(&format!("/api/stats/breakdown?{DAY_Q}&dim=prop:plan"))
        .await;
    assert_eq!(plans, json!([{"value": "pro", "visitors": 1, "events": 1}]));

    // Filters: one visit-level filter (rollups), one page filter and a combination (raw).
    let de = env
        .ok(&format!("/api/stats/summary?{DAY_Q}&filter[country]=DE"))
        .await;
    assert_eq!(
        (
            de["pageviews"].clone(),
            de["visitors"].clone(),
            de["visits"].clone(),
            de["bounce_rate"].clone(),
            de["visit_duration_s"].clone(),
            de["events"].clone()
        ),
        (
            json!(6),
            json!(2),
            json!(3),
            json!(0.3333),
            json!(400.0),
            json!(2)
        )
    );
    let blog = env
        .ok(&format!("/api/stats/summary?{DAY_Q}&filter[page]=/blog"))
        .await;
    assert_eq!(
        (
            blog["pageviews"].clone(),
            blog["visitors"].clone(),
            blog["visits"].clone(),
            blog["bounce_rate"].clone(),
            blog["visit_duration_s"].clone(),
            blog["events"].clone()
        ),
        (
            json!(3),
            json!(2),
            json!(2),
            json!(0.5),
            json!(345.0),
            json!(1)
        )
    );
    let both = env
        .ok(&format!(
            "/api/stats/summary?{DAY_Q}&filter[country]=DE&filter[page]=%2Fpricing"
        ))
        .await;
    assert_eq!(
        (
            both["pageviews"].clone(),
            both["visitors"].clone(),
            both["visits"].clone(),
            both["events"].clone(),
            both["visit_duration_s"].clone()
        ),
        (json!(1), json!(1), json!(1), json!(1), json!(510.0))
    );
    let de_pages = env
        .ok(&format!(
            "/api/stats/breakdown?{DAY_Q}&dim=page&filter[country]=DE"
        ))
        .await;
    assert_eq!(
        rows(&de_pages),
        vec![
            ("/blog".to_string(), 2),
            ("/".to_string(), 1),
            ("/pricing".to_string(), 1)
        ]
    );
    let de_series = env
        .ok("/api/stats/timeseries?site=example.com&from=2026-11-01&to=2026-11-02&filter[event]=Signup")
        .await;
    assert_eq!(
        de_series,
        json!([
            {"t": "2026-11-01", "pageviews": 0, "visitors": 0, "visits": 0},
            {"t": "2026-11-02", "pageviews": 0, "visitors": 1, "visits": 1}
        ])
    );
    let logged_in = env
        .ok(&format!(
            "/api/stats/summary?{DAY_Q}&filter[user]=logged-in&filter[utm_source]=newsletter"
        ))
        .await;
    assert_eq!(
        (
            logged_in["visitors"].clone(),
            logged_in["bounce_rate"].clone()
        ),
        (json!(1), json!(1.0))
    );
    env.server.stop().await.expect("stopped");
}

#[tokio::test]
async fn hand_computed_numbers_sqlite() {
    hand_computed(Kind::Sqlite).await;
}

#[tokio::test]
async fn hand_computed_numbers_postgres() {
    hand_computed(Kind::Postgres).await;
}

async fn errors_realtime_and_export(kind: Kind) {
    let (env, site) = Env::new(kind).await;
    env.load(&fixture(site)).await;

    // 400s name the parameter, 404 for an unknown site, 401 without a valid key.
    for (query, param) in [
        ("from=2026-11-02", "site"),
        ("site=example.com&from=soon", "from"),
        ("site=example.com&to=2026-02-30", "to"),
        ("site=example.com&tz=Europe/Atlantis", "tz"),
        ("site=example.com&interval=week", "interval"),
        ("site=example.com&filter[colour]=red", "filter[colour]"),
        ("site=example.com&from=2026-11-05&to=2026-11-01", "to"),
    ] {
        let (status, body) = env.get(&format!("/api/stats/timeseries?{query}")).await;
        assert_eq!(status, 400, "{query}");
        let msg = body["error"].as_str().expect("error");
        assert!(msg.starts_with(&format!("{param}:")), "{query}: {msg}");
    }
    for (query, param) in [
        ("site=example.com", "dim"),
        ("site=example.com&dim=colour", "dim"),
        ("site=example.com&dim=page&limit=5000", "limit"),
        ("site=example.com&dim=page&limit=ten", "limit"),
    ] {
        let (status, body) = env.get(&format!("/api/stats/breakdown?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(body["error"]
            .as_str()
            .expect("error")
            .starts_with(&format!("{param}:")));
    }
    let (status, body) = env.get("/api/stats/summary?site=unknown.org").await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().expect("error").contains("site"));
    for path in [
        "/api/stats/summary",
        "/api/stats/timeseries",
        "/api/stats/breakdown",
        "/api/stats/realtime",
        "/api/stats/export",
    ] {
        let url = format!("{}{path}?site=example.com&dim=page", env.server.base);
        let none = env.client.get(&url).send().await.expect("request");
        assert_eq!(none.status().as_u16(), 401, "{path}");
        let wrong = env
            .client
            .get(&url)
            .bearer_auth("tally_not_a_key")
            .send()
            .await
            .expect("request");
        assert_eq!(wrong.status().as_u16(), 401, "{path}");
    }

    // Realtime: distinct visitors of the last 5 minutes.
    let now = ingest_server::now_ms();
    let mut n = 1000;
    let recent = vec![
        event(&mut n, "pageview", now - 60_000, 10, "/"),
        event(&mut n, "pageview", now - 30_000, 10, "/a"),
        event(&mut n, "event", now - 20_000, 11, "/"),
        event(&mut n, "pageview", now - 10 * MIN, 12, "/"),
    ]
    .into_iter()
    .map(|mut e| {
        e.site_id = site;
        e
    })
    .collect::<Vec<_>>();
    env.load(&recent).await;
    assert_eq!(
        env.ok("/api/stats/realtime?site=example.com").await,
        json!({"visitors": 2})
    );
    // The default range is the last 30 days, today included.
    let today = chrono::DateTime::from_timestamp_millis(ingest_server::now_ms())
        .expect("now")
        .date_naive();
    let first = today - chrono::Days::new(29);
    let default = env.ok("/api/stats/summary?site=example.com").await;
    let explicit = env
        .ok(&format!(
            "/api/stats/summary?site=example.com&from={first}&to={today}"
        ))
        .await;
    assert_eq!(default, explicit);
    assert!(default["visitors"].as_i64().expect("visitors") >= 3);

    // CSV export: a proper CSV, values with commas, quotes and newlines escaped.
    let r = env
        .client
        .get(format!(
            "{}/api/stats/export?format=csv&site=example.com&from=2026-11-01&to=2026-11-02",
            env.server.base
        ))
        .bearer_auth(&env.key)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    let disposition = r.headers()["content-disposition"].to_str().expect("ascii");
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/csv"));
    let text = r.text().await.expect("body");
    assert!(
        text.contains("utm_campaign,\"launch, \"\"big\"\"\nday\",1,1,"),
        "{text}"
    );
    assert!(text.contains("prop:url,\"https://x.com/a,b\",1,"), "{text}");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    let summary = records
        .iter()
        .find(|r| &r[0] == "summary")
        .expect("summary");
    assert_eq!((&summary[2], &summary[3]), ("4", "8"));
    let days: Vec<&str> = records
        .iter()
        .filter(|r| &r[0] == "timeseries")
        .map(|r| r.get(1).unwrap_or_default())
        .collect();
    assert_eq!(days, vec!["2026-11-01", "2026-11-02"]);
    let campaign = records
        .iter()
        .find(|r| &r[0] == "utm_campaign")
        .expect("campaign");
    assert_eq!(&campaign[1], "launch, \"big\"\nday");
    let (status, body) = env
        .get("/api/stats/export?format=xml&site=example.com")
        .await;
    assert_eq!(status, 400);
    assert!(body["error"]
        .as_str()
        .expect("error")
        .starts_with("format:"));
    env.server.stop().await.expect("stopped");
}

#[tokio::test]
async fn errors_realtime_and_export_sqlite() {
    errors_realtime_and_export(Kind::Sqlite).await;
}

#[tokio::test]
async fn errors_realtime_and_export_postgres() {
    errors_realtime_and_export(Kind::Postgres).await;
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Three days of traffic: daily visitor ids, visits of 1–6 pages with gaps from seconds to
/// 40 minutes (so some visits split), engagement, custom events with props, mixed values.
fn random_fixture(site_id: i64, seed: u64) -> Vec<NewEvent> {
    random_days(site_id, seed, NOV_1, 3)
}

/// `days` days of traffic as [`random_fixture`]'s from the day that starts at `first`.
fn random_days(site_id: i64, seed: u64, first: i64, days: u64) -> Vec<NewEvent> {
    let mut rng = Rng(seed);
    let mut n = 0;
    let mut out = Vec::new();
    let pages = [
        "/", "/a", "/b", "/c", "/docs/x", "/docs/y", "/pricing", "/blog/1",
    ];
    for day in 0..days {
        for v in 0..70 {
            let visitor = (day * 1000 + v) as i64 + 1;
            let country = rng.pick(&["DE", "US", "FR", "BR"]).to_string();
            let browser = rng.pick(&["Chrome", "Firefox", "Safari"]).to_string();
            let referrer = rng.pick(&["", "Google", "Reddit", "news.example.org"]);
            let utm = rng.below(4) == 0;
            let logged = rng.below(3) == 0;
            let mut ts = first + day as i64 * DAY + rng.below(22 * 3_600) as i64 * 1000;
            for k in 0..(1 + rng.below(6)) {
                let gap = match rng.below(10) {
                    0 => 31 * MIN + rng.below(10 * 60) as i64 * 1000,
                    1..=3 => rng.below(25 * 60) as i64 * 1000,
                    _ => rng.below(120) as i64 * 1000,
                };
                if k > 0 {
                    ts += gap;
                }
                let kind = match rng.below(10) {
                    0 | 1 => "event",
                    2 => "engagement",
                    _ => "pageview",
                };
                let mut e = event(&mut n, kind, ts, visitor, rng.pick(&pages));
                e.site_id = site_id;
                e.country = Some(country.clone());
                e.browser = Some(browser.clone());
                e.os = Some("Linux".into());
                e.device = Some(rng.pick(&["desktop", "mobile"]).to_string());
                e.referrer = (!referrer.is_empty()).then(|| referrer.to_string());
                if utm {
                    e.utm_source = Some("mail".into());
                    e.utm_campaign = Some(rng.pick(&["x", "y"]).to_string());
                }
                e.logged_in = Some(logged);
                if kind == "event" {
                    e.name = Some(rng.pick(&["Signup", "Download"]).to_string());
                    e.props = Some(format!(r#"{{"plan":"{}"}}"#, rng.pick(&["free", "pro"])));
                }
                out.push(e);
            }
        }
    }
    out.sort_by_key(|e| e.ts);
    out
}

fn params(from: i64, to: i64, filters: Vec<(Dim, String)>) -> Params {
    Params {
        site: "example.com".into(),
        from,
        to,
        tz: chrono_tz::Tz::UTC,
        filters,
        interval: stats::Interval::Day,
        dim: None,
        limit: 1000,
    }
}

async fn rollups_equal_raw(kind: Kind) {
    let db = TestDb::new(kind).await;
    let store = db.store().await;
    let (site, _) = store.add_site("example.com").await.expect("site");
    let events = random_fixture(site.id, 0x9e37_79b9_7f4a_7c15);
    assert!(events.len() > 600);
    // Inserted in batches, rolled up in small chunks, so that visits go on across rounds.
    for part in events.chunks(400) {
        store.insert_events(part.to_vec()).await.expect("insert");
        roll_up_all(&store, 97).await.expect("roll up");
    }
    assert_eq!(store.unrolled_count().await.expect("count"), 0);

    let whole = params(NOV_1, NOV_1 + 3 * DAY, Vec::new());
    let dims = [
        "page",
        "entry_page",
        "exit_page",
        "referrer",
        "utm_source",
        "utm_campaign",
        "country",
        "browser",
        "device",
        "user",
        "event",
        "prop:plan",
    ];
    for dim in dims {
        let dim = Dim::parse(dim).expect("dim");
        let from_rollups: Vec<BreakdownRow> = stats::breakdown(&store, site.id, &whole, &dim)
            .await
            .expect("rollups");
        let from_raw: Vec<BreakdownRow> = stats::raw_breakdown(&store, site.id, &whole, &dim)
            .await
            .expect("raw")
            .into_iter()
            .map(|(v, c)| BreakdownRow::of(&dim, v, &c))
            .collect();
        assert!(!from_raw.is_empty(), "{dim:?}");
        assert_eq!(from_rollups, from_raw, "{dim:?}");
    }
    // Ranges read partly by subtraction: November less its first day (a month less a day, and
    // less the days after the data), and a day in UTC+1 (a UTC day less its last hour, plus
    // the hour before it). Visitors are exact over whole UTC days only.
    for (from, to, whole_days) in [
        (NOV_1 + DAY, NOV_1 + 29 * DAY, true),
        (NOV_1 + 23 * HOUR, NOV_1 + DAY + 23 * HOUR, false),
    ] {
        let p = params(from, to, Vec::new());
        for dim in ["page", "entry_page", "country", "event", "prop:plan"] {
            let dim = Dim::parse(dim).expect("dim");
            let key = |rows: Vec<(String, Counts)>| {
                let mut rows: Vec<_> = rows
                    .into_iter()
                    .map(|(v, c)| {
                        // Unique page views are kept for pages only.
                        let unique = if dim.as_str() == "page" {
                            c.unique_pageviews
                        } else {
                            0
                        };
                        let visitors = if whole_days { c.visitors } else { 0 };
                        (v, c.pageviews, unique, c.visits, c.events, visitors)
                    })
                    .collect();
                rows.sort();
                rows
            };
            let rolled = key(stats::rollup_breakdown(&store, site.id, &p, &dim)
                .await
                .expect("rollups"));
            let raw = key(stats::raw_breakdown(&store, site.id, &p, &dim)
                .await
                .expect("raw"));
            assert!(!raw.is_empty(), "{dim:?}");
            assert_eq!(rolled, raw, "{dim:?} over [{from}, {to})");
        }
        let rolled = stats::summary(&store, site.id, &p).await.expect("summary");
        let raw = stats::raw_totals(&store, site.id, &[], from, to)
            .await
            .expect("raw");
        assert_eq!(
            (rolled.pageviews, rolled.visits, rolled.events),
            (raw.pageviews, raw.visits, raw.events),
            "[{from}, {to})"
        );
        if whole_days {
            assert_eq!(rolled.visitors, raw.visitors);
        }
    }
    for day in 0..3 {
        let (from, to) = (NOV_1 + day * DAY, NOV_1 + (day + 1) * DAY);
        let rolled = stats::summary(&store, site.id, &params(from, to, Vec::new()))
            .await
            .expect("summary");
        let raw: Counts = stats::raw_totals(&store, site.id, &[], from, to)
            .await
            .expect("raw");
        assert_eq!(
            (
                rolled.pageviews,
                rolled.visitors,
                rolled.visits,
                rolled.events
            ),
            (raw.pageviews, raw.visitors, raw.visits, raw.events),
            "day {day}"
        );
        let filter = vec![(Dim::parse("country").expect("dim"), "DE".to_string())];
        let rolled = stats::summary(&store, site.id, &params(from, to, filter.clone()))
            .await
            .expect("summary");
        let raw = stats::raw_totals(&store, site.id, &filter, from, to)
            .await
            .expect("raw");
        assert_eq!(
            (
                rolled.pageviews,
                rolled.visitors,
                rolled.visits,
                rolled.events
            ),
            (raw.pageviews, raw.visitors, raw.visits, raw.events),
            "day {day}, DE"
        );
        let bounces = (raw.bounces as f64 / raw.visits.max(1) as f64 * 10_000.0).round() / 10_000.0;
        assert_eq!(rolled.bounce_rate, bounces);
    }
}

#[tokio::test]
async fn rollups_equal_a_raw_recomputation_sqlite() {
    rollups_equal_raw(Kind::Sqlite).await;
}

#[tokio::test]
async fn rollups_equal_a_raw_recomputation_postgres() {
    rollups_equal_raw(Kind::Postgres).await;
}

/// Filtered queries count from day digests. The background builder stores those of the days
/// with events; the queries of one filtered view (summary, timeseries, breakdowns) read
/// them, build each other day of both periods once between them, and answer what a count of
/// the raw events answers; later queries read the stored digests; an event counted later
/// for one day has that day alone built again.
async fn filtered_queries_count_from_day_digests(kind: Kind) {
    let db = TestDb::new(kind).await;
    let store = db.store().await;
    let (site, _) = store.add_site("example.com").await.expect("site");
    let mut events = random_fixture(site.id, 0x2545_f491_4f6c_dd1d);
    // A visitor id lives one UTC day (its salt's): the fixture's visits that would run past
    // midnight end there.
    events.retain(|e| e.ts < NOV_1 + (e.visitor - 1) / 1000 * DAY + DAY);
    let late = events.pop().expect("events");
    store.insert_events(events).await.expect("insert");
    roll_up_now(&store).await.expect("roll up");

    let filters = vec![
        (Dim::parse("page").expect("dim"), "/pricing".to_string()),
        (Dim::parse("device").expect("dim"), "mobile".to_string()),
    ];
    let p = params(NOV_1, NOV_1 + 3 * DAY, filters.clone());
    let dims: Vec<Dim> = [
        "page",
        "country",
        "referrer",
        "event",
        "exit_page",
        "prop:plan",
    ]
    .iter()
    .map(|d| Dim::parse(d).expect("dim"))
    .collect();
    let view = |store: Store| {
        let (p, dims) = (p.clone(), dims.clone());
        async move {
            let breakdowns = dims
                .iter()
                .map(|d| stats::breakdown(&store, site.id, &p, d));
            let (summary, series, breakdowns) = tokio::join!(
                stats::summary(&store, site.id, &p),
                stats::timeseries(&store, site.id, &p),
                futures_util::future::join_all(breakdowns)
            );
            let breakdowns: Vec<Vec<BreakdownRow>> = breakdowns
                .into_iter()
                .map(|b| b.expect("breakdown"))
                .collect();
            (
                summary.expect("summary"),
                series.expect("series"),
                breakdowns,
            )
        }
    };
    // The three days of the fixture; then nothing is left to build.
    assert_eq!(days::warm(&store, 100).await.expect("warm"), 3);
    assert_eq!(days::warm(&store, 100).await.expect("warm"), 0);
    let (built, read) = (store.days.built(), store.days.read());
    let read_bytes = store.days.read_bytes();
    let shared = view(store.clone()).await;
    // This period's three days read once for nine queries: each piece a query needs read
    // once, by the first query that needs it. The period before has no events: none of its
    // days is read or built.
    assert_eq!(store.days.built() - built, 0);
    assert!(store.days.read() - read >= 3);
    // The stored pieces of both periods' days, their heads not counted.
    let stored: i64 = sqlx::query_scalar(
        "SELECT SUM(LENGTH(data)) - COUNT(*) * $1 FROM digests WHERE site_id = $2",
    )
    .bind(stats::digest::HEAD as i64)
    .bind(site.id)
    .fetch_one(&store.pool)
    .await
    .expect("stored bytes");
    let pieces_read = (store.days.read_bytes() - read_bytes) as i64;
    assert!(
        pieces_read > 0 && pieces_read <= stored,
        "{pieces_read} of {stored}"
    );
    assert!(shared.0.pageviews > 0, "{:?}", shared.0);

    // The raw events say the same.
    let raw = stats::raw_totals(&store, site.id, &filters, p.from, p.to)
        .await
        .expect("raw");
    let s = &shared.0;
    assert_eq!(
        (s.pageviews, s.visitors, s.visits, s.events),
        (raw.pageviews, raw.visitors, raw.visits, raw.events)
    );
    let bounces = (raw.bounces as f64 / raw.visits.max(1) as f64 * 10_000.0).round() / 10_000.0;
    assert_eq!(s.bounce_rate, bounces);
    assert_eq!(
        shared.1.iter().map(|t| t.pageviews).sum::<i64>(),
        raw.pageviews
    );
    for (dim, rows) in dims.iter().zip(&shared.2) {
        let want: Vec<BreakdownRow> = stats::raw_breakdown(&store, site.id, &p, dim)
            .await
            .expect("raw breakdown")
            .into_iter()
            .map(|(v, c)| BreakdownRow::of(dim, v, &c))
            .collect();
        assert_eq!(rows, &want, "{dim:?}");
        assert!(!rows.is_empty(), "{dim:?}");
    }

    // Nothing kept in memory: the days that are over are read back, none built again.
    store.days.clear();
    let read_bytes = store.days.read_bytes();
    assert_eq!(view(store.clone()).await, shared);
    assert_eq!(store.days.built() - built, 0);
    let again = (store.days.read_bytes() - read_bytes) as i64;
    assert!(
        again >= pieces_read && again <= stored,
        "{again} of {stored}"
    );

    // A late event of the third day: once counted, that day alone is built again.
    let mut late = late;
    late.kind = "pageview";
    late.visitor = 999_999;
    late.path = "/pricing".into();
    late.device = Some("mobile".into());
    late.ts = NOV_1 + 2 * DAY + 23 * HOUR + 59 * MIN;
    store.insert_events(vec![late]).await.expect("insert");
    roll_up_now(&store).await.expect("roll up");
    let after = stats::summary(&store, site.id, &p).await.expect("summary");
    assert_eq!(after.pageviews, shared.0.pageviews + 1);
    assert_eq!(after.visits, shared.0.visits + 1);
    assert_eq!(store.days.built() - built, 1);
    // The query stored it (the day is over): the builder has nothing to do, and the next
    // query reads it.
    assert_eq!(days::warm(&store, 100).await.expect("warm"), 0);
    store.days.clear();
    assert_eq!(
        stats::summary(&store, site.id, &p).await.expect("summary"),
        after
    );
    assert_eq!(store.days.built() - built, 1);

    // A stored digest that cannot be read (damaged, or of another format) is built again
    // and replaced, though its generation is current: the query after reads it.
    sqlx::query("UPDATE digests SET data = $1 WHERE site_id = $2 AND day = $3")
        .bind(vec![0xFF_u8; 16])
        .bind(site.id)
        .bind(NOV_1)
        .execute(&store.pool)
        .await
        .expect("damage a digest");
    for built_then in [2, 2] {
        store.days.clear();
        assert_eq!(
            stats::summary(&store, site.id, &p).await.expect("summary"),
            after
        );
        assert_eq!(store.days.built() - built, built_then);
    }
}

/// A range of several chunks of days, counted two chunks at a time into sums of their own:
/// the same as the raw events, from the database and from the days kept in memory.
async fn many_chunks(kind: Kind) {
    let db = TestDb::new(kind).await;
    let store = db.store().await;
    let (site, _) = store.add_site("example.com").await.expect("site");
    let first = NOV_1 - 40 * DAY;
    let mut events = random_days(site.id, 0x7f4a_7c15_2545_f491, first, 40);
    events.retain(|e| e.ts < first + (e.visitor - 1) / 1000 * DAY + DAY);
    store.insert_events(events).await.expect("insert");
    roll_up_now(&store).await.expect("roll up");
    let filters = vec![
        (Dim::parse("device").expect("dim"), "mobile".to_string()),
        (Dim::parse("country").expect("dim"), "DE".to_string()),
    ];
    let p = params(first + DAY / 2, NOV_1, filters.clone());
    let page = Dim::parse("page").expect("dim");
    // Without statistics, PostgreSQL's planner joins the raw filters' sub-selects by nested
    // loops (a minute for these 40 days).
    if matches!(kind, Kind::Postgres) {
        sqlx::query("ANALYZE")
            .execute(&store.pool)
            .await
            .expect("analyze");
    }
    let raw = stats::raw_totals(&store, site.id, &filters, p.from, p.to)
        .await
        .expect("raw");
    let want: Vec<BreakdownRow> = stats::raw_breakdown(&store, site.id, &p, &page)
        .await
        .expect("raw breakdown")
        .into_iter()
        .map(|(v, c)| BreakdownRow::of(&page, v, &c))
        .collect();
    assert!(want.len() > 3 && raw.visits > 40, "{raw:?}");
    for pass in ["from the database", "kept in memory", "read again"] {
        if pass == "read again" {
            store.days.keep_at_most(0);
            store.days.clear();
        }
        let before = store.days.read() + store.days.built();
        let s = stats::summary(&store, site.id, &p).await.expect("summary");
        assert_eq!(
            (s.pageviews, s.visitors, s.visits, s.events),
            (raw.pageviews, raw.visitors, raw.visits, raw.events),
            "{pass}"
        );
        let series = stats::timeseries(&store, site.id, &p)
            .await
            .expect("series");
        assert_eq!(
            series.iter().map(|t| t.pageviews).sum::<i64>(),
            raw.pageviews,
            "{pass}"
        );
        let rows = stats::breakdown(&store, site.id, &p, &page)
            .await
            .expect("breakdown");
        assert_eq!(rows, want, "{pass}");
        // Read from the database or built from the events, per day.
        let days_read = store.days.read() + store.days.built() - before;
        match pass {
            "kept in memory" => assert_eq!(days_read, 0, "{pass}"),
            _ => assert!(days_read >= 40, "{pass}: {days_read} days read"),
        }
        // What `/metrics` shows as `tally_digest_cache_bytes`.
        let held = store.days.held.get();
        match pass {
            "read again" => assert_eq!(held, 0),
            _ => assert_eq!(held as usize, store.days.kept_bytes(), "{pass}"),
        }
        assert!(pass == "read again" || held > 0, "{pass}");
    }
}

#[tokio::test]
async fn many_chunks_count_what_the_raw_events_count_sqlite() {
    many_chunks(Kind::Sqlite).await;
}

#[tokio::test]
async fn many_chunks_count_what_the_raw_events_count_postgres() {
    many_chunks(Kind::Postgres).await;
}

#[tokio::test]
async fn filtered_queries_count_from_day_digests_sqlite() {
    filtered_queries_count_from_day_digests(Kind::Sqlite).await;
}

#[tokio::test]
async fn filtered_queries_count_from_day_digests_postgres() {
    filtered_queries_count_from_day_digests(Kind::Postgres).await;
}

/// On SQLite the stored digests live in a file of their own beside the database file
/// (`PATH-digests`). Deleted, it is made anew and the digests are built again; left beside a
/// database file made anew, it is emptied rather than read (the new database's days have
/// the same generations and would otherwise find the old digests current).
#[tokio::test]
async fn sqlite_digests_live_in_a_file_of_their_own() {
    let db = TestDb::new(Kind::Sqlite).await;
    let path = std::path::PathBuf::from(db.url.strip_prefix("sqlite://").expect("sqlite url"));
    let digests_file = ingest_server::store::digests_path(&path);
    let filters = vec![(Dim::parse("page").expect("dim"), "/pricing".to_string())];
    let p = params(NOV_1, NOV_1 + 3 * DAY, filters.clone());
    let fixture = |seed| {
        let mut events = random_fixture(1, seed);
        events.retain(|e| e.ts < NOV_1 + (e.visitor - 1) / 1000 * DAY + DAY);
        events
    };
    // Fills a new database (its site is id 1 again), stores its digests and answers the
    // filtered summary as the raw events do; returns the summary.
    let fill = |events: Vec<NewEvent>| {
        let (url, p, filters) = (db.url.clone(), p.clone(), filters.clone());
        async move {
            let store = Store::open(&url).await.expect("open store");
            let (site, _) = store.add_site("example.com").await.expect("site");
            assert_eq!(site.id, 1);
            store.insert_events(events).await.expect("insert");
            roll_up_now(&store).await.expect("roll up");
            let summary = stats::summary(&store, 1, &p).await.expect("summary");
            let raw = stats::raw_totals(&store, 1, &filters, p.from, p.to)
                .await
                .expect("raw");
            assert_eq!(
                (summary.pageviews, summary.visitors, summary.visits),
                (raw.pageviews, raw.visitors, raw.visits)
            );
            assert!(summary.pageviews > 0);
            store
        }
    };
    let remove_main = || {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    };
    let stored = |store: Store| async move {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM day_digests.digests")
            .fetch_one(&store.pool)
            .await
            .expect("count")
    };

    let store = fill(fixture(0x2545_f491_4f6c_dd1d)).await;
    assert_eq!(
        stored(store.clone()).await,
        3,
        "the period's days (all over), stored by the query that built them; the period \
         before has no events, nothing to build or store"
    );
    let in_main: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM main.sqlite_master WHERE name = 'digests'")
            .fetch_one(&store.pool)
            .await
            .expect("schema");
    assert_eq!(in_main, 0, "no digests in the database file");
    let first = stats::summary(&store, 1, &p).await.expect("summary");
    store.close().await;
    assert!(digests_file.metadata().expect("digests file").len() > 0);

    // The digests' file deleted: made anew, the digests built again, the same answer.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", digests_file.display()));
    }
    let store = Store::open(&db.url).await.expect("open store");
    assert_eq!(stored(store.clone()).await, 0);
    let built = store.days.built();
    assert_eq!(stats::summary(&store, 1, &p).await.expect("summary"), first);
    assert_eq!(store.days.built() - built, 3, "the period's days built");
    assert_eq!(stored(store.clone()).await, 3);
    store.close().await;

    // A new database file with other events beside the old digests' file: the digests are
    // dropped when it opens, and its answers are its own events' (`fill` checks them).
    remove_main();
    let other = fixture(0x9e37_79b9_7f4a_7c15);
    let store = Store::open(&db.url).await.expect("open store");
    assert_eq!(
        stored(store.clone()).await,
        0,
        "the old database's digests dropped"
    );
    store.close().await;
    let store = fill(other).await;
    assert_ne!(stats::summary(&store, 1, &p).await.expect("summary"), first);
    store.close().await;
}

/// Today's digest follows new events: the first filtered query reads the day so far, a
/// later one (on SQLite) only what was stored since; the answers are those of the raw
/// events each time.
async fn today_follows_new_events(kind: Kind) {
    let db = TestDb::new(kind).await;
    let store = db.store().await;
    let (site, _) = store.add_site("example.com").await.expect("site");
    let now = ingest_server::now_ms();
    let today = now - now % DAY;
    let mut n = 0;
    // Events of the last minutes (of today), two visitors, one of them back later.
    let at = |k: i64| (now - 600_000 + k * 20_000).max(today);
    let batch = |n: &mut u32, from: i64, count: i64| -> Vec<NewEvent> {
        (from..from + count)
            .map(|k| {
                let path = if k % 3 == 0 { "/pricing" } else { "/" };
                let kind = if k % 5 == 4 { "event" } else { "pageview" };
                let mut e = event(n, kind, at(k), 1 + k % 2, path);
                e.site_id = site.id;
                e.country = Some("DE".into());
                e
            })
            .collect()
    };
    store
        .insert_events(batch(&mut n, 0, 12))
        .await
        .expect("insert");
    roll_up_now(&store).await.expect("roll up");
    let filters = vec![(Dim::parse("page").expect("dim"), "/pricing".to_string())];
    let p = params(today - 6 * DAY, today + DAY, filters.clone());
    let check = |store: Store, p: Params, filters: Vec<(Dim, String)>| async move {
        let got = stats::summary(&store, site.id, &p).await.expect("summary");
        let raw = stats::raw_totals(&store, site.id, &filters, p.from, p.to)
            .await
            .expect("raw");
        assert_eq!(
            (got.pageviews, got.visitors, got.visits, got.events),
            (raw.pageviews, raw.visitors, raw.visits, raw.events)
        );
        got
    };
    let first = check(store.clone(), p.clone(), filters.clone()).await;
    assert_eq!(first.pageviews, 3);
    assert_eq!(store.days.open_events_read(), 12, "today read whole");
    let built = store.days.built();
    // Nothing new: nothing built, nothing read.
    check(store.clone(), p.clone(), filters.clone()).await;
    assert_eq!(store.days.built(), built);
    assert_eq!(store.days.open_events_read(), 12);
    // New events, counted: today is built again and counts them.
    store
        .insert_events(batch(&mut n, 12, 12))
        .await
        .expect("insert");
    roll_up_now(&store).await.expect("roll up");
    let second = check(store.clone(), p.clone(), filters.clone()).await;
    assert_eq!(second.pageviews, 7);
    assert_eq!(store.days.built(), built + 1);
    assert_eq!(
        store.days.open_events_read(),
        24,
        "only the 12 new events read"
    );
    // The same from nothing kept.
    store.days.clear();
    assert_eq!(
        check(store.clone(), p.clone(), filters.clone()).await,
        second
    );
    assert_eq!(store.days.open_events_read(), 48, "today read whole again");
    // The background builder brings what is kept up to date: the query after reads nothing.
    store
        .insert_events(batch(&mut n, 24, 6))
        .await
        .expect("insert");
    roll_up_now(&store).await.expect("roll up");
    assert_eq!(days::refresh_open(&store).await.expect("refresh"), 1);
    assert_eq!(store.days.open_events_read(), 54, "the 6 new events read");
    let built = store.days.built();
    let third = check(store.clone(), p.clone(), filters.clone()).await;
    assert_eq!(third.pageviews, 8);
    assert_eq!(
        store.days.open_events_read(),
        54,
        "nothing read by the query"
    );
    assert_eq!(store.days.built(), built, "nothing built by the query");
    // Nothing new: the next round reads nothing either.
    assert_eq!(days::refresh_open(&store).await.expect("refresh"), 1);
    assert_eq!(store.days.open_events_read(), 54);
    // Nothing kept: nothing to bring up to date.
    store.days.clear();
    assert_eq!(days::refresh_open(&store).await.expect("refresh"), 0);
}

#[tokio::test]
async fn today_follows_new_events_sqlite() {
    today_follows_new_events(Kind::Sqlite).await;
}

#[tokio::test]
async fn today_follows_new_events_postgres() {
    today_follows_new_events(Kind::Postgres).await;
}

/// A site with many events today has today built by the background builder before any
/// query asks (after a start), and kept unused; a quiet site's today is built by its first
/// filtered query, and dropped once unused for long enough.
async fn busy_today_is_built_before_a_query(kind: Kind) {
    let db = TestDb::new(kind).await;
    let store = db.store().await;
    store.days.keep_open_from(20);
    let (busy, _) = store.add_site("busy.example").await.expect("site");
    let (quiet, _) = store.add_site("quiet.example").await.expect("site");
    let now = ingest_server::now_ms();
    let today = now - now % DAY;
    let mut n = 0;
    let mut events = Vec::new();
    for (site, count) in [(busy.id, 30), (quiet.id, 10)] {
        for k in 0..count {
            let path = if k % 3 == 0 { "/pricing" } else { "/" };
            let mut e = event(
                &mut n,
                "pageview",
                (now - 60_000 * k).max(today),
                k % 4,
                path,
            );
            e.site_id = site;
            events.push(e);
        }
    }
    store.insert_events(events).await.expect("insert");
    roll_up_now(&store).await.expect("roll up");
    assert_eq!(days::refresh_open(&store).await.expect("refresh"), 1);
    assert_eq!(
        store.days.open_events_read(),
        30,
        "the busy site's day read"
    );
    assert_eq!(store.days.open_kept(), 1);
    let filters = vec![(Dim::parse("page").expect("dim"), "/pricing".to_string())];
    let p = params(today - 6 * DAY, today + DAY, filters.clone());
    let built = store.days.built();
    let summary = |site: i64| {
        let (store, p, filters) = (store.clone(), p.clone(), filters.clone());
        async move {
            let got = stats::summary(&store, site, &p).await.expect("summary");
            let raw = stats::raw_totals(&store, site, &filters, p.from, p.to)
                .await
                .expect("raw");
            assert_eq!((got.pageviews, got.visitors), (raw.pageviews, raw.visitors));
            got.pageviews
        }
    };
    assert_eq!(summary(busy.id).await, 10);
    assert_eq!(
        store.days.open_events_read(),
        30,
        "nothing read by the query"
    );
    assert_eq!(store.days.built(), built, "nothing built by the query");
    assert_eq!(summary(quiet.id).await, 4);
    assert_eq!(
        store.days.open_events_read(),
        40,
        "the quiet site's day read by its query"
    );
    assert_eq!(store.days.open_kept(), 2);
    // Long unused: the quiet site's day dropped, the busy one's kept.
    let later = std::time::Instant::now() + days::OPEN_MAX_AGE + std::time::Duration::from_secs(1);
    store.days.trim(later);
    assert_eq!(store.days.open_kept(), 1);
    assert_eq!(summary(busy.id).await, 10);
    assert_eq!(
        store.days.open_events_read(),
        40,
        "the busy site's day still kept"
    );
    // Below the threshold it goes too.
    store.days.keep_open_from(1_000);
    store.days.trim(later);
    assert_eq!(store.days.open_kept(), 0);
    assert_eq!(days::refresh_open(&store).await.expect("refresh"), 0);
}

#[tokio::test]
async fn busy_today_is_built_before_a_query_sqlite() {
    busy_today_is_built_before_a_query(Kind::Sqlite).await;
}

#[tokio::test]
async fn busy_today_is_built_before_a_query_postgres() {
    busy_today_is_built_before_a_query(Kind::Postgres).await;
}

/// The real path: `POST /api/event`, the background worker (no explicit roll-up), the API.
/// Two rollers on one database (two servers on PostgreSQL; on SQLite, say, the server and a
/// `demo` run) racing over the same events: each event is counted by exactly one of them,
/// and the rollups equal a recomputation from the raw events.
async fn concurrent_rollers(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (db.store().await, db.store().await);
    let (site, _) = a.add_site("example.com").await.expect("site");
    let events = random_fixture(site.id, 0x005e_ed0f_7a11);
    a.insert_events(events.clone()).await.expect("insert");
    let (by_a, by_b) = tokio::join!(roll_up_all(&a, 53), roll_up_all(&b, 41));
    let (by_a, by_b) = (by_a.expect("roller a"), by_b.expect("roller b"));
    assert_eq!(by_a + by_b, events.len() as u64, "{by_a} + {by_b}");
    assert_eq!(a.unrolled_count().await.expect("count"), 0);
    for day in 0..3 {
        let (from, to) = (NOV_1 + day * DAY, NOV_1 + (day + 1) * DAY);
        let rolled = stats::summary(&a, site.id, &params(from, to, Vec::new()))
            .await
            .expect("summary");
        let raw: Counts = stats::raw_totals(&a, site.id, &[], from, to)
            .await
            .expect("raw");
        assert_eq!(
            (rolled.pageviews, rolled.visits, rolled.events),
            (raw.pageviews, raw.visits, raw.events),
            "day {day}"
        );
    }
}

#[tokio::test]
async fn concurrent_rollers_count_each_event_once_sqlite() {
    concurrent_rollers(Kind::Sqlite).await;
}

#[tokio::test]
async fn concurrent_rollers_count_each_event_once_postgres() {
    concurrent_rollers(Kind::Postgres).await;
}

/// SQLite: the rollup worker reads and counts on a thread of its own, at a lower scheduling
/// priority than the threads that serve requests and write events (background work gives
/// way to them on a busy machine).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_sqlite_roller_counts_at_background_priority() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = db.store().await;
    let (site, _) = store.add_site("example.com").await.expect("site");
    let events = random_fixture(site.id, 0x0b5e_7a11);
    store.insert_events(events.clone()).await.expect("insert");
    assert_eq!(
        roll_up_now(&store).await.expect("roll up"),
        events.len() as u64
    );
    // The niceness of each of this process's threads (field 19 of /proc/self/task/T/stat,
    // counted after the parenthesised name).
    let nice = |name: &str| -> Vec<i64> {
        let mut out = Vec::new();
        for task in std::fs::read_dir("/proc/self/task")
            .expect("tasks")
            .flatten()
        {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            if comm.trim() == name {
                out.extend(fields.get(16).and_then(|f| f.parse::<i64>().ok()));
            }
        }
        out
    };
    let roller = nice("tally-rollup");
    // (Other tests of this process may have rollup threads of their own.)
    assert!(!roller.is_empty(), "no rollup thread");
    assert!(
        roller.iter().all(|&n| n > 0),
        "rollup threads' niceness {roller:?}"
    );
    // The writer and the request handlers keep the normal priority.
    assert!(nice("tokio-runtime-w").iter().all(|&n| n == 0));
}

/// Every raw event pruned, then new ones stored: they are still counted. (SQLite counts up
/// to a mark on the event numbers, and a table emptied of its newest row would number the
/// next one again from below the mark.)
async fn new_events_after_a_full_prune(kind: Kind) {
    let (env, site) = Env::new(kind).await;
    let fixture = fixture(site);
    env.load(&fixture).await;
    let pruned = env
        .store
        .prune_events(NOV_1 + 30 * DAY)
        .await
        .expect("prune");
    let left = env.store.count_events(site).await.expect("count");
    assert_eq!(pruned as i64 + left, fixture.len() as i64);
    assert!(left <= 1, "at most the newest event is kept: {left}");
    let mut n = 500;
    let mut fresh = vec![
        event(&mut n, "pageview", NOV_2 + 20 * HOUR, 77, "/fresh"),
        event(&mut n, "pageview", NOV_2 + 20 * HOUR + MIN, 77, "/fresh"),
    ];
    for e in &mut fresh {
        e.site_id = site;
    }
    let before = env.ok(&format!("/api/stats/summary?{DAY_Q}")).await;
    env.load(&fresh).await;
    assert_eq!(env.store.unrolled_count().await.expect("count"), 0);
    let after = env.ok(&format!("/api/stats/summary?{DAY_Q}")).await;
    assert_eq!(
        after["pageviews"],
        before["pageviews"].as_i64().expect("n") + 2
    );
    let pages = env
        .ok(&format!("/api/stats/breakdown?{DAY_Q}&dim=page"))
        .await;
    assert_eq!(find(&pages, "/fresh")["pageviews"], 2);
}

#[tokio::test]
async fn new_events_after_a_full_prune_are_counted_sqlite() {
    new_events_after_a_full_prune(Kind::Sqlite).await;
}

#[tokio::test]
async fn new_events_after_a_full_prune_are_counted_postgres() {
    new_events_after_a_full_prune(Kind::Postgres).await;
}

async fn background_worker_counts_posted_events(kind: Kind) {
    let (env, _) = Env::new(kind).await;
    let events = vec![
        crate::helpers::pageview(&crate::helpers::new_id(), "https://example.com/"),
        crate::helpers::pageview(
            &crate::helpers::new_id(),
            "https://example.com/docs?utm_source=hn",
        ),
    ];
    let r = crate::helpers::post_events(
        &env.client,
        &env.server.base,
        crate::helpers::body("example.com", &events),
    )
    .await;
    assert_eq!(r.status().as_u16(), 202);
    let mut summary = Value::Null;
    for _ in 0..100 {
        summary = env.ok("/api/stats/summary?site=example.com").await;
        if summary["pageviews"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(summary["pageviews"], 2, "{summary}");
    assert_eq!(
        (summary["visitors"].clone(), summary["visits"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(summary["bounce_rate"], 0.0);
    assert_eq!(
        env.ok("/api/stats/realtime?site=example.com").await["visitors"],
        1
    );
    let sources = env
        .ok("/api/stats/breakdown?site=example.com&dim=utm_source")
        .await;
    assert_eq!(
        rows(&sources),
        Vec::<(String, i64)>::new(),
        "UTM of a later page view does not change the visit's"
    );
    let pages = env
        .ok("/api/stats/breakdown?site=example.com&dim=page")
        .await;
    assert_eq!(pages.as_array().map(Vec::len), Some(2));
    env.server.stop().await.expect("stopped");
}

#[tokio::test]
async fn background_worker_counts_posted_events_sqlite() {
    background_worker_counts_posted_events(Kind::Sqlite).await;
}

#[tokio::test]
async fn background_worker_counts_posted_events_postgres() {
    background_worker_counts_posted_events(Kind::Postgres).await;
}

/// Retention: pruning deletes the raw events (and visits) before the cutoff once counted,
/// keeps the newer ones and every rollup, and leaves events not yet counted alone.
async fn retention_prunes_raw_events_and_keeps_rollups(kind: Kind) {
    let (env, site) = Env::new(kind).await;
    env.load(&fixture(site)).await;
    let q = "site=example.com&from=2026-11-01&to=2026-11-02";
    let before = env.ok(&format!("/api/stats/summary?{q}")).await;
    let pages_before = env.ok(&format!("/api/stats/breakdown?{q}&dim=page")).await;
    let stored = env.store.count_events(site).await.expect("count");
    // One event after the fixture, not yet rolled up, and older than the cutoff.
    let mut n = 100;
    let mut late = event(&mut n, "pageview", NOV_1 + HOUR, 9, "/late");
    late.site_id = site;
    env.store
        .insert_events(vec![late.clone()])
        .await
        .expect("insert");

    // Cut between Nov 1 (visitor D, 1 event) and Nov 2 (everything else).
    let pruned = env.store.prune_events(NOV_2).await.expect("prune");
    assert_eq!(pruned, 1, "only the counted event of Nov 1");
    assert_eq!(
        env.store.count_events(site).await.expect("count"),
        stored,
        "the uncounted event stays, the Nov 2 events stay"
    );
    assert!(env.store.prune_visits(NOV_2).await.expect("prune visits") >= 1);
    assert!(env
        .store
        .event_by_id(&late.id)
        .await
        .expect("read")
        .is_some());

    // Rollups stay: the same numbers for the pruned day as before (the late event aside,
    // which is counted once rolled up).
    roll_up_now(&env.store).await.expect("roll up");
    let after = env.ok(&format!("/api/stats/summary?{q}")).await;
    assert_eq!(
        after["pageviews"],
        before["pageviews"].as_i64().expect("n") + 1
    );
    assert_eq!(after["visits"], before["visits"].as_i64().expect("n") + 1);
    let pages_after = env.ok(&format!("/api/stats/breakdown?{q}&dim=page")).await;
    for row in pages_before.as_array().expect("rows") {
        let value = row["value"].as_str().expect("value");
        assert_eq!(find(&pages_after, value), row, "{value}");
    }
    assert_eq!(find(&pages_after, "/late")["pageviews"], 1);
}

#[tokio::test]
async fn retention_prunes_raw_events_and_keeps_rollups_sqlite() {
    retention_prunes_raw_events_and_keeps_rollups(Kind::Sqlite).await;
}

#[tokio::test]
async fn retention_prunes_raw_events_and_keeps_rollups_postgres() {
    retention_prunes_raw_events_and_keeps_rollups(Kind::Postgres).await;
}

/// Time zones across a daylight-saving change: Berlin leaves summer time on 2026-10-25
/// (a 25-hour day). Day, hour and month buckets follow the zone's local calendar.
async fn daylight_saving_buckets(kind: Kind) {
    let (env, site) = Env::new(kind).await;
    // 2026-10-24T00:00:00Z
    let oct_24 = NOV_1 - 8 * DAY;
    let mut n = 0;
    let times = [
        oct_24 + 21 * HOUR + 30 * MIN,           // Oct 24 23:30 CEST
        oct_24 + 22 * HOUR + 30 * MIN,           // Oct 25 00:30 CEST
        oct_24 + DAY + 23 * HOUR + 30 * MIN,     // Oct 26 00:30 CET
        oct_24 + 7 * DAY + 23 * HOUR + 30 * MIN, // Nov 1 00:30 CET
    ];
    let events: Vec<NewEvent> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut e = event(&mut n, "pageview", *t, 10 + i as i64, "/");
            e.site_id = site;
            e
        })
        .collect();
    env.load(&events).await;
    let series = |v: Value| -> Vec<(String, i64)> {
        v.as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                let t = r["t"].as_str().expect("t").to_string();
                (t, r["pageviews"].as_i64().expect("pageviews"))
            })
            .collect()
    };
    let days = env
        .ok("/api/stats/timeseries?site=example.com&from=2026-10-24&to=2026-10-26&tz=Europe/Berlin&interval=day")
        .await;
    assert_eq!(
        series(days),
        [
            ("2026-10-24".to_string(), 1),
            ("2026-10-25".to_string(), 1),
            ("2026-10-26".to_string(), 1)
        ]
    );
    // The same events in UTC fall on other days.
    let utc = env
        .ok("/api/stats/timeseries?site=example.com&from=2026-10-24&to=2026-10-26&interval=day")
        .await;
    assert_eq!(
        series(utc),
        [
            ("2026-10-24".to_string(), 2),
            ("2026-10-25".to_string(), 1),
            ("2026-10-26".to_string(), 0)
        ]
    );
    // The 25 hours of Oct 25 in Berlin, zero-filled; the page view at 00:30 in the first.
    let hours = series(
        env.ok("/api/stats/timeseries?site=example.com&from=2026-10-25&to=2026-10-25&tz=Europe/Berlin&interval=hour")
            .await,
    );
    assert_eq!(hours.len(), 25, "{hours:?}");
    assert_eq!(hours.iter().map(|h| h.1).sum::<i64>(), 1);
    assert_eq!(hours[0].1, 1, "{hours:?}");
    let distinct: std::collections::BTreeSet<_> = hours.iter().map(|h| &h.0).collect();
    assert_eq!(
        distinct.len(),
        25,
        "every hour has its own label: {hours:?}"
    );
    // Months: the page view at 00:30 on Nov 1 in Berlin is still October in UTC.
    let months = env
        .ok("/api/stats/timeseries?site=example.com&from=2026-10-01&to=2026-11-30&tz=Europe/Berlin&interval=month")
        .await;
    assert_eq!(
        series(months),
        [("2026-10".to_string(), 3), ("2026-11".to_string(), 1)]
    );
    let months_utc = env
        .ok("/api/stats/timeseries?site=example.com&from=2026-10-01&to=2026-11-30&interval=month")
        .await;
    assert_eq!(
        series(months_utc),
        [("2026-10".to_string(), 4), ("2026-11".to_string(), 0)]
    );
}

#[tokio::test]
async fn daylight_saving_buckets_sqlite() {
    daylight_saving_buckets(Kind::Sqlite).await;
}

#[tokio::test]
async fn daylight_saving_buckets_postgres() {
    daylight_saving_buckets(Kind::Postgres).await;
}
