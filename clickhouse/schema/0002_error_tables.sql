-- Error tables: ClickPipes' `<table>_clickpipes_error`, one per landing table.
--
-- A message that cannot land (not UTF-8 JSON, not an object, missing code, non-numeric or
-- negative rate, a bad windowed key, a tombstone, oversized, ...) is kept here with where it came
-- from, its raw bytes and the reason, so nothing is dropped silently and the loader never stops
-- for bad input. `_raw` holds the message value as received (an oversized one: its first
-- 64 KiB, and the reason says so). Exactly-once as for the landing tables: the loader's
-- high-water mark per (_topic, _partition) is read from this table too.

CREATE TABLE IF NOT EXISTS coins_current_full_clickpipes_error
(
    _topic             LowCardinality(String),
    _partition         Int32,
    _offset            Int64,
    _timestamp         Nullable(DateTime64(3, 'UTC')),
    _key               Nullable(String),
    _raw               String,
    reason             String,
    _loaded_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (_topic, _partition, _offset)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS coins_historical_clickpipes_error
(
    _topic             LowCardinality(String),
    _partition         Int32,
    _offset            Int64,
    _timestamp         Nullable(DateTime64(3, 'UTC')),
    _key               Nullable(String),
    _raw               String,
    reason             String,
    _loaded_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (_topic, _partition, _offset)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS ohlc_by_minute_clickpipes_error
(
    _topic             LowCardinality(String),
    _partition         Int32,
    _offset            Int64,
    _timestamp         Nullable(DateTime64(3, 'UTC')),
    _key               Nullable(String),
    _raw               String,
    reason             String,
    _loaded_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (_topic, _partition, _offset)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS mov_avg_60s_clickpipes_error
(
    _topic             LowCardinality(String),
    _partition         Int32,
    _offset            Int64,
    _timestamp         Nullable(DateTime64(3, 'UTC')),
    _key               Nullable(String),
    _raw               String,
    reason             String,
    _loaded_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (_topic, _partition, _offset)
SETTINGS non_replicated_deduplication_window = 10000;
