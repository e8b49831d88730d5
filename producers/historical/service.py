"""Wiring: settings -> ClickHouse store, credit guard, LiveCoinWatch client, Kafka producer, `Backfill`.

Why separate from `backfill`: the runner takes its collaborators as arguments (tests build them
around the real broker, simulated API and ClickHouse server); this module builds them from the
settings the same way for `coinstream backfill` and `coinstream produce historical`, and tears
them down in the order that keeps the guarantees — unused reserved credits given back, every
message flushed, connections closed.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from confluent_kafka import Producer

from coinstream.common.kafka_config import producer_config
from coinstream.common.settings import Settings
from coinstream.producers.client import LiveCoinWatchClient
from coinstream.producers.current import interruptible_sleep, prepare_topic
from coinstream.producers.historical.backfill import TOPIC, Backfill, BackfillReport
from coinstream.producers.historical.budget import BackfillCredits
from coinstream.producers.historical.days import Clock, backfill_window, utc_now
from coinstream.producers.historical.store import ProgressStore
from coinstream.producers.metrics import ProducerMetrics

log = logging.getLogger("coinstream.producers.historical")


def connect_clickhouse(settings: Settings) -> Any:
    """A clickhouse-connect client for CLICKHOUSE_URL (or the local embedded server)."""
    import clickhouse_connect

    return clickhouse_connect.get_client(**settings.clickhouse_target().connect_kwargs())


def apply_schema(client: Any) -> None:
    """Apply clickhouse/schema (idempotent): the progress tables and views must exist."""
    from coinstream.clickhouse.migrations import migrate

    report = migrate(client)
    if report.applied:
        log.info("applied schema files: %s", ", ".join(report.applied))


class HistoricalService:
    """Everything one backfill process needs, built from the settings; use as a context manager."""

    def __init__(
        self,
        settings: Settings,
        *,
        topic: str = TOPIC,
        clock: Clock = utc_now,
        stop: threading.Event | None = None,
        migrate: bool = True,
        show_progress: bool | None = None,
        clickhouse: Any = None,
        metrics: ProducerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.clock = clock
        self.stop = stop or threading.Event()
        self.run_id = uuid.uuid4().hex[:12]
        # Given by `produce historical`, which serves them on /metrics before the service opens.
        self.metrics = metrics or ProducerMetrics()
        self._closed = False
        self._owns_clickhouse = clickhouse is None
        self.clickhouse = clickhouse if clickhouse is not None else connect_clickhouse(settings)
        try:
            if migrate:
                apply_schema(self.clickhouse)
            prepare_topic(settings, topic)
            self.store = ProgressStore(self.clickhouse, topic, self.run_id)
            self.credits = BackfillCredits(
                settings.historical_daily_credits, settings.daily_credit_budget, self.store, clock
            )
            self.client = LiveCoinWatchClient.from_settings(
                settings, credits=self.credits, metrics=self.metrics, sleep=interruptible_sleep(self.stop)
            )
            self.producer = Producer(producer_config(settings))
        except Exception:
            self._close_clickhouse()
            raise
        self.backfill = Backfill(
            self.client,
            self.producer,
            self.store,
            self.credits,
            topic=topic,
            currency=settings.currency,
            clock=clock,
            metrics=self.metrics,
            stop=self.stop,
            cooldown_s=settings.lcw_retry_max_wait_s,
            show_progress=show_progress,
        )

    @property
    def margin(self) -> timedelta:
        return timedelta(seconds=self.settings.historical_close_margin_s)

    def window(self, start: date | None = None, end: date | None = None) -> tuple[date, date, str]:
        """[start, end] of closed days (defaults: the latest HISTORICAL_BACKFILL_DAYS closed days)."""
        return backfill_window(self.clock(), self.margin, self.settings.historical_backfill_days, start, end)

    def run(
        self,
        codes: Sequence[str] | None = None,
        start: date | None = None,
        end: date | None = None,
        *,
        retry_gaps: bool = False,
        reconcile: bool = False,
    ) -> BackfillReport:
        """One pass over the window (computed now, from the clock)."""
        first, last, note = self.window(start, end)
        if note:
            log.info("%s", note)
        return self.backfill.run(
            list(codes or self.settings.coins), first, last, retry_gaps=retry_gaps, reconcile=reconcile, note=note
        )

    def close(self) -> int:
        """Give back unused credits, flush, close; return messages still unacknowledged.

        Idempotent: a second call returns 0 and does nothing.
        """
        if self._closed:
            return 0
        self._closed = True
        unacknowledged = 0
        try:
            self.credits.release()
        except Exception as error:  # the ledger keeps the reservation: conservative, never over
            log.warning("could not give back unused reserved credits: %s", error)
        finally:
            unacknowledged = self.producer.flush(30.0)
            close_producer = getattr(self.producer, "close", None)  # confluent-kafka >= 2.6
            if close_producer is not None:
                close_producer()
            self.client.close()
            self._close_clickhouse()
        return unacknowledged

    def _close_clickhouse(self) -> None:
        if self._owns_clickhouse:
            self.clickhouse.close()

    def __enter__(self) -> HistoricalService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
