-- The dashboard's KPIs and funnel over every node: the same cells as one node's own
-- kpi_hourly (crates/store/migrations/0002_api.sql), kept by a trigger on the merged log, so
-- a report reads a few rows per hour however many calls the nodes made.
-- hour_us: the start of the event's UTC hour (µs). metric: 'attempt' (key = outcome,
-- sum = duration_s), 'abandoned', 'conversation' (key = business outcome), 'level'
-- (key = intention level). campaign 0 = none.
CREATE TABLE cluster_kpi_hourly (
    hour_us BIGINT NOT NULL,
    campaign BIGINT NOT NULL,
    metric TEXT NOT NULL,
    key TEXT NOT NULL,
    n BIGINT NOT NULL,
    sum DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (hour_us, campaign, metric, key)
);

-- The cells one event of the merged log adds to (none for most event types).
CREATE FUNCTION cluster_kpi_cells(at_us BIGINT, event TEXT)
RETURNS TABLE (hour_us BIGINT, campaign BIGINT, metric TEXT, key TEXT, sum DOUBLE PRECISION)
LANGUAGE sql IMMUTABLE AS $$
    SELECT (at_us / 3600000000) * 3600000000, COALESCE((e.ev->>'campaign')::bigint, 0),
           x.metric, x.key, x.sum
    FROM (SELECT event::jsonb AS ev) e,
    LATERAL (SELECT e.ev->'kind' AS k) k,
    LATERAL (VALUES
        (CASE k.k->>'type' WHEN 'attempt_ended' THEN 'attempt' WHEN 'call_abandoned' THEN 'abandoned'
                           WHEN 'conversation_ended' THEN 'conversation' END,
         CASE k.k->>'type' WHEN 'call_abandoned' THEN '' ELSE COALESCE(k.k->>'outcome', '') END,
         CASE k.k->>'type' WHEN 'attempt_ended' THEN COALESCE((k.k->>'duration_s')::float8, 0) ELSE 0 END),
        (CASE WHEN k.k->>'type' = 'conversation_ended' AND k.k->>'level' IS NOT NULL THEN 'level' END,
         k.k->>'level', 0::float8)
    ) AS x(metric, key, sum)
    WHERE x.metric IS NOT NULL
$$;

INSERT INTO cluster_kpi_hourly (hour_us, campaign, metric, key, n, sum)
SELECT c.hour_us, c.campaign, c.metric, c.key, count(*), sum(c.sum)
FROM cluster_events e, LATERAL cluster_kpi_cells(e.at_us, e.event) c
GROUP BY 1, 2, 3, 4;

CREATE FUNCTION cluster_events_kpi() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cluster_kpi_hourly AS k (hour_us, campaign, metric, key, n, sum)
    SELECT c.hour_us, c.campaign, c.metric, c.key, 1, c.sum
    FROM cluster_kpi_cells(NEW.at_us, NEW.event) c
    ON CONFLICT (hour_us, campaign, metric, key)
    DO UPDATE SET n = k.n + 1, sum = k.sum + excluded.sum;
    RETURN NULL;
END $$;
CREATE TRIGGER cluster_events_kpi AFTER INSERT ON cluster_events
    FOR EACH ROW EXECUTE FUNCTION cluster_events_kpi();
