-- waihu schema v17: one data key per customer (crypto-shredding for PIPL/GDPR erasure).
--
-- What a customer says and sounds like (turn texts, call recordings, messages) is
-- sealed under a random key of their own; only its wrapped form (AES-256-GCM under a
-- key derived from the master key) is stored here. Erasing the customer deletes this
-- row: every copy of their sealed data, wherever it went (a copied recordings
-- directory, an exported file set), can no longer be opened, while counts, rollups
-- and the audit chain stay as they were. Rows are created on first use, so customers
-- from before v17 get one the first time something personal is sealed for them.
CREATE TABLE customer_keys (
    customer_id INTEGER PRIMARY KEY,
    wrapped     BLOB NOT NULL,
    created_at  TEXT NOT NULL
);

-- Customers erased by `waihu customer erase`: the row itself is deleted, this
-- keeps only that the id was erased, so late writes for it (a call in flight) are
-- sealed under a key nobody keeps.
CREATE TABLE erased_customers (
    customer_id INTEGER PRIMARY KEY,
    erased_at   TEXT NOT NULL
);

-- The vault's root key (field encryption, blind index, audit signing derive from
-- it), wrapped under the master key. Rotating the master key re-wraps this row and
-- every customer_keys row; no sealed value is re-encrypted. A database created
-- before v17 gets its master key as root (what its values were sealed under); a
-- new database gets a random root.
CREATE TABLE keyring (
    name       TEXT PRIMARY KEY,
    wrapped    BLOB NOT NULL,
    rotated_at TEXT
);
