-- The live rates as a stream: one record per coin per poll, keyed by the coin code (UTF-8).
-- Value: the LiveCoinWatch /coins/map coin object (with meta) plus fetched_at (epoch ms), which
-- is the event time (ROWTIME) of every record. The key column is `coin`; `code` is the value's own
-- field: a valid record has both equal (015_coins_current_rejected.sql).
--
-- Queries on this stream read it from the earliest offset: the local engine always does, and
-- `coinstream ksql apply` sends "ksql.streams.auto.offset.reset": "earliest" to a ksqlDB server.
-- Struct fields are back-quoted because HOUR/DAY/MONTH/YEAR are ksqlDB keywords.
CREATE STREAM IF NOT EXISTS coins_current_stream (
  coin VARCHAR KEY,
  code VARCHAR,
  rate DOUBLE,
  volume DOUBLE,
  cap DOUBLE,
  liquidity DOUBLE,
  delta STRUCT<`hour` DOUBLE, `day` DOUBLE, `week` DOUBLE, `month` DOUBLE, `quarter` DOUBLE, `year` DOUBLE>,
  name VARCHAR,
  symbol VARCHAR,
  `rank` INTEGER,
  age INTEGER,
  color VARCHAR,
  png32 VARCHAR,
  png64 VARCHAR,
  webp32 VARCHAR,
  webp64 VARCHAR,
  exchanges INTEGER,
  markets INTEGER,
  pairs INTEGER,
  allTimeHighUSD DOUBLE,
  circulatingSupply DOUBLE,
  totalSupply DOUBLE,
  maxSupply DOUBLE,
  categories ARRAY<VARCHAR>,
  fetched_at BIGINT
) WITH (
  KAFKA_TOPIC = 'coins_current_full',
  KEY_FORMAT = 'KAFKA',
  VALUE_FORMAT = 'JSON',
  TIMESTAMP = 'fetched_at'
);
