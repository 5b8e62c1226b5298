-- waihu schema v3: live and finished calls (transcripts, recordings, paths),
-- the campaign control plane, and the rollups behind funnels and heat maps.

-- Who changed a campaign last (the campaign_state event carries the state).
ALTER TABLE campaigns ADD COLUMN updated_at TEXT;
ALTER TABLE campaigns ADD COLUMN updated_by TEXT;

-- One row per call the runtime placed. status: dialing → ringing → talking →
-- ended. path: JSON array of script states in visiting order. recording: file
-- name under data_dir/recordings/ (sealed WAV), NULL when none.
-- campaign_id 0 = no campaign (so it can take part in keys and indexes).
CREATE TABLE calls (
    id               INTEGER PRIMARY KEY,
    call_id          TEXT NOT NULL UNIQUE,
    campaign_id      INTEGER NOT NULL DEFAULT 0,
    customer_id      INTEGER,
    script           TEXT NOT NULL,
    lang             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('dialing', 'ringing', 'talking', 'ended')),
    node             TEXT,
    emotion          TEXT,
    started_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    ended_at         TEXT,
    outcome          TEXT,
    sip_status       INTEGER,
    duration_s       REAL,
    business_outcome TEXT,
    level            TEXT,
    path             TEXT NOT NULL DEFAULT '[]',
    turns            INTEGER NOT NULL DEFAULT 0,
    recording        TEXT
);
CREATE INDEX calls_campaign ON calls(campaign_id, id);
CREATE INDEX calls_live ON calls(status) WHERE status <> 'ended';

-- The transcript. text_ct is sealed (bound to call id and seq): what a callee
-- says is personal data. Voice features are NULL for bot turns.
CREATE TABLE call_turns (
    call_id     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    speaker     TEXT NOT NULL CHECK (speaker IN ('bot', 'callee')),
    state       TEXT NOT NULL,
    at          TEXT NOT NULL,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    text_ct     BLOB NOT NULL,
    intent      TEXT,
    confidence  REAL,
    emotion     TEXT,
    sentiment   REAL,
    rate_sps    REAL,
    volume_dbfs REAL,
    pitch_hz    REAL,
    pause_ratio REAL,
    barge_in    INTEGER NOT NULL DEFAULT 0,
    latency_ms  REAL,
    PRIMARY KEY (call_id, seq)
) WITHOUT ROWID;

-- Funnel by script state: per finished call, each distinct state of its path
-- counts once as entered and then as continued (the call went on to another
-- state), dropped (the path ended there without a business outcome or with
-- 'hangup') or completed (it ended there with a business outcome).
-- pos_sum: sum of the state's first position in each path, for ordering.
-- Maintained by Store::call_finished in the same transaction as the call row.
CREATE TABLE funnel_rollup (
    campaign_id INTEGER NOT NULL,
    script      TEXT NOT NULL,
    state       TEXT NOT NULL,
    entered     INTEGER NOT NULL,
    continued   INTEGER NOT NULL,
    dropped     INTEGER NOT NULL,
    completed   INTEGER NOT NULL,
    pos_sum     INTEGER NOT NULL,
    PRIMARY KEY (script, campaign_id, state)
) WITHOUT ROWID;

-- Intents heard per script state (callee turns), kept by a trigger on the
-- call_turn events so anything that logs turns feeds the heat map.
CREATE TABLE intent_rollup (
    campaign_id INTEGER NOT NULL,
    state       TEXT NOT NULL,
    intent      TEXT NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, state, intent)
) WITHOUT ROWID;

INSERT INTO intent_rollup (campaign_id, state, intent, n)
SELECT COALESCE(campaign_id, 0), COALESCE(json_extract(body, '$.state'), ''), COALESCE(json_extract(body, '$.intent'), ''), COUNT(*)
FROM events WHERE type = 'call_turn' GROUP BY 1, 2, 3;

CREATE TRIGGER intent_call_turn AFTER INSERT ON events WHEN NEW.type = 'call_turn'
BEGIN
    INSERT INTO intent_rollup (campaign_id, state, intent, n)
    VALUES (COALESCE(NEW.campaign_id, 0), COALESCE(json_extract(NEW.body, '$.state'), ''),
            COALESCE(json_extract(NEW.body, '$.intent'), ''), 1)
    ON CONFLICT (campaign_id, state, intent) DO UPDATE SET n = n + 1;
END;

-- Callee voice features by customer segment ('' = none) and UTC hour
-- ('YYYY-MM-DDTHH'), per emotion ('' = none). n_feat: turns that had
-- features (the sums are over those). Maintained by Store::call_turn.
CREATE TABLE voice_rollup (
    campaign_id INTEGER NOT NULL,
    segment     TEXT NOT NULL,
    hour        TEXT NOT NULL,
    emotion     TEXT NOT NULL,
    n           INTEGER NOT NULL,
    n_feat      INTEGER NOT NULL,
    sum_rate    REAL NOT NULL,
    sum_volume  REAL NOT NULL,
    sum_pitch   REAL NOT NULL,
    sum_pause   REAL NOT NULL,
    PRIMARY KEY (campaign_id, segment, hour, emotion)
) WITHOUT ROWID;
