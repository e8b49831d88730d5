-- The indicator store: the technical indicators of every coin's candles, kept current by
-- `coinstream indicators` (clickhouse/indicators/), read by the v_indicators* views.
--
-- Why stored: an EMA, MACD, RSI or ATR value depends on the coin's whole series (each is a
-- recurrence over every earlier bucket). Computed at read time, a chart of one coin's year of
-- hourly indicators cost ~150 ms and the latest values of 100 coins ~650 ms, most of it planning a
-- query of hundreds of array expressions and recomputing every series from its first bucket. Kept
-- here, a coin's year is one range of the primary key and the latest values are one row each.
--
-- indicator_rows: one row per (timeframe, code, bucket_start), the candle it was computed from
-- (close, high, low; NULL high and low for the daily closes), the indicators (NULL where the series
-- is too short, as TA-Lib gives NaN), and the state of the recurrences after the bucket (its
-- position in the series, the EMAs, MACD's fast EMA and signal, Wilder's average gain, loss and
-- true range; NaN until seeded), from which the next buckets are computed without the history.
-- A recomputation inserts the rows again with a later computed_at: ReplacingMergeTree keeps the
-- latest, and readers use FINAL.
--
-- indicator_latest: each (timeframe, code)'s last row as computed, for "the latest values of every
-- coin" without reading every bucket; the maintainer writes it with the rows.
--
-- indicator_cycles: the start of each completed maintenance cycle; a maintainer starting again reads
-- the marks from the last one on (minus a margin), so nothing marked while it was down is missed.
--
-- indicator_dirty: where the candles changed. Every insert into a candle source (ohlc_by_minute for
-- 1m, candles_5m … candles_1d, coins_historical for the daily closes), whether by the loader, a
-- rollup's materialized view or a backfill, marks the earliest bucket it touched per code; the
-- maintainer recomputes each marked series from there. Marks expire after 7 days (a maintainer
-- down longer rebuilds what it cannot vouch for: see clickhouse/indicators/maintainer.py).

CREATE TABLE IF NOT EXISTS indicator_rows
(
    timeframe            LowCardinality(String),
    code                 LowCardinality(String),
    bucket_start         DateTime('UTC'),
    gap_before           Bool,
    close                Float64,
    high                 Nullable(Float64),
    low                  Nullable(Float64),
    sma_7                Nullable(Float64),
    sma_20               Nullable(Float64),
    sma_30               Nullable(Float64),
    sma_50               Nullable(Float64),
    sma_200              Nullable(Float64),
    ema_12               Nullable(Float64),
    ema_26               Nullable(Float64),
    ema_50               Nullable(Float64),
    ema_200              Nullable(Float64),
    macd                 Nullable(Float64),
    macd_signal          Nullable(Float64),
    macd_hist            Nullable(Float64),
    rsi_14               Nullable(Float64),
    bb_upper             Nullable(Float64),
    bb_middle            Nullable(Float64),
    bb_lower             Nullable(Float64),
    bb_percent_b         Nullable(Float64),
    bb_bandwidth         Nullable(Float64),
    atr_14               Nullable(Float64),
    stoch_k              Nullable(Float64),
    stoch_d              Nullable(Float64),
    position             UInt32,
    state_ema_12         Float64,
    state_ema_26         Float64,
    state_ema_50         Float64,
    state_ema_200        Float64,
    state_macd_fast      Float64,
    state_macd_signal    Float64,
    state_avg_gain       Float64,
    state_avg_loss       Float64,
    state_atr            Float64,
    computed_at          DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (timeframe, code, bucket_start)
-- A cycle that does not find a series' last buckets in its memory (after a restart, or for a late
-- change) reads a few hundred rows of each of many series: small granules and compression blocks
-- keep that from decompressing megabytes per series (measured: 200 -> 80 ms for 100 series).
SETTINGS index_granularity = 1024, min_compress_block_size = 4096, max_compress_block_size = 16384;

CREATE TABLE IF NOT EXISTS indicator_latest
(
    timeframe            LowCardinality(String),
    code                 LowCardinality(String),
    bucket_start         DateTime('UTC'),
    gap_before           Bool,
    close                Float64,
    sma_7                Nullable(Float64),
    sma_20               Nullable(Float64),
    sma_30               Nullable(Float64),
    sma_50               Nullable(Float64),
    sma_200              Nullable(Float64),
    ema_12               Nullable(Float64),
    ema_26               Nullable(Float64),
    ema_50               Nullable(Float64),
    ema_200              Nullable(Float64),
    macd                 Nullable(Float64),
    macd_signal          Nullable(Float64),
    macd_hist            Nullable(Float64),
    rsi_14               Nullable(Float64),
    bb_upper             Nullable(Float64),
    bb_middle            Nullable(Float64),
    bb_lower             Nullable(Float64),
    bb_percent_b         Nullable(Float64),
    bb_bandwidth         Nullable(Float64),
    atr_14               Nullable(Float64),
    stoch_k              Nullable(Float64),
    stoch_d              Nullable(Float64),
    computed_at          DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (timeframe, code);

CREATE TABLE IF NOT EXISTS indicator_dirty
(
    timeframe          LowCardinality(String),
    code               LowCardinality(String),
    since              DateTime('UTC'),
    marked_at          DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY marked_at
TTL toDateTime(marked_at) + INTERVAL 7 DAY;

CREATE TABLE IF NOT EXISTS indicator_cycles
(
    cycle_start        DateTime64(3, 'UTC'),
    buckets            UInt64,
    finished_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY cycle_start
TTL toDateTime(finished_at) + INTERVAL 7 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS indicator_dirty_1m_mv TO indicator_dirty AS
SELECT '1m' AS timeframe, code, toDateTime(min(window_start), 'UTC') AS since
FROM ohlc_by_minute
GROUP BY code;

CREATE MATERIALIZED VIEW IF NOT EXISTS indicator_dirty_5m_mv TO indicator_dirty AS
SELECT '5m' AS timeframe, code, min(bucket_start) AS since
FROM candles_5m
GROUP BY code;

CREATE MATERIALIZED VIEW IF NOT EXISTS indicator_dirty_15m_mv TO indicator_dirty AS
SELECT '15m' AS timeframe, code, min(bucket_start) AS since
FROM candles_15m
GROUP BY code;

CREATE MATERIALIZED VIEW IF NOT EXISTS indicator_dirty_1h_mv TO indicator_dirty AS
SELECT '1h' AS timeframe, code, min(bucket_start) AS since
FROM candles_1h
GROUP BY code;

CREATE MATERIALIZED VIEW IF NOT EXISTS indicator_dirty_4h_mv TO indicator_dirty AS
SELECT '4h' AS timeframe, code, min(bucket_start) AS since
FROM candles_4h
GROUP BY code;

CREATE MATERIALIZED VIEW IF NOT EXISTS indicator_dirty_1d_mv TO indicator_dirty AS
SELECT '1d' AS timeframe, code, min(bucket_start) AS since
FROM candles_1d
GROUP BY code;

CREATE MATERIALIZED VIEW IF NOT EXISTS indicator_dirty_daily_close_mv TO indicator_dirty AS
SELECT 'daily_close' AS timeframe, code, toDateTime(min(date), 'UTC') AS since
FROM coins_historical
GROUP BY code;
