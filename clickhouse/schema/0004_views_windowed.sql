-- Views over the ksqlDB windowed tables (ohlc_by_minute, mov_avg_60s).
--
-- ksqlDB's EMIT CHANGES sends one update per input record per window, and the loader lands every
-- one of them. A window's value is its latest update: the highest offset, which is ksqlDB's
-- processing order (a window's key, code + window start, always maps to the same partition).
-- The reference counted every update as a candle; here each (code, window_start) is one row.
-- code and window_start come from the decoded key (the key without its last 8 bytes, and those 8
-- bytes big-endian), so codes longer than 5 characters are kept whole.
-- One argMax over a tuple keeps the four prices of the same update together.

CREATE OR REPLACE VIEW v_ohlc_by_minute AS
SELECT
    toDateTime(ws, 'UTC') AS window_start,
    code,
    latest.1 AS open,
    latest.2 AS high,
    latest.3 AS low,
    latest.4 AS close
FROM
(
    SELECT
        code,
        window_start AS ws,
        argMax((open, high, low, close), _offset) AS latest
    FROM ohlc_by_minute
    GROUP BY code, ws
);

CREATE OR REPLACE VIEW v_60_sec_mov_avg AS
SELECT
    toDateTime(ws, 'UTC') AS window_start,
    code,
    latest_mov_avg AS mov_avg
FROM
(
    SELECT
        code,
        window_start AS ws,
        argMax(mov_avg, _offset) AS latest_mov_avg
    FROM mov_avg_60s
    GROUP BY code, ws
);
