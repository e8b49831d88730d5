-- 60-second moving average of the rate per coin: hopping windows of 60 s advancing every 30 s,
-- so each record counts in two windows. Same key/value conventions and grace as ohlc_by_minute.
CREATE TABLE IF NOT EXISTS mov_avg_60s
  WITH (KAFKA_TOPIC = 'mov_avg_60s', KEY_FORMAT = 'KAFKA', VALUE_FORMAT = 'JSON') AS
  SELECT code,
         AS_VALUE(code) AS coin_code,
         TIMESTAMPTOSTRING(WINDOWSTART, 'yyyy-MM-dd HH:mm:ss', 'UTC') AS window_start,
         AVG(rate) AS mov_avg
  FROM coins_current_stream
  WINDOW HOPPING (SIZE 60 SECONDS, ADVANCE BY 30 SECONDS, GRACE PERIOD 2 MINUTES)
  GROUP BY code
  EMIT CHANGES;
