//! Storage: one [`Store`] over SQLite (embedded, the default) or PostgreSQL (several ingest
//! servers sharing one database), chosen by the URL at run time.
//!
//! Both speak the same SQL through sqlx's `Any` driver; the few differences are in the
//! embedded migrations (`migrations/sqlite`, `migrations/postgres`). Times are milliseconds
//! since the epoch, stored as 64-bit integers.
//!
//! On SQLite, raw events are written by one connection of their own (rusqlite, opened on the
//! first write): a prepared single-row insert stepped once per event, in one transaction per
//! batch, on a blocking thread. Through the `Any` driver every bound value was copied twice
//! and every returned row crossed a channel between threads; the writer spent most of its
//! time there.
//!
//! - [`events`]: raw events, written in batches with `ON CONFLICT (id) DO NOTHING`.
//! - [`admin`]: sites, stats API keys, visitor salts, the edge replay guard.

pub mod admin;
pub mod events;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};

pub use events::{NewEvent, StoredEvent};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("the SQLite writer connection is unusable")]
    WriterPoisoned,
    #[error("in-memory SQLite databases are not supported: give a file path")]
    InMemory,
    #[error("a SQLite read stopped: {0}")]
    ReadStopped(String),
}

/// Work for the rollup worker's reading thread (see [`Store::sqlite_roller_read`]).
type RollerJob = Box<dyn FnOnce(&mut rusqlite::Connection) + Send>;

/// A pool of connections to the events database.
#[derive(Clone, Debug)]
pub struct Store {
    pub pool: AnyPool,
    pub dialect: Dialect,
    /// SQLite: the database file, and the connection that writes raw events.
    sqlite_path: Option<PathBuf>,
    sqlite_writer: Arc<OnceLock<Arc<Mutex<rusqlite::Connection>>>>,
    /// SQLite: the rollup worker's reading thread, started on first use.
    sqlite_roller: Arc<OnceLock<std::sync::mpsc::Sender<RollerJob>>>,
    /// SQLite: read-only connections of [`Store::sqlite_read`] between uses (their prepared
    /// statements and their map of the file kept).
    sqlite_readers: Arc<Mutex<Vec<rusqlite::Connection>>>,
    /// SQLite: taken by the event writer and the rollup worker around their write
    /// transactions, so that they take turns in order instead of sleeping in SQLite's busy
    /// handler (which backs off by whole milliseconds).
    write_gate: Arc<tokio::sync::Mutex<()>>,
    /// SQLite: how long each holder kept the write gate (a commit waiting for it waits this
    /// long), exported as `tally_write_gate_seconds{holder}`.
    pub gate_held: Family<Holder, Histogram>,
    /// Decoded day digests of filtered stats queries, shared by the queries that need them.
    pub days: Arc<crate::stats::days::DayCache>,
}

/// Who held SQLite's write gate: `events` (the event writer), `rollups` (the rollup worker)
/// or `checkpoint` (a checkpoint that lets the write-ahead log start over).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Holder {
    pub holder: &'static str,
}

