-- Incremental rollups of coins_current_full, maintained by materialized views on every insert.
--
-- Why: the dashboards read a year of 1-minute rates for 100 coins (~52M rows). Candles and the
-- latest state per coin are aggregated once, at insert, into AggregatingMergeTree tables, so a
-- read merges a few thousand partial states instead of scanning the raw rows.
--
-- Candles: open = the rate with the smallest (fetched_at, _offset) in the bucket, close = the one
-- with the largest (argMin/argMaxState, deterministic on ties), high/low = max/min, samples = the
-- number of rates. The pair (fetched_at, _offset) is packed into one Int128,
-- fetched_at_ms * 2^64 + _offset, which orders the same way but lets argMin/argMax use their
-- fixed-size fast path: merging tuple-keyed states is about 5x slower. Buckets are aligned to the epoch in UTC by the API's own time (fetched_at),
-- never by Kafka or insert time.
--
-- Exactly-once: an MV fires on every insert into its source, so a duplicate insert would double
-- `samples`. The loader never re-inserts a row it already landed (high-water mark per partition,
-- clickhouse/schema/README.md), and a retried insert carries the same insert_deduplication_token: with
-- non_replicated_deduplication_window on the source and on these targets (and
-- deduplicate_blocks_in_dependent_materialized_views, on by default in ClickHouse 26), the retried
-- block is dropped before and behind the MVs. open/high/low/close and coins_latest are idempotent
-- anyway (argMin/argMax/min/max of a repeated row do not change).
--
-- The MVs see only rows inserted after they exist: apply this file before loading.

