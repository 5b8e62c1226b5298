-- waihu schema v1. Portable SQL (SQLite now, PostgreSQL later): TEXT timestamps
-- in RFC 3339 UTC with fixed width so they sort; JSON kept as TEXT.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Personal data is sealed (AES-256-GCM, bound to table/column/phone_idx):
-- phone_ct and name_ct are unreadable without the master key. phone_idx is the
-- HMAC blind index of the E.164 number: lookups, dedup and DNC matching.
CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    phone_idx   TEXT NOT NULL UNIQUE,
    phone_ct    BLOB NOT NULL,
    name_ct     BLOB,
    region      TEXT NOT NULL,
    tz          TEXT NOT NULL,
    tz_source   TEXT NOT NULL,
    attrs       TEXT NOT NULL DEFAULT '{}',
    segment     TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    import_id   INTEGER,
    -- Keyed MAC of the last imported content: an unchanged re-import is a no-op.
    content_mac TEXT NOT NULL DEFAULT ''
);

-- The typed attributes known so far (what segmentation rules may name).
CREATE TABLE attribute_defs (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('number', 'date', 'text', 'bool')),
    source      TEXT,
    first_seen  TEXT NOT NULL
);

CREATE TABLE imports (
    id            INTEGER PRIMARY KEY,
    file          TEXT NOT NULL,
    encoding      TEXT,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    rows_created  INTEGER NOT NULL DEFAULT 0,
    rows_updated  INTEGER NOT NULL DEFAULT 0,
    rows_rejected INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL CHECK (status IN ('running', 'done', 'interrupted'))
);

CREATE TABLE segments (
    name        TEXT PRIMARY KEY,
    expr        TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    description TEXT,
    updated_at  TEXT NOT NULL
);

CREATE TABLE campaigns (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    spec        TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- scope: 'global' or a campaign name.
CREATE TABLE dnc (
    phone_idx   TEXT NOT NULL,
    scope       TEXT NOT NULL DEFAULT 'global',
    phone_ct    BLOB NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    added_at    TEXT NOT NULL,
    PRIMARY KEY (phone_idx, scope)
);

CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    call_id     TEXT NOT NULL UNIQUE,
    campaign_id INTEGER REFERENCES campaigns(id),
    customer_id INTEGER REFERENCES customers(id),
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    outcome     TEXT,
    sip_status  INTEGER,
    duration_s  REAL
);
CREATE INDEX attempts_customer ON attempts(customer_id);

-- Append-only: every state change of a contact or a call. Triggers refuse
-- UPDATE and DELETE so nothing (not even a bug) rewrites history.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    type        TEXT NOT NULL,
    customer_id INTEGER,
    campaign_id INTEGER,
    call_id     TEXT,
    body        TEXT NOT NULL
);
CREATE INDEX events_type_at ON events(type, at);
CREATE INDEX events_customer ON events(customer_id);

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
