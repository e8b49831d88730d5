-- Per-second rates, and the latest hour of per-second changes for the live charts.
--
-- Why: v_change_by_second (0006) runs a window function over every live rate ever landed, and a
-- filter on its ts cannot be pushed below the window function, so a chart of the latest minutes
-- paid for the whole history (1.8 s for 100 coins at 5M rows, growing with every day the stack
-- runs). The per-second last rate now has a view of its own, v_rate_by_second; a filter on its
-- ts reaches coins_current_full's primary key (code, fetched_at). v_change_by_second is rebuilt
-- over it with the same columns and rows, and v_change_by_second_recent bounds both sides of
-- the window function by time.

-- The last rate of each coin in each second (UTC): of two records in one second, the later
-- fetched_at wins, and at equal fetched_at the later offset.
CREATE OR REPLACE VIEW v_rate_by_second AS
SELECT
    toDateTime(fetched_at, 'UTC') AS ts,
    code,
    argMax(rate, bitShiftLeft(toInt128(toUnixTimestamp64Milli(fetched_at)), 64) + _offset) AS rate
FROM coins_current_full
GROUP BY code, ts;

-- As defined in 0006, over v_rate_by_second.
CREATE OR REPLACE VIEW v_change_by_second AS
SELECT
    ts,
    code,
    rate,
    previous_rate,
    if(previous_rate IS NULL OR previous_rate = 0, NULL, (rate / previous_rate - 1) * 100)
        AS change_pct
FROM
(
    SELECT
        ts,
        code,
        rate,
        lagInFrame(toNullable(rate), 1) OVER (PARTITION BY code ORDER BY ts ASC
                                              ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
            AS previous_rate
    FROM v_rate_by_second
);

-- v_change_by_second for the hour before the newest live rate (ts > newest - 1 hour, whole
-- seconds), reading only the two hours before it: a coin's previous second with a rate is
-- looked for up to one hour before the first row shown. The rows equal v_change_by_second's,
-- except previous_rate and change_pct are NULL where that previous second is older still.
CREATE OR REPLACE VIEW v_change_by_second_recent AS
WITH (SELECT toDateTime(max(fetched_at), 'UTC') FROM coins_current_full) AS newest
SELECT
    ts,
    code,
    rate,
    previous_rate,
    if(previous_rate IS NULL OR previous_rate = 0, NULL, (rate / previous_rate - 1) * 100)
        AS change_pct
FROM
(
    SELECT
        ts,
        code,
        rate,
        lagInFrame(toNullable(rate), 1) OVER (PARTITION BY code ORDER BY ts ASC
                                              ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
            AS previous_rate
    FROM v_rate_by_second
    WHERE ts > newest - INTERVAL 2 HOUR
)
WHERE ts > newest - INTERVAL 1 HOUR;
