//! What the whole-system tests (`tests/tests/reliability/`) and the soak benchmark share: the
//! ingest server as a child process, load that remembers every event id the server
//! acknowledged, and reads of what the database really holds.
//!
//! The server is always the real binary (debug for the tests, release for the benchmarks), so
//! that `kill -9`, SIGTERM and restarts are what an operator would see.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;

use crate::bench::ingest::{event_id, free_port, workspace_root, Server, UA};

/// The debug `ingest-server`: `$TALLY_INGEST_BIN` if set, else built once per test run.
pub fn debug_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("TALLY_INGEST_BIN") {
            return PathBuf::from(bin);
        }
        let root = workspace_root();
        let status = Command::new("cargo")
            .args(["build", "-q", "-p", "ingest-server"])
            .current_dir(&root)
            .status()
            .expect("cargo build -p ingest-server");
        assert!(status.success(), "building ingest-server failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join("debug/ingest-server")
    })
    .clone()
}

/// How to start one ingest server.
#[derive(Debug, Clone)]
pub struct Spawn {
    pub binary: PathBuf,
    pub database_url: String,
    /// Extra flags before `serve`.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where the server's stderr (its log) goes; inherited when `None`.
    pub log: Option<PathBuf>,
    /// Sites registered before the start (`example.com` unless changed).
    pub sites: Vec<String>,
}

impl Spawn {
    pub fn new(binary: &Path, database_url: &str) -> Spawn {
        Spawn {
            binary: binary.to_path_buf(),
            database_url: database_url.to_string(),
            args: vec!["--rate-limit".into(), "0".into()],
            env: vec![("TALLY_LOG".into(), "error".into())],
            log: None,
            sites: vec!["example.com".into()],
        }
    }

