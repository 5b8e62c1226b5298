-- waihu schema v8: learning experiments over script variants.
-- One row per call and bandit state: the variant the campaign's bandit chose
-- (and why: sample, explore, winner) when the call was dialled, and the reward
-- once the call ended (NULL: not ended yet, or the callee never reached the
-- state — such rows are not observations).
CREATE TABLE experiment_arms (
    call_id   TEXT NOT NULL,
    campaign  INTEGER NOT NULL,
    script    TEXT NOT NULL,
    state     TEXT NOT NULL,
    segment   TEXT NOT NULL,
    variant   TEXT NOT NULL,
    pick      TEXT NOT NULL,
    chosen_at TEXT NOT NULL,
    reached   INTEGER,
    reward    INTEGER,
    PRIMARY KEY (call_id, state)
);
CREATE INDEX experiment_arms_by_campaign ON experiment_arms (campaign, script, state, segment, variant);
