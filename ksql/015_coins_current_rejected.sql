-- Live rate records that are not valid, with the reason: the engine's side of the one definition
-- of a valid rate (the loader and the producer apply the same rules, common/rate_validity.py,
-- and give the same reasons). The first failing rule is the reason:
--   the Kafka key is not the record's code;
--   the rate is not a finite number greater than 0 (NaN and null included: NOT (NaN > 0) holds);
--   fetched_at is missing;
--   fetched_at is ahead of the wall clock by more than ${max_clock_skew_ms} (the setting
--   RATE_MAX_CLOCK_SKEW_MS, substituted by `coinstream ksql run` and sent by `ksql apply` as a
--   session variable).
-- The aggregates (020, 030) keep exactly the records this statement leaves out: their WHERE is
-- the negation of this one (tests compare the two on every rule).
CREATE STREAM IF NOT EXISTS coins_current_rejected
  WITH (KAFKA_TOPIC = 'coins_current_rejected', KEY_FORMAT = 'KAFKA', VALUE_FORMAT = 'JSON') AS
  SELECT coin,
         code,
         rate,
         fetched_at,
         CASE
           WHEN coin IS NULL OR code IS NULL OR code <> coin
             THEN 'key mismatch: the Kafka key is not the record''s code'
           WHEN rate IS NULL OR NOT (rate > 0 AND rate <= 1.7976931348623157E308)
             THEN 'bad rate: not a finite number greater than 0'
           WHEN fetched_at IS NULL
             THEN 'bad fetched_at: missing'
           WHEN fetched_at > UNIX_TIMESTAMP() + ${max_clock_skew_ms}
             THEN 'future fetched_at: ahead of the wall clock by more than the allowed clock skew'
         END AS reason
  FROM coins_current_stream
  WHERE coin IS NULL OR code IS NULL OR code <> coin
     OR rate IS NULL OR NOT (rate > 0 AND rate <= 1.7976931348623157E308)
     OR fetched_at IS NULL OR fetched_at > UNIX_TIMESTAMP() + ${max_clock_skew_ms}
  EMIT CHANGES;
