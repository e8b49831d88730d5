-- The standard indicators, computed as TA-Lib computes them (its default settings: EMA seeded
-- with the SMA of its first period, RSI and ATR with Wilder's smoothing, Bollinger Bands with the
-- population standard deviation), over every timeframe at once; v_indicators_<timeframe> are this
-- view filtered to one timeframe, and that filter, like one on code, reaches the candle reads.
--
-- Series: one per (timeframe, code), the buckets that exist, in time order. Nothing is filled or
-- interpolated: an indicator runs over the rows it has, and gap_before says when the previous
-- bucket of the coin is not the adjacent one (1m … 1d candles: not one interval earlier; daily
-- closes: not the day before). A value that needs more history than the series has is NULL,
-- exactly where TA-Lib answers NaN (index = position in the series, from 0):
--   sma_N: from N-1; ema_N: from N-1, seeded with the SMA of the first N closes, then
--   ema = (1-k)·ema' + k·close with k = 2/(N+1);
--   macd, macd_signal, macd_hist (12, 26, 9): all from 33. As TA-Lib's MACD does, the fast EMA
--   starts where the slow one does (index 25, seeded with the SMA of closes 14 … 25), so macd
--   is not ema_12 - ema_26 for its first values; the signal is the EMA(9) of macd seeded with
--   the SMA of macd 25 … 33;
--   rsi_14: from 14; average gain and loss seeded with the SMA of the changes 1 … 14, then
--   Wilder's avg = (13·avg' + change)/14; 100·gain/(gain+loss), and 0 when both are 0 (a
--   constant stretch), as TA-Lib returns;
--   bb_upper/middle/lower (20, 2): from 19; middle = SMA(20), the bands ± 2 population standard
--   deviations (exactly 0 when the 20 closes are equal); bb_percent_b = (close - lower) /
--   (upper - lower), bb_bandwidth = (upper - lower) / middle, NULL where the divisor is 0;
--   atr_14 (candles only): true range from 1, ATR from 14 seeded with the SMA of TR 1 … 14, then
--   Wilder's smoothing;
--   stoch_k, stoch_d (14, 3, 3; candles only): fast %K = (close - lowest low) / ((highest high -
--   lowest low) / 100) over 14 buckets (0 when the range is 0), %K = its SMA(3), %D = the SMA(3)
--   of %K, both from 17 (TA-Lib outputs both from the same index).
--
-- ClickHouse window functions do not recurse, so each series is one array per coin. Every EMA /
-- Wilder recursion is the linear recurrence y_i = a_i·y_(i-1) + b_i (a = 0 where it is seeded),
-- solved for all of them at once by a prefix scan over the recurrences laid end to end: pass p
-- composes each step with the one 2^p earlier, so ⌈log2 n⌉ vectorised passes replace n
-- sequential steps. It adds the same terms as TA-Lib's loop in another order, so values agree to
-- rounding (well inside 1e-9 relative), not bit for bit.
CREATE OR REPLACE VIEW v_indicators AS
SELECT
    timeframe,
    code,
    t[i] AS bucket_start,
    CAST(i > 1 AND t[i] - t[i - 1] != step AS Bool) AS gap_before,
    c[i] AS close,
    if(i >= 7, arraySum(arraySlice(c, i - 6, 7)) / 7, NULL) AS sma_7,
    if(i >= 20, mid20[i], NULL) AS sma_20,
    if(i >= 30, arraySum(arraySlice(c, i - 29, 30)) / 30, NULL) AS sma_30,
    if(i >= 50, arraySum(arraySlice(c, i - 49, 50)) / 50, NULL) AS sma_50,
    if(i >= 200, arraySum(arraySlice(c, i - 199, 200)) / 200, NULL) AS sma_200,
    if(i >= 12, y[i], NULL) AS ema_12,
    if(i >= 26, y[n + i], NULL) AS ema_26,
    if(i >= 50, y[2 * n + i], NULL) AS ema_50,
    if(i >= 200, y[3 * n + i], NULL) AS ema_200,
    if(i >= 34, macd_line[i], NULL) AS macd,
    if(i >= 34, signal[i], NULL) AS macd_signal,
    if(i >= 34, macd_line[i] - signal[i], NULL) AS macd_hist,
    if(i >= 15, if(y[5 * n + i] + y[6 * n + i] = 0, 0, 100 * (y[5 * n + i] / (y[5 * n + i] + y[6 * n + i]))),
       NULL) AS rsi_14,
    if(i >= 20, mid20[i] + 2 * sd20[i], NULL) AS bb_upper,
    if(i >= 20, mid20[i], NULL) AS bb_middle,
    if(i >= 20, mid20[i] - 2 * sd20[i], NULL) AS bb_lower,
    if(i >= 20 AND sd20[i] != 0, (c[i] - bb_lower) / (bb_upper - bb_lower), NULL) AS bb_percent_b,
    if(i >= 20 AND mid20[i] != 0, (bb_upper - bb_lower) / bb_middle, NULL) AS bb_bandwidth,
    if(i >= 15 AND has_range, y[7 * n + i], NULL) AS atr_14,
    if(i >= 18 AND has_range, slow_k[i], NULL) AS stoch_k,
    if(i >= 18 AND has_range, arraySum(arraySlice(slow_k, i - 2, 3)) / 3, NULL) AS stoch_d
