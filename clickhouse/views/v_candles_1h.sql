-- 1-hour candles of the live rates; see v_candles_5m.
CREATE OR REPLACE VIEW v_candles_1h AS
SELECT bucket_start, code, finalizeAggregation(open_state) AS open, CAST(high_max AS Float64) AS high,
       CAST(low_min AS Float64) AS low, finalizeAggregation(close_state) AS close,
       CAST(samples_sum AS UInt64) AS samples
FROM candles_1h FINAL;