impl Store {
    /// Connects to `url` (creating a SQLite file if needed). Does not migrate.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (dialect, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            if rest.contains(":memory:") || rest.contains("mode=memory") {
                return Err(StoreError::InMemory);
            }
            let mut url = format!("sqlite:{rest}");
            if !url.contains("mode=") && !url.contains(":memory:") {
                url.push_str(if url.contains('?') {
                    "&mode=rwc"
                } else {
                    "?mode=rwc"
                });
            }
            (Dialect::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Dialect::Postgres, url.to_string())
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let sqlite_path = match dialect {
            Dialect::Sqlite => Some(
                url.parse::<sqlx::sqlite::SqliteConnectOptions>()?
                    .get_filename()
                    .to_path_buf(),
            ),
            Dialect::Postgres => None,
        };
        if let Some(path) = &sqlite_path {
            let path = digests_path(path);
            let paged = tokio::task::spawn_blocking(move || set_digests_page_size(&path))
                .await
                .map_err(|e| StoreError::ReadStopped(e.to_string()))?;
            if let Err(e) = paged {
                // Only slower reads of the digests: not a reason not to start.
                tracing::warn!(error = %e, "could not set the digests' file's page size");
            }
        }
        let digests_file = sqlite_path
            .as_deref()
            .map(|p| digests_path(p).to_string_lossy().into_owned());
        let options: AnyConnectOptions = url.parse()?;
        let pool = AnyPoolOptions::new()
            .max_connections(if dialect == Dialect::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                let digests = digests_file.clone();
                Box::pin(async move {
                    if let Some(digests) = digests {
                        conn.execute(sqlite_pragmas().as_str()).await?;
                        sqlx::query(ATTACH_DIGESTS)
                            .bind(digests)
                            .execute(&mut *conn)
                            .await?;
                        conn.execute(digests_pragmas().as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Store {
            pool,
            dialect,
            sqlite_path,
            sqlite_writer: Arc::default(),
            sqlite_roller: Arc::default(),
            sqlite_readers: Arc::default(),
            write_gate: Arc::default(),
            gate_held: Family::new_with_constructor(
                (|| Histogram::new(crate::metrics::FINE_BUCKETS)) as fn() -> Histogram,
            ),
            days: Arc::default(),
        })
    }

    /// A new SQLite connection with the pool's settings: WAL, each commit durable before it
    /// is acknowledged.
    fn open_sqlite(&self) -> Result<rusqlite::Connection, StoreError> {
        let path = self
            .sqlite_path
            .as_ref()
            .ok_or(StoreError::WriterPoisoned)?;
        let conn = rusqlite::Connection::open(path)?;
        conn.execute_batch(&sqlite_pragmas())?;
        conn.execute(ATTACH_DIGESTS, [digests_path(path).to_string_lossy()])?;
        conn.execute_batch(&digests_pragmas())?;
        Ok(conn)
    }

    /// SQLite: runs `write` on the writer connection, on a blocking thread, after taking
    /// the write gate (held until `write` returns). The event writer and the rollup worker
    /// write this way, one after the other, each in one transaction of its own. How long
    /// `holder` held the gate goes to [`Store::gate_held`].
    pub async fn sqlite_write<T, F>(&self, holder: &'static str, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = match self.sqlite_writer.get() {
            Some(conn) => conn.clone(),
            None => {
                let conn = self.open_sqlite()?;
                self.sqlite_writer
                    .get_or_init(|| Arc::new(Mutex::new(conn)))
                    .clone()
            }
        };
        let _gate = self.write_gate.lock().await;
        let held = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().map_err(|_| StoreError::WriterPoisoned)?;
            write(&mut conn)
        })
        .await
        .map_err(|_| StoreError::WriterPoisoned)?;
        self.gate_held
            .get_or_create(&Holder { holder })
            .observe(held.elapsed().as_secs_f64());
        result
    }

    /// SQLite: runs `read` on the rollup worker's reading thread, with its connection (kept
    /// open between rounds, so that its statements stay prepared). That thread runs at a
    /// lower priority than the rest of the server (nice 9 on Linux): counting is
    /// background work, and on a busy machine it gives way to the request handlers and the
    /// event writer, which the clients are waiting for. Its writes do not run there: they
    /// go through [`Store::sqlite_write`] at normal priority, since they hold the write gate.
    pub async fn sqlite_roller_read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let jobs = match self.sqlite_roller.get() {
            Some(jobs) => jobs.clone(),
            None => {
                let jobs = self.start_roller()?;
                self.sqlite_roller.get_or_init(|| jobs).clone()
            }
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || StoreError::ReadStopped("the rollup thread stopped".into());
        jobs.send(Box::new(move |conn| {
            let _ = reply.send(read(conn));
        }))
        .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Starts the rollup worker's reading thread; it ends when the last sender is dropped.
    fn start_roller(&self) -> Result<std::sync::mpsc::Sender<RollerJob>, StoreError> {
        let mut conn = self.open_sqlite()?;
        let (jobs, queue) = std::sync::mpsc::channel::<RollerJob>();
        std::thread::Builder::new()
            .name("tally-rollup".into())
            .spawn(move || {
                background_priority();
                for job in queue {
                    // A job that panics loses its answer (its caller gets an error); the
                    // thread and its connection carry on.
                    let _ =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn)));
                }
            })
            .map_err(|e| StoreError::ReadStopped(format!("starting the rollup thread: {e}")))?;
        Ok(jobs)
    }

    /// SQLite: runs `read` on a read-only connection of its own (one kept from an earlier
    /// read, or a new one), on a blocking thread, and returns what it returns. Reads of many rows take this path: a pool connection hands
    /// each row from its worker thread to the async side and converts every column, which
    /// costs several times the read itself.
    pub async fn sqlite_read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let path = self.sqlite_path.clone().ok_or(StoreError::InMemory)?;
        let readers = self.sqlite_readers.clone();
        tokio::task::spawn_blocking(move || {
            let kept = readers.lock().ok().and_then(|mut r| r.pop());
            let conn = match kept {
                Some(conn) => conn,
                None => {
                    let conn = rusqlite::Connection::open_with_flags(
                        &path,
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    conn.busy_timeout(std::time::Duration::from_secs(10))?;
                    conn.execute(ATTACH_DIGESTS, [digests_path(&path).to_string_lossy()])?;
                    // The database file is read through a memory map rather than a `read`
                    // call per page: a stored day digest spans a hundred pages, and a
                    // year's filtered query reads hundreds of them (the pages stay the
                    // system's file cache, shared). The digests' file changes only when one
                    // is stored, so its map and cache outlive the commits of events.
                    conn.pragma_update(None, "mmap_size", READ_MMAP_BYTES)?;
                    conn.pragma_update(
                        Some(rusqlite::DatabaseName::Attached("day_digests")),
                        "mmap_size",
                        READ_MMAP_BYTES,
                    )?;
                    conn
                }
            };
            let result = read(&conn);
            // Kept for the next read unless left inside a transaction.
            if conn.is_autocommit() {
                if let Ok(mut r) = readers.lock() {
                    if r.len() < KEPT_READERS {
                        r.push(conn);
                    }
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::ReadStopped(e.to_string()))?
    }

    /// Applies the embedded migrations that have not run yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.dialect {
            Dialect::Sqlite => {
                SQLITE_MIGRATIONS.run(&self.pool).await?;
                self.claim_digests_file().await?;
            }
            Dialect::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// SQLite: creates the digests' table in the digests' file where it has none, and
    /// empties a file that holds another database's digests (one left beside a database
    /// file that was deleted and made anew), then records this database as its owner.
    async fn claim_digests_file(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        conn.execute(DIGESTS_SCHEMA).await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let ours = sqlx::query(
            "SELECT COUNT(*) FROM day_digests.owner o JOIN main.instance i ON o.id = i.id",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get::<i64, _>(0)?;
        if ours == 0 {
            let dropped = sqlx::query("DELETE FROM day_digests.digests")
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if dropped > 0 {
                tracing::warn!(
                    digests = dropped,
                    "the digests' file belonged to another database; emptied"
                );
            }
            sqlx::query("DELETE FROM day_digests.owner")
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO day_digests.owner (id) SELECT id FROM main.instance")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Connects and migrates.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let store = Store::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// SQLite: copies the write-ahead log back into the database file, as far as readers
    /// allow. Connections never do this on their own (`wal_autocheckpoint = 0`): a commit
    /// that ran it waited for it, so every thousandth page a batch of events stalled for
    /// milliseconds. PostgreSQL: nothing.
    ///
    /// The bulk is copied beside the writer (a passive checkpoint). That alone never lets the
    /// log start over under steady traffic: SQLite reuses the log from its start only when a
    /// commit finds every page of it copied and no reader in it, and commits keep adding
    /// pages while the copy runs. So once the log holds more than [`WAL_RESTART_PAGES`]
    /// pages, the pages added meanwhile are copied with the write gate held (no commit in
    /// between), and once the readers that started before are done, the next commit starts
    /// the log over (a restarting checkpoint; readers that start after the copy do not need
    /// the log). It waits for them at most [`READER_WAIT`]; when one is still reading, the
    /// next round tries again. The file is reused, not truncated: writing over its pages
    /// costs each commit's sync less than growing the file again.
    pub async fn checkpoint(&self) -> Result<Checkpoint, StoreError> {
        if self.dialect != Dialect::Sqlite {
            return Ok(Checkpoint::default());
        }
        // The digests' log: stored digests only, copied back without waiting for anyone.
        sqlx::query("PRAGMA day_digests.wal_checkpoint(PASSIVE)")
            .fetch_one(&self.pool)
            .await?;
        let row = sqlx::query("PRAGMA main.wal_checkpoint(PASSIVE)")
            .fetch_one(&self.pool)
            .await?;
        let log_pages: i64 = row.try_get(1)?;
        if log_pages <= WAL_RESTART_PAGES || self.sqlite_path.is_none() {
            return Ok(Checkpoint {
                log_pages,
                restarts: false,
            });
        }
        self.sqlite_write("checkpoint", |conn| {
            conn.busy_timeout(READER_WAIT)?;
            let done = conn.query_row("PRAGMA main.wal_checkpoint(RESTART)", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            });
            conn.busy_timeout(BUSY_TIMEOUT)?;
            let (busy, log_pages) = done?;
            Ok(Checkpoint {
                log_pages,
                restarts: busy == 0,
            })
        })
        .await
    }

    /// A trivial query, for `/healthz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The settings of every SQLite connection. WAL lets readers run beside the writer; FULL
/// makes each commit durable before the writer acknowledges it; checkpoints are the
/// server's own ([`Store::checkpoint`]); a log that grew past 64 MiB is cut back to that
/// when it starts over (without the limit the file kept its largest size for good).
fn sqlite_pragmas() -> String {
    format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0; \
         PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}; PRAGMA busy_timeout = {}; \
         PRAGMA foreign_keys = ON;",
        BUSY_TIMEOUT.as_millis()
    )
}

/// The file of the stored day digests beside the database file at `path` (`PATH-digests`).
/// It holds nothing that cannot be built again from the events: deleting it (with the
/// server stopped) costs only the time to rebuild the digests.
pub fn digests_path(path: &std::path::Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-digests");
    PathBuf::from(name)
}

/// The page size of the digests' file. A stored digest is a blob of tens to hundreds of KiB,
/// read in pieces at their offsets; with SQLite's default 4 KiB pages, finding those pieces
/// along the blob's chain of overflow pages took an eighth of the time of a filtered query
/// over 12 months, and with 64 KiB pages such queries took about 10 % less
/// (`bench stats`, 10 million events).
pub const DIGESTS_PAGE_SIZE: i64 = 65536;

/// Creates the digests' file with [`DIGESTS_PAGE_SIZE`] pages, or rewrites one made with
/// others (`VACUUM`: about a second per 150 MiB), before any other connection opens it.
fn set_digests_page_size(path: &std::path::Path) -> rusqlite::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    if size == DIGESTS_PAGE_SIZE {
        return Ok(());
    }
    // The page size cannot change in WAL mode.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = DELETE; PRAGMA page_size = {DIGESTS_PAGE_SIZE}; VACUUM; \
         PRAGMA journal_mode = WAL;"
    ))
}