FROM
(
    SELECT
        timeframe,
        code,
        step,
        has_range,
        t,
        c,
        n,
        mid20,
        sd20,
        slow_k,
        y,
        -- MACD: the fast EMA seeded at index 25 (the 8th recurrence) minus the slow EMA(26).
        arrayMap(j -> if(j >= 26, y[4 * n + j] - y[n + j], 0), range(1, n + 1)) AS macd_line,
        -- Its signal: EMA(9) of macd_line seeded at index 33 with the SMA of macd_line 25 … 33.
        arrayFold(
            (acc, d) -> (arrayMap((a, sa) -> a * sa, acc.1, arrayShiftRight(acc.1, d)),
                         arrayMap((b, a, sb) -> b + a * sb, acc.2, acc.1, arrayShiftRight(acc.2, d))),
            arrayMap(p -> bitShiftLeft(toUInt64(1), p), range(toUInt64(ceil(log2(n + 1))))),
            (arrayMap(j -> if(j > 34, 0.8, 0.), range(1, n + 1)),
             arrayMap(j -> multiIf(j > 34, 0.2 * macd_line[j], j = 34, arraySum(arraySlice(macd_line, 26, 9)) / 9, 0.),
                      range(1, n + 1)))).2 AS signal
    FROM
    (
        SELECT
            timeframe,
            code,
            step,
            has_range,
            t,
            c,
            n,
            mid20,
            sd20,
            slow_k,
            -- The recurrences, each n long, laid end to end: ema_12, ema_26, ema_50, ema_200,
            -- the MACD's fast EMA(12) seeded at index 25, RSI's average gain and average loss, ATR.
            -- (a, b) per step; a = 0 up to the seed, so no recurrence reaches into the one before.
            arrayFold(
                (acc, d) -> (arrayMap((a, sa) -> a * sa, acc.1, arrayShiftRight(acc.1, d)),
                             arrayMap((b, a, sb) -> b + a * sb, acc.2, acc.1, arrayShiftRight(acc.2, d))),
                arrayMap(p -> bitShiftLeft(toUInt64(1), p), range(toUInt64(ceil(log2(n + 1))))),
                (arrayConcat(
                     arrayMap(j -> if(j > 12, 11 / 13, 0.), range(1, n + 1)),
                     arrayMap(j -> if(j > 26, 25 / 27, 0.), range(1, n + 1)),
                     arrayMap(j -> if(j > 50, 49 / 51, 0.), range(1, n + 1)),
                     arrayMap(j -> if(j > 200, 199 / 201, 0.), range(1, n + 1)),
                     arrayMap(j -> if(j > 26, 11 / 13, 0.), range(1, n + 1)),
                     arrayMap(j -> if(j > 15, 13 / 14, 0.), range(1, n + 1)),
                     arrayMap(j -> if(j > 15, 13 / 14, 0.), range(1, n + 1)),
                     arrayMap(j -> if(j > 15, 13 / 14, 0.), range(1, n + 1))),
                 arrayConcat(
                     arrayMap(j -> multiIf(j > 12, 2 / 13 * c[j], j = 12, arraySum(arraySlice(c, 1, 12)) / 12, 0.),
                              range(1, n + 1)),
                     arrayMap(j -> multiIf(j > 26, 2 / 27 * c[j], j = 26, arraySum(arraySlice(c, 1, 26)) / 26, 0.),
                              range(1, n + 1)),
                     arrayMap(j -> multiIf(j > 50, 2 / 51 * c[j], j = 50, arraySum(arraySlice(c, 1, 50)) / 50, 0.),
                              range(1, n + 1)),
                     arrayMap(j -> multiIf(j > 200, 2 / 201 * c[j], j = 200, arraySum(arraySlice(c, 1, 200)) / 200, 0.),
                              range(1, n + 1)),
                     arrayMap(j -> multiIf(j > 26, 2 / 13 * c[j], j = 26, arraySum(arraySlice(c, 15, 12)) / 12, 0.),
                              range(1, n + 1)),
                     arrayMap(j -> multiIf(j > 15, gain[j] / 14, j = 15, arraySum(arraySlice(gain, 2, 14)) / 14, 0.),
                              range(1, n + 1)),
                     arrayMap(j -> multiIf(j > 15, loss[j] / 14, j = 15, arraySum(arraySlice(loss, 2, 14)) / 14, 0.),
                              range(1, n + 1)),
                     arrayMap(j -> multiIf(j > 15, tr[j] / 14, j = 15, arraySum(arraySlice(tr, 2, 14)) / 14, 0.),
                              range(1, n + 1))))).2 AS y
        FROM
        (
            SELECT
                timeframe,
                code,
                any(step) AS step,
                arraySort(x -> x.1, groupArray((bucket_start, close, high, low))) AS s,
                length(s) AS n,
                arrayMap(x -> x.1, s) AS t,
                arrayMap(x -> x.2, s) AS c,
                arrayMap(x -> ifNull(x.3, 0.), s) AS h,
                arrayMap(x -> ifNull(x.4, 0.), s) AS l,
                countIf(high IS NOT NULL AND low IS NOT NULL) = n AS has_range,
                arrayMap(j -> if(j > 1, greatest(c[j] - c[j - 1], 0.), 0.), range(1, n + 1)) AS gain,
                arrayMap(j -> if(j > 1, greatest(c[j - 1] - c[j], 0.), 0.), range(1, n + 1)) AS loss,
                arrayMap(j -> if(j > 1, greatest(h[j] - l[j], abs(c[j - 1] - h[j]), abs(c[j - 1] - l[j])), 0.),
                         range(1, n + 1)) AS tr,
                arrayMap(j -> if(j >= 20, arraySum(arraySlice(c, j - 19, 20)) / 20, 0.), range(1, n + 1)) AS mid20,
                arrayMap(j -> if(j >= 20,
                                 if(arrayMin(arraySlice(c, j - 19, 20)) = arrayMax(arraySlice(c, j - 19, 20)), 0.,
                                    sqrt(arraySum(x -> (x - mid20[j]) * (x - mid20[j]), arraySlice(c, j - 19, 20)) / 20)),
                                 0.),
                         range(1, n + 1)) AS sd20,
                arrayMap(j -> if(j >= 14,
                                 if(arrayMax(arraySlice(h, j - 13, 14)) = arrayMin(arraySlice(l, j - 13, 14)), 0.,
                                    (c[j] - arrayMin(arraySlice(l, j - 13, 14)))
                                    / ((arrayMax(arraySlice(h, j - 13, 14)) - arrayMin(arraySlice(l, j - 13, 14))) / 100)),
                                 0.),
                         range(1, n + 1)) AS fast_k,
                arrayMap(j -> if(j >= 16, arraySum(arraySlice(fast_k, j - 2, 3)) / 3, 0.), range(1, n + 1)) AS slow_k
            FROM
            (
                SELECT '1m' AS timeframe, window_start AS bucket_start, code, close,
                       toNullable(high) AS high, toNullable(low) AS low, 60 AS step
                FROM v_ohlc_by_minute
                UNION ALL
                SELECT '5m', bucket_start, code, close, toNullable(high), toNullable(low), 300 FROM v_candles_5m
                UNION ALL
                SELECT '15m', bucket_start, code, close, toNullable(high), toNullable(low), 900 FROM v_candles_15m
                UNION ALL
                SELECT '1h', bucket_start, code, close, toNullable(high), toNullable(low), 3600 FROM v_candles_1h
                UNION ALL
                SELECT '4h', bucket_start, code, close, toNullable(high), toNullable(low), 14400 FROM v_candles_4h
                UNION ALL
                SELECT '1d', bucket_start, code, close, toNullable(high), toNullable(low), 86400 FROM v_candles_1d
                UNION ALL
                SELECT 'daily_close', toDateTime(date, 'UTC'), code, rate, NULL, NULL, 86400 FROM v_hist_daily
            )
            GROUP BY timeframe, code
        )
    )
)
ARRAY JOIN arrayEnumerate(c) AS i;
