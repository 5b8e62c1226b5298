-- The shared state of a waihu cluster (PostgreSQL). Times are microseconds since the Unix
-- epoch (BIGINT): every node passes its own `now`, the database never reads a clock.

-- One row per dialer node: its heartbeat, and whether the others declared it lost.
CREATE TABLE cluster_nodes (
    name TEXT PRIMARY KEY,
    started_us BIGINT NOT NULL,
    heartbeat_us BIGINT NOT NULL,
    -- up | draining | lost | stopped
    state TEXT NOT NULL DEFAULT 'up'
);

-- A campaign as the cluster shares it: its control state and the limits every node shares.
CREATE TABLE cluster_campaigns (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    -- created | started | paused | stopped | finished
    state TEXT NOT NULL DEFAULT 'created',
    channels INTEGER NOT NULL CHECK (channels > 0),
    in_flight INTEGER NOT NULL DEFAULT 0 CHECK (in_flight >= 0),
    -- Calls per second over all nodes; the next dial may start at next_dial_us.
    cps DOUBLE PRECISION NOT NULL CHECK (cps > 0),
    next_dial_us BIGINT NOT NULL DEFAULT 0,
    per_day INTEGER,
    per_week INTEGER,
    max_attempts INTEGER NOT NULL CHECK (max_attempts > 0),
    updated_us BIGINT NOT NULL
);

-- A contact of a campaign: due at next_us, leased by at most one node at a time.
CREATE TABLE cluster_contacts (
    campaign BIGINT NOT NULL REFERENCES cluster_campaigns (id),
    customer BIGINT NOT NULL,
    -- Blind index of the number (never the number itself).
    phone TEXT NOT NULL,
    tz TEXT NOT NULL,
    -- pending | done
    state TEXT NOT NULL DEFAULT 'pending',
    reason TEXT,
    next_us BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_node TEXT,
    lease_until_us BIGINT,
    PRIMARY KEY (campaign, customer)
);
CREATE INDEX cluster_contacts_due ON cluster_contacts (campaign, next_us) WHERE state = 'pending';
CREATE INDEX cluster_contacts_lease ON cluster_contacts (lease_node) WHERE lease_node IS NOT NULL;

-- Every dial any node placed. At most one open (ended_us IS NULL) attempt per number:
-- the database itself refuses a second concurrent dial.
CREATE TABLE cluster_attempts (
    id BIGSERIAL PRIMARY KEY,
    campaign BIGINT NOT NULL,
    customer BIGINT NOT NULL,
    phone TEXT NOT NULL,
    node TEXT NOT NULL,
    call_id TEXT NOT NULL UNIQUE,
    started_us BIGINT NOT NULL,
    ended_us BIGINT,
    outcome TEXT
);
CREATE UNIQUE INDEX cluster_attempts_one_open ON cluster_attempts (phone) WHERE ended_us IS NULL;
CREATE INDEX cluster_attempts_phone ON cluster_attempts (phone, started_us);
CREATE INDEX cluster_attempts_open_node ON cluster_attempts (node) WHERE ended_us IS NULL;

-- Do-not-call numbers (blind indexes), global.
CREATE TABLE cluster_dnc (
    phone TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    added_us BIGINT NOT NULL
);

-- The merged event log of all nodes (waihu_core::Event as JSON), written in the same
-- transaction as the change it records.
CREATE TABLE cluster_events (
    id BIGSERIAL PRIMARY KEY,
    at_us BIGINT NOT NULL,
    node TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX cluster_events_at ON cluster_events (at_us, id);
