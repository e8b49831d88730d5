"""The ClickPipes-style loader: Kafka consumer group -> batches -> ClickHouse -> commit.

The loop: consume; parse each message into its landing table's rows, or an error-table row with
the reason; when the batch is big enough (`batch_rows` messages) or old enough (`batch_ms`),
hand it to the insert worker (`pipeline.BatchWorker`), which inserts one block per table through
clickhouse-connect and only then commits the offsets, while the next batch is being consumed.

Exactly-once on top of at-least-once delivery (clickhouse/schema/README.md, "Exactly-once"):
- every message is read as part of one incarnation of its topic (`incarnations.TopicIncarnations`:
  the topic ID, numbered per topic), so a topic re-created under the same name, whose offsets
  start again at 0, is landed as new messages and not taken for the old ones;
- a message already in ClickHouse is skipped (`landed.LandedIndex`: high-water mark per table,
  incarnation and partition read at assignment, identity check below it), so redelivery after a
  crash, a re-read by a new consumer group, or batches cut differently than the first time never
  double a row nor a candle;
- each insert carries a deduplication token from its incarnations and offset ranges, so a retried
  insert that had in fact succeeded is dropped by ClickHouse together with the materialized views
  behind it.

Stopping (`request_stop`, SIGTERM in the CLI) finishes the current batch (insert + commit) and
leaves the group cleanly.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from coinstream.clickhouse.loader.batch import Batch, TableBatch, dedup_token
from coinstream.clickhouse.loader.formats import ERROR_COLUMNS, FORMATS, RateRules, Row, TableFormat, error_row, parse
from coinstream.clickhouse.loader.incarnations import TopicIncarnations
from coinstream.clickhouse.loader.landed import LandedIndex
from coinstream.clickhouse.loader.metrics import LoaderMetrics
from coinstream.clickhouse.loader.pipeline import BatchWorker
from coinstream.clickhouse.loader.records import Record
from coinstream.clickhouse.loader.sink import ClickHouseSink, InsertAborted
from coinstream.clickhouse.loader.validation import Rejected
from coinstream.common.kafka_config import connection_config
from coinstream.common.kafka_lag import consumer_lag
from coinstream.common.kafka_topics import topic_ids
from coinstream.common.rate_validity import DEFAULT_MAX_CLOCK_SKEW_MS
from coinstream.common.settings import setting_default
from coinstream.common.testing_hooks import hook_value

log = logging.getLogger(__name__)

DEFAULT_GROUP = "coinstream-clickhouse-loader"
# The table whose producer publishes records again after a broker forgot them; its rows start with
# (code, fetched_at), which identify a rate whatever its offset.
REPLAYABLE_TABLE = "coins_current_full"
# The longest a consume call blocks: the loop also commits landed offsets and reports between calls.
MAX_CONSUME_WAIT_S = 0.5


def _report_unexpected(records: list[Record], table: str) -> None:
    """Messages at or below a mark but in neither table: one line per partition (then landed)."""
    by_partition: dict[tuple[str, int, int], list[int]] = {}
    for record in records:
        by_partition.setdefault((record.topic, record.topic_epoch, record.partition), []).append(record.offset)
    for (topic, epoch, partition), offsets in by_partition.items():
        log.warning(
            "%s[%d] (epoch %d): %d message(s) at offsets %d..%d are at or below the landed "
            "high-water mark but in neither %s nor its counterpart: landing them",
            topic,
            partition,
            epoch,
            len(offsets),
            min(offsets),
            max(offsets),
            table,
        )


def _counterpart(table: str) -> str:
    """The error table of a landing table, and the landing table of an error table."""
    suffix = "_clickpipes_error"
    return table[: -len(suffix)] if table.endswith(suffix) else table + suffix


@dataclass
class LoaderConfig:
    """What to load and how big the batches are. Topic names are `topic_prefix` + table name."""

    tables: tuple[str, ...] = tuple(FORMATS)
    topic_prefix: str = ""
    batch_rows: int = 20_000
    batch_ms: int = setting_default("loader_batch_ms")
    max_message_bytes: int = 1_048_576
    # How far a live rate's fetched_at may be ahead of the wall clock / its Kafka timestamp.
    max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS
    report_interval_s: float = 10.0
    # Stop once nothing arrived for this long and nothing is pending (None = run until stopped).
    stop_when_idle_s: float | None = None
    # The `loader.pause-after-insert` test hook: sleep after the inserts, before the commit.
    pause_after_insert_s: float = field(default_factory=lambda: float(hook_value("loader.pause-after-insert") or 0))

    def formats_by_topic(self) -> dict[str, TableFormat]:
        unknown = [table for table in self.tables if table not in FORMATS]
        if unknown:
            raise ValueError(f"unknown table(s) {', '.join(unknown)}; known: {', '.join(FORMATS)}")
        return {self.topic_prefix + table: FORMATS[table] for table in self.tables}


@dataclass
class _Progress:
    last_message_at: float = field(default_factory=time.monotonic)
    last_report_at: float = field(default_factory=time.monotonic)
    assigned: bool = False


class Loader:
    """One consumer in the loader's group, writing through one clickhouse-connect client."""

    def __init__(
        self,
        consumer_conf: dict[str, Any],
        clickhouse_client: Any,
        config: LoaderConfig | None = None,
        metrics: LoaderMetrics | None = None,
        describe_topics: Callable[[list[str]], dict[str, str]] | None = None,
    ) -> None:
        self.config = config or LoaderConfig()
        self._formats = self.config.formats_by_topic()
        self._consumer_conf = dict(consumer_conf)
        self._stop = False
        self.metrics = metrics or LoaderMetrics()
        self._sink = ClickHouseSink(clickhouse_client, should_stop=lambda: self._stop)
        self._landed = LandedIndex(clickhouse_client)
        self._incarnations = TopicIncarnations(clickhouse_client, describe_topics or self._describe_topics)
        self._admin: AdminClient | None = None
        # (topic, partition) -> the offset the next message is expected at; a smaller one means the
        # partition was read again from an earlier point: possibly a re-created topic.
        self._expected: dict[tuple[str, int], int] = {}
        self._batch = Batch()
        self._consumer: Consumer | None = None
        self._worker: BatchWorker[Batch] | None = None
        # Offsets of landed batches, committed by the consuming thread (`_commit_landed`).
        self._to_commit: dict[tuple[str, int], int] = {}
        self._to_commit_lock = threading.Lock()
        self._progress = _Progress()
        self._rules = RateRules(self.config.max_clock_skew_ms)

    # ---- control ------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the current batch, commit, leave the group (safe from a signal handler)."""
        self._stop = True

    @property
    def assigned(self) -> bool:
        """True once the group gave this loader its partitions (and their marks are loaded)."""
        return self._progress.assigned

    @property
    def tables(self) -> list[str]:
        names = []
        for spec in self._formats.values():
            names += [spec.table, spec.error_table]
        return list(dict.fromkeys(names))

    def run(self) -> None:
        """Consume until `request_stop` (or idle, if configured); always leaves the group."""
        # A batch allocates tens of thousands of short-lived, cycle-free containers (decoded JSON,
        # rows); with the default gen-0 threshold of 700 the cyclic collector rescans them
        # constantly and doubles the parsing cost. Reference counting frees them anyway.
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], 100_000), *thresholds[1:])
        try:
            self._run()
        finally:
            gc.set_threshold(*thresholds)

    def _run(self) -> None:
        consumer = Consumer(self._consumer_conf)
        self._consumer = consumer
        self._worker = BatchWorker(self._land)
        consumer.subscribe(
            list(self._formats), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        log.info("loader: consuming %s in group %s", ", ".join(self._formats), self._consumer_conf.get("group.id"))
        try:
            while not self._stop:
                self._step(consumer)
                self._worker.raise_if_failed()
            self._flush()
            self._worker.wait_idle()
        except InsertAborted as error:
            log.warning("loader: %s; the uncommitted batches will be redelivered", error)
            self._batch = Batch()
        finally:
            self._commit_landed()
            self._report(consumer)
            consumer.close()  # leaves the group (on_revoke finds nothing left to land)
            self._worker.close()
            self._consumer = None
            log.info("loader: stopped")

    def _running_worker(self) -> BatchWorker[Batch]:
        """The insert worker of the running loader (set by `_run`)."""
        if self._worker is None:
            raise RuntimeError("loader: no insert worker; the loader is not running")
        return self._worker

    def _running_consumer(self) -> Consumer:
        """The Kafka consumer of the running loader (set by `_run`)."""
        if self._consumer is None:
            raise RuntimeError("loader: no Kafka consumer; the loader is not running")
        return self._consumer

    # ---- the loop -----------------------------------------------------------------------------

    def _step(self, consumer: Consumer) -> None:
        config = self.config
        if not len(self._batch):
            # `consume` returns when `room` messages have come or the wait is over, so a message that
            # arrives early in the wait is held until its end: an empty batch's clock starts with the
            # wait, which is then at most `batch_ms` (no message waits longer than that to be inserted).
            self._batch.started = time.monotonic()
        wait = max(0.0, min(MAX_CONSUME_WAIT_S, config.batch_ms / 1000 - self._batch.age_s()))
        room = max(1, min(5_000, config.batch_rows - len(self._batch)))
        self._commit_landed()
        messages = consumer.consume(num_messages=room, timeout=wait)
        now = time.monotonic()
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("loader: consumer error: %s", error)
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if topic is None or partition is None or offset is None:  # only set on error messages
                raise RuntimeError(
                    f"loader: the consumer returned a message without a position ({topic}[{partition}]@{offset})"
                )
            where = (topic, partition)
            if offset < self._expected.get(where, 0):
                self._check_incarnation(topic)
            self._expected[where] = offset + 1
            self._add(Record.from_message(message, self._incarnations.epoch(topic)))
        if messages:
            self._progress.last_message_at = now
        if len(self._batch) and (
            len(self._batch) >= config.batch_rows or self._batch.age_s() >= config.batch_ms / 1000
        ):
            self._flush()
        if now - self._progress.last_report_at >= config.report_interval_s:
            self._report(consumer)
        if (
            config.stop_when_idle_s is not None
            and self._progress.assigned
            and not len(self._batch)
            and now - self._progress.last_message_at >= config.stop_when_idle_s
        ):
            log.info("loader: idle for %.1fs, stopping", config.stop_when_idle_s)
            self._stop = True

    def _add(self, record: Record) -> None:
        spec = self._formats[record.topic]
        try:
            rows = parse(spec, record, self.config.max_message_bytes, self._rules)
            table, columns = spec.table, spec.columns
        except Rejected as rejected:
            rows = [error_row(record, rejected.reason)]
            table, columns = spec.error_table, ERROR_COLUMNS
        # A message lands in its table or its error table; which one may differ on a redelivery
        # (the validity of a live rate depends on the wall clock), so both are looked at.
        check = record.offset <= max(
            self._landed.high_water(spec.table, record), self._landed.high_water(spec.error_table, record)
        )
        self._batch.add(table, columns, record, rows, check)

    def _describe_topics(self, topics: list[str]) -> dict[str, str]:
        if self._admin is None:
            self._admin = AdminClient(connection_config(self._consumer_conf))
        return topic_ids(self._admin, topics)

    def _check_incarnation(self, topic: str) -> None:
        """A partition went back to an earlier offset: if its topic was re-created meanwhile, land
        what was read of the old incarnation, then read on under the new one's epoch and marks."""
        self._flush()
        self._running_worker().wait_idle()
        if topic in self._incarnations.refresh([topic]):
            assigned = [(tp.topic, tp.partition) for tp in self._running_consumer().assignment() if tp.topic == topic]
            self._landed.forget(assigned)
            self._landed.load(self.tables, assigned, {topic: self._incarnations.epoch(topic)})

    def _flush(self) -> None:
        """Hand the batch to the insert worker (after the previous one has landed)."""
        if not len(self._batch):
            return
        batch, self._batch = self._batch, Batch()
        self._running_worker().submit(batch)

    def _land(self, batch: Batch) -> None:
        """On the worker: insert the batch (one block per table), then commit its offsets."""
        started = time.monotonic()
        for part in batch.tables.values():
            to_check = part.to_check()
            skip: set[tuple[str, int, int]] = set()
            if to_check:
                for table in (part.table, _counterpart(part.table)):
                    skip |= self._landed.landed(
                        table, [r for r in to_check if (r.topic, r.partition, r.offset) not in skip]
                    )
                _report_unexpected([r for r in to_check if (r.topic, r.partition, r.offset) not in skip], part.table)
            skip |= self._replays_already_landed(part)
            records = [
                record for record, _, _ in part.entries if (record.topic, record.partition, record.offset) not in skip
            ]
            rows = part.rows(skip)
            self._sink.insert(part.table, part.columns, rows, dedup_token(part.table, records))
            for record, _, _ in part.entries:
                self._landed.advance(part.table, record)
            self._count(part.table, rows, len(skip))
        self.metrics.insert_seconds.observe(time.monotonic() - started)
        if self.config.pause_after_insert_s:
            log.info(
                "loader: batch inserted, pausing %.1fs before the commit (fault injection)",
                self.config.pause_after_insert_s,
            )
            time.sleep(self.config.pause_after_insert_s)
        # The consuming thread commits them: a synchronous commit from this thread blocks while a
        # rebalance is in progress, and the rebalance callbacks wait for this thread (a deadlock,
        # seen when a restarted loader joined the group while a killed member was still in it).
        with self._to_commit_lock:
            self._to_commit.update(batch.next_offsets)
        self.metrics.batches.inc()

    def _replays_already_landed(self, part: TableBatch) -> set[tuple[str, int, int]]:
        """Replayed live rates (a replay header, common.kafka_topics) that ClickHouse, or this batch, already holds under
        their (code, fetched_at): the producer published them again after the broker forgot them,
        and most had landed before. Other tables get no replays."""
        if part.table != REPLAYABLE_TABLE:
            return set()
        replayed = [(record, rows) for record, rows, _ in part.entries if record.replayed and rows]
        if not replayed:
            return set()
        present = self._landed.landed_rates(part.table, {(rows[0][0], rows[0][1]) for _, rows in replayed})
        seen_in_batch = {(rows[0][0], rows[0][1]) for record, rows, _ in part.entries if not record.replayed and rows}
        skip: set[tuple[str, int, int]] = set()
        for record, rows in replayed:
            rate = (rows[0][0], rows[0][1])
            if rate in present or rate in seen_in_batch:
                skip.add((record.topic, record.partition, record.offset))
            seen_in_batch.add(rate)
        return skip

    def _count(self, table: str, rows: list[Row], skipped: int) -> None:
        if table.endswith("_clickpipes_error"):
            landing = table[: -len("_clickpipes_error")]
            for row in rows:
                self.metrics.rejected(landing, row[-1].split(":", 1)[0])
            self.metrics.skipped(landing, skipped)
        else:
            self.metrics.inserted(table, len(rows))
            self.metrics.skipped(table, skipped)

    def _commit_landed(self) -> None:
        """Commit the offsets of the batches the worker has landed (consuming thread only)."""
        with self._to_commit_lock:
            offsets, self._to_commit = self._to_commit, {}
        self._commit(offsets)

    def _commit(self, next_offsets: dict[tuple[str, int], int]) -> None:
        if self._consumer is None or not next_offsets:
            return
        offsets = [
            TopicPartition(topic, partition, offset) for (topic, partition), offset in sorted(next_offsets.items())
        ]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            # The rows are in ClickHouse; a redelivery will be recognised and skipped.
            log.warning("loader: offset commit failed (%s); redelivered messages will be skipped", error)

    # ---- rebalancing --------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._running_worker().wait_idle()  # the ClickHouse client is the worker's while it lands a batch
        assigned = [(tp.topic, tp.partition) for tp in partitions]
        delay = 0.2
        while True:
            try:
                topics = sorted({topic for topic, _ in assigned})
                self._incarnations.refresh(topics)
                self._landed.load(self.tables, assigned, {topic: self._incarnations.epoch(topic) for topic in topics})
                break
            except Exception as error:
                if self._stop:
                    raise InsertAborted("ClickHouse unreachable at assignment") from error
                log.error(
                    "loader: cannot read landed offsets from ClickHouse (%s); retrying",
                    str(error).splitlines()[0][:300],
                )
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        for where in assigned:
            self._expected.pop(where, None)
        self._progress.assigned = True
        self._progress.last_message_at = time.monotonic()
        log.info("loader: assigned %s", ", ".join(f"{t}[{p}]" for t, p in assigned) or "nothing")

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Land and commit what we hold before another member takes the partitions over.
        try:
            self._flush()
            self._running_worker().wait_idle()
        except InsertAborted as error:
            log.warning("loader: %s; the uncommitted batches will be redelivered", error)
            self._batch = Batch()
            self._stop = True
        self._commit_landed()
        self._landed.forget((tp.topic, tp.partition) for tp in partitions)
        for tp in partitions:
            self._expected.pop((tp.topic, tp.partition), None)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The partitions already belong to someone else: land nothing more of them (their new
        # owner gets them redelivered and checks ClickHouse before landing anything).
        lost = {(tp.topic, tp.partition) for tp in partitions}
        self._running_worker().wait_idle()
        with self._to_commit_lock:
            for topic_partition in lost:
                self._to_commit.pop(topic_partition, None)
        self._batch.drop_partitions(lost)
        self._landed.forget(lost)
        for where in lost:
            self._expected.pop(where, None)

    # ---- reporting ----------------------------------------------------------------------------

    def _report(self, consumer: Consumer) -> None:
        self._progress.last_report_at = time.monotonic()
        self.metrics.report(self.lag(consumer))

    @staticmethod
    def lag(consumer: Consumer) -> dict[tuple[str, int], int]:
        """high watermark - position for each assigned partition (common.kafka_lag)."""
        return consumer_lag(consumer)
