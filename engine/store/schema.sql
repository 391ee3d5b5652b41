-- RadBridge store schema (SQLite dialect; the PostgreSQL backend mirrors it).
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS messages (
    id           INTEGER PRIMARY KEY,
    received_at  REAL    NOT NULL,
    channel      TEXT    NOT NULL,
    peer         TEXT    NOT NULL DEFAULT '',
    control_id   TEXT    NOT NULL DEFAULT '',
    message_type TEXT    NOT NULL DEFAULT '',
    version      TEXT    NOT NULL DEFAULT '',
    charset      TEXT    NOT NULL DEFAULT '',
    status       TEXT    NOT NULL,
    ack_code     TEXT    NOT NULL DEFAULT '',
    error        TEXT    NOT NULL DEFAULT '',
    revision     TEXT    NOT NULL DEFAULT '',
    warnings     TEXT    NOT NULL DEFAULT '',
    size         INTEGER NOT NULL,
    raw          BLOB    NOT NULL
);
-- Every index is written on the ingest hot path (before the ACK), so there are few:
-- status searches look for the rare outcomes (rejected, filtered, error), which this
-- partial index covers without a write for each processed message; a type or a
-- 'processed' search scans newest first by id (ORDER BY id DESC LIMIT n) or uses
-- the receive-time index below. (Indexes of earlier versions are dropped.)
DROP INDEX IF EXISTS messages_type;
DROP INDEX IF EXISTS messages_status;
DROP INDEX IF EXISTS messages_control;
CREATE INDEX IF NOT EXISTS messages_unprocessed ON messages (status, received_at)
    WHERE status != 'processed';
-- Control id → message, filled by the writer about once a second for the messages stored
-- since (meta 'control_indexed_upto'), not in each ingest transaction: control ids of
-- concurrent senders interleave, and an index on messages would rewrite one leaf page per
-- sender per commit. Searches read this table plus the messages above the mark.
CREATE TABLE IF NOT EXISTS control_index (
    control_id TEXT    NOT NULL,
    message_id INTEGER NOT NULL,
    PRIMARY KEY (control_id, message_id)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS messages_control_deleted AFTER DELETE ON messages BEGIN
    DELETE FROM control_index WHERE control_id = old.control_id AND message_id = old.id;
END;
-- Receive time → message, filled the same way (meta 'received_indexed_upto'): an index on
-- messages.received_at cost one more WAL page in every ingest commit (a third of the
-- frames of a one-message commit); filled once a second it is a few pages a second.
-- Time searches and prune read this table plus the messages above the mark.
DROP INDEX IF EXISTS messages_received;
CREATE TABLE IF NOT EXISTS received_index (
    received_at REAL    NOT NULL,
    message_id  INTEGER NOT NULL,
    PRIMARY KEY (received_at, message_id)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS messages_received_deleted AFTER DELETE ON messages BEGIN
    DELETE FROM received_index WHERE received_at = old.received_at AND message_id = old.id;
END;

CREATE TABLE IF NOT EXISTS deliveries (
    id           INTEGER PRIMARY KEY,
    message_id   INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    destination  TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL    NOT NULL DEFAULT 0,
    last_error   TEXT    NOT NULL DEFAULT '',
    response     TEXT    NOT NULL DEFAULT '',
    order_key    TEXT    NOT NULL DEFAULT '',
    created_at   REAL    NOT NULL,
    updated_at   REAL    NOT NULL,
    payload      BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_message ON deliveries (message_id);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (destination, id)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_status ON deliveries (destination, status);

-- Lookup-table misses, persisted so `radbridge lookups misses` sees what the engine saw.
CREATE TABLE IF NOT EXISTS lookup_misses (
    mapping    TEXT NOT NULL,
    tbl        TEXT NOT NULL,
    key        TEXT NOT NULL,
    count      INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen  REAL NOT NULL,
    PRIMARY KEY (mapping, tbl, key)
);
