-- Stats: which raw events the rollup worker has counted, the visits it builds from them, and
-- the rollups that every unfiltered stats query reads.

-- 1 once the rollup worker has counted the event; retention prunes only counted events.
ALTER TABLE events ADD COLUMN rolled INTEGER NOT NULL DEFAULT 0;
CREATE INDEX events_unrolled ON events (seq) WHERE rolled = 0;

-- A visitor's activity with no gap longer than 30 minutes. The visit-level dimensions are
-- those of its first event; `pages` and `marks` are the 64-bit hashes (decimal, space
-- separated) of the pages it viewed and of the custom event names / props it sent.
CREATE TABLE visits (
    id           INTEGER PRIMARY KEY,
    site_id      INTEGER NOT NULL,
    visitor      INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    last_at      INTEGER NOT NULL,
    pageviews    INTEGER NOT NULL,
    events       INTEGER NOT NULL,
    entry_page   TEXT    NOT NULL,
    exit_page    TEXT    NOT NULL,
    referrer     TEXT,
    utm_source   TEXT,
    utm_medium   TEXT,
    utm_campaign TEXT,
    country      TEXT,
    browser      TEXT,
    os           TEXT,
    device       TEXT,
    logged_in    INTEGER NOT NULL,
    pages        TEXT    NOT NULL,
    marks        TEXT    NOT NULL,
    UNIQUE (site_id, visitor, started_at)
);
CREATE INDEX visits_started ON visits (started_at);

-- Counts per site, grain (0 hour, 1 UTC day, 2 UTC month), dimension, bucket start (ms) and
-- value. `dim` '' is the site total. Maintained with `n = n + excluded.n` upserts.
CREATE TABLE rollups (
    site_id          INTEGER NOT NULL,
    grain            INTEGER NOT NULL,
    dim              TEXT    NOT NULL,
    bucket           INTEGER NOT NULL,
    value            TEXT    NOT NULL,
    pageviews        INTEGER NOT NULL DEFAULT 0,
    unique_pageviews INTEGER NOT NULL DEFAULT 0,
    visitors         INTEGER NOT NULL DEFAULT 0,
    visits           INTEGER NOT NULL DEFAULT 0,
    bounces          INTEGER NOT NULL DEFAULT 0,
    duration_ms      INTEGER NOT NULL DEFAULT 0,
    events           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, grain, dim, bucket, value)
) WITHOUT ROWID;

-- One row; the rollup worker updates it first thing in its transaction to take the write lock.
CREATE TABLE rollup_lock (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL
);
INSERT INTO rollup_lock (id, at) VALUES (1, 0);
