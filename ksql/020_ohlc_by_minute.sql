-- 1-minute candles per coin: open = first rate of the minute in offset order, close = latest.
-- The windowed key is the coin code followed by the 8-byte window start; AS_VALUE copies the code
-- into the value so consumers need not decode the key. Records later than 2 minutes after the
-- window's end (in event time) are dropped. Only valid rate records count (the negation of the
-- rules in 015_coins_current_rejected.sql).
CREATE TABLE IF NOT EXISTS ohlc_by_minute
  WITH (KAFKA_TOPIC = 'ohlc_by_minute', KEY_FORMAT = 'KAFKA', VALUE_FORMAT = 'JSON') AS
  SELECT coin,
         AS_VALUE(coin) AS coin_code,
         TIMESTAMPTOSTRING(WINDOWSTART, 'yyyy-MM-dd HH:mm', 'UTC') AS window_start,
         EARLIEST_BY_OFFSET(rate) AS open,
         MAX(rate) AS high,
         MIN(rate) AS low,
         LATEST_BY_OFFSET(rate) AS close
  FROM coins_current_stream
  WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 2 MINUTES)
  WHERE coin IS NOT NULL AND code = coin
    AND rate > 0 AND rate <= 1.7976931348623157E308
    AND fetched_at <= UNIX_TIMESTAMP() + ${max_clock_skew_ms}
  GROUP BY coin
  EMIT CHANGES;
