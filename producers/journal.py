"""The producer's journal: the records of the last minutes on local disk, to publish again into a
topic that the broker has forgotten.

Why: the local broker keeps its topics in memory. If it dies (kill -9, a crash, a reboot) the
records it acknowledged but that the ksql engine and the loader had not read yet are gone, though
the producer was told they were delivered. Every poll's records are written here before they are
handed to Kafka, with the ID (KIP-516) of the topic incarnation they go to, and marked delivered
when the broker acknowledges them. At start the producer compares that ID with the topic's current
one: delivered records journaled for another incarnation were in a broker that forgot them, and
are published again, in their original order, with the header `coinstream-replay`. (A record
never acknowledged was never promised; publishing it again could not be told apart from a later
one by the engine, so it is not.) After `coinstream up` has drained the pipeline (a stop, a broker
rotation), everything journaled is known to be landed and the journal is cleared. The consumers recognise replays: the loader skips a replayed rate that
ClickHouse already holds (same code and fetched_at), the ksql engine one its windows already
contain. Records older than the retention are deleted; a replay covers at most that much.

One SQLite file per producer (stdlib, WAL): survives a kill -9 of the process; a power cut may
lose the last transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RETENTION_S = 600.0


@dataclass(frozen=True)
class JournaledRecord:
    seq: int
    topic: str
    key: bytes
    value: bytes
    timestamp_ms: int


class DeliveryJournal:
    """Records handed to Kafka in the last `retention_s` seconds, by topic incarnation."""

    def __init__(self, path: Path, retention_s: float = DEFAULT_RETENTION_S) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.retention_s = retention_s
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "topic TEXT NOT NULL, topic_id TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, "
            "timestamp_ms INTEGER NOT NULL, journaled_at_ms INTEGER NOT NULL, "
            "delivered INTEGER NOT NULL DEFAULT 0)"
        )
        self._last_trim = 0.0

    def append(self, topic: str, topic_id: str, records: Iterable[tuple[bytes, bytes, int]]) -> list[int]:
        """Journal (key, value, timestamp) records about to be produced to `topic` (one transaction);
        returns their sequence numbers, for `delivered`."""
        now = int(time.time() * 1000)
        db = self._db
        db.execute("BEGIN")
        seqs: list[int] = []
        for key, value, timestamp in records:
            seq = db.execute(
                "INSERT INTO records (topic, topic_id, key, value, timestamp_ms, journaled_at_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (topic, topic_id, key, value, timestamp, now),
            ).lastrowid
            if seq is None:  # sqlite3 sets lastrowid after every successful INSERT
                raise RuntimeError(f"the delivery journal got no sequence number for a record of {topic}")
            seqs.append(seq)
        if time.monotonic() - self._last_trim > 10:
            db.execute("DELETE FROM records WHERE journaled_at_ms < ?", (now - int(self.retention_s * 1000),))
            self._last_trim = time.monotonic()
        db.execute("COMMIT")
        return seqs

    def delivered(self, seqs: Iterable[int]) -> None:
        """The broker acknowledged these records."""
        rows = [(seq,) for seq in seqs]
        if rows:
            self._db.execute("BEGIN")
            self._db.executemany("UPDATE records SET delivered = 1 WHERE seq = ?", rows)
            self._db.execute("COMMIT")

    def clear(self) -> int:
        """Forget everything (the pipeline was drained: all of it landed); returns how many."""
        return self._db.execute("DELETE FROM records").rowcount

    def forgotten(self, topic: str, current_topic_id: str) -> list[JournaledRecord]:
        """Delivered records journaled for another incarnation of `topic` within the retention,
        oldest first."""
        cutoff = int(time.time() * 1000) - int(self.retention_s * 1000)
        rows = self._db.execute(
            "SELECT seq, topic, key, value, timestamp_ms FROM records WHERE topic = ? AND topic_id != ? "
            "AND delivered = 1 AND journaled_at_ms >= ? ORDER BY seq",
            (topic, current_topic_id, cutoff),
        ).fetchall()
        return [JournaledRecord(*row) for row in rows]

    def moved(self, records: Iterable[JournaledRecord], topic_id: str) -> None:
        """The records now also live in incarnation `topic_id` (published again and acknowledged)."""
        self._db.execute("BEGIN")
        self._db.executemany(
            "UPDATE records SET topic_id = ? WHERE seq = ?", [(topic_id, record.seq) for record in records]
        )
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
