-- Views over the ksqlDB windowed tables (ohlc_by_minute, mov_avg_60s).
--
-- ksqlDB's EMIT CHANGES sends one update per input record per window, and the loader lands every
-- one of them. A window's value is its latest update: the highest offset, which is ksqlDB's
-- processing order (a window's key, code + window start, always maps to the same partition).
-- The reference counted every update as a candle; here each (code, window_start) is one row.
-- code and window_start come from the decoded key (the key without its last 8 bytes, and those 8
-- bytes big-endian), so codes longer than 5 characters are kept whole.
-- The latest update is picked as a whole row (LIMIT 1 BY over the table's own sort order
-- code, window_start, _offset), which streams instead of aggregating every update.

CREATE OR REPLACE VIEW v_ohlc_by_minute AS
SELECT
    toDateTime(window_start, 'UTC') AS window_start,
    code,
    open,
    high,
    low,
    close
FROM
(
    SELECT code, window_start, open, high, low, close
    FROM ohlc_by_minute
    ORDER BY code ASC, window_start ASC, _offset DESC
    LIMIT 1 BY code, window_start
);

CREATE OR REPLACE VIEW v_60_sec_mov_avg AS
SELECT
    toDateTime(window_start, 'UTC') AS window_start,
    code,
    mov_avg
FROM
(
    SELECT code, window_start, mov_avg
    FROM mov_avg_60s
    ORDER BY code ASC, window_start ASC, _offset DESC
    LIMIT 1 BY code, window_start
);
