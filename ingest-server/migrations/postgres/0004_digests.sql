-- Day digests for filtered stats queries (stats::digest, stats::days): one site's counted
-- events of one UTC day, sessionised and encoded. `digest_days.gen` moves whenever the rollup
-- worker counts an event of that day; a digest is used only while its `gen` is the day's.
-- Days are the first instant of the UTC day, in ms since the Unix epoch.
CREATE TABLE digest_days (
    site_id BIGINT NOT NULL,
    day     BIGINT NOT NULL,
    gen     BIGINT NOT NULL,
    PRIMARY KEY (site_id, day)
);

CREATE TABLE digests (
    site_id BIGINT NOT NULL,
    day     BIGINT NOT NULL,
    gen     BIGINT NOT NULL,
    events  BIGINT NOT NULL, -- page views and custom events it holds
    data    BYTEA  NOT NULL,
    PRIMARY KEY (site_id, day)
);

-- The days that already have events, for the background builder.
INSERT INTO digest_days (site_id, day, gen)
SELECT site_id, ts - ts % 86400000, 1 FROM events GROUP BY site_id, ts - ts % 86400000;
