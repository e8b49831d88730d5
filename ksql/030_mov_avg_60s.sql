-- 60-second moving average of the rate per coin: hopping windows of 60 s advancing every 30 s,
-- so each record counts in two windows. Same key/value conventions, grace and valid-record filter
-- as ohlc_by_minute.
CREATE TABLE IF NOT EXISTS mov_avg_60s
  WITH (KAFKA_TOPIC = 'mov_avg_60s', KEY_FORMAT = 'KAFKA', VALUE_FORMAT = 'JSON') AS
  SELECT coin,
         AS_VALUE(coin) AS coin_code,
         TIMESTAMPTOSTRING(WINDOWSTART, 'yyyy-MM-dd HH:mm:ss', 'UTC') AS window_start,
         AVG(rate) AS mov_avg
  FROM coins_current_stream
  WINDOW HOPPING (SIZE 60 SECONDS, ADVANCE BY 30 SECONDS, GRACE PERIOD 2 MINUTES)
  WHERE coin IS NOT NULL AND code = coin
    AND rate > 0 AND rate <= 1.7976931348623157E308
    AND fetched_at <= UNIX_TIMESTAMP() + ${max_clock_skew_ms}
  GROUP BY coin
  EMIT CHANGES;