CREATE TABLE IF NOT EXISTS candles_5m
(
    code               LowCardinality(String),
    bucket_start       DateTime('UTC'),
    open_state         AggregateFunction(argMin, Float64, Int128),
    high_max           SimpleAggregateFunction(max, Float64),
    low_min            SimpleAggregateFunction(min, Float64),
    close_state        AggregateFunction(argMax, Float64, Int128),
    samples_sum        SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (code, bucket_start)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS candles_5m_mv TO candles_5m AS
SELECT
    code,
    toStartOfInterval(toDateTime(fetched_at, 'UTC'), INTERVAL 5 MINUTE) AS bucket_start,
    argMinState(rate, bitShiftLeft(toInt128(toUnixTimestamp64Milli(fetched_at)), 64) + _offset) AS open_state,
    max(rate) AS high_max,
    min(rate) AS low_min,
    argMaxState(rate, bitShiftLeft(toInt128(toUnixTimestamp64Milli(fetched_at)), 64) + _offset) AS close_state,
    count() AS samples_sum
FROM coins_current_full
GROUP BY code, bucket_start;

CREATE TABLE IF NOT EXISTS candles_15m
(
    code               LowCardinality(String),
    bucket_start       DateTime('UTC'),
    open_state         AggregateFunction(argMin, Float64, Int128),
    high_max           SimpleAggregateFunction(max, Float64),
    low_min            SimpleAggregateFunction(min, Float64),
    close_state        AggregateFunction(argMax, Float64, Int128),
    samples_sum        SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (code, bucket_start)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS candles_15m_mv TO candles_15m AS
SELECT
    code,
    toStartOfInterval(toDateTime(fetched_at, 'UTC'), INTERVAL 15 MINUTE) AS bucket_start,
    argMinState(rate, bitShiftLeft(toInt128(toUnixTimestamp64Milli(fetched_at)), 64) + _offset) AS open_state,
    max(rate) AS high_max,
    min(rate) AS low_min,
    argMaxState(rate, bitShiftLeft(toInt128(toUnixTimestamp64Milli(fetched_at)), 64) + _offset) AS close_state,
    count() AS samples_sum
FROM coins_current_full
GROUP BY code, bucket_start;

CREATE TABLE IF NOT EXISTS candles_1h
(
    code               LowCardinality(String),
    bucket_start       DateTime('UTC'),
    open_state         AggregateFunction(argMin, Float64, Int128),
    high_max           SimpleAggregateFunction(max, Float64),
    low_min            SimpleAggregateFunction(min, Float64),
    close_state        AggregateFunction(argMax, Float64, Int128),
    samples_sum        SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (code, bucket_start)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS candles_1h_mv TO candles_1h AS
SELECT
    code,
    toStartOfHour(toDateTime(fetched_at, 'UTC')) AS bucket_start,
    argMinState(rate, bitShiftLeft(toInt128(toUnixTimestamp64Milli(fetched_at)), 64) + _offset) AS open_state,
    max(rate) AS high_max,
    min(rate) AS low_min,
    argMaxState(rate, bitShiftLeft(toInt128(toUnixTimestamp64Milli(fetched_at)), 64) + _offset) AS close_state,
    count() AS samples_sum
FROM coins_current_full
GROUP BY code, bucket_start;

CREATE TABLE IF NOT EXISTS candles_4h
(
    code               LowCardinality(String),
    bucket_start       DateTime('UTC'),
    open_state         AggregateFunction(argMin, Float64, Int128),
    high_max           SimpleAggregateFunction(max, Float64),
    low_min            SimpleAggregateFunction(min, Float64),
    close_state        AggregateFunction(argMax, Float64, Int128),
    samples_sum        SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (code, bucket_start)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS candles_4h_mv TO candles_4h AS
SELECT
    code,
    toStartOfInterval(toDateTime(fetched_at, 'UTC'), INTERVAL 4 HOUR) AS bucket_start,
    argMinState(rate, bitShiftLeft(toInt128(toUnixTimestamp64Milli(fetched_at)), 64) + _offset) AS open_state,
    max(rate) AS high_max,
    min(rate) AS low_min,
    argMaxState(rate, bitShiftLeft(toInt128(toUnixTimestamp64Milli(fetched_at)), 64) + _offset) AS close_state,
    count() AS samples_sum
FROM coins_current_full
GROUP BY code, bucket_start;

CREATE TABLE IF NOT EXISTS candles_1d
(
    code               LowCardinality(String),
    bucket_start       DateTime('UTC'),
    open_state         AggregateFunction(argMin, Float64, Int128),
    high_max           SimpleAggregateFunction(max, Float64),
    low_min            SimpleAggregateFunction(min, Float64),
    close_state        AggregateFunction(argMax, Float64, Int128),
    samples_sum        SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (code, bucket_start)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS candles_1d_mv TO candles_1d AS
SELECT
    code,
    toStartOfDay(toDateTime(fetched_at, 'UTC')) AS bucket_start,
    argMinState(rate, bitShiftLeft(toInt128(toUnixTimestamp64Milli(fetched_at)), 64) + _offset) AS open_state,
    max(rate) AS high_max,
    min(rate) AS low_min,
    argMaxState(rate, bitShiftLeft(toInt128(toUnixTimestamp64Milli(fetched_at)), 64) + _offset) AS close_state,
    count() AS samples_sum
FROM coins_current_full
GROUP BY code, bucket_start;

-- The latest record of each coin (for overview_for_dashboard and the names in v_ohlc_by_day).
-- One argMax over a tuple, not one per field: argMax skips a NULL value, and "the latest volume is
-- unknown" must stay NULL rather than fall back to an older volume.
CREATE TABLE IF NOT EXISTS coins_latest
(
    code               LowCardinality(String),
    latest_state       AggregateFunction(argMax,
                           Tuple(name Nullable(String), rate Float64, volume Nullable(Float64),
                                 cap Nullable(Float64), delta_day Nullable(Float64),
                                 delta_week Nullable(Float64), fetched_at DateTime64(3, 'UTC')),
                           Int128)
)
ENGINE = AggregatingMergeTree
ORDER BY code
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS coins_latest_mv TO coins_latest AS
SELECT
    code,
    argMaxState(
        CAST((name, rate, volume, cap, delta_day, delta_week, fetched_at) AS
             Tuple(name Nullable(String), rate Float64, volume Nullable(Float64), cap Nullable(Float64),
                   delta_day Nullable(Float64), delta_week Nullable(Float64),
                   fetched_at DateTime64(3, 'UTC'))),
        bitShiftLeft(toInt128(toUnixTimestamp64Milli(fetched_at)), 64) + _offset) AS latest_state
FROM coins_current_full
GROUP BY code;
