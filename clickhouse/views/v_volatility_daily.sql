-- Realised volatility of the daily closes, by calendar dates, not row counts.
-- log_return on date d is ln(close_d / close_(d-1)) when both closes exist (and are above 0),
-- else NULL: a missing day breaks the chain instead of stretching a return over two days.
-- volatility_Nd on d is the sample standard deviation (n - 1) of the log returns dated
-- d-N+1 … d, annualised by √365 (crypto trades every day); NULL with fewer than 3 of them.
CREATE OR REPLACE VIEW v_volatility_daily AS
SELECT
    date,
    code,
    log_return,
    if(count(log_return) OVER w7 >= 3, stddevSampStable(log_return) OVER w7 * sqrt(365), NULL) AS volatility_7d,
    if(count(log_return) OVER w30 >= 3, stddevSampStable(log_return) OVER w30 * sqrt(365), NULL) AS volatility_30d,
    if(count(log_return) OVER w90 >= 3, stddevSampStable(log_return) OVER w90 * sqrt(365), NULL) AS volatility_90d
FROM
(
    SELECT
        date,
        code,
        if(rate_1d_before > 0 AND rate > 0, ln(rate / rate_1d_before), NULL) AS log_return
    FROM
    (
        SELECT
            date,
            code,
            rate,
            any(toNullable(rate)) OVER (PARTITION BY code ORDER BY date ASC
                                        RANGE BETWEEN 1 PRECEDING AND 1 PRECEDING) AS rate_1d_before
        FROM v_hist_daily
    )
)
WINDOW
    w7 AS (PARTITION BY code ORDER BY date ASC RANGE BETWEEN 6 PRECEDING AND CURRENT ROW),
    w30 AS (PARTITION BY code ORDER BY date ASC RANGE BETWEEN 29 PRECEDING AND CURRENT ROW),
    w90 AS (PARTITION BY code ORDER BY date ASC RANGE BETWEEN 89 PRECEDING AND CURRENT ROW);
