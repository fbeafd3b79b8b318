-- Sites, stats API keys, visitor salts, edge replay guard, and raw events.
-- Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE sites (
    id         INTEGER PRIMARY KEY,
    domain     TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- Stats API keys, stored as the SHA-256 of the key.
CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    key_hash   TEXT    NOT NULL UNIQUE,
    label      TEXT,
    created_at INTEGER NOT NULL
);

-- One random salt per UTC day (days since the epoch); deleted after 48 hours.
CREATE TABLE salts (
    day        INTEGER PRIMARY KEY,
    salt       BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);

-- Signatures of accepted edge requests, kept a little longer than the allowed clock skew.
CREATE TABLE edge_nonces (
    signature TEXT    PRIMARY KEY,
    seen_at   INTEGER NOT NULL
);

-- Raw events. `id` is the browser-made id: the unique constraint is the deduplication.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    site_id      INTEGER NOT NULL REFERENCES sites (id),
    kind         TEXT    NOT NULL,
    ts           INTEGER NOT NULL, -- when the first collector (edge or ingest) received it
    client_ts    INTEGER NOT NULL, -- the browser's clock
    edge_at      INTEGER,
    batch        TEXT,
    received_at  INTEGER NOT NULL, -- when the ingest server received it
    stored_at    INTEGER NOT NULL, -- when its batch was written
    visitor      INTEGER NOT NULL,
    path         TEXT    NOT NULL,
    referrer     TEXT,
    utm_source   TEXT,
    utm_medium   TEXT,
    utm_campaign TEXT,
    utm_term     TEXT,
    utm_content  TEXT,
    country      TEXT,
    browser      TEXT,
    os           TEXT,
    device       TEXT,
    screen       INTEGER,
    logged_in    INTEGER,
    name         TEXT,
    props        TEXT,
    engaged_ms   INTEGER
);
CREATE INDEX events_site_ts ON events (site_id, ts);
