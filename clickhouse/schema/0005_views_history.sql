-- Views over coins_historical: one daily close (the rate at 12:00 UTC) per coin and day.
--
-- Fixes of the reference's defects (DESIGN §5): the day is the API's own day (the message's
-- `date`, UTC), never the Kafka timestamp; a (code, date) sent twice (a re-run backfill, a
-- redelivery) is one row, the latest fetch; moving averages and changes are over calendar dates
-- (window frames with RANGE over the date), so gaps and duplicates cannot shift them; a change
-- against a missing or zero earlier rate is NULL, never 0 or inf.

-- One row per coin and day: the latest fetch of that day's close. One argMax over a tuple, because
-- argMax skips NULL values and an unknown volume must stay NULL.
CREATE OR REPLACE VIEW v_hist_daily AS
SELECT
    d AS date,
    code,
    latest.1 AS rate,
    latest.2 AS volume,
    latest.3 AS cap,
    latest.4 AS liquidity,
    latest.5 AS name,
    latest.6 AS ts
FROM
(
    SELECT
        code,
        date AS d,
        argMax((rate, volume, cap, liquidity, CAST(name AS Nullable(String)), ts),
               (fetched_at, _offset)) AS latest
    FROM coins_historical
    GROUP BY code, d
);

-- The average close over the ten calendar days ending on `date` (date-9 … date) that have data;
-- days_with_data says how many there were.
CREATE OR REPLACE VIEW v_10_day_mov_avg AS
SELECT
    date,
    code,
    rate,
    avg(rate) OVER w AS mov_avg_10d,
    count() OVER w AS days_with_data
FROM v_hist_daily
WINDOW w AS (PARTITION BY code ORDER BY date ASC RANGE BETWEEN 9 PRECEDING AND CURRENT ROW);

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

-- Each coin's latest day.
CREATE OR REPLACE VIEW v_change_by_day_latest AS
SELECT code, date, rate, change_1d_pct, change_7d_pct
FROM v_change_by_day
ORDER BY code ASC, date DESC
LIMIT 1 BY code;
