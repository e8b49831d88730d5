-- The standard indicators of every timeframe (1m, 5m, 15m, 1h, 4h, 1d and daily_close), one row
-- per timeframe, coin and bucket, for readers that break the series out by timeframe (the
-- dashboard's indicator cards). v_indicators_<timeframe> are the same rows, one timeframe each.
--
-- The values are computed by `coinstream indicators` (clickhouse/indicators/, started by
-- `coinstream up`) and kept in indicator_rows (schema 0010): an EMA depends on the coin's whole
-- series, so computing it at read time cost hundreds of milliseconds per read. Every insert into
-- the candles marks the series to recompute; a read returns the values as of the maintainer's
-- latest cycle (a few seconds behind the candles while it runs).
--
-- Definitions (TA-Lib's defaults; index = position in the coin's series, from 0; NULL exactly
-- where TA-Lib answers NaN, never a partial figure):
--   sma_N: from N-1; ema_N: from N-1, seeded with the SMA of the first N closes, then
--   ema = (1-k)·ema' + k·close with k = 2/(N+1);
--   macd, macd_signal, macd_hist (12, 26, 9): all from 33. As TA-Lib's MACD does, the fast EMA
--   starts where the slow one does (index 25, seeded with the SMA of closes 14 … 25), so macd
--   is not ema_12 - ema_26 for its first values; the signal is the EMA(9) of macd seeded with
--   the SMA of macd 25 … 33;
--   rsi_14: from 14; average gain and loss seeded with the SMA of the changes 1 … 14, then
--   Wilder's avg = (13·avg' + change)/14; 100·gain/(gain+loss), and 0 when both are 0;
--   bb_upper/middle/lower (20, 2): from 19; middle = SMA(20), the bands ± 2 population standard
--   deviations (exactly 0 when the 20 closes are equal); bb_percent_b = (close - lower) /
--   (upper - lower), bb_bandwidth = (upper - lower) / middle, NULL where the divisor is 0;
--   atr_14 (candles only): ATR from 14, seeded with the SMA of the true ranges 1 … 14, then
--   Wilder's smoothing;
--   stoch_k, stoch_d (14, 3, 3; candles only): fast %K = (close - lowest low) / ((highest high -
--   lowest low) / 100) over 14 buckets (0 when the range is 0), %K = its SMA(3), %D = the SMA(3)
--   of %K, both from 17.
-- The series is the buckets that exist, in time order: nothing is filled or interpolated, and
-- gap_before says when the previous bucket of the coin is not the adjacent one.
CREATE OR REPLACE VIEW v_indicators AS
SELECT timeframe, code, bucket_start, gap_before, close, sma_7, sma_20, sma_30, sma_50, sma_200, ema_12, ema_26, ema_50, ema_200, macd, macd_signal, macd_hist, rsi_14, bb_upper, bb_middle, bb_lower, bb_percent_b, bb_bandwidth,
       atr_14, stoch_k, stoch_d
FROM indicator_rows FINAL;
