"""The insert worker: one batch at a time, in order, and its failure reaches the consuming thread."""

from __future__ import annotations

import threading

import pytest

from coinstream.clickhouse.loader.pipeline import BatchWorker


def test_batches_land_in_order_one_at_a_time():
    landed: list[int] = []
    in_flight = 0
    most_in_flight = 0
    lock = threading.Lock()

    def land(batch: int) -> None:
        nonlocal in_flight, most_in_flight
        with lock:
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
        landed.append(batch)
        with lock:
            in_flight -= 1

    worker = BatchWorker(land)
    try:
        for batch in range(50):
            worker.submit(batch)
        worker.wait_idle()
    finally:
        worker.close()
    assert landed == list(range(50)) and most_in_flight == 1


def test_failure_is_raised_in_the_consuming_thread_once():
    release = threading.Event()

    def land(batch: int) -> None:
        release.wait(5)
        if batch == 1:
            raise RuntimeError("ClickHouse said no")

    worker = BatchWorker(land)
    try:
        worker.submit(1)
        release.set()
        with pytest.raises(RuntimeError, match="ClickHouse said no"):
            worker.wait_idle()
        worker.raise_if_failed()  # reported once
        worker.submit(2)
        worker.wait_idle()
    finally:
        worker.close()
