"""`coinstream produce current|historical`: the two producers, LiveCoinWatch rates into Kafka.

`current` polls every coin's rate every few seconds; `historical` is the scheduled daily-close job
(the pass `coinstream backfill` runs once, repeated every day after 12:00 UTC).
"""

from __future__ import annotations

import logging
from datetime import date

import click
from confluent_kafka import KafkaException

from coinstream.cli.daily_closes import (
    day_option,
    finish,
    open_service,
    progress_redirect,
    with_common_options,
)
from coinstream.cli.metrics_endpoint import metrics_endpoint, metrics_port
from coinstream.cli.setting_options import setting_option
from coinstream.common.processes import stop_requested_on_signals
from coinstream.common.settings import Settings
from coinstream.producers.current import (
    TOPIC,
    IntervalTooFast,
    ShutdownRequested,
    plan_interval,
)
from coinstream.producers.current_service import CurrentService
from coinstream.producers.errors import LcwError
from coinstream.producers.historical.schedule import run_scheduled
from coinstream.producers.metrics import ProducerMetrics

log = logging.getLogger("coinstream.produce")


@click.group("produce")
def command() -> None:
    """Run a producer: LiveCoinWatch rates into Kafka."""


@command.command("current")
@click.option("--once", is_flag=True, help="Poll once, flush and exit.")
@setting_option(
    "--interval",
    setting="poll_interval_s",
    fill_from_settings=False,
    help="Seconds between polls (unset: derived from the credit budget). A faster interval than the budget "
    "sustains is refused. Ignored with --once",
)
@click.option("--topic", default=TOPIC, show_default=True, help="Kafka topic to publish to.")
@setting_option(
    "--metrics-port",
    "port_option",
    setting="producer_metrics_port",
    fill_from_settings=False,
    help="Prometheus /metrics on METRICS_HOST, not with --once",
)
@click.pass_obj
def current(settings: Settings, once: bool, interval: float | None, topic: str, port_option: int | None) -> None:
    """Publish the current rate of every coin in COINS to Kafka, one record per coin per poll."""
    codes = list(settings.coins)
    interval_s = 0.0
    if not once:
        try:
            interval_s = plan_interval(settings, interval, len(codes))
        except IntervalTooFast as error:
            raise click.UsageError(str(error)) from None

    metrics = ProducerMetrics()
    port = metrics_port(settings.producer_metrics_port, port_option, once)
    with metrics_endpoint(metrics.registry, port, settings.metrics_host, "producer", "PRODUCER_METRICS_PORT"):
        _run_current(settings, once, interval_s, topic, codes, metrics)


def _run_current(
    settings: Settings, once: bool, interval_s: float, topic: str, codes: list[str], metrics: ProducerMetrics
) -> None:
    with stop_requested_on_signals("finishing the current poll and flushing") as stop:
        try:
            service = CurrentService(settings, metrics, stop, topic)
        except KafkaException as error:
            raise click.ClickException(
                f"cannot prepare topic {topic} on Kafka at {settings.effective_kafka_bootstrap}: {error}"
            ) from None
        client, producer = service.client, service.producer
        failure: Exception | None = None
        polls = 0
        try:
            credits = client.credits_status()
            log.info(
                "%s: %d of %d credits left today; polling %d coins %s into %s",
                client.base_url,
                credits["dailyCreditsRemaining"],
                credits["dailyCreditsLimit"],
                len(codes),
                "once" if once else f"every {interval_s:g} s",
                topic,
            )
            producer.replay_forgotten()
            polls = producer.run(interval_s, stop, once=once)
        except ShutdownRequested:
            pass
        except LcwError as error:
            failure = error
        finally:
            unacknowledged = service.close()
    counts = metrics.snapshot()
    click.echo(
        f"produce current: {polls} poll(s), {counts['records_produced']} records produced, "
        f"{counts['records_delivered']} delivered, {counts['delivery_failures']} delivery failures, "
        f"{counts['coins_missing']} coins missing, {counts['api_retries']} retries, "
        f"{counts['credits_used']} credits used"
    )
    if failure is not None:
        raise click.ClickException(str(failure))
    if unacknowledged or counts["delivery_failures"]:
        raise click.ClickException(
            f"{unacknowledged} record(s) still unacknowledged and {counts['delivery_failures']} "
            f"failed delivery to {topic}"
        )


@command.command("historical")
@click.option("--once", is_flag=True, help="One pass, then exit (cron, containers).")
@click.option(
    "--start",
    callback=day_option,
    default=None,
    metavar="YYYY-MM-DD",
    help="Fixed first day, YYYY-MM-DD (default: a window of the latest "
    "HISTORICAL_BACKFILL_DAYS closed days, moving with the date).",
)
@setting_option(
    "--metrics-port",
    "port_option",
    setting="historical_metrics_port",
    fill_from_settings=False,
    help="Prometheus /metrics on METRICS_HOST while the job runs, not with --once",
)
@click.option(
    "--reconcile-at-start",
    is_flag=True,
    help="The first pass also requests again days marked delivered that coins_historical "
    "does not hold (`coinstream up` passes it: its broker may have lost them).",
)
@with_common_options
@click.pass_obj
def historical(
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
        service = open_service(settings, topic, stop, migrate, show_bar, metrics)
        try:
            with progress_redirect(show_bar):
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
    finish(report, unacknowledged)
