"""`coinstream backfill` and `coinstream produce historical`: daily closes (12:00 UTC) into Kafka.

Both run the same resumable pass (`producers.historical`); `produce historical` repeats it every
day after 12:00 UTC, `backfill` runs it once over a chosen range. Exit status: 0 when every close
of the range is settled (delivered or recorded as a gap), 75 (EX_TEMPFAIL) when the credit budget
stopped the pass — run again after 00:00 UTC, it resumes — and 1 on a failure.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from contextlib import nullcontext
from datetime import date, datetime, timedelta

import click
from confluent_kafka import KafkaException

from coinstream.cli.metrics_endpoint import metrics_endpoint, metrics_port
from coinstream.common.optional_imports import without_dataframe_libraries
from coinstream.common.processes import stop_requested_on_signals
from coinstream.common.settings import Settings
from coinstream.common.testing_hooks import hook_value
from coinstream.producers.errors import redact
from coinstream.producers.historical import TOPIC, BackfillReport, HistoricalService
from coinstream.producers.historical.days import as_utc, parse_day, utc_now
from coinstream.producers.historical.schedule import run_scheduled
from coinstream.producers.metrics import ProducerMetrics

log = logging.getLogger("coinstream.backfill")

EXIT_BUDGET = 75  # EX_TEMPFAIL: try again later (after the credits renew)


def _day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return parse_day(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _codes(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    codes = list(dict.fromkeys(code.strip().upper() for code in value.split(",") if code.strip()))
    if not codes or any(not code.replace("_", "").isalnum() for code in codes):
        raise click.BadParameter("expected comma-separated coin codes such as BTC,ETH")
    return codes


def _clock():
    """The wall clock; under the `clock.start` test hook, one that starts at that UTC instant and
    runs at the wall clock's pace (the tests pin the days a run covers)."""
    start = hook_value("clock.start")
    if start is None:
        return utc_now
    now = as_utc(datetime.fromisoformat(start.replace("Z", "+00:00")))
    started = time.monotonic()
    return lambda: now + timedelta(seconds=time.monotonic() - started)


def _progress_redirect(show_bar: bool | None):
    """Route log lines around the tqdm bar while it is drawn."""
    if show_bar is False or (show_bar is None and not sys.stderr.isatty()):
        return nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()


def _open_service(
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
            clock=_clock(),
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


def _finish(report: BackfillReport, unacknowledged: int) -> None:
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


_common_options = [
    click.option("--coins", callback=_codes, default=None, help="Comma-separated coin codes (default: COINS)."),
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


def _with_common(function):
    for option in reversed(_common_options):
        function = option(function)
    return function


@click.command("backfill")
@click.option(
    "--start",
    callback=_day,
    default=None,
    metavar="YYYY-MM-DD",
    help="First day, YYYY-MM-DD (default: HISTORICAL_BACKFILL_DAYS days before --end).",
)
@click.option(
    "--end",
    callback=_day,
    default=None,
    metavar="YYYY-MM-DD",
    help="Last day, YYYY-MM-DD (default and at most: the latest day whose 12:00 UTC "
    "+ HISTORICAL_CLOSE_MARGIN_S has passed).",
)
@click.option(
    "--retry-gaps", is_flag=True, help="Request days recorded as gaps again (e.g. after fixing an unknown code)."
)
@click.option(
    "--reconcile",
    is_flag=True,
    help="Request again days marked delivered that coins_historical does not hold "
    "(after a broker lost its topics before the loader read them).",
)
@_with_common
@click.pass_obj
def command(
    settings: Settings,
    start: date | None,
    end: date | None,
    retry_gaps: bool,
    reconcile: bool,
    coins: list[str] | None,
    topic: str,
    show_bar: bool | None,
    migrate: bool,
) -> None:
    """Publish the daily close (rate at 12:00 UTC) of every coin and day to Kafka, once.

    Resumable: each (coin, day) is recorded in ClickHouse once the broker acknowledged it, so a
    failed or killed run loses nothing and a re-run requests only what is missing. Stops cleanly
    when the credit budget (HISTORICAL_DAILY_CREDITS) is spent, saying where it will resume.
    """
    if start is not None and end is not None and start > end:
        raise click.BadParameter("--start is after --end", param_hint="--start")
    with stop_requested_on_signals("finishing the current close, then stopping") as stop:
        service = _open_service(settings, topic, stop, migrate, show_bar)
        try:
            with _progress_redirect(show_bar):
                report = service.run(coins, start, end, retry_gaps=retry_gaps, reconcile=reconcile)
        finally:
            unacknowledged = service.close()
    _finish(report, unacknowledged)


@click.command("historical")
@click.option("--once", is_flag=True, help="One pass, then exit (cron, containers).")
@click.option(
    "--start",
    callback=_day,
    default=None,
    metavar="YYYY-MM-DD",
    help="Fixed first day, YYYY-MM-DD (default: a window of the latest "
    "HISTORICAL_BACKFILL_DAYS closed days, moving with the date).",
)
@click.option(
    "--metrics-port",
    "port_option",
    type=click.IntRange(0, 65535),
    default=None,
    help="Prometheus /metrics on METRICS_HOST while the job runs (default "
    "HISTORICAL_METRICS_PORT, not with --once; 0 = off).",
)
@click.option(
    "--reconcile-at-start",
    is_flag=True,
    help="The first pass also requests again days marked delivered that coins_historical "
    "does not hold (`coinstream up` passes it: its broker may have lost them).",
)
@_with_common
@click.pass_obj
def historical_command(
    settings: Settings,
    once: bool,
    start: date | None,
    port_option: int | None,
    reconcile_at_start: bool,
    coins: list[str] | None,
    topic: str,
    show_bar: bool | None,
    migrate: bool,
) -> None:
    """The scheduled daily-close job: backfill up to the latest closed day, then sleep until the
    next 12:00 UTC + HISTORICAL_CLOSE_MARGIN_S (or until credits renew) and repeat."""
    metrics = ProducerMetrics()
    port = metrics_port(settings.historical_metrics_port, port_option, once)
    with (
        metrics_endpoint(metrics.registry, port, settings.metrics_host, "historical", "HISTORICAL_METRICS_PORT"),
        stop_requested_on_signals("finishing the current close, then stopping") as stop,
    ):
        service = _open_service(settings, topic, stop, migrate, show_bar, metrics)
        try:
            with _progress_redirect(show_bar):
                first_pass = [reconcile_at_start]
                report = run_scheduled(
                    lambda: service.run(coins, start, reconcile=first_pass.pop() if first_pass else False),
                    service.clock,
                    service.margin,
                    stop.wait,
                    once=once,
                    on_report=lambda r: log.info("%s", r.summary()) if not once else None,
                )
        finally:
            unacknowledged = service.close()
    _finish(report, unacknowledged)
