-- Change against the close exactly 1 and 7 calendar days earlier (NULL when that day has no
-- close or its close is 0).
CREATE OR REPLACE VIEW v_change_by_day AS
SELECT
    date,
    code,
    rate,
    if(rate_1d_before IS NULL OR rate_1d_before = 0, NULL, (rate / rate_1d_before - 1) * 100)
        AS change_1d_pct,
    if(rate_7d_before IS NULL OR rate_7d_before = 0, NULL, (rate / rate_7d_before - 1) * 100)
        AS change_7d_pct,
    rate_1d_before,
    rate_7d_before
FROM
(
    SELECT
        date,
        code,
        rate,
        any(toNullable(rate)) OVER (PARTITION BY code ORDER BY date ASC
                                    RANGE BETWEEN 1 PRECEDING AND 1 PRECEDING) AS rate_1d_before,
        any(toNullable(rate)) OVER (PARTITION BY code ORDER BY date ASC
                                    RANGE BETWEEN 7 PRECEDING AND 7 PRECEDING) AS rate_7d_before
    FROM v_hist_daily
);
