-- The per-coin watermark: every day from first_date to watermark is settled (delivered or gap),
-- next_date is the first day after it that is not. A backfill resumes from the settled set
-- itself, so a hole below the watermark (a gap retried, a reconcile) is requested as well.
CREATE OR REPLACE VIEW v_hist_watermark AS
SELECT
    topic,
    code,
    min(date) AS first_date,
    maxIf(date, contiguous) AS watermark,
    watermark + 1 AS next_date,
    max(date) AS last_date,
    countIf(outcome = 'delivered') AS days_delivered,
    countIf(outcome = 'gap') AS days_gap
FROM
(
    SELECT
        topic,
        code,
        date,
        outcome,
        dateDiff('day', min(date) OVER w, date) + 1 = row_number() OVER w AS contiguous
    FROM v_hist_backfill_state
    WINDOW w AS (PARTITION BY topic, code ORDER BY date ASC
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
GROUP BY topic, code;
