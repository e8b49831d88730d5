-- Each coin's return over calendar periods, from its latest daily close (the latest in the data,
-- never the wall clock, so the answer only changes when data does).
-- rate/updated_at: the latest close and its time (12:00 UTC of its day). return_Nd_pct = (rate /
-- the close exactly N calendar days before the latest close's date - 1) · 100, NULL when that day
-- has no close (or its close is 0); return_ytd_pct: against the last close dated in the previous
-- calendar year (the latest year's first day counts from there), NULL when that year has none.
-- ath: the highest daily close; pct_from_ath = (latest_rate / ath - 1) · 100.
CREATE OR REPLACE VIEW v_performance AS
SELECT
    code,
    latest_rate AS rate,
    updated_at,
    if(close_1d > 0, (latest_rate / close_1d - 1) * 100, NULL) AS return_1d_pct,
    if(close_7d > 0, (latest_rate / close_7d - 1) * 100, NULL) AS return_7d_pct,
    if(close_30d > 0, (latest_rate / close_30d - 1) * 100, NULL) AS return_30d_pct,
    if(close_90d > 0, (latest_rate / close_90d - 1) * 100, NULL) AS return_90d_pct,
    if(close_365d > 0, (latest_rate / close_365d - 1) * 100, NULL) AS return_365d_pct,
    if(close_ytd > 0, (latest_rate / close_ytd - 1) * 100, NULL) AS return_ytd_pct,
    ath,
    if(ath > 0, (latest_rate / ath - 1) * 100, NULL) AS pct_from_ath
FROM
(
    SELECT
        code,
        argMax(rate, date) AS latest_rate,
        argMax(ts, date) AS updated_at,
        anyIf(toNullable(rate), date = latest - 1) AS close_1d,
        anyIf(toNullable(rate), date = latest - 7) AS close_7d,
        anyIf(toNullable(rate), date = latest - 30) AS close_30d,
        anyIf(toNullable(rate), date = latest - 90) AS close_90d,
        anyIf(toNullable(rate), date = latest - 365) AS close_365d,
        argMaxIf(toNullable(rate), date, toYear(date) = toYear(latest) - 1) AS close_ytd,
        max(rate) AS ath
    FROM
    (
        SELECT code, date, rate, ts, max(date) OVER (PARTITION BY code) AS latest
        FROM v_hist_daily
    )
    GROUP BY code
);
