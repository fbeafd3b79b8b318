-- Day digests move to a database file of their own beside the main one (`PATH-digests`,
-- attached to every connection as `day_digests`; `Store::migrate` creates its table). A
-- read connection keeps its map of a file and its page cache only while that file does
-- not change, and the main file changes with every batch of events; the digests' file
-- changes only when a digest is stored. The stored digests are rebuilt from the events.
DROP TABLE main.digests;

-- This database's identity: the digests' file records whose digests it holds, so that one
-- left beside a new or replaced database file is emptied instead of read.
CREATE TABLE instance (
    id BLOB NOT NULL
);
INSERT INTO instance (id) VALUES (randomblob(16));
