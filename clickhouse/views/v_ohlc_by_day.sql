-- Daily OHLC of the live rates, the day being the UTC day of the API's answer (fetched_at), not
-- the Kafka or insert time. The name is the coin's latest one.
CREATE OR REPLACE VIEW v_ohlc_by_day AS
SELECT
    toDate(c.bucket_start) AS date,
    c.code AS code,
    n.name AS name,
    c.open AS open,
    c.high AS high,
    c.low AS low,
    c.close AS close,
    c.samples AS samples
FROM v_candles_1d AS c
LEFT JOIN
(
    -- Nullable on the right side: an unmatched coin gets NULL whatever join_use_nulls says.
    SELECT code, finalizeAggregation(latest_state).name AS name
    FROM coins_latest FINAL
) AS n ON n.code = c.code;