    pub fn arg(mut self, flag: &str, value: &str) -> Spawn {
        if let Some(i) = self.args.iter().position(|a| a == flag) {
            self.args[i + 1] = value.to_string();
        } else {
            self.args.extend([flag.to_string(), value.to_string()]);
        }
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Spawn {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn log_to(mut self, path: &Path) -> Spawn {
        self.log = Some(path.to_path_buf());
        self
    }

    /// Runs a subcommand (`site add …`, `key create`) on the same database; returns stdout.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.binary)
            .args(["--database-url", &self.database_url])
            .args(args)
            .env("TALLY_LOG", "warn")
            .current_dir(workspace_root())
            .output()
            .context("running ingest-server")?;
        anyhow::ensure!(
            out.status.success(),
            "ingest-server {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Registers the sites and starts `serve` on a free port; returns once `/healthz` answers.
    pub async fn start(&self) -> anyhow::Result<Server> {
        for site in &self.sites {
            self.run(&["site", "add", site])?;
        }
        let port = free_port()?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--database-url", &self.database_url])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(&self.args)
            .arg("serve")
            .current_dir(workspace_root())
            .stdout(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(log) = &self.log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)?;
            cmd.stderr(file);
        }
        let mut server = Server {
            child: cmd.spawn().context("spawning ingest-server")?,
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..600 {
            if reqwest::get(format!("{}/healthz", server.base))
                .await
                .is_ok()
            {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                anyhow::bail!("ingest-server exited at start: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("ingest-server at {} did not start", server.base)
    }
}

/// A fresh SQLite database in its own temporary directory.
pub struct SqliteDb {
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl SqliteDb {
    pub fn new() -> SqliteDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("tally.db").display());
        SqliteDb { dir, url }
    }

    /// Every byte the database holds on disk (the file, its WAL and shared memory).
    pub fn bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).into_iter().flatten() {
            if let Ok(bytes) = std::fs::read(entry.map(|e| e.path()).unwrap_or_default()) {
                all.extend(bytes);
            }
        }
        all
    }
}

impl Default for SqliteDb {
    fn default() -> Self {
        SqliteDb::new()
    }
}

/// The PostgreSQL server of the tests (trust authentication).
pub fn pg_admin_url() -> String {
    std::env::var("TALLY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database with a name unique to this process. Those an earlier run
/// left with the same tag are dropped first, so that runs do not pile them up.
pub async fn fresh_pg(tag: &str) -> anyhow::Result<String> {
    use sqlx::Row;
    let admin = ingest_server::store::Store::connect(&pg_admin_url()).await?;
    let left = sqlx::query("SELECT datname::TEXT FROM pg_database WHERE datname LIKE $1")
        .bind(format!("tally_rel_{tag}_%"))
        .fetch_all(&admin.pool)
        .await?;
    for row in &left {
        let old: String = row.try_get(0)?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {old} WITH (FORCE)"))
            .execute(&admin.pool)
            .await?;
    }
    admin.close().await;
    let name = format!("tally_rel_{tag}_{}", std::process::id());
    crate::bench::ingest::fresh_postgres(&pg_admin_url(), &name).await
}

/// Drops a database [`fresh_pg`] made, once its test has passed (one that failed is kept for
/// a look, until the next run of the same test drops it).
pub async fn drop_pg(url: &str) -> anyhow::Result<()> {
    let name = url.rsplit('/').next().unwrap_or_default();
    anyhow::ensure!(name.starts_with("tally_rel_"), "not a test database: {url}");
    let admin = ingest_server::store::Store::connect(&pg_admin_url()).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin.pool)
        .await?;
    admin.close().await;
    Ok(())
}

/// How many times each event id is stored.
pub async fn stored_ids(database_url: &str) -> anyhow::Result<HashMap<String, i64>> {
    use sqlx::Row;
    let store = ingest_server::store::Store::connect(database_url).await?;
    let rows = sqlx::query("SELECT id, COUNT(*) FROM events GROUP BY id")
        .fetch_all(&store.pool)
        .await?;
    store.close().await;
    rows.iter()
        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
        .collect()
}

/// `n` fresh event ids.
pub fn new_ids(n: usize) -> Vec<String> {
    (0..n).map(|_| event_id()).collect()
}

/// A `/api/event` body of page views of example.com with these ids, stamped now.
pub fn page_body(ids: &[String]) -> String {
    let ts = ingest_server::now_ms();
    let events: Vec<serde_json::Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            serde_json::json!({"id": id, "kind": "pageview",
                "url": format!("https://example.com/page/{}", i % 7),
                "referrer": "https://news.ycombinator.com/", "screen": 1440, "ts": ts})
        })
        .collect();
    serde_json::json!({"site": "example.com", "events": events}).to_string()
}

/// An HTTP client for load: many connections, a generous timeout so nothing hangs forever.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default()
}

/// POSTs a body to `/api/event` as desktop Chrome; returns the status (or `None` when the
/// request failed) and whether a `503` / `429` carried `Retry-After`.
pub async fn post_event(client: &reqwest::Client, base: &str, body: String) -> (Option<u16>, bool) {
    match client
        .post(format!("{base}/api/event"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("user-agent", UA)
        .body(body)
        .send()
        .await
    {
        Ok(r) => {
            let retry_after = r.headers().contains_key("retry-after");
            let status = r.status().as_u16();
            // Read the body so that the connection is reused.
            let _ = r.bytes().await;
            (Some(status), retry_after)
        }
        Err(_) => (None, false),
    }
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Every request body sent, with its ids.
    pub requests: Vec<(Vec<String>, String)>,
    /// Ids answered `202`.
    pub acked: HashSet<String>,
    /// Answers by status (`"202"`, `"503"`, `"failed"` for no answer).
    pub statuses: BTreeMap<String, u64>,
    /// `503` / `429` answers without `Retry-After`.
    pub missing_retry_after: u64,
}

impl Ledger {
    pub fn sent(&self) -> usize {
        self.requests.iter().map(|(ids, _)| ids.len()).sum()
    }

    pub fn sent_ids(&self) -> HashSet<&str> {
        self.requests
            .iter()
            .flat_map(|(ids, _)| ids.iter().map(String::as_str))
            .collect()
    }

    pub fn count(&self, status: &str) -> u64 {
        self.statuses.get(status).copied().unwrap_or(0)
    }
}

/// Concurrent clients posting bodies of fresh ids to `/api/event` until `stop` is set.
pub struct Load {
    pub stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(base: &str, clients: usize, per_request: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let client = client();
        let tasks = (0..clients)
            .map(|_| {
                let (stop, ledger, client, base) = (
                    stop.clone(),
                    ledger.clone(),
                    client.clone(),
                    base.to_string(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let ids = new_ids(per_request);
                        let body = page_body(&ids);
                        let (status, retry_after) = post_event(&client, &base, body.clone()).await;
                        let failed = status.is_none();
                        if let Ok(mut l) = ledger.lock() {
                            let key = status.map_or("failed".to_string(), |s| s.to_string());
                            *l.statuses.entry(key).or_default() += 1;
                            if matches!(status, Some(503 | 429)) && !retry_after {
                                l.missing_retry_after += 1;
                            }
                            if status == Some(202) {
                                l.acked.extend(ids.iter().cloned());
                            }
                            l.requests.push((ids, body));
                        }
                        if failed || status == Some(503) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ledger,
            tasks,
        }
    }

    /// Ids acknowledged so far.
    pub fn acked(&self) -> usize {
        self.ledger.lock().map(|l| l.acked.len()).unwrap_or(0)
    }

    /// Answers with this status so far.
    pub fn seen(&self, status: &str) -> u64 {
        self.ledger.lock().map(|l| l.count(status)).unwrap_or(0)
    }

    /// Waits until `n` ids are acknowledged (or `timeout` passes).
    pub async fn until_acked(&self, n: usize, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.acked() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the clients, waits for their last requests, and returns what they saw.
    pub async fn finish(self) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        Arc::try_unwrap(self.ledger)
            .ok()
            .and_then(|m| m.into_inner().ok())
            .unwrap_or_default()
    }
}

/// Re-sends every body of a ledger (8 at a time) until each is answered `202`; returns the
/// number of events the server reported as newly accepted.
pub async fn resend_all(base: &str, ledger: &Ledger) -> anyhow::Result<u64> {
    use futures_util::StreamExt;
    let client = client();
    let results: Vec<anyhow::Result<u64>> =
        futures_util::stream::iter(ledger.requests.iter().map(|(_, body)| {
            let (client, body) = (client.clone(), body.clone());
            async move {
                for _ in 0..100 {
                    let r = client
                        .post(format!("{base}/api/event"))
                        .header("content-type", "text/plain;charset=UTF-8")
                        .header("user-agent", UA)
                        .body(body.clone())
                        .send()
                        .await;
                    if let Ok(r) = r {
                        if r.status().as_u16() == 202 {
                            let v: serde_json::Value = r.json().await?;
                            return Ok(v["accepted"].as_u64().unwrap_or(0));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                anyhow::bail!("a re-sent body was never acknowledged")
            }
        }))
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().sum()
}

/// The process's resident memory now (`VmRSS`) and at its peak (`VmHWM`), in MiB.
pub fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Sends SIGTERM to a process.
pub fn sigterm(pid: u32) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
    Ok(())
}

/// Waits for a child to exit, at most `timeout`.
pub async fn wait_exit(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
