-- Multi-timeframe candles of the live rates: the partial states of the rollup table candles_5m
-- (fed by a materialized view on coins_current_full) merged per (code, bucket) by FINAL, which
-- ClickHouse does per key range, in parallel, skipping already-merged parts: several times faster
-- than GROUP BY with -Merge combinators. bucket_start is UTC; open/close are the rates with the
-- smallest/largest (fetched_at, _offset).
CREATE OR REPLACE VIEW v_candles_5m AS
SELECT bucket_start, code, finalizeAggregation(open_state) AS open, CAST(high_max AS Float64) AS high,
       CAST(low_min AS Float64) AS low, finalizeAggregation(close_state) AS close,
       CAST(samples_sum AS UInt64) AS samples
FROM candles_5m FINAL;
