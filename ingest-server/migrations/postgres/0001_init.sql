-- Sites, stats API keys, visitor salts, edge replay guard, and raw events.
-- Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE sites (
    id         BIGSERIAL PRIMARY KEY,
    domain     TEXT    NOT NULL UNIQUE,
    created_at BIGINT  NOT NULL
);

-- Stats API keys, stored as the SHA-256 of the key.
CREATE TABLE api_keys (
    id         BIGSERIAL PRIMARY KEY,
    key_hash   TEXT    NOT NULL UNIQUE,
    label      TEXT,
    created_at BIGINT  NOT NULL
);

-- One random salt per UTC day (days since the epoch); deleted after 48 hours.
CREATE TABLE salts (
    day        BIGINT  PRIMARY KEY,
    salt       BYTEA   NOT NULL,
    created_at BIGINT  NOT NULL
);

-- Signatures of accepted edge requests, kept a little longer than the allowed clock skew.
CREATE TABLE edge_nonces (
    signature TEXT    PRIMARY KEY,
    seen_at   BIGINT  NOT NULL
);

-- Raw events. `id` is the browser-made id: the unique constraint is the deduplication.
CREATE TABLE events (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    site_id      BIGINT  NOT NULL REFERENCES sites (id),
    kind         TEXT    NOT NULL,
    ts           BIGINT  NOT NULL, -- when the first collector (edge or ingest) received it
    client_ts    BIGINT  NOT NULL, -- the browser's clock
    edge_at      BIGINT,
    batch        TEXT,
    received_at  BIGINT  NOT NULL, -- when the ingest server received it
    stored_at    BIGINT  NOT NULL, -- when its batch was written
    visitor      BIGINT  NOT NULL,
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
    screen       BIGINT,
    logged_in    BIGINT,
    name         TEXT,
    props        TEXT,
    engaged_ms   BIGINT
);
CREATE INDEX events_site_ts ON events (site_id, ts);
