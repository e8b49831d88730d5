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