/// Attaches the digests' file (created if missing, on a connection that may write).
const ATTACH_DIGESTS: &str = "ATTACH DATABASE $1 AS day_digests";

/// The digests' file's settings on connections that may write: WAL like the main file, but
/// a commit need not reach the disk before it returns (a digest lost in a crash is built
/// again; the file stays consistent either way).
fn digests_pragmas() -> String {
    format!(
        "PRAGMA day_digests.journal_mode = WAL; PRAGMA day_digests.synchronous = NORMAL; \
         PRAGMA day_digests.journal_size_limit = {WAL_SIZE_LIMIT};"
    )
}

/// The digests' file's tables: the digests (see `stats::days`), and the identity of the
/// database they were built from (`main.instance`).
const DIGESTS_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS day_digests.digests (
        site_id INTEGER NOT NULL,
        day     INTEGER NOT NULL,
        gen     INTEGER NOT NULL,
        events  INTEGER NOT NULL,
        data    BLOB    NOT NULL,
        PRIMARY KEY (site_id, day)
    );
    CREATE TABLE IF NOT EXISTS day_digests.owner (id BLOB NOT NULL);";

/// Pages (4 KiB each) the write-ahead log may hold before a checkpoint with the write gate
/// held makes it start over: 16 MiB.
pub const WAL_RESTART_PAGES: i64 = 4096;

