"""The ksql engine's counters, for its Prometheus endpoint (`coinstream ksql run`, KSQL_METRICS_PORT).

Why these: an operator asks of a stream processor what came in and went out per topic, what it
could not process and why (by the processing log's fixed kinds, never the free-text reason, so
the label set stays small), whether it keeps up (consumer lag, commit-cycle duration) and how much
state it holds (open windows, windows restored after a restart). Each engine gets its own
registry, so several engines in one process (tests) never clash.

The runner tallies records per topic in a plain dict and updates the Prometheus counters once per
consumed batch and per commit cycle: a counter's lock is taken per batch, never per record.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Commit cycles take from about a millisecond (nothing to write) to seconds (a large flush).
CYCLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class EngineMetrics:
    """Records in/out by topic, processing-log entries by source and kind, cycles, windows, lag."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records_in = Counter(
            "coinstream_ksql_records_in", "Input records consumed, by topic", ["topic"], registry=r
        )
        self.records_out = Counter(
            "coinstream_ksql_records_out", "Output records produced, by sink topic", ["topic"], registry=r
        )
        self.processing_log = Counter(
            "coinstream_ksql_processing_log_entries",
            "Processing-log entries, by query (or source, for records that do not decode) and kind",
            ["source", "kind"],
            registry=r,
        )
        self.commit_cycles = Counter(
            "coinstream_ksql_commit_cycles", "Commit cycles completed (outputs, changelog, then offsets)", registry=r
        )
        self.commit_cycle_seconds = Histogram(
            "coinstream_ksql_commit_cycle_seconds", "Duration of one commit cycle", buckets=CYCLE_BUCKETS, registry=r
        )
        self.open_windows = Gauge(
            "coinstream_ksql_open_windows",
            "Aggregate states held in memory (windows not yet closed), by query",
            ["query"],
            registry=r,
        )
        self.restored_windows = Counter(
            "coinstream_ksql_restored_windows",
            "Window states read back from the changelog on assignment, by query",
            ["query"],
            registry=r,
        )
        self.lag = Gauge(
            "coinstream_ksql_consumer_lag",
            "Input records not yet consumed (high watermark - position)",
            ["topic", "partition"],
            registry=r,
        )

    def consumed(self, by_topic: Mapping[str, int]) -> None:
        for topic, count in by_topic.items():
            self.records_in.labels(topic).inc(count)

    def produced(self, by_topic: Mapping[str, int]) -> None:
        for topic, count in by_topic.items():
            self.records_out.labels(topic).inc(count)

    def logged(self, source: str, kind: str) -> None:
        self.processing_log.labels(source, kind).inc()

    def cycle(self, seconds: float) -> None:
        self.commit_cycles.inc()
        self.commit_cycle_seconds.observe(seconds)

    def restored(self, query: str, windows: int) -> None:
        self.restored_windows.labels(query).inc(windows)

    def windows(self, by_query: Mapping[str, int]) -> None:
        for query, count in by_query.items():
            self.open_windows.labels(query).set(count)

    def set_lag(self, lag: Mapping[tuple[str, int], int]) -> None:
        """Publish the lag of the partitions in `lag`; partitions no longer assigned disappear."""
        current = {(topic, str(partition)) for topic, partition in lag}
        for labels in self._lag_labels() - current:
            self.lag.remove(*labels)
        for (topic, partition), value in lag.items():
            self.lag.labels(topic, str(partition)).set(value)

    def _lag_labels(self) -> set[tuple[str, str]]:
        return {
            (sample.labels["topic"], sample.labels["partition"])
            for metric in self.lag.collect()
            for sample in metric.samples
        }
