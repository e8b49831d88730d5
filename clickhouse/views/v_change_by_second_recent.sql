-- v_change_by_second for the hour before the newest live rate (ts > newest - 1 hour, whole
-- seconds), reading only the two hours before it: a coin's previous second with a rate is
-- looked for up to one hour before the first row shown. The rows equal v_change_by_second's,
-- except previous_rate and change_pct are NULL where that previous second is older still.
CREATE OR REPLACE VIEW v_change_by_second_recent AS
WITH (SELECT toDateTime(max(fetched_at), 'UTC') FROM coins_current_full) AS newest
SELECT
    ts,
    code,
    rate,
    previous_rate,
    if(previous_rate IS NULL OR previous_rate = 0, NULL, (rate / previous_rate - 1) * 100)
        AS change_pct
FROM
(
    SELECT
        ts,
        code,
        rate,
        lagInFrame(toNullable(rate), 1) OVER (PARTITION BY code ORDER BY ts ASC
                                              ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
            AS previous_rate
    FROM v_rate_by_second
    WHERE ts > newest - INTERVAL 2 HOUR
)
WHERE ts > newest - INTERVAL 1 HOUR;
