-- Landing tables: one per Kafka topic, like ClickHouse Cloud's ClickPipes (one table per topic,
-- typed columns plus Kafka metadata, bad messages to an error table).
--
-- Every table holds the message's fields as typed columns plus the Kafka metadata columns
-- `_topic, _partition, _offset, _timestamp, _key` that ClickPipes adds. The loader
-- (clickhouse/loader/) parses and validates each message; what fails goes to
-- `<table>_clickpipes_error` (0002_error_tables.sql).
--
-- Types (the reference project's type defects avoided): Float64 for every rate, volume, cap and
-- supply (never Float32); DateTime64(3, 'UTC') for every instant; LowCardinality(String) for codes;
-- arrays as arrays, never JSON strings. Nullable only where the source may say "unknown" (volume, cap and
-- supplies of small coins, meta fields): NULL is unknown, never 0.
--
-- Exactly-once (clickhouse/schema/README.md, "Exactly-once"): plain MergeTree without PARTITION
-- BY, so one insert is one part (all or nothing) and a table's rows of a partition land in offset
-- order. At assignment the loader reads max(_offset) per (_topic, _partition) from each table and
-- checks a redelivered message at or below it by identity (_offset, _timestamp, _key), skipping it
-- only if it is there; the minmax index on _offset keeps that lookup to a few granules.
-- `non_replicated_deduplication_window` makes a retried insert with the same
-- `insert_deduplication_token` a no-op, for this table and for the materialized views behind it.

-- Message contracts (the producers' side; the loader enforces them):
--
-- coins_current_full: key = code (UTF-8); value = one LiveCoinWatch /coins/map coin with
--   meta=true plus "fetched_at" (epoch ms when the API answered); record timestamp = fetched_at.
--   {"code","rate","volume","cap","liquidity","delta":{"hour","day","week","month","quarter",
--    "year"},"name","symbol","rank","age","color","png32","png64","webp32","webp64","exchanges",
--    "markets","pairs","allTimeHighUSD","circulatingSupply","totalSupply","maxSupply",
--    "categories":[…],"fetched_at"}
--   Required: code (non-empty string), rate (number >= 0), fetched_at (epoch ms).
--
-- coins_historical: key = code (UTF-8); value = one daily close of one coin:
--   {"code","date":"YYYY-MM-DD","ts":<epoch ms of 12:00 UTC that day>,"rate","volume","cap",
--    "liquidity","name","symbol", …other meta fields as above…, "fetched_at":<epoch ms>}
--   Required: code, rate (number >= 0), and the day: "date" ('YYYY-MM-DD'), else "ts" / "date_ms"
--   (epoch ms, its UTC day). "ts" defaults to 12:00 UTC of "date"; "fetched_at" to the record
--   timestamp. A re-sent (code, date) replaces the earlier one in the views (latest fetched_at,
--   then latest offset wins). For convenience a value may also be a /coins/single/history answer
--   with meta ({"code", meta…, "history":[{"date":ms,"rate",…},…]}): it lands as one row per point.
--
-- ohlc_by_minute, mov_avg_60s (ksqlDB windowed tables, EMIT CHANGES): key = code bytes followed by
--   the window start as 8 bytes big-endian epoch ms (any code length: the code is the key without
--   its last 8 bytes); value = {"OPEN","HIGH","LOW","CLOSE"} or {"MOV_AVG"} (plus "COIN_CODE",
--   "WINDOW_START" copies; field names match case-insensitively). Every update of a window is
--   landed; the views keep the latest (highest offset) per (code, window_start).

CREATE TABLE IF NOT EXISTS coins_current_full
(
    code               LowCardinality(String),
    fetched_at         DateTime64(3, 'UTC'),
    rate               Float64,
    volume             Nullable(Float64),
    cap                Nullable(Float64),
    liquidity          Nullable(Float64),
    delta_hour         Nullable(Float64),
    delta_day          Nullable(Float64),
    delta_week         Nullable(Float64),
    delta_month        Nullable(Float64),
    delta_quarter      Nullable(Float64),
    delta_year         Nullable(Float64),
    name               LowCardinality(Nullable(String)),
    symbol             LowCardinality(Nullable(String)),
    rank               Nullable(UInt32),
    age                Nullable(UInt32),
    color              LowCardinality(Nullable(String)),
    png32              LowCardinality(Nullable(String)),
    png64              LowCardinality(Nullable(String)),
    webp32             LowCardinality(Nullable(String)),
    webp64             LowCardinality(Nullable(String)),
    exchanges          Nullable(UInt32),
    markets            Nullable(UInt32),
    pairs              Nullable(UInt32),
    all_time_high_usd  Nullable(Float64),
    circulating_supply Nullable(Float64),
    total_supply       Nullable(Float64),
    max_supply         Nullable(Float64),
    categories         Array(LowCardinality(String)),
    _topic             LowCardinality(String),
    _partition         Int32,
    _offset            Int64,
    _timestamp         DateTime64(3, 'UTC'),
    _key               String,
    _loaded_at         DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX offset_minmax _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
ORDER BY (code, fetched_at, _offset)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS coins_historical
(
    code               LowCardinality(String),
    date               Date,
    ts                 DateTime64(3, 'UTC'),
    rate               Float64,
    volume             Nullable(Float64),
    cap                Nullable(Float64),
    liquidity          Nullable(Float64),
    name               LowCardinality(Nullable(String)),
    symbol             LowCardinality(Nullable(String)),
    rank               Nullable(UInt32),
    circulating_supply Nullable(Float64),
    total_supply       Nullable(Float64),
    max_supply         Nullable(Float64),
    fetched_at         DateTime64(3, 'UTC'),
    _topic             LowCardinality(String),
    _partition         Int32,
    _offset            Int64,
    _timestamp         DateTime64(3, 'UTC'),
    _key               String,
    _loaded_at         DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX offset_minmax _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
ORDER BY (code, date, _offset)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS ohlc_by_minute
(
    code               LowCardinality(String),
    window_start       DateTime64(3, 'UTC'),
    open               Float64,
    high               Float64,
    low                Float64,
    close              Float64,
    _topic             LowCardinality(String),
    _partition         Int32,
    _offset            Int64,
    _timestamp         DateTime64(3, 'UTC'),
    _key               String,
    _loaded_at         DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX offset_minmax _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
ORDER BY (code, window_start, _offset)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS mov_avg_60s
(
    code               LowCardinality(String),
    window_start       DateTime64(3, 'UTC'),
    mov_avg            Float64,
    _topic             LowCardinality(String),
    _partition         Int32,
    _offset            Int64,
    _timestamp         DateTime64(3, 'UTC'),
    _key               String,
    _loaded_at         DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX offset_minmax _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
ORDER BY (code, window_start, _offset)
SETTINGS non_replicated_deduplication_window = 10000;
