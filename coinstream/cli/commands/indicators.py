"""`coinstream indicators`: keeps the indicator store (v_indicators*) current with the candles."""

from __future__ import annotations

import logging
import time

import click

from coinstream.cli.setting_options import setting_option
from coinstream.common.settings import Settings

log = logging.getLogger(__name__)


@click.command("indicators")
@setting_option("--interval-ms", setting="indicators_interval_ms", help="Time between cycles")
@click.option(
    "--once", is_flag=True, help="Run one cycle (recompute what changed, or everything the first time) and exit."
)
@click.option(
    "--migrate/--no-migrate", default=True, show_default=True, help="Apply clickhouse/schema first (idempotent)."
)
@click.pass_obj
def command(settings: Settings, interval_ms: int | None, once: bool, migrate: bool) -> None:
    """Recompute the technical indicators of every candle series that changed, cycle after cycle.

    Every insert into the candles marks the series it touched; each cycle recomputes them from the
    earliest marked bucket (from the stored state before it) and stores the rows the v_indicators
    views read. The first run, or one after more than 7 days down, rebuilds every series. A failed
    cycle is logged and tried again at the next interval; SIGTERM or Ctrl+C ends after the current
    cycle.
    """
    import clickhouse_connect

    from coinstream.clickhouse.indicators.maintainer import IndicatorMaintainer
    from coinstream.clickhouse.migrations import MigrationError
    from coinstream.clickhouse.migrations import migrate as apply_migrations
    from coinstream.common.processes import stop_requested_on_signals

    if interval_ms is None:  # setting_option fills it from INDICATORS_INTERVAL_MS when not given
        raise click.UsageError("--interval-ms has no value and INDICATORS_INTERVAL_MS was not read")
    client = clickhouse_connect.get_client(**settings.clickhouse_target().connect_kwargs())
    try:
        if migrate:
            try:
                apply_migrations(client)
            except MigrationError as error:
                raise click.ClickException(str(error)) from None
        maintainer = IndicatorMaintainer(client)
        if once:
            report = maintainer.run_once()
            click.echo(f"{report.total_buckets} buckets recomputed in {sum(report.series.values())} series")
            return
        with stop_requested_on_signals("finishing the current cycle") as stop:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    report = maintainer.run_once()
                except Exception as error:  # a failed cycle is retried; the process stays up
                    log.error("indicator cycle failed, retrying in %d ms: %s", interval_ms, error)
                else:
                    if report.total_buckets:
                        log.debug("recomputed %s", report.buckets)
                stop.wait(max(0.0, interval_ms / 1000 - (time.monotonic() - started)))
    finally:
        client.close()
