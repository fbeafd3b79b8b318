//! Shared test helpers: fresh databases (a temp SQLite file, or a new PostgreSQL database
//! on the local server), and real servers on port 0 with a shutdown handle.

use std::sync::atomic::{AtomicU32, Ordering};

use ingest_server::config::Config;
use ingest_server::store::Store;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const UA_CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
pub const UA_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
pub const EDGE_SECRET: &str = "test-secret-0123456789";

/// The PostgreSQL server used by the tests (trust authentication, as on the CI machines).
pub fn pg_admin_url() -> String {
    std::env::var("TALLY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test: a temp SQLite file, or a PostgreSQL database
/// dropped when the test is over.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // On a thread and runtime of its own: the test's runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let admin = Store::connect(&pg_admin_url()).await.ok()?;
                let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&admin.pool)
                    .await;
                admin.close().await;
                dropped.ok()
            })
        })
        .join();
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl TestDb {
    pub async fn new(kind: Kind) -> TestDb {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("tally.db").display());
                TestDb {
                    url,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Kind::Postgres => {
                static N: AtomicU32 = AtomicU32::new(0);
                let name = format!(
                    "tally_test_{}_{}_{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed),
                    ingest_server::now_ms() % 1_000_000
                );
                let admin = Store::connect(&pg_admin_url())
                    .await
                    .expect("PostgreSQL on 127.0.0.1:5432");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&admin.pool)
                    .await
                    .expect("create database");
                admin.close().await;
                let base = pg_admin_url();
                let url = format!(
                    "{}/{name}",
                    base.rsplit_once('/').expect("url has a path").0
                );
                TestDb {
                    url,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.url).await.expect("open store")
    }
}

/// A server running in this process.
pub struct TestServer {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(db_url: &str, extra: &[&str]) -> TestServer {
        let mut args = vec!["--database-url", db_url, "--edge-secret", EDGE_SECRET];
        if !extra.contains(&"--rate-limit") {
            args.extend(["--rate-limit", "0"]);
        }
        args.extend_from_slice(extra);
        let config = Config::from_args(args).expect("config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(ingest_server::serve(config, listener, async {
            let _ = stopped.await;
        }));
        let server = TestServer {
            base: format!("http://{addr}"),
            stop: Some(stop),
            handle: Some(handle),
        };
        // Wait until it answers.
        for _ in 0..100 {
            if reqwest::get(format!("{}/healthz", server.base))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("server did not start");
    }

    /// Graceful shutdown; returns the server's result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.handle.take().expect("running").await.expect("join")
    }
}

/// A new ULID-shaped event id (unique within the process run).
pub fn new_id() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut v: u128 = (u128::from(ingest_server::now_ms() as u64) << 80)
        | (u128::from(std::process::id()) << 32)
        | u128::from(N.fetch_add(1, Ordering::Relaxed));
    let mut out = [b'0'; 26];
    for slot in out.iter_mut().rev() {
        *slot = CROCKFORD[(v & 31) as usize];
        v >>= 5;
    }
    String::from_utf8(out.to_vec()).expect("ascii")
}

pub fn pageview(id: &str, url: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "kind": "pageview", "url": url, "ts": ingest_server::now_ms(), "screen": 1440})
}

pub fn body(site: &str, events: &[serde_json::Value]) -> String {
    serde_json::json!({"site": site, "events": events}).to_string()
}

/// POSTs a body to `/api/event` as a desktop Chrome from `origin`.
pub async fn post_events(client: &reqwest::Client, base: &str, body: String) -> reqwest::Response {
    try_post_events(client, base, body).await.expect("request")
}

/// Like [`post_events`], for when the server may be gone.
pub async fn try_post_events(
    client: &reqwest::Client,
    base: &str,
    body: String,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{base}/api/event"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("user-agent", UA_CHROME)
        .header("origin", "https://example.com")
        .body(body)
        .send()
        .await
}
