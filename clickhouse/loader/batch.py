"""A batch: parsed messages waiting for one insert per table, and the offsets to commit after.

Why per table and in arrival order: each table gets exactly one insert per batch, whose rows keep
each partition's offset order, so a table never holds a partition's offset N without every row of
that table below N (what the high-water mark in `landed.py` relies on). The insert's
deduplication token names the partitions and offset ranges it covers, so retrying the same insert
(after a timeout whose insert did in fact succeed) is dropped by ClickHouse, with the materialized
views behind the table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from coinstream.clickhouse.loader.formats import Row
from coinstream.clickhouse.loader.records import Record


@dataclass
class TableBatch:
    """Rows for one table, and per message whether it must first be checked against ClickHouse."""

    table: str
    columns: tuple[str, ...]
    entries: list[tuple[Record, list[Row], bool]] = field(default_factory=list)

    def rows(self, skip: set[tuple[str, int, int]]) -> list[Row]:
        """The rows to insert, leaving out the messages in `skip` (already landed)."""
        rows: list[Row] = []
        for record, record_rows, _ in self.entries:
            if (record.topic, record.partition, record.offset) not in skip:
                rows.extend(record_rows)
        return rows

    def to_check(self) -> list[Record]:
        return [record for record, _, check in self.entries if check]


def dedup_token(table: str, records: list[Record]) -> str:
    """`table|topic#epoch:partition:first-last|…` over the messages inserted, partitions sorted.

    The epoch (the topic's incarnation) keeps a re-created topic's inserts, whose offsets start
    again at 0, from repeating the tokens of the incarnation before it."""
    ranges: dict[tuple[str, int, int], list[int]] = {}
    for record in records:
        span = ranges.setdefault((record.topic, record.topic_epoch, record.partition), [record.offset, record.offset])
        span[0] = min(span[0], record.offset)
        span[1] = max(span[1], record.offset)
    parts = [
        f"{topic}#{epoch}:{partition}:{first}-{last}"
        for (topic, epoch, partition), (first, last) in sorted(ranges.items())
    ]
    return "|".join([table, *parts])


@dataclass
class Batch:
    """Everything consumed since the last flush."""

    tables: dict[str, TableBatch] = field(default_factory=dict)
    # (topic, partition) -> the next offset to consume, committed after a successful flush.
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    messages: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, table: str, columns: tuple[str, ...], record: Record, rows: list[Row], check: bool) -> None:
        target = self.tables.get(table)
        if target is None:
            target = self.tables[table] = TableBatch(table, columns)
        target.entries.append((record, rows, check))
        self.consumed(record)

    def consumed(self, record: Record) -> None:
        self.messages += 1
        self.next_offsets[(record.topic, record.partition)] = record.offset + 1

    def drop_partitions(self, partitions: set[tuple[str, int]]) -> None:
        """Forget what came from partitions this consumer lost (their new owner reloads them)."""
        for part in self.tables.values():
            kept = [entry for entry in part.entries if (entry[0].topic, entry[0].partition) not in partitions]
            self.messages -= len(part.entries) - len(kept)
            part.entries = kept
        for partition in partitions:
            self.next_offsets.pop(partition, None)

    def age_s(self) -> float:
        return time.monotonic() - self.started

    def __len__(self) -> int:
        return self.messages
