"""`coinstream up`: the whole local stack in one command."""

from __future__ import annotations

import asyncio
import shlex

import click

from coinstream.common.settings import Settings
from coinstream.stack.broker_rotation import CHECK_INTERVAL_S, BrokerRotation
from coinstream.stack.services import local_stack
from coinstream.stack.status import STATUS_INTERVAL_S, metrics_urls, report_status
from coinstream.stack.supervisor import StackError, Supervisor


@click.command("up")
@click.option("--infra-only", is_flag=True, help="Start only the local broker and ClickHouse server.")
@click.option(
    "--status-interval",
    type=click.FloatRange(min=0),
    default=STATUS_INTERVAL_S,
    show_default=True,
    help="Seconds between `status |` lines (events/s, consumer lag, credits left, from "
    "the producer's and loader's metrics endpoints); 0 = none. Without "
    "PRODUCER_METRICS_PORT and LOADER_METRICS_PORT there is no line.",
)
@click.option(
    "--service-args",
    "service_args",
    multiple=True,
    metavar="SERVICE=ARGS",
    help="Extra arguments for one service's command, e.g. "
    "'loader=--batch-ms 100' or 'ksql=--commit-interval-ms 100' (repeatable; "
    "for tuning and benchmarks).",
)
@click.option(
    "--broker-check-interval",
    type=click.FloatRange(min=0.1),
    default=CHECK_INTERVAL_S,
    show_default=True,
    help="Seconds between measurements of the local broker's memory (rotated past LOCAL_BROKER_MAX_MEMORY_MB).",
)
@click.pass_obj
def command(
    settings: Settings,
    infra_only: bool,
    status_interval: float,
    service_args: tuple[str, ...],
    broker_check_interval: float,
) -> None:
    """Start every local part in dependency order, restart crashed ones, stop all on Ctrl+C."""
    extra: dict[str, list[str]] = {}
    for item in service_args:
        name, sep, args = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected SERVICE=ARGS, got {item!r}", param_hint="--service-args")
        extra.setdefault(name.strip(), []).extend(shlex.split(args))
    try:
        services = local_stack(settings, infrastructure_only=infra_only, extra_args=extra)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--service-args") from None
    supervisor = Supervisor(services)
    rotation: BrokerRotation | None = None
    if settings.uses_local_kafka and not infra_only:
        rotation = BrokerRotation(
            supervisor, settings, settings.local_broker_max_memory_mb * 1048576, check_interval_s=broker_check_interval
        )
        supervisor.before_stop = rotation.drain_for_stop

    def announce() -> None:
        target = settings.clickhouse_target()
        supervisor.say("up", f"ready: Kafka {settings.effective_kafka_bootstrap}, ClickHouse {target.http_url}")
        if not infra_only:
            supervisor.say("up", f"dashboard: http://127.0.0.1:{settings.dashboard_port}/")
        supervisor.say("up", 'try: coinstream sql "SELECT code, rate, updated_at FROM overview_for_dashboard"')
        supervisor.say("up", "Ctrl+C stops everything")
        if rotation is not None:
            rotation.task = supervisor.run_in_background(rotation.run())
        endpoints = metrics_urls(settings)
        if not infra_only and status_interval > 0 and any(endpoints):
            supervisor.run_in_background(
                report_status(
                    supervisor.say,
                    endpoints,
                    status_interval,
                    lambda: {state.service.name: state.restarts for state in supervisor.states},
                )
            )

    try:
        asyncio.run(supervisor.run_until_stopped(on_ready=announce))
    except StackError as error:
        raise click.ClickException(str(error)) from None
