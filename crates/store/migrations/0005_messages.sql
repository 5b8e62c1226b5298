-- waihu schema v5: the message outbox (follow-up SMS) and inbound replies.
--
-- An outgoing message moves queued → sending → sent → delivered | failed, or
-- sending → unknown. `sending` is committed before the gateway sees the message
-- and `sent` (with the gateway's ids) after it accepted it; a message found in
-- `sending` after a restart may or may not have reached the gateway, so it becomes
-- `unknown` and is never sent again by itself (see messages.rs).
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    -- Caller's idempotency key (e.g. `fallback:<call id>`): one message per key.
    key         TEXT NOT NULL UNIQUE,
    direction   TEXT NOT NULL,            -- 'out' | 'in'
    customer_id INTEGER REFERENCES customers(id),
    campaign_id INTEGER,
    channel     TEXT NOT NULL,            -- 'sms'
    template    TEXT NOT NULL,
    phone_idx   TEXT NOT NULL,            -- blind index of the number
    phone_ct    BLOB NOT NULL,            -- sealed E.164 (messages|phone|key)
    text_ct     BLOB NOT NULL,            -- sealed text (messages|text|key)
    status      TEXT NOT NULL,
    segments    INTEGER NOT NULL DEFAULT 1,
    error       TEXT,
    created_at  TEXT NOT NULL,
    sent_at     TEXT,
    done_at     TEXT
);
CREATE INDEX messages_status ON messages(status, id);
CREATE INDEX messages_campaign ON messages(campaign_id, id);
CREATE INDEX messages_phone ON messages(phone_idx);

-- One row per gateway message id (one per SMS segment); receipts come per segment.
CREATE TABLE message_parts (
    gateway_id  TEXT PRIMARY KEY,
    message_id  INTEGER NOT NULL REFERENCES messages(id),
    status      TEXT NOT NULL             -- 'sent' | 'delivered' | 'failed'
);
CREATE INDEX message_parts_message ON message_parts(message_id);

-- A receipt can beat the submit_sm_resp of its own segment (the SMSC answers the
-- later segment's submit after receipting the earlier one). Receipts for ids not yet
-- known wait here and are applied when `message_sent` records the ids.
CREATE TABLE message_receipts_early (
    gateway_id  TEXT PRIMARY KEY,
    status      TEXT NOT NULL,            -- 'delivered' | 'failed'
    stat        TEXT NOT NULL,
    at          TEXT NOT NULL
);
