"""`coinstream ksql run`: the statements as a Kafka consumer-transform-producer with durable state.

Why this design (and not Kafka transactions): the local broker (Tansu) accepts transactions but
its read_committed consumers still see aborted records, so transactional isolation cannot be
relied on. Instead every aggregate keeps a changelog topic, as Kafka Streams does, and restart
safety comes from positions recorded in it:

- Each (key, window) state carries the next input offset not yet applied to it. A replayed
  record below that offset is skipped for that window: nothing is counted twice, an open is
  never replaced.
- One cycle (every --commit-interval-ms): produce the outputs and flush (so they are delivered),
  then per input partition write the changed window states, then a position record (next input
  offset and the partition's stream time), then tombstones for windows that closed, flush, and
  only then commit the consumer offsets. The changelog partition is the input partition, so the
  producer's ordering (idempotence) makes "position present" imply "states before it present".
- On assignment (start, restart, rebalance) the changelog partition is read back: latest state
  per (key, window), the last position. Input resumes at max(committed offset, position); the
  per-window offsets handle records whose state was written but whose position was not. A
  window's tombstone is only written after a position whose stream time already closes it, so a
  replay can never re-open it.
- Windows are dropped from memory when stream time passes end + grace (retention), so memory is
  bounded by the open windows.

Outputs are at-least-once: after a crash, records of the unfinished cycle are emitted again with
identical values (the last record per key and window is always exact). Outputs go to the sink
partition Kafka's Java client would choose (murmur2), like ksqlDB.

Local state (`state_store.LocalStateStore`, given a state directory): each cycle's changes also go
to an SQLite file on local disk, after the changelog and before the offset commit, with a
checkpoint naming the topic IDs of the changelog and of the input. On assignment the checkpoint
decides where state comes from: the changelog when it is the incarnation the checkpoint names (or
when there is no checkpoint), the local file when the changelog is gone or new (the local broker
forgets its topics on restart); the new changelog is then written from it. When the input topic
itself is a new incarnation, its offsets start again at 0: the windows keep their values and
stream time, but the recorded offsets (which belong to the old incarnation) are cleared.

The broker's high watermark cannot be trusted here (Tansu reports wrong ones), so a restore reads
its changelog partition up to a unique barrier record it produced itself.

Counters (records in/out, processing-log entries by kind, commit cycles, open and restored windows,
consumer lag) go to a `ksql.metrics.EngineMetrics`, counted per batch and refreshed per commit
cycle; `coinstream ksql run` serves them on /metrics.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from coinstream.common.kafka_config import admin_config, consumer_config, producer_config
from coinstream.common.kafka_lag import consumer_lag
from coinstream.common.kafka_topics import is_replay, topic_ids
from coinstream.common.settings import Settings, setting_default
from coinstream.common.testing_hooks import hook_value
from coinstream.ksql import ast
from coinstream.ksql.engine import AggregateRuntime, Pipeline, ProcessingLogEntry
from coinstream.ksql.errors import UnsupportedStatement
from coinstream.ksql.metrics import EngineMetrics
from coinstream.ksql.planner import Catalog, QueryPlan
from coinstream.ksql.serde import kafka_partition
from coinstream.ksql.state_store import Checkpoint, LocalStateStore, PartitionChanges

log = logging.getLogger(__name__)

POSITION_KEY = b"__position__"
BARRIER_KEY = b"__barrier__"
DEFAULT_APP_ID = "coinstream-ksql"
DEFAULT_PROCESSING_LOG_TOPIC = "ksql_processing_log"


# ---- changelog encoding ------------------------------------------------------------------------------------------


def _encode_special(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"$b64": base64.b64encode(value).decode()}
    raise TypeError(f"cannot store {type(value).__name__} in the changelog")


def _decode_special(obj: dict) -> Any:
    if len(obj) == 1:
        if "$dec" in obj:
            return Decimal(obj["$dec"])
        if "$b64" in obj:
            return base64.b64decode(obj["$b64"])
    return obj


def encode_state_key(key: tuple, window_start: int | None) -> bytes:
    return json.dumps([list(key), window_start], default=_encode_special, separators=(",", ":")).encode()


def decode_state_key(data: bytes) -> tuple[tuple, int | None]:
    key, window_start = json.loads(data, object_hook=_decode_special)
    return tuple(key), window_start


def encode_state(state: list) -> bytes:
    return json.dumps(state, default=_encode_special, separators=(",", ":")).encode()


def decode_state(data: bytes) -> list:
    return json.loads(data, object_hook=_decode_special)


# ---- the runner ----------------------------------------------------------------------------------------------------


@dataclass
class RunnerStats:
    records_in: int = 0
    records_out: int = 0
    processing_errors: int = 0
    cycles: int = 0
    restored_windows: int = 0
    started: float = field(default_factory=time.monotonic)
    first_record_at: float | None = None
    processed_until: float | None = None  # end of the last commit cycle that carried input

    @property
    def processing_seconds(self) -> float:
        """From the first input record to the end of the commit cycle that made the last one durable."""
        if self.first_record_at is None or self.processed_until is None:
            return 0.0
        return self.processed_until - self.first_record_at


class RunnerError(RuntimeError):
    """The runner cannot continue safely (a delivery failed, a topic is missing, ...)."""


def group_by_is_source_key(plan: QueryPlan) -> bool:
    query = plan.statement.query
    keys = [c.name for c in plan.source.key_columns]
    names = [e.name for e in query.group_by if isinstance(e, ast.ColumnRef)]
    return len(names) == len(query.group_by) and sorted(names) == sorted(keys) and bool(keys)


class KafkaRunner:
    """Runs every query of a catalog against Kafka (see the module docstring for the guarantees)."""

    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        *,
        bootstrap: str | None = None,
        app_id: str = DEFAULT_APP_ID,
        commit_interval_ms: int = setting_default("ksql_commit_interval_ms"),
        cache: bool = True,
        processing_log_topic: str = DEFAULT_PROCESSING_LOG_TOPIC,
        idle_exit_s: float | None = None,
        session_timeout_ms: int | None = None,
        metrics: EngineMetrics | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.bootstrap = bootstrap
        self.app_id = app_id
        self.commit_interval = commit_interval_ms / 1000.0
        self.processing_log_topic = processing_log_topic
        self.idle_exit_s = idle_exit_s
        self.stats = RunnerStats()
        self.metrics = metrics or EngineMetrics()
        self.pipeline = Pipeline(catalog, cached=cache, track_changes=True, on_error=self._on_processing_error)
        self.aggregates: list[AggregateRuntime] = [q for q in self.pipeline.queries if isinstance(q, AggregateRuntime)]
        self._stop = threading.Event()
        self._positions: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset to commit
        self._assigned: set[tuple[str, int]] = set()
        self._delivery_errors: list[str] = []
        self._pending_log: list[ProcessingLogEntry] = []
        self._out: list = []
        self._fail_at = _parse_fail_at(hook_value("ksql.fail-at"))
        self._cycle_had_input = False
        self._group_overrides: dict[str, Any] = {}
        if session_timeout_ms is not None:
            # A dead member is only evicted after the session timeout, and Tansu takes about half of it
            # to complete a join: a shorter one makes restarts faster (tests), at the price of more
            # spurious rebalances on a slow machine.
            self._group_overrides = {
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": max(100, session_timeout_ms // 4),
            }
        self._admin = AdminClient(admin_config(settings, bootstrap))
        # Delivery reports only for failures: no Python callback per output record on the hot path,
        # and a failure still stops the commit (see _flush).
        self._producer = Producer(
            producer_config(
                settings,
                bootstrap,
                **{
                    "partitioner": "murmur2_random",
                    "queue.buffering.max.messages": 200_000,
                    "queue.buffering.max.kbytes": 65_536,
                    "delivery.report.only.error": True,
                    "on_delivery": self._on_delivery,
                },
            )
        )
        self._consumer: Consumer | None = None
        self._partition_cache: dict[tuple[str, bytes], int] = {}
        self._sink_partitions: dict[str, int] = {}
        self._written_positions: dict[tuple[str, int], tuple[int, int]] = {}
        self._store = LocalStateStore(state_dir, app_id) if state_dir is not None else None
        self._topic_ids: dict[str, str] = {}  # topic -> ID (KIP-516), refreshed at each assignment

    # ---- names -----------------------------------------------------------------------------------------------------

    def changelog_topic(self, runtime: AggregateRuntime) -> str:
        """One changelog per query; a changed statement text gets a fresh changelog (fresh state).
        The text is the statement as written: a variable's new value (a changed setting) keeps it."""
        import hashlib

        written = self.catalog.written_text(runtime.plan.statement.text)
        digest = hashlib.sha256(written.encode()).hexdigest()[:8]
        return f"_{self.app_id}-{runtime.plan.sink.name}-{digest}-changelog"

    # ---- topics -------------------------------------------------------------------------------------------------------

    def _topic_partitions(self) -> dict[str, int]:
        metadata = self._admin.list_topics(timeout=10)
        return {name: len(topic.partitions) for name, topic in metadata.topics.items() if not topic.error}

    def _create_topics(self, wanted: dict[str, int], config: dict[str, str] | None = None) -> None:
        existing = self._topic_partitions()
        missing = {name: count for name, count in wanted.items() if name not in existing}
        if not missing:
            return
        replication = self.settings.kafka_replication_factor
        futures = self._admin.create_topics(
            [NewTopic(name, count, replication, config=config or {}) for name, count in missing.items()]
        )
        for name, future in futures.items():
            try:
                future.result(timeout=30)
                log.info("created topic %s (%d partitions)", name, missing[name])
            except KafkaException as error:
                if error.args and error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                raise RunnerError(f"cannot create topic {name}: {error}") from None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(name in self._topic_partitions() for name in missing):
                return
            time.sleep(0.1)
        raise RunnerError(f"topics {sorted(missing)} did not appear")

    def prepare_topics(self) -> None:
        """Create missing source, sink, changelog and processing-log topics; refuse what we cannot run safely.

        Queries are visited in statement order, so a query reading another query's sink sees that
        sink created with the partition count of its own source first.
        """
        counts = self._topic_partitions()
        default = self.settings.kafka_topic_partitions
        sink_topics = {runtime.topic for runtime in self.pipeline.queries}
        self._create_topics({self.processing_log_topic: 1})
        for runtime in self.pipeline.queries:
            plan = runtime.plan
            source_topic = plan.source.topic
            if source_topic not in counts:
                if source_topic not in sink_topics:
                    log.warning(
                        "source topic %s does not exist: creating it with %d partition(s)",
                        source_topic,
                        plan.source.partitions or default,
                    )
                self._create_topics({source_topic: plan.source.partitions or default})
                counts = self._topic_partitions()
            source_partitions = counts[source_topic]
            wanted: dict[str, int] = {}
            if isinstance(runtime, AggregateRuntime):
                if plan.agg_merge is not None:
                    raise UnsupportedStatement(
                        f"{plan.query_id}: SESSION windows in ksql run (their restart "
                        f"safety is not implemented; ksql test runs them)"
                    )
                if source_partitions > 1 and not group_by_is_source_key(plan):
                    raise UnsupportedStatement(
                        f"{plan.query_id}: GROUP BY on something other than the key of a topic with "
                        f"{source_partitions} partitions (ksqlDB would repartition; ksql run does not)"
                    )
                # Compacted: restore needs only the latest state per window and the latest position.
                self._create_topics({self.changelog_topic(runtime): source_partitions}, {"cleanup.policy": "compact"})
            wanted[plan.sink.topic] = plan.sink.partitions or source_partitions
            self._create_topics(wanted)
            counts = self._topic_partitions()
        self._sink_partitions = {runtime.topic: counts[runtime.topic] for runtime in self.pipeline.queries}

    # ---- processing log ------------------------------------------------------------------------------------------------

    def _on_processing_error(self, entry: ProcessingLogEntry) -> None:
        self.stats.processing_errors += 1
        self.metrics.logged(entry.source, entry.kind)
        self._pending_log.append(entry)

    def _produce_processing_log(self) -> None:
        entries, self._pending_log = self._pending_log, []
        for entry in entries:
            record = {
                "source": entry.source,
                "topic": entry.topic,
                "partition": entry.partition,
                "offset": entry.offset,
                "reason": entry.reason,
                "kind": entry.kind,
                "key_base64": base64.b64encode(entry.key).decode() if entry.key is not None else None,
                "value_base64": base64.b64encode(entry.value).decode() if entry.value is not None else None,
                "logged_at_ms": int(time.time() * 1000),
            }
            self._produce(self.processing_log_topic, None, json.dumps(record).encode(), None)

    # ---- producing -------------------------------------------------------------------------------------------------------

    def _on_delivery(self, error, message) -> None:
        if error is not None:
            self._delivery_errors.append(f"{message.topic()}: {error}")

    def _produce(
        self, topic: str, key: bytes | None, value: bytes | None, timestamp: int | None, partition: int | None = None
    ) -> None:
        produce = self._producer.produce
        while True:
            try:
                if partition is None:
                    produce(topic, value, key, timestamp=timestamp or 0)
                else:
                    produce(topic, value, key, partition, timestamp=timestamp or 0)
                return
            except BufferError:
                self._producer.poll(0.05)

    def _flush(self, stage: str) -> None:
        remaining = self._producer.flush(60)
        if remaining:
            raise RunnerError(f"{remaining} record(s) not delivered within 60 s ({stage})")
        if self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise RunnerError(f"delivery failed ({stage}): {errors[:3]}")

    def _produce_outputs(self) -> None:
        """Produce buffered outputs. Windowed keys go to the partition of the key without its window
        (Kafka Streams' WindowedStreamPartitioner), so every window of a key lands together."""
        out, self._out = self._out, []
        produce = self._produce
        partition_cache = self._partition_cache
        counts = self._sink_partitions
        produced: dict[str, int] = {}
        for topic, key, value, timestamp, window in out:
            produced[topic] = produced.get(topic, 0) + 1
            if window is None or key is None:
                produce(topic, key, value, timestamp)
                continue
            inner = key[:-16] if window[2] == "session" else key[:-8]
            cache_key = (topic, inner)
            partition = partition_cache.get(cache_key)
            if partition is None:
                if len(partition_cache) > 100_000:
                    partition_cache.clear()
                partition = partition_cache[cache_key] = kafka_partition(inner, counts[topic])
            produce(topic, key, value, timestamp, partition)
        self.stats.records_out += len(out)
        self.metrics.produced(produced)

    # ---- the commit cycle ------------------------------------------------------------------------------------------------

    def commit_cycle(self) -> None:
        """Outputs delivered -> changelog (states, position, tombstones) durable -> offsets committed."""
        started = time.monotonic()
        self.pipeline.flush(self._out)
        self._produce_outputs()
        self._produce_processing_log()
        self._flush("outputs")
        self._maybe_fail("after-outputs")
        local: list[PartitionChanges] = []
        for runtime in self.aggregates:
            topic = self.changelog_topic(runtime)
            source_topic = runtime.plan.source.topic
            for partition in runtime.tasks():
                position = self._positions.get((source_topic, partition))
                if position is None:
                    continue
                changes = runtime.drain_changes(partition)
                marker_value = (position, runtime.stream_time(partition))
                if not changes and self._written_positions.get((topic, partition)) == marker_value:
                    continue
                tombstones = []
                upserts = []
                for key, window_start, state in changes:
                    if state is None:
                        tombstones.append(encode_state_key(key, window_start))
                    else:
                        upserts.append((encode_state_key(key, window_start), encode_state(state)))
                        self._produce(topic, upserts[-1][0], upserts[-1][1], None, partition)
                if self._store is not None:
                    local.append(
                        PartitionChanges(
                            topic,
                            partition,
                            Checkpoint(
                                self._topic_ids.get(topic, ""),
                                source_topic,
                                self._topic_ids.get(source_topic, ""),
                                marker_value[0],
                                marker_value[1],
                            ),
                            upserts,
                            tombstones,
                        )
                    )
                self._maybe_fail("mid-changelog")
                marker = json.dumps({"offset": marker_value[0], "stream_time": marker_value[1]}).encode()
                self._produce(topic, POSITION_KEY, marker, None, partition)
                self._written_positions[(topic, partition)] = marker_value
                for state_key in tombstones:
                    self._produce(topic, state_key, None, None, partition)
        self._flush("changelog")
        if local and self._store is not None:
            self._store.write(local)
        self._maybe_fail("after-changelog")
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in self._positions.items()
            if (topic, partition) in self._assigned
        ]
        if offsets and self._consumer is not None:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as error:
                # Outputs and state are durable (changelog, local state); the next cycle commits
                # again, and a restart resumes from the recorded positions. Seen while the broker
                # restarts (no coordinator).
                log.warning("offset commit failed (%s); the next cycle commits again", error)
        self.stats.cycles += 1
        if self._cycle_had_input:
            self.stats.processed_until = time.monotonic()
        self._cycle_had_input = False
        self.metrics.cycle(time.monotonic() - started)
        self._refresh_gauges()

    def _refresh_gauges(self) -> None:
        """Open windows per query and consumer lag per partition (local figures: no broker round trip)."""
        self.metrics.windows({runtime.query_id: runtime.window_count() for runtime in self.aggregates})
        if self._consumer is not None:
            self.metrics.set_lag(consumer_lag(self._consumer))

    # ---- restore --------------------------------------------------------------------------------------------------------

    def _read_changelogs(self, wanted: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[dict, dict | None]]:
        """Latest value per key, and the last position, of each changelog partition in `wanted`.

        A unique barrier record is written to each partition first and each is read up to its
        barrier: everything acknowledged before we started is then known to have been read.
        """
        barriers = {}
        for topic, partition in wanted:
            barriers[(topic, partition)] = uuid.uuid4().hex.encode()
            self._produce(topic, BARRIER_KEY, barriers[(topic, partition)], None, partition)
        self._flush("barrier")
        results: dict[tuple[str, int], tuple[dict, dict | None]] = {tp: ({}, None) for tp in wanted}
        if not wanted:
            return results
        reader = Consumer(
            {
                **consumer_config(self.settings, f"{self.app_id}-restore", self.bootstrap),
                "enable.auto.commit": False,
                "isolation.level": "read_uncommitted",
                "fetch.wait.max.ms": 50,
            }
        )
        pending = set(wanted)
        try:
            reader.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for topic, partition in wanted])
            deadline = time.monotonic() + 300
            while pending:
                if time.monotonic() > deadline:
                    raise RunnerError(f"restoring {sorted(pending)}: barrier not seen within 300 s")
                for message in reader.consume(10_000, 0.2):
                    failure = message.error()
                    if failure is not None:
                        if failure.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise RunnerError(f"restoring {message.topic()}[{message.partition()}]: {failure}")
                    where = (message.topic(), message.partition())
                    if where not in pending:
                        continue
                    latest, position = results[where]
                    key = message.key()
                    if key == BARRIER_KEY:
                        if message.value() == barriers[where]:
                            pending.discard(where)
                    elif key == POSITION_KEY:
                        results[where] = (latest, json.loads(message.value()))  # type: ignore[arg-type]  # position records always have a value
                    else:
                        latest[key] = message.value()
        finally:
            reader.close()
        return results

    def _restore(self, partitions: list[TopicPartition]) -> None:
        """Rebuild state for newly assigned partitions and set where each one resumes."""
        assert self._consumer is not None
        committed = (
            {(tp.topic, tp.partition): tp.offset for tp in self._consumer.committed(partitions, timeout=30)}
            if partitions
            else {}
        )
        wanted = [
            (self.changelog_topic(runtime), tp.partition)
            for tp in partitions
            for runtime in self.aggregates
            if runtime.plan.source.topic == tp.topic
        ]
        if partitions:
            self._topic_ids = topic_ids(self._admin, [tp.topic for tp in partitions] + [topic for topic, _ in wanted])
        changelogs = self._read_changelogs(wanted)
        for tp in partitions:
            topic_partition = (tp.topic, tp.partition)
            resume = committed.get(topic_partition, -1)
            query_positions = []
            readers = [runtime for runtime in self.aggregates if runtime.plan.source.topic == tp.topic]
            for runtime in readers:
                changelog = self.changelog_topic(runtime)
                latest, position, from_local, same_input = self._state_source(
                    changelog, tp, changelogs[(changelog, tp.partition)]
                )
                entries = []
                for state_key, value in latest.items():
                    if value is None:
                        continue
                    key, window_start = decode_state_key(state_key)
                    entries.append((key, window_start, decode_state(value)))
                if not same_input:
                    for _key, _window_start, state in entries:
                        state[1] = 0  # offsets of the old incarnation: apply the new one from 0
                stream_time = position["stream_time"] if position else -(2**63)
                # Written to the changelog at the next cycle: a new changelog gets the local states, and
                # states whose offsets were cleared replace the old ones.
                runtime.restore(tp.partition, stream_time, entries, self._out, changed=from_local or not same_input)
                self.stats.restored_windows += len(entries)
                self.metrics.restored(runtime.query_id, len(entries))
                if position is not None and same_input:
                    runtime.skip_below[tp.partition] = position["offset"]
                    query_positions.append(position["offset"])
                if self._store is not None and not from_local:
                    self._store.replace(
                        changelog, tp.partition, {key: value for key, value in latest.items() if value is not None}
                    )
                log.info(
                    "%s: restored %d window(s) of partition %d from the %s (position %s%s)",
                    runtime.query_id,
                    len(entries),
                    tp.partition,
                    "local state" if from_local else "changelog",
                    position,
                    "" if same_input else "; the input topic is new: its offsets start again",
                )
            if readers and len(query_positions) == len(readers):
                resume = max(resume, min(query_positions))
            if resume >= 0:
                tp.offset = resume
                self._positions[topic_partition] = resume
            self._assigned.add(topic_partition)

    def _state_source(
        self, changelog: str, tp: TopicPartition, from_changelog: tuple[dict, dict | None]
    ) -> tuple[dict, dict | None, bool, bool]:
        """(states, position, from local state?, same input incarnation?) for one changelog partition.

        The changelog is the source unless the local checkpoint names another incarnation of it (it
        was re-created, or lost with the broker). Without a checkpoint nothing is known about the
        input's incarnation, and the changelog's positions are trusted as before local state existed.
        """
        point = self._store.checkpoint(changelog, tp.partition) if self._store is not None else None
        same_input = point is None or point.input_id == self._topic_ids.get(tp.topic, "")
        if point is None or point.changelog_id == self._topic_ids.get(changelog, ""):
            latest, position = from_changelog
            return latest, position, False, same_input
        log.warning(
            "%s[%d]: the changelog is not the one the local state was checkpointed with "
            "(re-created or lost with the broker): restoring from local state",
            changelog,
            tp.partition,
        )
        position = {"offset": point.next_offset, "stream_time": point.stream_time}
        assert self._store is not None  # a checkpoint comes from the store
        return self._store.states(changelog, tp.partition), position, True, same_input

    # ---- consumer callbacks -----------------------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", [(tp.topic, tp.partition) for tp in partitions])
        self._restore(partitions)
        consumer.assign(partitions)
        self._last_input = time.monotonic()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoked %s", [(tp.topic, tp.partition) for tp in partitions])
        if not self._stop.is_set():
            self.commit_cycle()
        for tp in partitions:
            self._assigned.discard((tp.topic, tp.partition))
            self._positions.pop((tp.topic, tp.partition), None)
            for runtime in self.aggregates:
                if runtime.plan.source.topic == tp.topic:
                    runtime.drop_partition(tp.partition)
                    runtime.skip_below.pop(tp.partition, None)

    # ---- main loop ----------------------------------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> RunnerStats:
        self.prepare_topics()
        config = consumer_config(
            self.settings,
            self.app_id,
            self.bootstrap,
            **{"isolation.level": "read_uncommitted", "max.poll.interval.ms": 300_000, **self._group_overrides},
        )
        self._consumer = Consumer(config)
        self._consumer.subscribe(self.pipeline.input_topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        process = self.pipeline.process
        positions = self._positions
        last_commit = time.monotonic()
        self._last_input = time.monotonic()
        last_report = time.monotonic()
        try:
            while not self._stop.is_set():
                # Never block past the next commit: that is when the outputs are emitted.
                until_commit = self.commit_interval - (time.monotonic() - last_commit)
                messages = self._consumer.consume(5000, min(0.1, max(0.0, until_commit)))
                consumed: dict[str, int] = {}
                for message in messages:
                    failure = message.error()
                    if failure is not None:
                        if failure.code() == KafkaError._PARTITION_EOF:
                            continue
                        if failure.fatal():
                            raise RunnerError(str(failure))
                        log.warning("consumer: %s", failure)
                        continue
                    # a record without an error has its topic, partition and offset
                    topic, partition, offset = cast(
                        tuple[str, int, int], (message.topic(), message.partition(), message.offset())
                    )
                    _kind, timestamp = message.timestamp()
                    if is_replay(message.headers()):  # type: ignore[arg-type]  # confluent-kafka's stub widens header values
                        process(
                            topic,
                            partition,
                            offset,
                            message.key(),
                            message.value(),
                            timestamp,
                            self._out,
                            replayed=True,
                        )
                    else:
                        process(topic, partition, offset, message.key(), message.value(), timestamp, self._out)
                    positions[(topic, partition)] = offset + 1
                    consumed[topic] = consumed.get(topic, 0) + 1
                if messages:
                    if self.stats.first_record_at is None:
                        self.stats.first_record_at = time.monotonic()
                    self.stats.records_in += sum(consumed.values())  # records, not error events
                    self.metrics.consumed(consumed)
                    self._last_input = time.monotonic()
                    self._cycle_had_input = True
                    self._maybe_fail("mid-cycle")
                if len(self._out) >= 20_000:
                    self._produce_outputs()
                    self._producer.poll(0)
                now = time.monotonic()
                if now - last_commit >= self.commit_interval:
                    self.commit_cycle()
                    last_commit = now
                if now - last_report >= 30:
                    self._report()
                    last_report = now
                if self.idle_exit_s is not None and now - self._last_input >= self.idle_exit_s and self._assigned:
                    log.info("no input for %.1f s: stopping", self.idle_exit_s)
                    break
            self.commit_cycle()
        finally:
            self._stop.set()
            self._consumer.close()
            self._producer.flush(30)
            if self._store is not None:
                self._store.close()
            self._report()
        return self.stats

    def _report(self) -> None:
        elapsed = max(time.monotonic() - self.stats.started, 1e-9)
        windows = sum(runtime.window_count() for runtime in self.aggregates)
        log.info(
            "records in %d (%.0f/s), out %d, processing-log entries %d, open windows %d, cycles %d",
            self.stats.records_in,
            self.stats.records_in / elapsed,
            self.stats.records_out,
            self.stats.processing_errors,
            windows,
            self.stats.cycles,
        )

    def _maybe_fail(self, stage: str) -> None:
        """The `ksql.fail-at` test hook: die like `kill -9` at a chosen point of a chosen cycle."""
        if self._fail_at is not None and self._fail_at[0] == stage and self._cycle_had_input:
            self._fail_at[1] -= 1
            if self._fail_at[1] <= 0:
                if stage == "mid-changelog":
                    self._producer.flush(30)  # some states delivered, their position not: the hard case
                log.warning("fault injection: exiting abruptly at %s", stage)
                os._exit(137)


def _parse_fail_at(text: str | None) -> list | None:
    if not text:
        return None
    stage, _, count = text.partition(":")
    if stage not in ("mid-cycle", "after-outputs", "mid-changelog", "after-changelog"):
        raise ValueError(f"unknown fault-injection stage {stage!r}")
    return [stage, int(count or 1)]
