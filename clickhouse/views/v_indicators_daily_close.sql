-- The standard indicators of the daily closes (v_hist_daily, the rate at 12:00 UTC), one row per
-- coin and date: SMA, EMA, MACD, RSI and Bollinger Bands, as TA-Lib computes them. A close has no
-- high and low, so there is no ATR or stochastic; gap_before says the previous close is not the
-- day before.
--
-- Computed by `coinstream indicators` into indicator_rows, with the definitions written out in
-- v_indicators.sql; a read returns them as of the maintainer's latest cycle.
CREATE OR REPLACE VIEW v_indicators_daily_close AS
SELECT toDate(bucket_start) AS date, code, gap_before, close, sma_7, sma_20, sma_30, sma_50, sma_200, ema_12, ema_26, ema_50, ema_200, macd, macd_signal, macd_hist, rsi_14, bb_upper, bb_middle, bb_lower, bb_percent_b, bb_bandwidth
FROM indicator_rows FINAL
WHERE timeframe = 'daily_close';
