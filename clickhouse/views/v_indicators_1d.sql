-- The indicators of the 1d candles of v_candles_1d (UTC days), one row per coin and bucket: v_indicators
-- (where every definition is written out) for timeframe '1d'.
CREATE OR REPLACE VIEW v_indicators_1d AS
SELECT
    bucket_start,
    code,
    gap_before,
    close,
    sma_7,
    sma_20,
    sma_30,
    sma_50,
    sma_200,
    ema_12,
    ema_26,
    ema_50,
    ema_200,
    macd,
    macd_signal,
    macd_hist,
    rsi_14,
    bb_upper,
    bb_middle,
    bb_lower,
    bb_percent_b,
    bb_bandwidth,
    atr_14,
    stoch_k,
    stoch_d
FROM v_indicators
WHERE timeframe = '1d';
