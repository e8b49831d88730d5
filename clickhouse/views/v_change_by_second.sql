-- Rate per coin and second (the last one of that second, v_rate_by_second), against the coin's
-- previous second with a rate. change_pct is NULL for a coin's first second and when the previous
-- rate is 0, never inf. Scans all history under its window function: charts read
-- v_change_by_second_recent instead.
CREATE OR REPLACE VIEW v_change_by_second AS
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
);
