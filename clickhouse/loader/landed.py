"""What ClickHouse already holds, so a redelivered message is never landed twice.

The loader commits Kafka offsets only after ClickHouse accepted a batch, so after a crash Kafka
redelivers what was inserted but not yet committed, possibly cut into different batches. The
truth about what landed is in ClickHouse itself, never in a separate watermark (the reference
wrote one before the data was safe):

- per (table, topic incarnation, partition), the high-water mark max(_offset) is read when the
  partition is assigned; a message above it has certainly not landed (the loader is the only writer
  of the partition's rows while it owns the partition, and it advances the mark after each insert);
- a message at or below it is looked up by identity (_offset, _timestamp, _key) and skipped only
  if that very message is there.

The incarnation (`_topic_epoch`, see `incarnations.py`) keeps a re-created topic, whose offsets
start again at 0, from being mistaken for the one before it. A message at or below a mark that is
in neither its table nor its error table should not exist; the loader lands it and reports it in
one line per partition and batch.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from coinstream.clickhouse.loader.records import Record

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
# (table, topic, topic epoch, partition)
MarkKey = tuple[str, str, int, int]


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class LandedIndex:
    """High-water marks per (table, topic incarnation, partition), and identity lookups below them."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._high: dict[MarkKey, int] = {}

    def load(self, tables: Iterable[str], partitions: Iterable[TopicPartition], epochs: dict[str, int]) -> None:
        """Read max(_offset) of each assigned partition of the topics' current incarnations
        (`epochs`: topic -> epoch) from each table (-1 = nothing landed)."""
        wanted = list(partitions)
        topics = sorted({topic for topic, _ in wanted})
        if not topics:
            return
        for table in tables:
            for topic, partition in wanted:
                self._high[(table, topic, epochs.get(topic, 0), partition)] = -1
            rows = self._client.query(
                f"SELECT _topic, _topic_epoch, _partition, max(_offset) FROM {table} "
                f"WHERE _topic IN ({', '.join(_quote(topic) for topic in topics)}) "
                "GROUP BY _topic, _topic_epoch, _partition"
            ).result_rows
            for topic, epoch, partition, high in rows:
                key = (table, topic, int(epoch), int(partition))
                if key in self._high:
                    self._high[key] = int(high)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop the marks of revoked partitions (another loader may write them now)."""
        gone = set(partitions)
        for key in [key for key in self._high if (key[1], key[3]) in gone]:
            del self._high[key]

    def high_water(self, table: str, record: Record) -> int:
        return self._high.get((table, record.topic, record.topic_epoch, record.partition), -1)

    def advance(self, table: str, record: Record) -> None:
        """After an insert: everything of this table up to `record` is in ClickHouse."""
        key = (table, record.topic, record.topic_epoch, record.partition)
        if record.offset > self._high.get(key, -1):
            self._high[key] = record.offset

    def landed(self, table: str, records: list[Record]) -> set[tuple[str, int, int]]:
        """Which of `records` (all at or below the mark) are in `table`: (topic, partition, offset).

        One query per partition over the offset range, comparing identities in Python.
        """
        by_partition: dict[tuple[str, int, int], list[Record]] = defaultdict(list)
        for record in records:
            by_partition[(record.topic, record.topic_epoch, record.partition)].append(record)
        found: set[tuple[str, int, int]] = set()
        for (topic, epoch, partition), group in by_partition.items():
            low = min(record.offset for record in group)
            high = max(record.offset for record in group)
            result = self._client.query(
                f"SELECT DISTINCT _offset, toUnixTimestamp64Milli(_timestamp), _key FROM {table} "
                f"WHERE _topic = {_quote(topic)} AND _topic_epoch = {int(epoch)} "
                f"AND _partition = {int(partition)} AND _offset BETWEEN {int(low)} AND {int(high)}",
                column_formats={"_key": "bytes"},
            )
            present = {(int(offset), int(ts), bytes(key)) for offset, ts, key in result.result_rows}
            for record in group:
                if record.identity in present:
                    found.add((topic, partition, record.offset))
        return found

    def landed_rates(self, table: str, rates: set[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which (code, fetched_at ms) of `rates` `table` already holds, whatever their offsets:
        how a replayed rate (published again into a new incarnation) is recognised."""
        if not rates:
            return set()
        codes = sorted({code for code, _ in rates})
        low = min(at for _, at in rates)
        high = max(at for _, at in rates)
        result = self._client.query(
            f"SELECT DISTINCT code, toUnixTimestamp64Milli(fetched_at) FROM {table} "
            "WHERE code IN {codes:Array(String)} AND fetched_at BETWEEN "
            "fromUnixTimestamp64Milli({low:Int64}, 'UTC') AND fromUnixTimestamp64Milli({high:Int64}, 'UTC')",
            parameters={"codes": codes, "low": low, "high": high},
        )
        return {(str(code), int(at)) for code, at in result.result_rows} & rates
