-- The last rate of each coin in each second (UTC): of two records in one second, the later
-- fetched_at wins, and at equal fetched_at the later offset. A filter on ts reaches
-- coins_current_full's primary key (code, fetched_at), so a chart of the latest minutes does not
-- pay for the whole history.
CREATE OR REPLACE VIEW v_rate_by_second AS
SELECT
    toDateTime(fetched_at, 'UTC') AS ts,
    code,
    argMax(rate, bitShiftLeft(toInt128(toUnixTimestamp64Milli(fetched_at)), 64) + _offset) AS rate
FROM coins_current_full
GROUP BY code, ts;
