-- The average close over the thirty calendar days ending on `date` (date-29 … date) that have
-- data; the rules of v_10_day_mov_avg, over a longer window.
CREATE OR REPLACE VIEW v_30_day_mov_avg AS
SELECT
    date,
    code,
    rate,
    avg(rate) OVER (PARTITION BY code ORDER BY date ASC RANGE BETWEEN 29 PRECEDING AND CURRENT ROW) AS mov_avg_30d
FROM v_hist_daily;
