//! SQLite's write-ahead log: it grows while a reader holds an old snapshot, and is cut back
//! once that reader is done.

use ingest_server::store::WAL_SIZE_LIMIT;

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
        store.sqlite_write(|c| {
            c.execute("INSERT INTO filler (b) VALUES (randomblob(65536))", [])?;
            Ok(())
        })
    };
    store
        .sqlite_write(|c| {
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
