-- Views over coins_current_full (the live rates) and its rollups (0003_rollups.sql).

-- Multi-timeframe candles: the partial states of the rollup tables merged per (code, bucket) by
-- FINAL (which ClickHouse does per key range, in parallel, and skips for already-merged parts:
-- several times faster than GROUP BY with -Merge combinators). bucket_start is UTC.
CREATE OR REPLACE VIEW v_candles_5m AS
SELECT bucket_start, code, finalizeAggregation(open_state) AS open, CAST(high_max AS Float64) AS high,
       CAST(low_min AS Float64) AS low, finalizeAggregation(close_state) AS close,
       CAST(samples_sum AS UInt64) AS samples
FROM candles_5m FINAL;

CREATE OR REPLACE VIEW v_candles_15m AS
SELECT bucket_start, code, finalizeAggregation(open_state) AS open, CAST(high_max AS Float64) AS high,
       CAST(low_min AS Float64) AS low, finalizeAggregation(close_state) AS close,
       CAST(samples_sum AS UInt64) AS samples
FROM candles_15m FINAL;

CREATE OR REPLACE VIEW v_candles_1h AS
SELECT bucket_start, code, finalizeAggregation(open_state) AS open, CAST(high_max AS Float64) AS high,
       CAST(low_min AS Float64) AS low, finalizeAggregation(close_state) AS close,
       CAST(samples_sum AS UInt64) AS samples
FROM candles_1h FINAL;

CREATE OR REPLACE VIEW v_candles_4h AS
SELECT bucket_start, code, finalizeAggregation(open_state) AS open, CAST(high_max AS Float64) AS high,
       CAST(low_min AS Float64) AS low, finalizeAggregation(close_state) AS close,
       CAST(samples_sum AS UInt64) AS samples
FROM candles_4h FINAL;

CREATE OR REPLACE VIEW v_candles_1d AS
SELECT bucket_start, code, finalizeAggregation(open_state) AS open, CAST(high_max AS Float64) AS high,
       CAST(low_min AS Float64) AS low, finalizeAggregation(close_state) AS close,
       CAST(samples_sum AS UInt64) AS samples
FROM candles_1d FINAL;

-- Daily OHLC of the live rates, the day being the UTC day of the API's answer (fetched_at), not
-- the Kafka or insert time. The name is the coin's latest one.
CREATE OR REPLACE VIEW v_ohlc_by_day AS
SELECT
    toDate(c.bucket_start) AS date,
    c.code AS code,
    n.name AS name,
    c.open AS open,
    c.high AS high,
    c.low AS low,
    c.close AS close,
    c.samples AS samples
FROM v_candles_1d AS c
LEFT JOIN
(
    -- Nullable on the right side: an unmatched coin gets NULL whatever join_use_nulls says.
    SELECT code, finalizeAggregation(latest_state).name AS name
    FROM coins_latest FINAL
) AS n ON n.code = c.code;

-- Rate per coin and second (the last one of that second), against the coin's previous second
-- with a rate. change_pct is NULL for a coin's first second and when the previous rate is 0.
CREATE OR REPLACE VIEW v_change_by_second AS
SELECT
    ts,
    code,
    rate,
    previous_rate,
    if(previous_rate IS NULL OR previous_rate = 0, NULL, (rate / previous_rate - 1) * 100)
        AS change_pct
FROM
(
    SELECT
        ts,
        code,
        last_rate AS rate,
        lagInFrame(toNullable(last_rate), 1) OVER (PARTITION BY code ORDER BY ts ASC
                                                   ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
            AS previous_rate
    FROM
    (
        SELECT code, toDateTime(fetched_at, 'UTC') AS ts,
               argMax(rate, bitShiftLeft(toInt128(toUnixTimestamp64Milli(fetched_at)), 64) + _offset) AS last_rate
        FROM coins_current_full
        GROUP BY code, ts
    )
);

-- One row per coin known from the live rates or the daily closes. A coin with live rates shows
-- its latest live record: rate, the API's own 24 h and 7 d changes ((delta - 1) * 100), the API's
-- 24 h volume, cap, fetched_at. A coin with only daily closes shows its latest close and the
-- changes against 1 and 7 calendar days earlier. Unknown is NULL. No joins of unmatched rows:
-- the two sources are stacked (UNION ALL) and the preferred one is picked per coin.
CREATE OR REPLACE VIEW overview_for_dashboard AS
SELECT
    code,
    best.1 AS name,
    best.2 AS rate,
    best.3 AS change_24h_pct,
    best.4 AS change_7d_pct,
    best.5 AS volume_24h,
    best.6 AS cap,
    best.7 AS updated_at,
    best.8 AS source
FROM
(
    SELECT
        code,
        argMax((name, rate, change_24h_pct, change_7d_pct, volume_24h, cap, updated_at, source),
               priority) AS best
    FROM
    (
        SELECT
            code,
            l.name AS name,
            l.rate AS rate,
            (l.delta_day - 1) * 100 AS change_24h_pct,
            (l.delta_week - 1) * 100 AS change_7d_pct,
            l.volume AS volume_24h,
            l.cap AS cap,
            l.fetched_at AS updated_at,
            'live' AS source,
            2 AS priority
        FROM
        (
            SELECT code, finalizeAggregation(latest_state) AS l
            FROM coins_latest FINAL
        )
        UNION ALL
        SELECT
            code,
            name,
            rate,
            change_1d_pct AS change_24h_pct,
            change_7d_pct,
            volume AS volume_24h,
            cap,
            ts AS updated_at,
            'daily' AS source,
            1 AS priority
        FROM v_change_by_day_latest
    )
    GROUP BY code
);
