-- waihu schema v2: the HTTP API (keys, webhooks) and report rollups.

-- API keys: only the SHA-256 of the key is stored; the key is shown once.
CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'analyst')),
    key_sha256  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- Signed webhooks. The secret is sealed like personal data (it signs what we
-- send). event_types: comma-separated event types, or '*'. cursor: the last
-- event id handed to this webhook (delivered or given up on).
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY,
    url         TEXT NOT NULL,
    secret_ct   BLOB NOT NULL,
    event_types TEXT NOT NULL DEFAULT '*',
    created_at  TEXT NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1,
    cursor      INTEGER NOT NULL DEFAULT 0
);

-- One row per batch POSTed (or given up on) with its tries.
CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY,
    webhook_id  INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    first_event INTEGER NOT NULL,
    last_event  INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    tries       INTEGER NOT NULL,
    http_status INTEGER,
    error       TEXT,
    delivered   INTEGER NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook_id, id);

-- All events of one call, and the attempt_started lookup of the heat-map trigger.
CREATE INDEX events_call ON events(call_id, type);

-- Report rollups, kept by triggers on the (append-only) event log so KPI pages
-- read a few thousand rows instead of decoding millions of events.
-- hour: UTC 'YYYY-MM-DDTHH' of the event. metric: 'attempt' (key = outcome,
-- sum = duration_s), 'abandoned', 'conversation' (key = business outcome),
-- 'level' (key = intention level). campaign_id 0 = no campaign.
CREATE TABLE kpi_hourly (
    hour        TEXT NOT NULL,
    campaign_id INTEGER NOT NULL,
    metric      TEXT NOT NULL,
    key         TEXT NOT NULL,
    n           INTEGER NOT NULL,
    sum         REAL NOT NULL,
    PRIMARY KEY (hour, campaign_id, metric, key)
) WITHOUT ROWID;

-- Finished attempts by the callee's local date and hour (from attempt_started's
-- local_time), for the answer-rate heat map.
CREATE TABLE kpi_local_hour (
    local_date  TEXT NOT NULL,
    local_hour  INTEGER NOT NULL,
    campaign_id INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (local_date, local_hour, campaign_id, outcome)
) WITHOUT ROWID;

-- Backfill from the events already stored.
INSERT INTO kpi_hourly (hour, campaign_id, metric, key, n, sum)
SELECT substr(at, 1, 13), COALESCE(campaign_id, 0), 'attempt', COALESCE(json_extract(body, '$.outcome'), ''),
       COUNT(*), COALESCE(SUM(json_extract(body, '$.duration_s')), 0)
FROM events WHERE type = 'attempt_ended' GROUP BY 1, 2, 4;
INSERT INTO kpi_hourly (hour, campaign_id, metric, key, n, sum)
SELECT substr(at, 1, 13), COALESCE(campaign_id, 0), 'abandoned', '', COUNT(*), 0
FROM events WHERE type = 'call_abandoned' GROUP BY 1, 2;
INSERT INTO kpi_hourly (hour, campaign_id, metric, key, n, sum)
SELECT substr(at, 1, 13), COALESCE(campaign_id, 0), 'conversation', COALESCE(json_extract(body, '$.outcome'), ''), COUNT(*), 0
FROM events WHERE type = 'conversation_ended' GROUP BY 1, 2, 4;
INSERT INTO kpi_hourly (hour, campaign_id, metric, key, n, sum)
SELECT substr(at, 1, 13), COALESCE(campaign_id, 0), 'level', json_extract(body, '$.level'), COUNT(*), 0
FROM events WHERE type = 'conversation_ended' AND json_extract(body, '$.level') IS NOT NULL GROUP BY 1, 2, 4;
INSERT INTO kpi_local_hour (local_date, local_hour, campaign_id, outcome, n)
SELECT substr(json_extract(s.body, '$.local_time'), 1, 10), CAST(substr(json_extract(s.body, '$.local_time'), 12, 2) AS INTEGER),
       COALESCE(e.campaign_id, 0), COALESCE(json_extract(e.body, '$.outcome'), ''), COUNT(*)
FROM events e JOIN events s ON s.call_id = e.call_id AND s.type = 'attempt_started'
WHERE e.type = 'attempt_ended' AND e.call_id IS NOT NULL AND length(json_extract(s.body, '$.local_time')) >= 13
GROUP BY 1, 2, 3, 4;

CREATE TRIGGER kpi_attempt_ended AFTER INSERT ON events WHEN NEW.type = 'attempt_ended'
BEGIN
    INSERT INTO kpi_hourly (hour, campaign_id, metric, key, n, sum)
    VALUES (substr(NEW.at, 1, 13), COALESCE(NEW.campaign_id, 0), 'attempt', COALESCE(json_extract(NEW.body, '$.outcome'), ''),
            1, COALESCE(json_extract(NEW.body, '$.duration_s'), 0))
    ON CONFLICT (hour, campaign_id, metric, key) DO UPDATE SET n = n + 1, sum = sum + excluded.sum;
    INSERT INTO kpi_local_hour (local_date, local_hour, campaign_id, outcome, n)
    SELECT substr(json_extract(s.body, '$.local_time'), 1, 10), CAST(substr(json_extract(s.body, '$.local_time'), 12, 2) AS INTEGER),
           COALESCE(NEW.campaign_id, 0), COALESCE(json_extract(NEW.body, '$.outcome'), ''), 1
    FROM (SELECT body FROM events WHERE call_id = NEW.call_id AND type = 'attempt_started' ORDER BY id DESC LIMIT 1) s
    WHERE NEW.call_id IS NOT NULL AND length(json_extract(s.body, '$.local_time')) >= 13
    ON CONFLICT (local_date, local_hour, campaign_id, outcome) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER kpi_call_abandoned AFTER INSERT ON events WHEN NEW.type = 'call_abandoned'
BEGIN
    INSERT INTO kpi_hourly (hour, campaign_id, metric, key, n, sum)
    VALUES (substr(NEW.at, 1, 13), COALESCE(NEW.campaign_id, 0), 'abandoned', '', 1, 0)
    ON CONFLICT (hour, campaign_id, metric, key) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER kpi_conversation_ended AFTER INSERT ON events WHEN NEW.type = 'conversation_ended'
BEGIN
    INSERT INTO kpi_hourly (hour, campaign_id, metric, key, n, sum)
    VALUES (substr(NEW.at, 1, 13), COALESCE(NEW.campaign_id, 0), 'conversation', COALESCE(json_extract(NEW.body, '$.outcome'), ''), 1, 0)
    ON CONFLICT (hour, campaign_id, metric, key) DO UPDATE SET n = n + 1;
    INSERT INTO kpi_hourly (hour, campaign_id, metric, key, n, sum)
    SELECT substr(NEW.at, 1, 13), COALESCE(NEW.campaign_id, 0), 'level', json_extract(NEW.body, '$.level'), 1, 0
    WHERE json_extract(NEW.body, '$.level') IS NOT NULL
    ON CONFLICT (hour, campaign_id, metric, key) DO UPDATE SET n = n + 1;
END;
