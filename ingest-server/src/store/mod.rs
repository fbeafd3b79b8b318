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

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

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

/// A pool of connections to the events database.
#[derive(Clone, Debug)]
pub struct Store {
    pub pool: AnyPool,
    pub dialect: Dialect,
    /// SQLite: the database file, and the connection that writes raw events.
    sqlite_path: Option<PathBuf>,
    sqlite_writer: Arc<OnceLock<Arc<Mutex<rusqlite::Connection>>>>,
    /// SQLite: taken by the event writer and the rollup worker around their write
    /// transactions, so that they take turns in order instead of sleeping in SQLite's busy
    /// handler (which backs off by whole milliseconds).
    write_gate: Arc<tokio::sync::Mutex<()>>,
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
        let options: AnyConnectOptions = url.parse()?;
        let pool = AnyPoolOptions::new()
            .max_connections(if dialect == Dialect::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL lets readers run beside the writer; FULL makes each commit
                        // durable before the writer acknowledges it.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0; \
                             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
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
            write_gate: Arc::default(),
        })
    }

    /// The gate the big writers of a SQLite database take turns through.
    pub fn write_gate(&self) -> &tokio::sync::Mutex<()> {
        &self.write_gate
    }

    /// SQLite's event writer connection, opened on first use.
    fn sqlite_writer(&self) -> Result<Arc<Mutex<rusqlite::Connection>>, StoreError> {
        if let Some(conn) = self.sqlite_writer.get() {
            return Ok(conn.clone());
        }
        let path = self
            .sqlite_path
            .as_ref()
            .ok_or(StoreError::WriterPoisoned)?;
        let conn = rusqlite::Connection::open(path)?;
        // As the pool's connections: WAL, each commit durable before it is acknowledged.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0; \
             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
        )?;
        Ok(self
            .sqlite_writer
            .get_or_init(|| Arc::new(Mutex::new(conn)))
            .clone())
    }

    /// SQLite: runs `read` on a read-only connection of its own, on a blocking thread, and
    /// returns what it returns. Reads of many rows take this path: a pool connection hands
    /// each row from its worker thread to the async side and converts every column, which
    /// costs several times the read itself.
    pub async fn sqlite_read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let path = self.sqlite_path.clone().ok_or(StoreError::InMemory)?;
        tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            read(&conn)
        })
        .await
        .map_err(|e| StoreError::ReadStopped(e.to_string()))?
    }

    /// Applies the embedded migrations that have not run yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Dialect::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Connects and migrates.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let store = Store::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// SQLite: copies the write-ahead log back into the database file, as far as readers
    /// allow, without blocking the writer (a passive checkpoint). Connections never do this
    /// on their own (`wal_autocheckpoint = 0`): a commit that ran it waited for it, so every
    /// thousandth page a batch of events stalled for milliseconds. PostgreSQL: nothing.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if self.dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
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
