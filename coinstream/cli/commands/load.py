"""`coinstream load`: the ClickPipes-style loader, Kafka topics -> ClickHouse tables."""

from __future__ import annotations

import logging

import click

from coinstream.cli.metrics_endpoint import metrics_endpoint
from coinstream.cli.metrics_endpoint import metrics_port as resolve_metrics_port
from coinstream.cli.setting_options import setting_option
from coinstream.clickhouse.loader import DEFAULT_GROUP, FORMATS, Loader, LoaderConfig
from coinstream.clickhouse.loader.metrics import LoaderMetrics
from coinstream.common.kafka_config import admin_config, consumer_config
from coinstream.common.kafka_topics import ensure_topics
from coinstream.common.optional_imports import without_dataframe_libraries
from coinstream.common.processes import stop_requested_on_signals
from coinstream.common.settings import Settings

log = logging.getLogger(__name__)


def _split_tables(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    tables = tuple(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    unknown = [name for name in tables if name not in FORMATS]
    if not tables or unknown:
        raise click.BadParameter(f"expected a comma-separated subset of {','.join(FORMATS)}")
    return tables


@click.command("load")
@click.option(
    "--topics",
    "tables",
    default=",".join(FORMATS),
    show_default=True,
    callback=_split_tables,
    help="Topics to load; each lands in the table of its name.",
)
@click.option(
    "--topic-prefix",
    default="",
    help="Prefix of the Kafka topic names (tables keep the plain names; _topic keeps the full topic name).",
)
@click.option("--group", default=DEFAULT_GROUP, show_default=True, help="Kafka consumer group.")
@click.option(
    "--batch-rows",
    type=click.IntRange(1, 500_000),
    default=20_000,
    show_default=True,
    help="Insert when this many messages are pending…",
)
@setting_option("--batch-ms", setting="loader_batch_ms", help="…or when the oldest pending message waited this long")
@click.option(
    "--max-message-bytes",
    type=click.IntRange(1, 100 * 1024 * 1024),
    default=1_048_576,
    show_default=True,
    help="Larger messages go to the error table as oversized.",
)
@setting_option("--metrics-port", setting="loader_metrics_port", help="Prometheus /metrics on METRICS_HOST")
@click.option(
    "--migrate/--no-migrate", default=True, show_default=True, help="Apply clickhouse/schema first (idempotent)."
)
@click.option(
    "--stop-when-idle",
    type=float,
    default=None,
    help="Exit after this many seconds without messages (backfills, benchmarks).",
)
@click.option(
    "--report-interval",
    type=click.FloatRange(0.1, 3600),
    default=10.0,
    show_default=True,
    help="Seconds between the lag/rows-per-second log lines.",
)
@click.option(
    "-X",
    "--consumer-property",
    "consumer_properties",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra librdkafka consumer property (repeatable), e.g. -X session.timeout.ms=10000.",
)
@click.pass_obj
def command(
    settings: Settings,
    tables: tuple[str, ...],
    topic_prefix: str,
    group: str,
    batch_rows: int,
    batch_ms: int | None,
    max_message_bytes: int,
    metrics_port: int | None,
    migrate: bool,
    stop_when_idle: float | None,
    report_interval: float,
    consumer_properties: tuple[str, ...],
) -> None:
    """Load Kafka topics into ClickHouse like ClickPipes: batches, exactly once, error tables.

    Offsets are committed only after ClickHouse accepted the batch; messages already in
    ClickHouse are recognised and skipped, so restarts and redeliveries never double a row.
    SIGTERM or Ctrl+C finishes the current batch and exits.
    """
    without_dataframe_libraries()
    import clickhouse_connect

    from coinstream.clickhouse.migrations import MigrationError
    from coinstream.clickhouse.migrations import migrate as apply_migrations

    if batch_ms is None:  # setting_option fills it from LOADER_BATCH_MS when not given
        raise click.UsageError("--batch-ms has no value and LOADER_BATCH_MS was not read")
    target = settings.clickhouse_target()
    client = clickhouse_connect.get_client(**target.connect_kwargs())
    if migrate:
        try:
            report = apply_migrations(client)
        except MigrationError as error:
            raise click.ClickException(str(error)) from None
        if report.applied:
            log.info("applied schema files: %s", ", ".join(report.applied))
    config = LoaderConfig(
        tables=tables,
        topic_prefix=topic_prefix,
        batch_rows=batch_rows,
        batch_ms=batch_ms,
        max_message_bytes=max_message_bytes,
        max_clock_skew_ms=settings.rate_max_clock_skew_ms,
        stop_when_idle_s=stop_when_idle,
        report_interval_s=report_interval,
    )
    extra = {"client.id": "coinstream-loader"}
    for item in consumer_properties:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter("expected KEY=VALUE", param_hint="-X")
        extra[key.strip()] = value.strip()
    ensure_topics(
        admin_config(settings),
        list(config.formats_by_topic()),
        partitions=settings.kafka_topic_partitions,
        replication_factor=settings.kafka_replication_factor,
    )
    metrics = LoaderMetrics()
    loader = Loader(consumer_config(settings, group, **extra), client, config, metrics)
    try:
        with (
            metrics_endpoint(
                metrics.registry,
                resolve_metrics_port(settings.loader_metrics_port, metrics_port),
                settings.metrics_host,
                "loader",
                "LOADER_METRICS_PORT",
            ),
            stop_requested_on_signals("finishing the current batch", on_stop=loader.request_stop),
        ):
            loader.run()
    finally:
        client.close()
