//! SQLite's write-ahead log: it grows while a reader holds an old snapshot, and is cut back
//! once that reader is done.

use ingest_server::store::{WAL_RESTART_PAGES, WAL_SIZE_LIMIT};

use crate::helpers::{Kind, TestDb};

/// A reader holds one snapshot (a long stats query, a starved rollup round) while 96 MiB
/// are committed: nothing can be copied back meanwhile, so the log holds it all. Once the
/// reader is done, the server's checkpoint copies everything, the next commit starts the
/// log over, and the file is cut back to [`WAL_SIZE_LIMIT`]. (Without that limit it kept
/// its largest size for good: a soak left a 4.4 GB log behind a 1.1 GB database.)
#[tokio::test]
async fn the_write_ahead_log_is_cut_back_after_a_long_reader() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = db.store().await;
    let path = db.url.strip_prefix("sqlite://").expect("a file database");
    let wal = format!("{path}-wal");
    let size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let commit = || {
        store.sqlite_write("events", |c| {
            c.execute("INSERT INTO filler (b) VALUES (randomblob(65536))", [])?;
            Ok(())
        })
    };
    store
        .sqlite_write("events", |c| {
            c.execute_batch("CREATE TABLE filler (b BLOB NOT NULL)")?;
            Ok(())
        })
        .await
        .expect("table");
    commit().await.expect("first row");

    let reader = rusqlite::Connection::open(path).expect("reader");
    reader.execute_batch("BEGIN").expect("begin");
    let seen: i64 = reader
        .query_row("SELECT count(*) FROM filler", [], |r| r.get(0))
        .expect("read");
    assert_eq!(seen, 1);
    let commits = 3 * WAL_SIZE_LIMIT / 2 / 65_536;
    for _ in 0..commits {
        commit().await.expect("commit");
        store.checkpoint().await.expect("checkpoint");
    }
    let grown = size();
    assert!(
        grown > WAL_SIZE_LIMIT,
        "the log is {grown} bytes while a reader held its snapshot"
    );
    // The reader still sees the database as it was.
    let seen: i64 = reader
        .query_row("SELECT count(*) FROM filler", [], |r| r.get(0))
        .expect("read");
    assert_eq!(seen, 1);
    reader.execute_batch("COMMIT").expect("end of the read");

    store.checkpoint().await.expect("checkpoint");
    commit().await.expect("commit after the reader");
    let after = size();
    assert!(
        after <= WAL_SIZE_LIMIT,
        "the log is still {after} bytes (it had grown to {grown})"
    );
    let rows: i64 = store
        .sqlite_read(|c| Ok(c.query_row("SELECT count(*) FROM filler", [], |r| r.get(0))?))
        .await
        .expect("count");
    assert_eq!(rows, commits as i64 + 2);
}

