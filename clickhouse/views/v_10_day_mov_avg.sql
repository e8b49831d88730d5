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
