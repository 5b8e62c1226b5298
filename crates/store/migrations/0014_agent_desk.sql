-- waihu schema v14: the agent desk (issue 17). The dialing process (`waihu run`)
-- and the API (`waihu serve`) share the store: the dialer publishes its live
-- agents and queues here, and polls the state changes agents ask the API for.

-- API keys gain the `agent` role, bound to one agent id of the agents file.
-- (SQLite cannot change a CHECK: the table is rebuilt; nothing references it.)
CREATE TABLE api_keys_v14 (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'analyst', 'agent')),
    key_sha256  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT,
    agent_id    TEXT,
    CHECK ((role = 'agent') = (agent_id IS NOT NULL))
);
INSERT INTO api_keys_v14 (id, name, role, key_sha256, created_at, revoked_at)
SELECT id, name, role, key_sha256, created_at, revoked_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_v14 RENAME TO api_keys;

-- The running ACD's snapshot (agents with their states and since-times, queues
-- with their waiting callers), one JSON document rewritten every 250 ms.
CREATE TABLE desk_live (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    at          TEXT NOT NULL,
    body        TEXT NOT NULL
);

-- Agent state changes asked for through the API, applied by the dialer in id
-- order (it polls past its cursor every 250 ms).
CREATE TABLE agent_state_requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id    TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('available', 'paused')),
    actor       TEXT NOT NULL,
    at          TEXT NOT NULL
);

-- The desk's offer lookup: the latest transfer_offered of one agent.
CREATE INDEX events_offer_agent ON events(json_extract(body, '$.agent'), id) WHERE type = 'transfer_offered';
