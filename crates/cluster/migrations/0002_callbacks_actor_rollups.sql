-- A contact re-queued for a callback the callee asked for: any node claims it before other
-- due contacts once its time comes.
ALTER TABLE cluster_contacts ADD COLUMN callback BOOLEAN NOT NULL DEFAULT false;
DROP INDEX cluster_contacts_due;
CREATE INDEX cluster_contacts_due ON cluster_contacts (campaign, callback DESC, next_us, customer)
    WHERE state = 'pending';

-- Who last changed a campaign's state (an API caller, a CLI user, a node).
ALTER TABLE cluster_campaigns ADD COLUMN updated_by TEXT;

-- Rollups the reports read instead of scanning every contact and attempt (the dashboard's
-- merged view stays fast at tens of millions of calls). Kept by triggers, so every path that
-- queues, finishes or ends (a node's own calls, the gate's refusals, a reaped node's calls)
-- counts, in the transaction that makes the change.
ALTER TABLE cluster_campaigns ADD COLUMN pending BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cluster_campaigns ADD COLUMN done BIGINT NOT NULL DEFAULT 0;
UPDATE cluster_campaigns k SET
    pending = (SELECT count(*) FROM cluster_contacts c WHERE c.campaign = k.id AND c.state = 'pending'),
    done = (SELECT count(*) FROM cluster_contacts c WHERE c.campaign = k.id AND c.state = 'done');

CREATE FUNCTION cluster_contacts_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cluster_campaigns k SET pending = k.pending + n.p, done = k.done + n.d
    FROM (SELECT campaign, count(*) FILTER (WHERE state = 'pending') AS p,
                 count(*) FILTER (WHERE state = 'done') AS d
          FROM added GROUP BY campaign) n
    WHERE k.id = n.campaign;
    RETURN NULL;
END $$;
CREATE TRIGGER cluster_contacts_added AFTER INSERT ON cluster_contacts
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION cluster_contacts_added();

CREATE FUNCTION cluster_contacts_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cluster_campaigns SET
        pending = pending + (NEW.state = 'pending')::int - (OLD.state = 'pending')::int,
        done = done + (NEW.state = 'done')::int - (OLD.state = 'done')::int
    WHERE id = NEW.campaign;
    RETURN NULL;
END $$;
CREATE TRIGGER cluster_contacts_state AFTER UPDATE OF state ON cluster_contacts
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION cluster_contacts_state();

CREATE TABLE cluster_outcomes (
    campaign BIGINT NOT NULL,
    node TEXT NOT NULL,
    outcome TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (campaign, node, outcome)
);
INSERT INTO cluster_outcomes
    SELECT campaign, node, outcome, count(*) FROM cluster_attempts
    WHERE ended_us IS NOT NULL AND outcome IS NOT NULL GROUP BY campaign, node, outcome;

CREATE FUNCTION cluster_attempt_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cluster_outcomes (campaign, node, outcome, count)
    VALUES (NEW.campaign, NEW.node, NEW.outcome, 1)
    ON CONFLICT (campaign, node, outcome) DO UPDATE SET count = cluster_outcomes.count + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER cluster_attempt_ended AFTER UPDATE OF ended_us ON cluster_attempts
    FOR EACH ROW WHEN (OLD.ended_us IS NULL AND NEW.ended_us IS NOT NULL AND NEW.outcome IS NOT NULL)
    EXECUTE FUNCTION cluster_attempt_ended();
