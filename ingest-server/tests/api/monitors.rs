//! Monitors (CONTRACT §7) against a real webhook receiver (axum on port 0) and a real SMTP
//! server (aiosmtpd, `tests/smtp_sink.py`): one notification when a monitor starts breaching
//! and one when it stops, also across a restart; the health monitors; SIGHUP reloads; and no
//! sensitive value in the database files, the logs, traces or notifications.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::helpers::{body, new_id, pageview, post_events, Kind, TestDb, TestServer, EDGE_SECRET};
use crate::trace::{edge_event, get_json, send_edge_batch};

/// A webhook receiver that answers `500` to its first `fail_first` requests.
struct Webhook {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<AtomicUsize>,
    fail_first: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct HookState {
    received: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<AtomicUsize>,
    fail_first: Arc<AtomicUsize>,
}

async fn hook(State(s): State<HookState>, Json(body): Json<Value>) -> StatusCode {
    let n = s.attempts.fetch_add(1, Ordering::SeqCst);
    if n < s.fail_first.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    s.received.lock().expect("lock").push(body);
    StatusCode::NO_CONTENT
}

impl Webhook {
    async fn start(fail_first: usize) -> Webhook {
        let state = HookState {
            received: Arc::default(),
            attempts: Arc::default(),
            fail_first: Arc::new(AtomicUsize::new(fail_first)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/hook?token=hook-token",
            listener.local_addr().expect("addr")
        );
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Webhook {
            url,
            received: state.received,
            attempts: state.attempts,
            fail_first: state.fail_first,
            task,
        }
    }

    fn received(&self) -> Vec<Value> {
        self.received.lock().expect("lock").clone()
    }

    fn states(&self, monitor: &str) -> Vec<String> {
        self.received()
            .iter()
            .filter(|v| v["monitor"] == monitor)
            .map(|v| v["state"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The SMTP server: `python3 tests/smtp_sink.py DIR`, which prints its port.
pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        use std::io::BufRead;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py"))
            .arg(dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs tests/smtp_sink.py (scripts/setup.sh installs aiosmtpd)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the sink prints its port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the SMTP sink did not start (is aiosmtpd installed?): {line:?}")
        });
        SmtpSink { port, dir, child }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages received, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(self.dir.path())
            .expect("read dir")
            .filter_map(|e| {
                let path = e.ok()?.path();
                let n = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".eml")?
                    .parse()
                    .ok()?;
                Some((n, path))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| std::fs::read_to_string(p).expect("read message"))
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` every 100 ms for at most `secs` seconds.
async fn wait_until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn write_monitors(dir: &Path, text: &str) -> String {
    let path = dir.join("monitors.yaml");
    std::fs::write(&path, text).expect("write monitors.yaml");
    path.display().to_string()
}

fn busy_monitor(window: &str, hook: &str) -> String {
    format!(
        "monitors:
  - name: busy
    site: example.com
    metric: pageviews
    window: {window}
    every: 1s
    above: 2
    notify:
      - webhook: {hook}
      - email: ops@example.com
"
    )
}

async fn post_pageviews(client: &reqwest::Client, base: &str, n: usize) {
    let events: Vec<Value> = (0..n)
        .map(|_| pageview(&new_id(), "https://example.com/busy"))
        .collect();
    let r = post_events(client, base, body("example.com", &events)).await;
    assert_eq!(r.status().as_u16(), 202);
}

fn subjects(sink: &SmtpSink) -> Vec<String> {
    sink.messages()
        .iter()
        .map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn fires_and_resolves_exactly_once_by_webhook_and_email() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = db.store().await;
    store.add_site("example.com").await.expect("site");
    let key = store.create_key(None).await.expect("key");
    // The webhook fails twice: the notification is retried with backoff and arrives once.
    let webhook = Webhook::start(2).await;
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().expect("dir");
    let file = write_monitors(dir.path(), &busy_monitor("6s", &webhook.url));
    let smtp = sink.url();
    let server = TestServer::start(&db.url, &["--monitors", &file, "--smtp-url", &smtp]).await;
    let client = reqwest::Client::new();

    post_pageviews(&client, &server.base, 3).await;
    wait_until(20, "the firing webhook", || !webhook.received().is_empty()).await;
    wait_until(10, "the firing e-mail", || sink.messages().len() == 1).await;
    assert_eq!(webhook.attempts.load(Ordering::SeqCst), 3);
    let firing = &webhook.received()[0];
    assert_eq!(
        (
            &firing["monitor"],
            &firing["site"],
            &firing["metric"],
            &firing["state"]
        ),
        (
            &json!("busy"),
            &json!("example.com"),
            &json!("pageviews"),
            &json!("firing")
        )
    );
    assert_eq!(
        (firing["value"].as_f64(), firing["threshold"].as_f64()),
        (Some(3.0), Some(2.0))
    );
    let at =
        chrono::DateTime::parse_from_rfc3339(firing["at"].as_str().expect("at")).expect("RFC 3339");
    assert!((ingest_server::now_ms() - at.timestamp_millis()).abs() < 30_000);
    let mail = &sink.messages()[0];
    assert!(mail.starts_with("To: ops@example.com\n"), "{mail}");
    assert!(mail.contains("From: tally@localhost"), "{mail}");
    assert!(mail.contains("State: firing"), "{mail}");

    let (_, monitors) = get_json(&client, &format!("{}/api/monitors", server.base), &key).await;
    assert_eq!(monitors[0]["state"], "firing", "{monitors}");
    assert_eq!(monitors[0]["last_notified_state"], "firing");

    // The window passes: one "resolved", by both ways.
    wait_until(20, "the resolved webhook", || webhook.received().len() == 2).await;
    wait_until(10, "the resolved e-mail", || sink.messages().len() == 2).await;
    assert_eq!(webhook.states("busy"), ["firing", "resolved"]);
    assert_eq!(webhook.received()[1]["value"].as_f64(), Some(0.0));
    let s = subjects(&sink);
    assert_eq!(
        s,
        [
            "[Tally] busy is firing: pageviews 3 > 2 (example.com)",
            "[Tally] busy resolved: pageviews 0 > 2 (example.com)"
        ]
    );
    // Several more periods: nothing more while the state holds.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(webhook.received().len(), 2);
    assert_eq!(sink.messages().len(), 2);

    let (status, monitors) =
        get_json(&client, &format!("{}/api/monitors", server.base), &key).await;
    assert_eq!(status, 200);
    let m = &monitors[0];
    assert_eq!(
        (&m["name"], &m["state"], &m["value"]),
        (&json!("busy"), &json!("ok"), &json!(0.0))
    );
    assert_eq!(
        (&m["threshold"], &m["above"], &m["window_s"]),
        (&json!(2.0), &json!(2.0), &json!(6))
    );
    assert_eq!(m["last_notified_state"], "resolved");
    assert!(m["last_notified_at"].is_string());
    let history: Vec<&str> = m["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["state"].as_str().expect("state"))
        .collect();
    assert_eq!(history, ["resolved", "firing"]);
    assert_eq!(m["history"][1]["value"], 3.0);
    let (status, _) = get_json(&client, &format!("{}/api/monitors", server.base), "nope").await;
    assert_eq!(status, 401);
    server.stop().await.expect("clean stop");
}

async fn restart_while_firing(kind: Kind) {
    let db = TestDb::new(kind).await;
    let store = db.store().await;
    store.add_site("example.com").await.expect("site");
    let key = store.create_key(None).await.expect("key");
    // The webhook is down while the first server runs: its notification stays pending.
    let webhook = Webhook::start(usize::MAX).await;
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().expect("dir");
    let file = write_monitors(dir.path(), &busy_monitor("10s", &webhook.url));
    let smtp = sink.url();
    let args = ["--monitors", file.as_str(), "--smtp-url", smtp.as_str()];
    let server = TestServer::start(&db.url, &args).await;
    let client = reqwest::Client::new();

    post_pageviews(&client, &server.base, 3).await;
    wait_until(20, "the firing e-mail", || sink.messages().len() == 1).await;
    wait_until(10, "a failed webhook attempt", || {
        webhook.attempts.load(Ordering::SeqCst) > 0
    })
    .await;
    server.stop().await.expect("clean stop");

    // Back up, with the monitor still breaching: the pending webhook is sent once, and
    // nothing fires a second time.
    webhook.fail_first.store(0, Ordering::SeqCst);
    let server = TestServer::start(&db.url, &args).await;
    wait_until(20, "the pending firing webhook", || {
        webhook.received().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, monitors) = get_json(&client, &format!("{}/api/monitors", server.base), &key).await;
    assert_eq!(monitors[0]["state"], "firing", "{monitors}");
    assert_eq!(webhook.states("busy"), ["firing"]);
    assert_eq!(sink.messages().len(), 1);

    // Once the window has passed: exactly one "resolved".
    wait_until(20, "the resolved webhook", || webhook.received().len() == 2).await;
    wait_until(10, "the resolved e-mail", || sink.messages().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(webhook.states("busy"), ["firing", "resolved"]);
    assert_eq!(subjects(&sink).len(), 2);
    assert!(subjects(&sink)[1].contains("busy resolved"));
    server.stop().await.expect("clean stop");

    // A third start with the monitor calm sends nothing at all.
    let server = TestServer::start(&db.url, &args).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(webhook.received().len(), 2);
    assert_eq!(sink.messages().len(), 2);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_restart_while_firing_notifies_nothing_twice_sqlite() {
    restart_while_firing(Kind::Sqlite).await;
}

#[tokio::test]
async fn a_restart_while_firing_notifies_nothing_twice_postgres() {
    restart_while_firing(Kind::Postgres).await;
}

#[tokio::test]
async fn health_monitors_watch_the_edge() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = db.store().await;
    store.add_site("example.com").await.expect("site");
    let webhook = Webhook::start(0).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = write_monitors(
        dir.path(),
        &format!(
            "monitors:
  - name: edge-stalled
    metric: ingest_stalled
    window: 3s
    every: 1s
    notify:
      - webhook: {hook}
  - name: edge-slow
    site: example.com
    metric: edge_lag_s
    window: 1m
    every: 1s
    above: 3
    notify:
      - webhook: {hook}
",
            hook = webhook.url
        ),
    );
    let server = TestServer::start(&db.url, &["--monitors", &file]).await;
    let client = reqwest::Client::new();

    // No batch from the edge for 3 s: stalled.
    wait_until(20, "ingest_stalled firing", || {
        webhook.states("edge-stalled").len() == 1
    })
    .await;
    assert!(webhook.states("edge-slow").is_empty());
    // A batch whose events waited 5 s at the edge: no longer stalled, but slow.
    let now = ingest_server::now_ms();
    let (status, _) = send_edge_batch(
        &client,
        &server.base,
        "late-1",
        &[edge_event("example.com", &new_id(), now - 6000, now - 5000)],
    )
    .await;
    assert_eq!(status, 200);
    wait_until(20, "ingest_stalled resolved", || {
        webhook.states("edge-stalled").len() == 2
    })
    .await;
    wait_until(20, "edge_lag_s firing", || {
        webhook.states("edge-slow").len() == 1
    })
    .await;
    assert_eq!(webhook.states("edge-stalled")[..2], ["firing", "resolved"]);
    let slow = webhook
        .received()
        .into_iter()
        .find(|v| v["monitor"] == "edge-slow")
        .expect("edge-slow notification");
    assert_eq!(slow["site"], "example.com");
    assert!(slow["value"].as_f64().expect("value") >= 5.0, "{slow}");
    let stalled = webhook
        .received()
        .into_iter()
        .find(|v| v["monitor"] == "edge-stalled")
        .expect("edge-stalled notification");
    assert_eq!(
        (&stalled["site"], &stalled["value"]),
        (&Value::Null, &json!(1.0))
    );
    server.stop().await.expect("clean stop");
}

/// The server binary as a child process, its log in a file.
struct ChildServer {
    base: String,
    child: std::process::Child,
    log: PathBuf,
}

impl ChildServer {
    fn start(db_url: &str, env: &[(&str, &str)], log: &Path) -> ChildServer {
        let mut child = Self::command(db_url, env, log)
            .spawn()
            .expect("spawn ingest-server");
        for _ in 0..200 {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(addr) = text
                .lines()
                .find(|l| l.contains("serving"))
                .and_then(|l| l.split("addr=").nth(1))
                .and_then(|a| a.split_whitespace().next())
            {
                return ChildServer {
                    base: format!("http://{addr}"),
                    child,
                    log: log.to_path_buf(),
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("ingest-server exited with {status}: {text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("ingest-server did not start");
    }

    fn command(db_url: &str, env: &[(&str, &str)], log: &Path) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ingest-server"));
        cmd.arg("serve")
            .env("DATABASE_URL", db_url)
            .env("TALLY_LISTEN", "127.0.0.1:0")
            .env("TALLY_EDGE_SECRET", EDGE_SECRET)
            .env("TALLY_LOG", "debug")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(mut self) {
        self.signal("TERM");
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "exit status {status}: {}", self.log());
    }
}

const SECRETS: &[&str] = &[
    "hunter2-SECRET",
    "sess-SECRET",
    "tok-SECRET",
    "CPN-SECRET",
    "mail-SECRET",
    "edge-SECRET",
];

#[tokio::test]
async fn sighup_reloads_and_no_secret_is_stored_logged_or_sent() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = db.store().await;
    store.add_site("example.com").await.expect("site");
    let key = store.create_key(None).await.expect("key");
    store.close().await;
    let webhook = Webhook::start(0).await;
    let dir = tempfile::tempdir().expect("dir");
    let purchase = format!(
        "monitors:
  - name: purchases
    site: example.com
    metric: event:Purchase
    window: 1m
    every: 1s
    above: 0
    notify:
      - webhook: {}
      - email: ops@example.com
",
        webhook.url
    );
    let sink = SmtpSink::start();
    let smtp = sink.url();
    let file = write_monitors(dir.path(), &purchase);
    let log = dir.path().join("server.log");

    // An invalid file at start: the server refuses to run, naming the line.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, purchase.replace("event:Purchase", "purchases")).expect("write");
    let bad_log = dir.path().join("bad.log");
    let out = ChildServer::command(
        &db.url,
        &[("TALLY_MONITORS", bad.to_str().expect("path"))],
        &bad_log,
    )
    .status()
    .expect("run");
    assert!(!out.success());
    let text = std::fs::read_to_string(&bad_log).expect("log");
    assert!(
        text.contains("bad.yaml line 4: unknown metric \"purchases\""),
        "{text}"
    );

    let server = ChildServer::start(
        &db.url,
        &[
            ("TALLY_MONITORS", &file),
            ("TALLY_REDACT", "coupon"),
            ("TALLY_SMTP_URL", &smtp),
        ],
        &log,
    );
    let client = reqwest::Client::new();
    let now = ingest_server::now_ms();
    let (page, purchase_id) = (new_id(), new_id());
    let events = [
        json!({"id": page, "kind": "pageview", "ts": now, "screen": 1440,
               "url": "https://example.com/checkout?password=hunter2-SECRET&utm_source=news&session_id=sess-SECRET",
               "referrer": "https://other.test/?auth=sess-SECRET"}),
        json!({"id": purchase_id, "kind": "event", "name": "Purchase", "ts": now,
               "props": {"api_token": "tok-SECRET", "coupon": "CPN-SECRET", "plan": "pro"},
               "url": "https://example.com/thanks?email=mail-SECRET%40example.com"}),
    ];
    let r = post_events(&client, &server.base, body("example.com", &events)).await;
    assert_eq!(r.status().as_u16(), 202);
    let mut through_edge = edge_event("example.com", &new_id(), now, now);
    through_edge["url"] = json!("https://example.com/edge?secret_key=edge-SECRET");
    through_edge["kind"] = json!("event");
    through_edge["name"] = json!("Purchase");
    through_edge["props"] = json!({"auth_code": "edge-SECRET", "plan": "team"});
    let (status, _) = send_edge_batch(&client, &server.base, "edge-9", &[through_edge]).await;
    assert_eq!(status, 200);
    wait_until(20, "the purchases webhook", || {
        webhook.received().len() == 1
    })
    .await;
    wait_until(10, "the purchases e-mail", || sink.messages().len() == 1).await;

    // What the API shows holds no secret either.
    let (_, trace) = get_json(
        &client,
        &format!("{}/api/trace/{purchase_id}", server.base),
        &key,
    )
    .await;
    assert_eq!(trace.as_array().map(Vec::len), Some(3), "{trace}");
    let (_, monitors) = get_json(&client, &format!("{}/api/monitors", server.base), &key).await;
    assert_eq!(monitors[0]["state"], "firing");
    let shown = format!(
        "{trace}{monitors}{}{}",
        serde_json::to_string(&webhook.received()).expect("json"),
        sink.messages().concat()
    );

    // SIGHUP with an invalid file: refused, the running monitors stay.
    std::fs::write(&file, purchase.replace("every: 1s", "every: soon")).expect("write");
    server.signal("HUP");
    wait_until(10, "the refusal in the log", || {
        server.log().contains("monitors file refused")
    })
    .await;
    assert!(
        server
            .log()
            .contains("monitors.yaml line 6: every: \"soon\" is not a duration"),
        "{}",
        server.log()
    );
    let (_, monitors) = get_json(&client, &format!("{}/api/monitors", server.base), &key).await;
    assert_eq!(monitors.as_array().map(Vec::len), Some(1));
    assert_eq!(
        monitors[0]["state"], "firing",
        "an unchanged monitor keeps its state"
    );
    // SIGHUP with a valid file: a monitor added, the unchanged one keeps its state.
    let two = format!(
        "{purchase}  - name: any-traffic\n    site: example.com\n    metric: visitors\n    window: 1h\n    every: 1s\n    below: 1\n"
    );
    std::fs::write(&file, two).expect("write");
    server.signal("HUP");
    wait_until(10, "the reload", || {
        server.log().contains("monitors reloaded")
    })
    .await;
    let (_, monitors) = get_json(&client, &format!("{}/api/monitors", server.base), &key).await;
    let names: Vec<&str> = monitors
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["purchases", "any-traffic"]);
    assert_eq!(monitors[0]["state"], "firing");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(webhook.states("purchases"), ["firing"]);
    let log = server.log.clone();
    server.stop();

    // Stored values are redacted, the rest kept.
    let store = db.store().await;
    let stored = store
        .event_by_id(&purchase_id)
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(
        stored.props.as_ref().and_then(|p| p.get("plan")),
        Some(&json!("pro"))
    );
    let stored = store
        .event_by_id(&page)
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(
        (stored.path.as_str(), stored.utm_source.as_deref()),
        ("/checkout", Some("news"))
    );
    store.close().await;

    // No secret in the database files, the log, the API's answers or the notifications.
    let db_file = PathBuf::from(db.url.strip_prefix("sqlite://").expect("sqlite url"));
    let mut haystacks: Vec<(String, Vec<u8>)> = vec![
        ("log".into(), std::fs::read(&log).expect("log")),
        ("api, webhook and e-mail".into(), shown.into_bytes()),
    ];
    for suffix in ["", "-wal", "-shm", "-journal", "-digests", "-digests-wal"] {
        let path = PathBuf::from(format!("{}{suffix}", db_file.display()));
        if let Ok(bytes) = std::fs::read(&path) {
            haystacks.push((path.display().to_string(), bytes));
        }
    }
    assert!(haystacks[0].1.len() > 1000, "the debug log was captured");
    assert!(haystacks.len() >= 3, "the database file was read");
    for (name, bytes) in &haystacks {
        for secret in SECRETS {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} found in {name}"
            );
        }
    }
}

/// Every metric's value, as `/api/monitors` shows it after the first checks.
async fn metric_values(kind: Kind) {
    let db = TestDb::new(kind).await;
    let store = db.store().await;
    store.add_site("example.com").await.expect("site");
    let key = store.create_key(None).await.expect("key");
    let dir = tempfile::tempdir().expect("dir");
    let metrics = [
        "pageviews",
        "visitors",
        "events",
        "event:Signup",
        "page:/pricing",
        "bounce_rate",
        "rejected",
        "edge_lag_s",
    ];
    let mut text = String::from("monitors:\n");
    for (i, metric) in metrics.iter().enumerate() {
        text.push_str(&format!(
            "  - name: m{i}\n    site: example.com\n    metric: {metric}\n    window: 1h\n    every: 1s\n    above: 1000000\n"
        ));
    }
    let file = write_monitors(dir.path(), &text);
    let server = TestServer::start(&db.url, &["--monitors", &file]).await;
    let client = reqwest::Client::new();
    let send = |ua: &'static str, events: Vec<Value>| {
        let client = client.clone();
        let base = server.base.clone();
        async move {
            client
                .post(format!("{base}/api/event"))
                .header("user-agent", ua)
                .body(body("example.com", &events))
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    };
    let now = ingest_server::now_ms();
    let event = |name: &str| json!({"id": new_id(), "kind": "event", "name": name, "url": "https://example.com/pricing", "ts": now});
    // Visitor A: two page views and a signup; visitor B (another browser): one page view.
    let a = crate::helpers::UA_CHROME;
    let b = crate::helpers::UA_IPHONE;
    let pages = vec![
        pageview(&new_id(), "https://example.com/pricing"),
        pageview(&new_id(), "https://example.com/"),
        event("Signup"),
        event("Other"),
    ];
    assert_eq!(send(a, pages).await, 202);
    assert_eq!(
        send(b, vec![pageview(&new_id(), "https://example.com/pricing")]).await,
        202
    );
    // Dropped: 2 bot events and 1 malformed request.
    assert_eq!(
        send(
            "curl/8.0",
            vec![pageview(&new_id(), "https://example.com/")]
        )
        .await,
        202
    );
    assert_eq!(
        send(
            "Googlebot/2.1",
            vec![pageview(&new_id(), "https://example.com/")]
        )
        .await,
        202
    );
    let r = client
        .post(format!("{}/api/event", server.base))
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 400);
    // Through the edge: two events that waited 2 s and 4 s.
    let now = ingest_server::now_ms();
    let (status, _) = send_edge_batch(
        &client,
        &server.base,
        "lag",
        &[
            edge_event("example.com", &new_id(), now - 2100, now - 2000),
            edge_event("example.com", &new_id(), now - 4100, now - 4000),
        ],
    )
    .await;
    assert_eq!(status, 200);

    let url = format!("{}/api/monitors", server.base);
    let sent = ingest_server::now_ms();
    let mut values = Value::Null;
    for _ in 0..100 {
        let (_, monitors) = get_json(&client, &url, &key).await;
        let monitors = monitors.as_array().expect("list").clone();
        // Every monitor checked after the last event was sent.
        let checked_after = |m: &Value| {
            m["checked_at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t.timestamp_millis() > sent)
        };
        if monitors.iter().all(checked_after) {
            values = monitors.iter().map(|m| m["value"].clone()).collect();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Page views: 3 browser + 2 edge; visitors: A, B and the edge's; events: 2; signups: 1;
    // /pricing: 2; bounce: B and the edge visitor (2 page views, no event) → 1 of 3;
    // rejected: 2 bot events + 1 malformed request; edge lag p99: 4 s.
    let lag = values[7].as_f64().expect("lag");
    assert!((4.0..5.0).contains(&lag), "{values}");
    assert_eq!(
        values.as_array().expect("values")[..7],
        [
            json!(5.0),
            json!(3.0),
            json!(2.0),
            json!(1.0),
            json!(2.0),
            json!(0.3333),
            json!(3.0)
        ],
        "{values}"
    );
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn metrics_count_what_was_sent_sqlite() {
    metric_values(Kind::Sqlite).await;
}

#[tokio::test]
async fn metrics_count_what_was_sent_postgres() {
    metric_values(Kind::Postgres).await;
}
