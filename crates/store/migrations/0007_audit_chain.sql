-- waihu schema v7: the tamper-evident audit chain over `events` (crate waihu-audit).
-- seq: the row's position in the chain (1, 2, 3, ...); prev_hash: the hash of the row
-- before it (32 zero bytes for the first); hash: SHA-256 over the row's content, seq
-- and prev_hash. The store fills them in the transaction that appends the row.
ALTER TABLE events ADD COLUMN seq INTEGER;
ALTER TABLE events ADD COLUMN prev_hash BLOB;
ALTER TABLE events ADD COLUMN hash BLOB;

-- The chain head (one row), read and moved in every appending transaction, and the
-- last checkpoint's position and event time (when the next one is due).
-- legacy_max_id: events written before this migration; `Store::open` chains them once
-- (in id order) and nothing else may ever be chained after the fact.
CREATE TABLE audit_head (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    seq           INTEGER NOT NULL,
    event_id      INTEGER NOT NULL,
    hash          BLOB NOT NULL,
    cp_seq        INTEGER NOT NULL DEFAULT 0,
    cp_at         TEXT,
    legacy_max_id INTEGER NOT NULL
);
INSERT INTO audit_head (id, seq, event_id, hash, legacy_max_id)
SELECT 1, 0, 0, zeroblob(32), COALESCE(MAX(id), 0) FROM events;

-- Signed checkpoints of the head (Ed25519), also appended to
-- <data_dir>/audit/checkpoints.jsonl after commit.
CREATE TABLE audit_checkpoints (
    seq      INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL,
    head     TEXT NOT NULL,
    at       TEXT NOT NULL,
    key      TEXT NOT NULL,
    sig      TEXT NOT NULL
);
CREATE TRIGGER audit_checkpoints_append_only_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER audit_checkpoints_append_only_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;

-- Still append-only; the one update allowed is chaining a pre-v7 row once, content unchanged.
DROP TRIGGER events_append_only_update;
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
WHEN NOT (OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL
          AND NEW.id = OLD.id AND NEW.at IS OLD.at AND NEW.type IS OLD.type
          AND NEW.customer_id IS OLD.customer_id AND NEW.campaign_id IS OLD.campaign_id
          AND NEW.call_id IS OLD.call_id AND NEW.body IS OLD.body
          AND OLD.id <= (SELECT legacy_max_id FROM audit_head WHERE id = 1))
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
-- Every new row comes through the chain.
CREATE TRIGGER events_chained_insert BEFORE INSERT ON events
WHEN NEW.seq IS NULL OR NEW.prev_hash IS NULL OR NEW.hash IS NULL
BEGIN SELECT RAISE(ABORT, 'events are appended through the audit chain (seq, prev_hash, hash)'); END;
