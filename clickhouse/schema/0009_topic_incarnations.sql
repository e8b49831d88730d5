-- Topic incarnations: a topic deleted and created again under the same name is told apart.
--
-- Why: Kafka offsets start again at 0 in a re-created topic (the local broker keeps topics in
-- memory and starts empty after every restart; an operator may re-create a topic). Identified by
-- (topic, partition, offset) alone, the new messages looked like the ones landed before: their
-- inserts carried the same deduplication tokens and ClickHouse dropped them as retries, and the
-- windowed views kept a window's old update (highest offset) over its newer ones.
--
-- kafka_topic_incarnations: one row per topic ID (KIP-516) the loader has met, numbered per topic
-- in the order they were met (epoch 0, 1, 2, ...; "" is the ID of a broker without topic IDs).
-- _topic_epoch: the epoch of the incarnation each row was read from (rows landed before this
-- migration have 0, the epoch of the first ID met: against a broker that keeps its topics, the
-- same incarnation). The loader's high-water marks, identity checks and deduplication tokens are per
-- (topic, epoch, partition); a window's latest update is the one with the highest
-- (_topic_epoch, _offset).

CREATE TABLE IF NOT EXISTS kafka_topic_incarnations
(
    topic              LowCardinality(String),
    topic_id           String,
    epoch              UInt32,
    registered_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (topic, epoch);

ALTER TABLE coins_current_full ADD COLUMN IF NOT EXISTS _topic_epoch UInt32 DEFAULT 0 AFTER _topic;
ALTER TABLE coins_historical ADD COLUMN IF NOT EXISTS _topic_epoch UInt32 DEFAULT 0 AFTER _topic;
ALTER TABLE ohlc_by_minute ADD COLUMN IF NOT EXISTS _topic_epoch UInt32 DEFAULT 0 AFTER _topic;
ALTER TABLE mov_avg_60s ADD COLUMN IF NOT EXISTS _topic_epoch UInt32 DEFAULT 0 AFTER _topic;
ALTER TABLE coins_current_full_clickpipes_error ADD COLUMN IF NOT EXISTS _topic_epoch UInt32 DEFAULT 0 AFTER _topic;
ALTER TABLE coins_historical_clickpipes_error ADD COLUMN IF NOT EXISTS _topic_epoch UInt32 DEFAULT 0 AFTER _topic;
ALTER TABLE ohlc_by_minute_clickpipes_error ADD COLUMN IF NOT EXISTS _topic_epoch UInt32 DEFAULT 0 AFTER _topic;
ALTER TABLE mov_avg_60s_clickpipes_error ADD COLUMN IF NOT EXISTS _topic_epoch UInt32 DEFAULT 0 AFTER _topic;