/// How much of the database file a read connection maps into memory: all of it (64 GiB of
/// address space, not of memory). The bundled SQLite is built to allow it
/// (`.cargo/config.toml`); a build without that flag maps the first 2 GiB.
const READ_MMAP_BYTES: i64 = 1 << 36;

/// Unmaps the database file from a read connection (the next read maps it again, pages
/// untouched). SQLite drops a connection's map when it sees that the database changed, and
/// the kernel's cost of that grows with the pages the map has touched: after a read of a
/// year of events (2.6 GiB), 15–25 ms, which would fall on the next small query to take
/// the connection. A large read calls this when it is done, so that it pays for its own.
pub(crate) fn drop_read_map(conn: &rusqlite::Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "mmap_size", 0)?;
    conn.pragma_update(None, "mmap_size", READ_MMAP_BYTES)?;
    Ok(())
}

/// How many read-only connections are kept between reads.
const KEPT_READERS: usize = 4;

/// How long a checkpoint holding the write gate waits for readers to leave the log.
pub const READER_WAIT: Duration = Duration::from_millis(10);

/// How long a connection waits for a lock held by another before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// What one [`Store::checkpoint`] found: the pages in the write-ahead log, and whether the
/// next commit starts it over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub log_pages: i64,
    pub restarts: bool,
}

