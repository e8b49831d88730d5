-- The 1-minute candles of the ksql statement ohlc_by_minute, one row per (code, window_start).
--
-- ksqlDB's EMIT CHANGES sends one update per input record per window, and the loader lands each.
-- A window's value is its latest update: the highest (_topic_epoch, _offset), ksqlDB's processing
-- order within one incarnation of the topic (a window's key always maps to the same partition).
-- code and window_start come from the decoded key (the key without its last 8 bytes, and those 8
-- bytes big-endian), so codes of any length are kept whole. The latest update is picked as a
-- whole row (LIMIT 1 BY over the table's sort order), which streams instead of aggregating.
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
    ORDER BY code ASC, window_start ASC, _topic_epoch DESC, _offset DESC
    LIMIT 1 BY code, window_start
);
