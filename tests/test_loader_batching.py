"""How long the loader lets a message wait before its batch is inserted.

`Consumer.consume(n, timeout)` returns only when n messages have come or the timeout is over, so
the timeout the loader asks for bounds how long the first message of a batch can sit unseen.
"""

from __future__ import annotations

from coinstream.clickhouse.loader import Loader, LoaderConfig


class RecordingConsumer:
    """Stands in for the Kafka consumer between two polls: records each wait, delivers nothing."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def consume(self, num_messages: int, timeout: float) -> list:
        self.waits.append(timeout)
        return []


def waits_of_an_idle_loader(batch_ms: int, steps: int = 3) -> list[float]:
    loader = Loader({"group.id": "unused"}, clickhouse_client=None, config=LoaderConfig(batch_ms=batch_ms))
    consumer = RecordingConsumer()
    for _ in range(steps):
        loader._step(consumer)
    return consumer.waits


def test_an_empty_batch_waits_no_longer_than_batch_ms():
    waits = waits_of_an_idle_loader(batch_ms=150)
    # Every wait starts a fresh clock: 150 ms each time (less the few microseconds of the step).
    assert len(waits) == 3
    assert all(0.14 < wait <= 0.15 for wait in waits), waits


def test_a_long_batch_interval_still_polls_every_half_second():
    assert waits_of_an_idle_loader(batch_ms=5_000) == [0.5, 0.5, 0.5]
