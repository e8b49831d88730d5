-- One row per coin and day of the daily closes (the rate at 12:00 UTC): the latest fetch of that
-- day's close (ties: the higher offset). The day is the API's own (the message's `date`, UTC),
-- never the Kafka timestamp; a (code, date) sent twice (a re-run backfill, a redelivery) is one
-- row. The whole row is picked (LIMIT 1 BY), so an unknown volume of the latest fetch stays NULL,
-- and the table's sort order (code, date, _offset) makes it a streaming pick, not an aggregation.
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
