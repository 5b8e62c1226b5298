-- waihu schema v4: callee text sentiment in the voice rollup, for 满意度
-- (satisfaction). n_sent: turns with a sentiment score; n_pos / n_neg: those
-- scoring above +0.1 / below -0.1 (SENTIMENT_BAND in calls.rs). Turns stored
-- before this migration are not counted here.
ALTER TABLE voice_rollup ADD COLUMN n_sent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE voice_rollup ADD COLUMN sum_sent REAL NOT NULL DEFAULT 0;
ALTER TABLE voice_rollup ADD COLUMN n_pos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE voice_rollup ADD COLUMN n_neg INTEGER NOT NULL DEFAULT 0;
