-- The standard indicators of the 5-minute candles (v_candles_5m), one row per coin and bucket: SMA, EMA,
-- MACD, RSI, Bollinger Bands, ATR and the stochastic, as TA-Lib computes them.
--
-- Computed by `coinstream indicators` into indicator_rows, with the definitions written out in
-- v_indicators.sql; a read returns them as of the maintainer's latest cycle.
CREATE OR REPLACE VIEW v_indicators_5m AS
SELECT bucket_start, code, gap_before, close, sma_7, sma_20, sma_30, sma_50, sma_200, ema_12, ema_26, ema_50, ema_200, macd, macd_signal, macd_hist, rsi_14, bb_upper, bb_middle, bb_lower, bb_percent_b, bb_bandwidth,
       atr_14, stoch_k, stoch_d
FROM indicator_rows FINAL
WHERE timeframe = '5m';
