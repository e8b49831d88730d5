-- How far each daily close is below the coin's peak, by calendar dates.
-- peak: the highest close up to and including `date` (all history); drawdown_pct = (rate / peak
-- - 1) · 100, 0 at a new peak, NULL while the peak is 0. max_drawdown_Nd_pct: the deepest
-- peak-to-trough fall within the N calendar days date-N+1 … date (the peak and the trough both
-- inside that window, the peak before or on the trough's day): the minimum over the window's closes
-- of (close / highest earlier-or-same close in the window - 1) · 100; 0 when nothing fell.
CREATE OR REPLACE VIEW v_drawdown_daily AS
SELECT
    date,
    code,
    rate,
    peak,
    if(peak > 0, (rate / peak - 1) * 100, NULL) AS drawdown_pct,
    arrayFold((acc, r) -> (greatest(acc.1, r), least(acc.2, if(greatest(acc.1, r) > 0, r / greatest(acc.1, r) - 1, 0.))),
              closes_30d, (0., 0.)).2 * 100 AS max_drawdown_30d_pct,
    arrayFold((acc, r) -> (greatest(acc.1, r), least(acc.2, if(greatest(acc.1, r) > 0, r / greatest(acc.1, r) - 1, 0.))),
              closes_365d, (0., 0.)).2 * 100 AS max_drawdown_365d_pct
FROM
(
    SELECT
        date,
        code,
        rate,
        max(rate) OVER (PARTITION BY code ORDER BY date ASC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS peak,
        groupArray(rate) OVER (PARTITION BY code ORDER BY date ASC RANGE BETWEEN 29 PRECEDING AND CURRENT ROW)
            AS closes_30d,
        groupArray(rate) OVER (PARTITION BY code ORDER BY date ASC RANGE BETWEEN 364 PRECEDING AND CURRENT ROW)
            AS closes_365d
    FROM v_hist_daily
);