/// Small commits back to back, as under steady traffic, with short reads starting all the
/// time (as the rollup worker's do) and the server's checkpoint every 100 ms: the log keeps starting
/// over, so its file stays within twice [`WAL_RESTART_PAGES`] pages though four times that
/// is written. (With passive checkpoints alone it never started over: each copy ran while
/// commits added pages, so no commit found the log fully copied, which is when SQLite
/// reuses it; in a soak at 5,000 events/s it passed a gigabyte within five minutes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_starts_over_under_steady_commits() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let db = TestDb::new(Kind::Sqlite).await;
    let store = db.store().await;
    let path = db.url.strip_prefix("sqlite://").expect("a file database");
    let wal = format!("{path}-wal");
    store
        .sqlite_write("events", |c| {
            c.execute_batch("CREATE TABLE filler (n INTEGER PRIMARY KEY, b BLOB NOT NULL)")?;
            Ok(())
        })
        .await
        .expect("table");
    let limit = WAL_RESTART_PAGES as u64 * 4096;
    // Each commit of 40 rows of 400 bytes adds at least four pages to the log.
    let enough = 4 * limit / (4 * 4096);
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writer = {
        let (store, stop, commits) = (store.clone(), stop.clone(), commits.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                store
                    .sqlite_write("events", |c| {
                        let tx = c.transaction()?;
                        for _ in 0..40 {
                            tx.execute("INSERT INTO filler (b) VALUES (randomblob(400))", [])?;
                        }
                        tx.commit()?;
                        Ok(())
                    })
                    .await
                    .expect("commit");
                commits.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let reader = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut reads = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                store
                    .sqlite_read(|c| {
                        // Like the rollup worker's: the newest rows, a few milliseconds.
                        Ok(c.query_row(
                            "SELECT count(*) FROM (SELECT n FROM filler ORDER BY n DESC LIMIT 2000)",
                            [],
                            |r| r.get::<_, i64>(0),
                        )?)
                    })
                    .await
                    .expect("read");
                reads += 1;
            }
            reads
        })
    };
    let started = Instant::now();
    let (mut largest, mut restarted) = (0_u64, 0_u32);
    while commits.load(Ordering::Relaxed) < enough && started.elapsed() < Duration::from_secs(180) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        restarted += u32::from(store.checkpoint().await.expect("checkpoint").restarts);
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let reads = reader.await.expect("reader");
    let commits = commits.load(Ordering::Relaxed);
    eprintln!("{commits} commits, {reads} reads, largest log file {largest} bytes, started over {restarted} times");
    assert!(commits >= enough, "only {commits} commits in three minutes");
    assert!(reads > 100, "only {reads} reads beside the commits");
    assert!(
        largest < 2 * limit,
        "the log file reached {largest} bytes over {commits} commits (started over {restarted} times)"
    );
    assert!(restarted >= 2, "the log started over {restarted} times");
}

/// A stats read maps the whole database file: the bundled SQLite is built to map more than
/// its default 2 GiB (`.cargo/config.toml`), so a year's day digests at the end of a file of
/// several GiB are read through the map, not a `pread` per page. Without the build flag
/// SQLite lowers the setting to 2 GiB, and this fails.
#[tokio::test]
async fn stats_reads_map_a_database_file_past_two_gib() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = db.store().await;
    let mapped: i64 = store
        .sqlite_read(|c| Ok(c.query_row("PRAGMA mmap_size", [], |r| r.get(0))?))
        .await
        .expect("mmap_size");
    assert!(mapped >= 64 << 30, "a read connection maps {mapped} bytes");
}

/// The digests' file is made with 64 KiB pages, and a file made with SQLite's default 4 KiB
/// pages (before this setting) is rewritten with them when the store opens, keeping what it
/// holds.
#[tokio::test]
async fn the_digests_file_has_large_pages() {
    use ingest_server::store::{digests_path, Store, DIGESTS_PAGE_SIZE};
    let page_size = |path: &std::path::Path| -> i64 {
        let conn = rusqlite::Connection::open(path).expect("digests file");
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page_size")
    };
    let db = TestDb::new(Kind::Sqlite).await;
    let store = db.store().await;
    let path = std::path::PathBuf::from(db.url.strip_prefix("sqlite://").expect("a file"));
    let digests = digests_path(&path);
    assert_eq!(page_size(&digests), DIGESTS_PAGE_SIZE);
    store.close().await;

    // An older file: 4 KiB pages, one digest stored.
    std::fs::remove_file(&digests).expect("remove");
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", digests.display()));
    }
    {
        let conn = rusqlite::Connection::open(&digests).expect("old file");
        conn.execute_batch(
            "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL;
             CREATE TABLE digests (site_id INTEGER NOT NULL, day INTEGER NOT NULL,
                 gen INTEGER NOT NULL, events INTEGER NOT NULL, data BLOB NOT NULL,
                 PRIMARY KEY (site_id, day));
             INSERT INTO digests VALUES (1, 0, 1, 5, randomblob(300000));",
        )
        .expect("old digests");
    }
    assert_eq!(page_size(&digests), 4096);
    let store = Store::connect(&db.url).await.expect("open again");
    assert_eq!(page_size(&digests), DIGESTS_PAGE_SIZE);
    let kept: (i64, i64) = store
        .sqlite_read(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*), SUM(length(data)) FROM day_digests.digests",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .await
        .expect("read");
    assert_eq!(kept, (1, 300000));
    store.close().await;
}
