"""`coinstream backfill`: the daily closes (12:00 UTC) of a range of days into Kafka, once."""

from __future__ import annotations

from datetime import date

import click

from coinstream.cli.daily_closes import (
    day_option,
    finish,
    open_service,
    progress_redirect,
    with_common_options,
)
from coinstream.common.processes import stop_requested_on_signals
from coinstream.common.settings import Settings


@click.command("backfill")
@click.option(
    "--start",
    callback=day_option,
    default=None,
    metavar="YYYY-MM-DD",
    help="First day, YYYY-MM-DD (default: HISTORICAL_BACKFILL_DAYS days before --end).",
)
@click.option(
    "--end",
    callback=day_option,
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
@with_common_options
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
        service = open_service(settings, topic, stop, migrate, show_bar)
        try:
            with progress_redirect(show_bar):
                report = service.run(coins, start, end, retry_gaps=retry_gaps, reconcile=reconcile)
        finally:
            unacknowledged = service.close()
    finish(report, unacknowledged)
