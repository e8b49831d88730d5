"""One background thread that lands batches, so consuming and parsing overlap with inserting.

Why: an insert spends most of its time waiting for ClickHouse (the embedded server's own work),
while consuming and parsing the next batch is Python work in the loader; doing both at once
roughly doubles throughput. At most one batch is in flight and the next one waits for it, so
inserts and commits keep Kafka's order, and a commit still follows its batch's inserts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BatchWorker(Generic[T]):
    """Runs `land(batch)` on a worker thread, one batch at a time, and reports its failure."""

    def __init__(self, land: Callable[[T], None], name: str = "loader-insert") -> None:
        self._land = land
        self._name = name
        self._lock = threading.Condition()
        self._pending: T | None = None
        self._busy = False
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, batch: T) -> None:
        """Hand over a batch once the previous one is landed (raises the worker's failure)."""
        with self._lock:
            while self._busy and self._error is None:
                self._lock.wait()
            self._raise_locked()
            self._pending = batch
            self._busy = True
            self._lock.notify_all()

    def wait_idle(self) -> None:
        """Block until the batch in flight, if any, is landed (raises the worker's failure)."""
        with self._lock:
            while self._busy and self._error is None:
                self._lock.wait()
            self._raise_locked()

    def raise_if_failed(self) -> None:
        with self._lock:
            self._raise_locked()

    def close(self) -> None:
        """Stop the thread after the batch in flight (without raising its failure)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join()

    def _raise_locked(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._busy = False
            raise error

    def _loop(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._lock.wait()
                if self._pending is None:
                    return
                batch, self._pending = self._pending, None
            try:
                self._land(batch)
            except BaseException as error:  # handed to the consuming thread, which re-raises it
                with self._lock:
                    self._error = error
                    self._lock.notify_all()
                continue
            with self._lock:
                self._busy = False
                self._lock.notify_all()