/// The size (bytes) the write-ahead log file is cut back to when it starts over.
pub const WAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// Lowers the calling thread's scheduling priority to that of background work (nice 10 on
/// Linux). Where that is not possible, the thread keeps its priority.
fn background_priority() {
    use thread_priority::{set_current_thread_priority, ThreadPriority, ThreadPriorityValue};
    if let Ok(value) = ThreadPriorityValue::try_from(BACKGROUND_PRIORITY) {
        if let Err(e) = set_current_thread_priority(ThreadPriority::Crossplatform(value)) {
            tracing::debug!(error = ?e, "lowering the rollup thread's priority");
        }
    }
}

/// The cross-platform priority (0 lowest to 99 highest) of the rollup worker's thread.
const BACKGROUND_PRIORITY: u8 = 25;

#[cfg(test)]
mod tests {
    use super::*;

    /// A read connection whose map was dropped reads on, and maps the whole file again.
    #[test]
    fn a_dropped_read_map_comes_back_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let writer = rusqlite::Connection::open(&path).expect("open");
        writer
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3);")
            .expect("fill");
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.pragma_update(None, "mmap_size", READ_MMAP_BYTES)
            .expect("map");
        let sum = |conn: &rusqlite::Connection| -> i64 {
            conn.query_row("SELECT SUM(x) FROM t", [], |r| r.get(0))
                .expect("sum")
        };
        assert_eq!(sum(&conn), 6);
        drop_read_map(&conn).expect("drop the map");
        let limit: i64 = conn
            .query_row("PRAGMA mmap_size", [], |r| r.get(0))
            .expect("mmap_size");
        assert_eq!(limit, READ_MMAP_BYTES);
        writer
            .execute("INSERT INTO t VALUES (4)", [])
            .expect("write");
        assert_eq!(sum(&conn), 10);
    }
}
