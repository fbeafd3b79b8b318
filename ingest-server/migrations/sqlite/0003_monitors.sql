-- Operations: drops by reason, the last batch from the edge, and the monitors' persisted state
-- (CONTRACT §7, §8). Times are milliseconds since the Unix epoch (UTC).

-- Events dropped, per site (0 when the site is unknown or not yet known), minute
-- (start, ms) and reason. Maintained with `n = n + excluded.n` upserts.
CREATE TABLE drops (
    site_id INTEGER NOT NULL,
    bucket  INTEGER NOT NULL,
    reason  TEXT    NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (site_id, bucket, reason)
);
CREATE INDEX drops_bucket ON drops (bucket);

-- When the last signed batch from the edge arrived, per site; site 0 is any site.
CREATE TABLE edge_batches (
    site_id INTEGER PRIMARY KEY,
    batch   TEXT    NOT NULL,
    at      INTEGER NOT NULL
);

-- One row per configured monitor, by name. `fingerprint` identifies its definition: a monitor
-- whose definition changed starts again from `ok`.
CREATE TABLE monitor_state (
    name                TEXT    PRIMARY KEY,
    fingerprint         TEXT    NOT NULL,
    state               TEXT    NOT NULL, -- ok | firing
    value               REAL,
    checked_at          INTEGER,
    last_notified_at    INTEGER,
    last_notified_state TEXT,             -- firing | resolved
    changed_at          INTEGER NOT NULL
);

-- Every transition of a monitor.
CREATE TABLE monitor_history (
    id    INTEGER PRIMARY KEY,
    name  TEXT    NOT NULL,
    state TEXT    NOT NULL, -- firing | resolved
    value REAL    NOT NULL,
    at    INTEGER NOT NULL
);
CREATE INDEX monitor_history_name ON monitor_history (name, at);

-- Notifications to send (the outbox): written in the same transaction as the transition,
-- marked sent after delivery, retried with backoff until then. `target` is the kind and a hash
-- of the webhook URL or address; the address itself stays in the monitors file.
CREATE TABLE monitor_outbox (
    id         INTEGER PRIMARY KEY,
    monitor    TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    INTEGER NOT NULL,
    done_at    INTEGER,
    outcome    TEXT -- sent | failed | dropped
);
CREATE INDEX monitor_outbox_pending ON monitor_outbox (next_at) WHERE done_at IS NULL;

-- Which server evaluates the monitors (one at a time when several share a database).
CREATE TABLE monitor_lease (
    id     INTEGER PRIMARY KEY,
    holder TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
INSERT INTO monitor_lease (id, holder, expires_at) VALUES (1, '', 0);
