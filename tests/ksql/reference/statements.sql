-- The reference project's two statements, verbatim, over the project's stream definition.
-- They format WINDOWSTART without a time zone, i.e. in the process's zone: run with TZ=UTC.
CREATE STREAM coins_current_stream (
  code VARCHAR KEY,
  rate DOUBLE,
  fetched_at BIGINT
) WITH (KAFKA_TOPIC='coins_current_full', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON', TIMESTAMP='fetched_at');

CREATE TABLE ohlc_by_minute AS SELECT code, AS_VALUE(code) AS coin_code, TIMESTAMPTOSTRING(WINDOWSTART, 'yyyy-MM-dd HH:mm') AS window_start, EARLIEST_BY_OFFSET(rate) AS open, MAX(rate) AS high, MIN(rate) AS low, LATEST_BY_OFFSET(rate) AS close FROM coins_current_stream WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY code EMIT CHANGES;
CREATE TABLE 60_sec_mov_avg AS SELECT code, AS_VALUE(code) AS coin_code, TIMESTAMPTOSTRING(WINDOWSTART, 'yyyy-MM-dd HH:mm:ss') AS window_start, AVG(rate) AS mov_avg FROM coins_current_stream WINDOW HOPPING (SIZE 60 SECONDS, ADVANCE BY 30 SECONDS) GROUP BY code EMIT CHANGES;
