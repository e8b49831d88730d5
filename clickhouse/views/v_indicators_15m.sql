-- The indicators of the 15m candles of v_candles_15m, one row per coin and bucket.
--
-- v_indicators_1m … _1d and _daily_close are one definition over different candles: their files
-- differ only in this header, the view's name, its output columns and the one line that reads the
-- candles (tests/test_indicators.py checks it). Each view holds the whole definition instead of
-- filtering one view of every timeframe, so a read of one timeframe is analysed over that
-- timeframe's query alone (the analysis of the shared view cost more than the computation for a
-- coin).
--
-- The standard indicators, computed as TA-Lib computes them (its default settings: EMA seeded
-- with the SMA of its first period, RSI and ATR with Wilder's smoothing, Bollinger Bands with the
-- population standard deviation). A filter on code reaches the candle read.
--
-- Series: one per code, the buckets that exist, in time order. Nothing is filled or
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
--
-- Every step is a whole-array operation: window sums, minima and maxima by doubling (sums of 2,
-- 4, 8, … buckets, combined), the squared deviations of the Bollinger window by a fold over its 20
-- shifts, and the output arrays are ARRAY JOINed side by side. No lambda reads an array by index, which
-- would copy the array once per element and make a series of n buckets cost n².
CREATE OR REPLACE VIEW v_indicators_15m AS
SELECT bucket_start, code, gap_before, close, sma_7, sma_20, sma_30, sma_50, sma_200, ema_12, ema_26, ema_50, ema_200, macd, macd_signal, macd_hist, rsi_14, bb_upper, bb_middle, bb_lower, bb_percent_b, bb_bandwidth, atr_14, stoch_k, stoch_d
FROM
(
    SELECT
        code,
        t,
        c,
        j,
        step,
        has_range,
        sum7,
        sum20,
        sum30,
        sum50,
        sum200,
        mid20,
        sd20,
        y,
        n,
        slow_k,
        macd_line,
        -- The signal: EMA(9) of macd_line, seeded at index 33 with the SMA of macd_line 25 … 33.
        arrayFold(
            (acc, d) -> (arrayMap((a, sa) -> a * sa, acc.1, arrayShiftRight(acc.1, d)),
                         arrayMap((b, a, sb) -> b + a * sb, acc.2, acc.1, arrayShiftRight(acc.2, d))),
            arrayMap(p -> bitShiftLeft(toUInt64(1), p), range(toUInt64(ceil(log2(n + 1))))),
            (arrayMap(i -> if(i > 34, 0.8, 0.), j),
             arrayMap((i, m, s) -> multiIf(i > 34, 0.2 * m, i = 34, s / 9, 0.), j, macd_line,
                      macd9))).2 AS signal
    FROM
    (
        SELECT
            *,
            -- MACD: the fast EMA seeded at index 25 (the fifth recurrence) minus the slow EMA(26).
            arrayMap((i, fast, slow) -> if(i >= 26, fast - slow, 0.), j, arraySlice(y, 4 * n + 1, n),
                     arraySlice(y, n + 1, n)) AS macd_line,
            arrayMap((a, b) -> a + b, macd_line, arrayShiftRight(macd_line, 1)) AS macd2,
            arrayMap((a, b) -> a + b, macd2, arrayShiftRight(macd2, 2)) AS macd4,
            arrayMap((a, b) -> a + b, macd4, arrayShiftRight(macd4, 4)) AS macd8,
            arrayMap((a, b) -> a + b, macd8, arrayShiftRight(macd_line, 8)) AS macd9
        FROM
        (
            SELECT
                *,
                -- The recurrences, each n long, laid end to end: ema_12, ema_26, ema_50, ema_200, the
                -- MACD's fast EMA(12) seeded at index 25, RSI's average gain and average loss, ATR.
                -- (a, b) per step; a = 0 up to the seed, so no recurrence reaches into the one before.
                arrayFold(
                    (acc, d) -> (arrayMap((a, sa) -> a * sa, acc.1, arrayShiftRight(acc.1, d)),
                                 arrayMap((b, a, sb) -> b + a * sb, acc.2, acc.1, arrayShiftRight(acc.2, d))),
                    arrayMap(p -> bitShiftLeft(toUInt64(1), p), range(toUInt64(ceil(log2(n + 1))))),
                    (arrayConcat(
                         arrayMap(i -> if(i > 12, 11 / 13, 0.), j),
                         arrayMap(i -> if(i > 26, 25 / 27, 0.), j),
                         arrayMap(i -> if(i > 50, 49 / 51, 0.), j),
                         arrayMap(i -> if(i > 200, 199 / 201, 0.), j),
                         arrayMap(i -> if(i > 26, 11 / 13, 0.), j),
                         arrayMap(i -> if(i > 15, 13 / 14, 0.), j),
                         arrayMap(i -> if(i > 15, 13 / 14, 0.), j),
                         arrayMap(i -> if(i > 15, 13 / 14, 0.), j)),
                     arrayConcat(
                         arrayMap((i, x, s) -> multiIf(i > 12, 2 / 13 * x, i = 12, s / 12, 0.), j, c, sum12),
                         arrayMap((i, x, s) -> multiIf(i > 26, 2 / 27 * x, i = 26, s / 26, 0.), j, c, sum26),
                         arrayMap((i, x, s) -> multiIf(i > 50, 2 / 51 * x, i = 50, s / 50, 0.), j, c, sum50),
                         arrayMap((i, x, s) -> multiIf(i > 200, 2 / 201 * x, i = 200, s / 200, 0.), j, c, sum200),
                         -- sum12 at index 25 covers closes 14 … 25.
                         arrayMap((i, x, s) -> multiIf(i > 26, 2 / 13 * x, i = 26, s / 12, 0.), j, c, sum12),
                         arrayMap((i, x, s) -> multiIf(i > 15, x / 14, i = 15, s / 14, 0.), j, gain, gain14),
                         arrayMap((i, x, s) -> multiIf(i > 15, x / 14, i = 15, s / 14, 0.), j, loss, loss14),
                         arrayMap((i, x, s) -> multiIf(i > 15, x / 14, i = 15, s / 14, 0.), j, tr, tr14)))).2 AS y,
                arrayMap(s -> s / 20, sum20) AS mid20,
                -- Population standard deviation over 20: two passes (the mean, then the squared
                -- deviations from it); exactly 0 when the 20 closes are equal.
                arrayMap((q, lo, hi) -> if(lo = hi, 0., sqrt(q / 20)),
                         arrayFold((acc, k) -> (arrayMap((a, x, m) -> a + (x - m) * (x - m), acc.1,
                                                         arrayShiftRight(acc.2, k), acc.3), acc.2, acc.3),
                                   range(20), (arrayMap(x -> 0., c), c, mid20)).1,
                         min20, max20) AS sd20,
                -- Stochastic: fast %K over the 14-bucket lowest low and highest high, then two SMA(3).
                arrayMap((x, lo, hi) -> if(hi = lo, 0., (x - lo) / ((hi - lo) / 100)), c, low14, high14) AS fast_k,
                arrayMap((a, b, d) -> (a + b + d) / 3, fast_k, arrayShiftRight(fast_k, 1), arrayShiftRight(fast_k, 2))
                    AS slow_k
            FROM
            (
                SELECT
                    *,
                    -- Window sums by doubling: c2 = c + c shifted by 1 (sums of 2), c4 = c2 + c2 shifted
                    -- by 2, …; a window of w = sum of powers of two adds the shifted partial sums.
                    -- Shifted-in zeros only touch the first w-1 buckets, which are NULL.
                    arrayMap((a, b) -> a + b, c, arrayShiftRight(c, 1)) AS c2,
                    arrayMap((a, b) -> a + b, c2, arrayShiftRight(c2, 2)) AS c4,
                    arrayMap((a, b) -> a + b, c4, arrayShiftRight(c4, 4)) AS c8,
                    arrayMap((a, b) -> a + b, c8, arrayShiftRight(c8, 8)) AS c16,
                    arrayMap((a, b) -> a + b, c16, arrayShiftRight(c16, 16)) AS c32,
                    arrayMap((a, b) -> a + b, c32, arrayShiftRight(c32, 32)) AS c64,
                    arrayMap((a, b) -> a + b, c64, arrayShiftRight(c64, 64)) AS c128,
                    arrayMap((a, b, d) -> a + b + d, c4, arrayShiftRight(c2, 4), arrayShiftRight(c, 6)) AS sum7,
                    arrayMap((a, b) -> a + b, c8, arrayShiftRight(c4, 8)) AS sum12,
                    arrayMap((a, b) -> a + b, c16, arrayShiftRight(c4, 16)) AS sum20,
                    arrayMap((a, b, d) -> a + b + d, c16, arrayShiftRight(c8, 16), arrayShiftRight(c2, 24)) AS sum26,
                    arrayMap((a, b, d, e) -> a + b + d + e, c16, arrayShiftRight(c8, 16), arrayShiftRight(c4, 24),
                             arrayShiftRight(c2, 28)) AS sum30,
                    arrayMap((a, b, d) -> a + b + d, c32, arrayShiftRight(c16, 32), arrayShiftRight(c2, 48)) AS sum50,
                    arrayMap((a, b, d) -> a + b + d, c128, arrayShiftRight(c64, 128), arrayShiftRight(c8, 192)) AS sum200,
                    -- Sums of 14 (8 + 4 + 2) of the gains, losses and true ranges.
                    arrayMap((a, b) -> a + b, gain, arrayShiftRight(gain, 1)) AS gain2,
                    arrayMap((a, b) -> a + b, gain2, arrayShiftRight(gain2, 2)) AS gain4,
                    arrayMap((a, b) -> a + b, gain4, arrayShiftRight(gain4, 4)) AS gain8,
                    arrayMap((a, b, d) -> a + b + d, gain8, arrayShiftRight(gain4, 8), arrayShiftRight(gain2, 12)) AS gain14,
                    arrayMap((a, b) -> a + b, loss, arrayShiftRight(loss, 1)) AS loss2,
                    arrayMap((a, b) -> a + b, loss2, arrayShiftRight(loss2, 2)) AS loss4,
                    arrayMap((a, b) -> a + b, loss4, arrayShiftRight(loss4, 4)) AS loss8,
                    arrayMap((a, b, d) -> a + b + d, loss8, arrayShiftRight(loss4, 8), arrayShiftRight(loss2, 12)) AS loss14,
                    arrayMap((a, b) -> a + b, tr, arrayShiftRight(tr, 1)) AS tr2,
                    arrayMap((a, b) -> a + b, tr2, arrayShiftRight(tr2, 2)) AS tr4,
                    arrayMap((a, b) -> a + b, tr4, arrayShiftRight(tr4, 4)) AS tr8,
                    arrayMap((a, b, d) -> a + b + d, tr8, arrayShiftRight(tr4, 8), arrayShiftRight(tr2, 12)) AS tr14,
                    -- Lowest low and highest high of 14 (8 + 4 + 2), lowest and highest close of 20 (16 + 4).
                    arrayMap((a, b) -> least(a, b), l, arrayShiftRight(l, 1)) AS l2,
                    arrayMap((a, b) -> least(a, b), l2, arrayShiftRight(l2, 2)) AS l4,
                    arrayMap((a, b) -> least(a, b), l4, arrayShiftRight(l4, 4)) AS l8,
                    arrayMap((a, b, d) -> least(a, b, d), l8, arrayShiftRight(l4, 8), arrayShiftRight(l2, 12)) AS low14,
                    arrayMap((a, b) -> greatest(a, b), h, arrayShiftRight(h, 1)) AS h2,
                    arrayMap((a, b) -> greatest(a, b), h2, arrayShiftRight(h2, 2)) AS h4,
                    arrayMap((a, b) -> greatest(a, b), h4, arrayShiftRight(h4, 4)) AS h8,
                    arrayMap((a, b, d) -> greatest(a, b, d), h8, arrayShiftRight(h4, 8), arrayShiftRight(h2, 12)) AS high14,
                    arrayMap((a, b) -> least(a, b), c, arrayShiftRight(c, 1)) AS cmin2,
                    arrayMap((a, b) -> least(a, b), cmin2, arrayShiftRight(cmin2, 2)) AS cmin4,
                    arrayMap((a, b) -> least(a, b), cmin4, arrayShiftRight(cmin4, 4)) AS cmin8,
                    arrayMap((a, b) -> least(a, b), cmin8, arrayShiftRight(cmin8, 8)) AS cmin16,
                    arrayMap((a, b) -> least(a, b), cmin16, arrayShiftRight(cmin4, 16)) AS min20,
                    arrayMap((a, b) -> greatest(a, b), c, arrayShiftRight(c, 1)) AS cmax2,
                    arrayMap((a, b) -> greatest(a, b), cmax2, arrayShiftRight(cmax2, 2)) AS cmax4,
                    arrayMap((a, b) -> greatest(a, b), cmax4, arrayShiftRight(cmax4, 4)) AS cmax8,
                    arrayMap((a, b) -> greatest(a, b), cmax8, arrayShiftRight(cmax8, 8)) AS cmax16,
                    arrayMap((a, b) -> greatest(a, b), cmax16, arrayShiftRight(cmax4, 16)) AS max20
                FROM
                (
                    SELECT
                        *,
                        arrayEnumerate(c) AS j,
                        -- Changes and true range from the second bucket on (index 1 of TA-Lib's).
                        arrayMap((x, p) -> greatest(x - p, 0.), c, arrayShiftRight(c, 1)) AS gain,
                        arrayMap((x, p) -> greatest(p - x, 0.), c, arrayShiftRight(c, 1)) AS loss,
                        arrayMap((hi, lo, p) -> greatest(hi - lo, abs(p - hi), abs(p - lo)), h, l, arrayShiftRight(c, 1))
                            AS tr
                    FROM
                    (
                        SELECT
                            code,
                            any(step) AS step,
                            arraySort(x -> x.1, groupArray((bucket_start, close, high, low))) AS s,
                            length(s) AS n,
                            arrayMap(x -> x.1, s) AS t,
                            arrayMap(x -> x.2, s) AS c,
                            arrayMap(x -> ifNull(x.3, 0.), s) AS h,
                            arrayMap(x -> ifNull(x.4, 0.), s) AS l,
                            countIf(high IS NOT NULL AND low IS NOT NULL) = count() AS has_range
                        FROM
                        (
                            SELECT bucket_start, code, close, toNullable(high) AS high, toNullable(low) AS low, 900 AS step FROM v_candles_15m
                        )
                        GROUP BY code
                    )
                )
            )
        )
    )
)
ARRAY JOIN
    t AS bucket_start,
    arrayMap((i, a, b) -> CAST(i > 1 AND a - b != step AS Bool), j, t, arrayShiftRight(t, 1)) AS gap_before,
    c AS close,
    arrayMap((i, s) -> if(i >= 7, s / 7, NULL), j, sum7) AS sma_7,
    arrayMap((i, m) -> if(i >= 20, m, NULL), j, mid20) AS sma_20,
    arrayMap((i, s) -> if(i >= 30, s / 30, NULL), j, sum30) AS sma_30,
    arrayMap((i, s) -> if(i >= 50, s / 50, NULL), j, sum50) AS sma_50,
    arrayMap((i, s) -> if(i >= 200, s / 200, NULL), j, sum200) AS sma_200,
    arrayMap((i, v) -> if(i >= 12, v, NULL), j, arraySlice(y, 1, n)) AS ema_12,
    arrayMap((i, v) -> if(i >= 26, v, NULL), j, arraySlice(y, n + 1, n)) AS ema_26,
    arrayMap((i, v) -> if(i >= 50, v, NULL), j, arraySlice(y, 2 * n + 1, n)) AS ema_50,
    arrayMap((i, v) -> if(i >= 200, v, NULL), j, arraySlice(y, 3 * n + 1, n)) AS ema_200,
    arrayMap((i, m) -> if(i >= 34, m, NULL), j, macd_line) AS macd,
    arrayMap((i, s) -> if(i >= 34, s, NULL), j, signal) AS macd_signal,
    arrayMap((i, m, s) -> if(i >= 34, m - s, NULL), j, macd_line, signal) AS macd_hist,
    -- 100·gain/(gain+loss), and 0 when there was neither gain nor loss.
    arrayMap((i, g, lo) -> if(i >= 15, if(g + lo = 0, 0, 100 * (g / (g + lo))), NULL), j, arraySlice(y, 5 * n + 1, n),
             arraySlice(y, 6 * n + 1, n)) AS rsi_14,
    arrayMap((i, m, sd) -> if(i >= 20, m + 2 * sd, NULL), j, mid20, sd20) AS bb_upper,
    arrayMap((i, m) -> if(i >= 20, m, NULL), j, mid20) AS bb_middle,
    arrayMap((i, m, sd) -> if(i >= 20, m - 2 * sd, NULL), j, mid20, sd20) AS bb_lower,
    arrayMap((i, x, m, sd) -> if(i >= 20 AND sd != 0, (x - (m - 2 * sd)) / ((m + 2 * sd) - (m - 2 * sd)), NULL), j, c,
             mid20, sd20) AS bb_percent_b,
    arrayMap((i, m, sd) -> if(i >= 20 AND m != 0, ((m + 2 * sd) - (m - 2 * sd)) / m, NULL), j, mid20, sd20)
        AS bb_bandwidth,
    arrayMap((i, v) -> if(i >= 15 AND has_range, v, NULL), j, arraySlice(y, 7 * n + 1, n)) AS atr_14,
    arrayMap((i, k) -> if(i >= 18 AND has_range, k, NULL), j, slow_k) AS stoch_k,
    arrayMap((i, a, b, d) -> if(i >= 18 AND has_range, (a + b + d) / 3, NULL), j, slow_k, arrayShiftRight(slow_k, 1),
             arrayShiftRight(slow_k, 2)) AS stoch_d;
