"""What `coinstream backfill` and `coinstream produce historical` share: their options, the
service they open and how they end.

Both run the same resumable pass (`coinstream.producers.historical`); `produce historical` repeats
it every day after 12:00 UTC, `backfill` runs it once over a chosen range. Exit status: 0 when every
close of the range is settled (delivered or recorded as a gap), 75 (EX_TEMPFAIL) when the credit
budget stopped the pass — run again after 00:00 UTC, it resumes — and 1 on a failure.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import click
from confluent_kafka import KafkaException

from coinstream.common.coin_codes import parse_coin_codes
from coinstream.common.optional_imports import without_dataframe_libraries
from coinstream.common.settings import Settings
from coinstream.common.testing_hooks import hook_value
from coinstream.producers.errors import redact
from coinstream.producers.historical import TOPIC, BackfillReport, HistoricalService
from coinstream.producers.historical.days import as_utc, parse_day, utc_now
from coinstream.producers.metrics import ProducerMetrics

F = TypeVar("F", bound=Callable[..., Any])

EXIT_BUDGET = 75  # EX_TEMPFAIL: try again later (after the credits renew)


def day_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return parse_day(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def coins_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    try:
        return list(parse_coin_codes(value))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def backfill_clock() -> Callable[[], datetime]:
    """The wall clock; under the `clock.start` test hook, one that starts at that UTC instant and
    runs at the wall clock's pace (the tests pin the days a run covers)."""
    start = hook_value("clock.start")
    if start is None:
        return utc_now
    now = as_utc(datetime.fromisoformat(start.replace("Z", "+00:00")))
    started = time.monotonic()
    return lambda: now + timedelta(seconds=time.monotonic() - started)


def progress_redirect(show_bar: bool | None) -> AbstractContextManager[Any]:
    """Route log lines around the tqdm bar while it is drawn."""
    if show_bar is False or (show_bar is None and not sys.stderr.isatty()):
        return nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()


def open_service(
    settings: Settings,
    topic: str,
    stop: threading.Event,
    migrate: bool,
    show_bar: bool | None,
    metrics: ProducerMetrics | None = None,
) -> HistoricalService:
    without_dataframe_libraries()
    if settings.historical_daily_credits < 1:
        raise click.UsageError("HISTORICAL_DAILY_CREDITS is 0: no credits are reserved for the backfill")
    try:
        return HistoricalService(
            settings,
            topic=topic,
            clock=backfill_clock(),
            stop=stop,
            migrate=migrate,
            show_progress=show_bar,
            metrics=metrics,
        )
    except KafkaException as error:
        raise click.ClickException(
            f"cannot prepare topic {topic} on Kafka at {settings.effective_kafka_bootstrap}: {error}"
        ) from None
    except Exception as error:  # ClickHouse unreachable or its schema refused
        target = settings.clickhouse_target()
        first_line = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
        raise click.ClickException(
            f"cannot use ClickHouse at {target.http_url} for the backfill's progress: "
            f"{redact(first_line, target.password)}"
        ) from None


def finish(report: BackfillReport, unacknowledged: int) -> None:
    """Print the summary and leave with the status the report calls for."""
    click.echo(report.summary())
    if unacknowledged:
        raise click.ClickException(
            f"{unacknowledged} message(s) still unacknowledged at exit; "
            "they were not settled and the next run requests them again"
        )
    if report.stopped in ("failed", "rejected"):
        raise click.ClickException(report.reason)
    if report.stopped == "budget":
        sys.exit(EXIT_BUDGET)


COMMON_OPTIONS = [
    click.option("--coins", callback=coins_option, default=None, help="Comma-separated coin codes (default: COINS)."),
    click.option("--topic", default=TOPIC, show_default=True, help="Kafka topic to publish to."),
    click.option(
        "--progress/--no-progress",
        "show_bar",
        default=None,
        help="Progress bar (default: when stderr is a terminal; else log lines).",
    ),
    click.option(
        "--migrate/--no-migrate", default=True, show_default=True, help="Apply clickhouse/schema first (idempotent)."
    ),
]


def with_common_options(function: F) -> F:
    for option in reversed(COMMON_OPTIONS):
        function = option(function)
    return function
