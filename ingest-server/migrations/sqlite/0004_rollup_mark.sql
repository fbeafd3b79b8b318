-- SQLite counts events up to a mark instead of flagging each counted row. Rows are numbered
-- (`seq`) in commit order, since SQLite has one writer at a time, so a snapshot holds every
-- event up to its largest `seq` and the rollup worker only has to remember how far it got.
-- Marking each row cost a write of every counted event and of its index entry.
ALTER TABLE rollup_lock ADD COLUMN upto INTEGER NOT NULL DEFAULT 0;
UPDATE rollup_lock SET upto = COALESCE(
    (SELECT MIN(seq) - 1 FROM events WHERE rolled = 0),
    (SELECT MAX(seq) FROM events),
    0
) WHERE id = 1;
DROP INDEX events_unrolled;
ALTER TABLE events DROP COLUMN rolled;
