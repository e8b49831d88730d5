"""A Kafka message as the loader sees it, independent of the Kafka client.

Why a type of our own: parsing and validation are pure functions of these few fields, so they
are tested without a broker, and the same code serves the consumer loop and the benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

from coinstream.common.kafka_topics import is_replay


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message: where it came from, its timestamp (epoch ms, 0 = none), key, value,
    and the epoch of the topic's incarnation it was read from (`incarnations.py`)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes
    value: bytes | None
    topic_epoch: int = 0
    # Published again by a producer whose broker forgot the first delivery (common.kafka_topics).
    replayed: bool = False

    @classmethod
    def from_message(cls, message: Any, topic_epoch: int = 0) -> Record:
        """From a confluent_kafka Message (a null key becomes b"", a missing timestamp 0)."""
        kind, timestamp = message.timestamp()
        return cls(
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            timestamp_ms=0 if kind == TIMESTAMP_NOT_AVAILABLE or timestamp < 0 else timestamp,
            key=message.key() or b"",
            value=message.value(),
            topic_epoch=topic_epoch,
            replayed=is_replay(message.headers()),
        )

    @property
    def identity(self) -> tuple[int, int, bytes]:
        """(offset, timestamp, key): what tells this message from another one at the same offset of
        the same topic incarnation. Stored in every landing and error row as _offset/_timestamp/_key."""
        return (self.offset, self.timestamp_ms, self.key)
