-- The settled outcome of every (topic, code, date): the latest row wins.
CREATE OR REPLACE VIEW v_hist_backfill_state AS
SELECT
    topic,
    code,
    date,
    latest.1 AS outcome,
    latest.2 AS reason,
    latest.3 AS credits,
    latest.4 AS run_id,
    latest.5 AS recorded_at
FROM
(
    SELECT
        topic,
        code,
        date,
        argMax((outcome, reason, credits, run_id, recorded_at), recorded_at) AS latest
    FROM hist_backfill_progress
    GROUP BY topic, code, date
);
