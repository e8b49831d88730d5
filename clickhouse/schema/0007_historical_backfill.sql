-- The historical producer's own state (producers/historical): which daily closes it has
-- published, which it could not (gaps, with the reason), and the credits it spent per UTC day.
-- Written by the producer (`coinstream backfill`, `coinstream produce historical`), not the loader.
--
-- Why ClickHouse and not a file or a Kafka topic: the state must outlive the producer's container
-- and the local broker (Tansu keeps topics in memory only: a restart loses them, and a watermark
-- kept there would vanish with them), and ClickHouse is where the closes land anyway, so
-- `--reconcile` can compare "published" with "landed". With a real, replicated Kafka a compacted
-- topic would also do; this store works for both.
--
-- hist_backfill_progress: one row per (topic, code, date) once it is settled — outcome
-- 'delivered' is written only after the broker acknowledged the message (its partition and offset
-- are kept), 'gap' when the API had no usable close (reason says why). A (code, date) without a
-- row is requested by the next run, so a failed or killed run never skips a date; a row is never
-- requested again (except gaps with --retry-gaps), so a re-run does not re-publish. The rare
-- re-publish after a kill between the broker's acknowledgement and this row is harmless: the key
-- is the code, and v_hist_daily keeps one close per (code, date). ReplacingMergeTree by
-- recorded_at: a later outcome (a retried gap that is now delivered) replaces the earlier one;
-- readers use argMax so unmerged parts never matter.
CREATE TABLE IF NOT EXISTS hist_backfill_progress
(
    topic              LowCardinality(String),
    code               LowCardinality(String),
    date               Date,
    outcome            Enum8('delivered' = 1, 'gap' = 2),
    reason             String,
    kafka_partition    Int32,
    kafka_offset       Int64,
    credits            UInt32,
    run_id             String,
    recorded_at        DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY (topic, code, date);

-- hist_backfill_credits: the backfill's share of the daily credit budget (HISTORICAL_DAILY_CREDITS)
-- as a ledger per UTC day. A run reserves credits in small blocks *before* spending them (a
-- positive row) and gives back what it did not use when it ends (a negative row), so even a killed
-- run can never let the backfills of one day spend more than the share. sum(credits) per day is
-- what the share has used.
CREATE TABLE IF NOT EXISTS hist_backfill_credits
(
    day                Date,
    credits            Int32,
    run_id             String,
    recorded_at        DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
ORDER BY (day, recorded_at);
