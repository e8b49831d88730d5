"""Inserting a batch's rows into ClickHouse through clickhouse-connect, retrying what is transient.

Why retry forever (until asked to stop): ClickHouse being away is not bad input; the loader must
neither skip the batch (data loss) nor commit its offsets. A retry reuses the deduplication token,
so an insert that did succeed before its answer was lost is not applied twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)


class InsertAborted(RuntimeError):
    """Stopping was requested while an insert was still failing; nothing was committed."""


class ClickHouseSink:
    """One clickhouse-connect client; `insert` returns only when ClickHouse accepted the rows."""

    def __init__(
        self, client: Any, should_stop: Callable[[], bool] = lambda: False, max_backoff_s: float = 10.0
    ) -> None:
        self.client = client
        self._should_stop = should_stop
        self._max_backoff_s = max_backoff_s

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]], token: str) -> None:
        if not rows:
            return
        delay = 0.2
        while True:
            try:
                self.client.insert(
                    table,
                    rows,
                    column_names=list(columns),
                    settings={"insert_deduplication_token": token},
                )
                return
            except Exception as error:  # clickhouse-connect raises several kinds; all are retried
                if self._should_stop():
                    raise InsertAborted(f"insert into {table} failed and stop was requested") from error
                log.error(
                    "insert of %d rows into %s failed (%s: %s); retrying in %.1fs",
                    len(rows),
                    table,
                    type(error).__name__,
                    str(error).splitlines()[0][:300],
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)
