"""Window state on local disk, with a checkpoint of what it holds: state that outlives the broker.

Why: the engine's changelog topics live in the broker. Against a real Kafka that is enough (Kafka
Streams restores from them), but the local broker keeps topics in memory: after its restart the
changelogs are gone, and windows that were open would be recomputed from the records after the
restart only, overwriting complete candles and averages with partial ones. Kafka Streams keeps a
local state store beside each changelog for the same reason (fast restore); here it is also the
copy that survives the changelog.

One SQLite file per application (stdlib, transactional, durable with `synchronous=FULL`):
- `windows`: the latest state of every open (key, window) per changelog partition;
- `checkpoints`: per changelog partition, the next input offset and the stream time those states
  reflect, and the topic IDs (KIP-516) of the changelog and of the input topic they belong to.

A commit cycle writes its changes here after they are in the changelog and before the input offsets
are committed, in one transaction: the local copy is never ahead of the changelog, and never behind
the committed input.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    changelog TEXT NOT NULL,
    partition INTEGER NOT NULL,
    state_key BLOB NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (changelog, partition, state_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    changelog TEXT NOT NULL,
    partition INTEGER NOT NULL,
    changelog_id TEXT NOT NULL,
    input_topic TEXT NOT NULL,
    input_id TEXT NOT NULL,
    next_offset INTEGER NOT NULL,
    stream_time INTEGER NOT NULL,
    PRIMARY KEY (changelog, partition)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Checkpoint:
    """What the local states of one changelog partition reflect."""

    changelog_id: str
    input_topic: str
    input_id: str
    next_offset: int
    stream_time: int


@dataclass
class PartitionChanges:
    """One changelog partition's changes of a commit cycle: states to keep, keys to forget."""

    changelog: str
    partition: int
    checkpoint: Checkpoint
    upserts: list[tuple[bytes, bytes]]
    deletes: list[bytes]


class LocalStateStore:
    """The engine's window states and checkpoints in `<directory>/<app_id>.sqlite`."""

    def __init__(self, directory: Path, app_id: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{app_id}.sqlite"
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def checkpoint(self, changelog: str, partition: int) -> Checkpoint | None:
        row = self._db.execute(
            "SELECT changelog_id, input_topic, input_id, next_offset, stream_time FROM checkpoints "
            "WHERE changelog = ? AND partition = ?",
            (changelog, partition),
        ).fetchone()
        return Checkpoint(*row) if row else None

    def states(self, changelog: str, partition: int) -> dict[bytes, bytes]:
        """state key -> state of every window held for the changelog partition."""
        return dict(
            self._db.execute(
                "SELECT state_key, state FROM windows WHERE changelog = ? AND partition = ?", (changelog, partition)
            )
        )

    def write(self, cycle: Iterable[PartitionChanges]) -> None:
        """Apply one commit cycle's changes and checkpoints atomically."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for part in cycle:
                db.executemany(
                    "INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?)",
                    [(part.changelog, part.partition, key, state) for key, state in part.upserts],
                )
                db.executemany(
                    "DELETE FROM windows WHERE changelog = ? AND partition = ? AND state_key = ?",
                    [(part.changelog, part.partition, key) for key in part.deletes],
                )
                point = part.checkpoint
                db.execute(
                    "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        part.changelog,
                        part.partition,
                        point.changelog_id,
                        point.input_topic,
                        point.input_id,
                        point.next_offset,
                        point.stream_time,
                    ),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def replace(self, changelog: str, partition: int, states: dict[bytes, bytes]) -> None:
        """Make the local copy of one partition exactly `states` (after a restore from the changelog)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM windows WHERE changelog = ? AND partition = ?", (changelog, partition))
            db.executemany(
                "INSERT INTO windows VALUES (?, ?, ?, ?)",
                [(changelog, partition, key, state) for key, state in states.items()],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()
