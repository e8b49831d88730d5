-- Views over coins_historical: one daily close (the rate at 12:00 UTC) per coin and day.
--
-- Fixes of the reference project's defects: the day is the API's own day (the message's
-- `date`, UTC), never the Kafka timestamp; a (code, date) sent twice (a re-run backfill, a
-- redelivery) is one row, the latest fetch; moving averages and changes are over calendar dates
-- (window frames with RANGE over the date), so gaps and duplicates cannot shift them; a change
-- against a missing or zero earlier rate is NULL, never 0 or inf.

-- One row per coin and day: the latest fetch of that day's close (ties: the higher offset). The
-- whole row is picked (LIMIT 1 BY), so an unknown volume of the latest fetch stays NULL, and the
-- table's sort order (code, date, _offset) makes it a streaming pick rather than an aggregation.
CREATE OR REPLACE VIEW v_hist_daily AS
SELECT
    date,
    code,
    rate,
    volume,
    cap,
    liquidity,
    CAST(name AS Nullable(String)) AS name,
    ts
FROM coins_historical
ORDER BY code ASC, date ASC, fetched_at DESC, _offset DESC
LIMIT 1 BY code, date;

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

-- Each coin's latest day, with the same changes as v_change_by_day (against the closes exactly 1
-- and 7 calendar days earlier), plus the day's name, volume, cap and ts for the overview.
-- Computed per coin from the array of its days rather than with window functions over every day:
-- dashboards read this on each refresh, and it stays a few milliseconds for years of history.
CREATE OR REPLACE VIEW v_change_by_day_latest AS
SELECT
    code,
    last_date AS date,
    days[index_last].2 AS rate,
    if(rate_1d_before IS NULL OR rate_1d_before = 0, NULL, (rate / rate_1d_before - 1) * 100)
        AS change_1d_pct,
    if(rate_7d_before IS NULL OR rate_7d_before = 0, NULL, (rate / rate_7d_before - 1) * 100)
        AS change_7d_pct,
    days[index_last].3 AS name,
    days[index_last].4 AS volume,
    days[index_last].5 AS cap,
    days[index_last].6 AS ts
FROM
(
    SELECT
        code,
        last_date,
        days,
        arrayFirstIndex(day -> day.1 = last_date, days) AS index_last,
        arrayFirstIndex(day -> day.1 = last_date - 1, days) AS index_1d,
        arrayFirstIndex(day -> day.1 = last_date - 7, days) AS index_7d,
        if(index_1d = 0, NULL, days[index_1d].2) AS rate_1d_before,
        if(index_7d = 0, NULL, days[index_7d].2) AS rate_7d_before
    FROM
    (
        SELECT code, max(date) AS last_date, groupArray((date, rate, name, volume, cap, ts)) AS days
        FROM v_hist_daily
        GROUP BY code
    )
);
