-- The 60-second hopping moving average (advance 30 s) of the ksql statement mov_avg_60s, one row
-- per (code, window_start): the window's latest update, picked as in v_ohlc_by_minute.
CREATE OR REPLACE VIEW v_60_sec_mov_avg AS
SELECT
    toDateTime(window_start, 'UTC') AS window_start,
    code,
    mov_avg
FROM
(
    SELECT code, window_start, mov_avg
    FROM mov_avg_60s
    ORDER BY code ASC, window_start ASC, _topic_epoch DESC, _offset DESC
    LIMIT 1 BY code, window_start
);
