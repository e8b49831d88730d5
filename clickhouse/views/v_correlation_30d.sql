-- How closely two coins move together: the Pearson correlation of their daily log returns
-- (v_volatility_daily) over the latest 30 dates on which both have one; days says how many
-- dates that was. One row per pair (code_a < code_b); NULL with fewer than 3 such dates or when
-- either coin's returns did not vary.
CREATE OR REPLACE VIEW v_correlation_30d AS
SELECT
    code_a,
    code_b,
    if(days >= 3 AND isFinite(r), r, NULL) AS correlation,
    days
FROM
(
    SELECT code_a, code_b, corrStable(return_a, return_b) AS r, count() AS days
    FROM
    (
        SELECT a.code AS code_a, b.code AS code_b, a.date AS date, a.log_return AS return_a, b.log_return AS return_b
        FROM v_volatility_daily AS a
        INNER JOIN v_volatility_daily AS b ON a.date = b.date
        WHERE a.code < b.code AND a.log_return IS NOT NULL AND b.log_return IS NOT NULL
        ORDER BY code_a ASC, code_b ASC, date DESC
        LIMIT 30 BY code_a, code_b
    )
    GROUP BY code_a, code_b
);
