-- Each coin's latest indicators per timeframe: the row of its last bucket, as v_indicators has it.
-- One row per (timeframe, code) in indicator_latest, written by the maintainer with the rows, so
-- "the latest values of every coin" reads a row per coin instead of every bucket of every coin.
CREATE OR REPLACE VIEW v_indicators_latest AS
SELECT timeframe, code, bucket_start, gap_before, close, sma_7, sma_20, sma_30, sma_50, sma_200, ema_12, ema_26, ema_50, ema_200, macd, macd_signal, macd_hist, rsi_14, bb_upper, bb_middle, bb_lower, bb_percent_b, bb_bandwidth,
       atr_14, stoch_k, stoch_d
FROM indicator_latest FINAL;
