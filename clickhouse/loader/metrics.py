"""The loader's counters: a Prometheus registry (`coinstream load` serves it on /metrics) and a
periodic log line.

Why both: an operator with Prometheus scrapes lag and throughput; one without still sees them in
the log. Each loader gets its own registry, so several loaders in one process (tests) never clash.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger(__name__)


class LoaderMetrics:
    """Counters by table/topic, lag by partition, and rows/s over the last reporting interval."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rows = Counter(
            "coinstream_loader_rows", "Rows inserted into a landing table", ["table"], registry=self.registry
        )
        self.errors = Counter(
            "coinstream_loader_errors", "Messages sent to an error table", ["table", "reason"], registry=self.registry
        )
        self.duplicates = Counter(
            "coinstream_loader_duplicates",
            "Redelivered messages skipped because they had already landed",
            ["table"],
            registry=self.registry,
        )
        self.batches = Counter("coinstream_loader_batches", "Batches inserted and committed", registry=self.registry)
        self.insert_seconds = Histogram(
            "coinstream_loader_insert_seconds", "Time to insert one batch into ClickHouse", registry=self.registry
        )
        self.lag = Gauge(
            "coinstream_loader_consumer_lag",
            "Messages in the partition not yet consumed (high watermark - position)",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.rows_per_second = Gauge(
            "coinstream_loader_rows_per_second",
            "Rows inserted per second over the last reporting interval",
            registry=self.registry,
        )
        self._interval_rows = 0
        self._interval_start = time.monotonic()
        self.totals = {"rows": 0, "errors": 0, "duplicates": 0}

    def inserted(self, table: str, rows: int) -> None:
        self.rows.labels(table).inc(rows)
        self._interval_rows += rows
        self.totals["rows"] += rows

    def rejected(self, table: str, kind: str) -> None:
        self.errors.labels(table, kind).inc()
        self.totals["errors"] += 1

    def skipped(self, table: str, count: int) -> None:
        if count:
            self.duplicates.labels(table).inc(count)
            self.totals["duplicates"] += count

    def report(self, lag: dict[tuple[str, int], int]) -> None:
        """Publish lag and rows/s, and log one line; starts a new interval."""
        now = time.monotonic()
        elapsed = max(now - self._interval_start, 1e-9)
        rate = self._interval_rows / elapsed
        self.rows_per_second.set(rate)
        for (topic, partition), value in lag.items():
            self.lag.labels(topic, str(partition)).set(value)
        log.info(
            "loader: %.0f rows/s over %.0fs; totals rows=%d errors=%d duplicates_skipped=%d; lag=%s",
            rate,
            elapsed,
            self.totals["rows"],
            self.totals["errors"],
            self.totals["duplicates"],
            sum(lag.values()) if lag else 0,
        )
        self._interval_rows = 0
        self._interval_start = now
