-- waihu schema v9: voiceprints (speaker embeddings, crates/voiceprint).
-- An embedding is personal data: sealed, bound to its table, column and row
-- id, and erased with its customer (ON DELETE CASCADE, or voiceprint_erase).
CREATE TABLE voiceprints (
    id           INTEGER PRIMARY KEY,
    customer_id  INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    embedding_ct BLOB NOT NULL,
    source       TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX voiceprints_customer ON voiceprints(customer_id);

-- The fraud watchlist: voices an operator flagged. `label` is the operator's
-- reference (a case number), not a name.
CREATE TABLE voice_watchlist (
    id           INTEGER PRIMARY KEY,
    label        TEXT NOT NULL,
    embedding_ct BLOB NOT NULL,
    added_at     TEXT NOT NULL
);
-- Numbers (blind index) each watchlisted voice has been heard on: a match on
-- a number not listed here is a watchlisted voice on a new number.
CREATE TABLE voice_watch_numbers (
    watch_id   INTEGER NOT NULL REFERENCES voice_watchlist(id) ON DELETE CASCADE,
    phone_idx  TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (watch_id, phone_idx)
);
