"""`coinstream clickhouse ...`: the embedded ClickHouse server (chDB behind ClickHouse's HTTP API).

`serve` owns the chDB data directory and answers ClickHouse's HTTP interface on 127.0.0.1, so every
other process (producers, loader, dashboards, `coinstream sql`) uses clickhouse-connect over HTTP
exactly as against a real ClickHouse server.

`migrate` (clickhouse_migrate.py) and `views` (clickhouse_views.py) need no server of their own and
are added to the group here, with `serve`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from coinstream.cli.commands.clickhouse_migrate import migrate_command
from coinstream.cli.commands.clickhouse_views import views_command
from coinstream.cli.setting_options import setting_option
from coinstream.common.settings import Settings


@click.group("clickhouse")
def command() -> None:
    """The embedded ClickHouse server."""


command.add_command(migrate_command)
command.add_command(views_command)


@command.command("serve")
@setting_option("--port", setting="clickhouse_port", allow_zero="any free port", help="TCP port on 127.0.0.1")
@click.option(
    "--path",
    "path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="chDB data directory (default: $COINSTREAM_DATA_DIR/clickhouse).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="chDB calls of the full user running at once (queries, inserts, stream chunks).",
)
@click.option(
    "--readonly-workers",
    type=click.IntRange(1, 256),
    default=4,
    show_default=True,
    help="chDB calls of read-only users (dashboards) running at once, in their own lane.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(1 << 10, 1 << 40),
    default=256 << 20,
    show_default=True,
    help="Largest request body, as sent and after decompression.",
)
@click.pass_obj
def serve(
    settings: Settings,
    port: int | None,
    path: Path | None,
    host: str,
    workers: int,
    readonly_workers: int,
    max_body_bytes: int,
) -> None:
    """Serve ClickHouse's HTTP interface over a chDB data directory until SIGTERM/Ctrl-C.

    Users come from the settings: CLICKHOUSE_USER/CLICKHOUSE_PASSWORD (full access) and
    CLICKHOUSE_READONLY_USER/CLICKHOUSE_READONLY_PASSWORD (read-only, for dashboards). Passwords
    not set there are generated on the first start and stored in DIR/credentials.env.
    """
    from coinstream.clickhouse.server.engine import EngineStartError, ensure_utc_process

    ensure_utc_process()  # before the engine module loads chDB
    from coinstream.clickhouse.server.runner import (
        ServerConfig,
        options_from_settings,
        users_from_settings,
    )
    from coinstream.clickhouse.server.runner import (
        serve as run_server,
    )

    if port is None:  # setting_option fills it from CLICKHOUSE_PORT when not given
        raise click.UsageError("--port has no value and CLICKHOUSE_PORT was not read")
    data_path = (path or settings.clickhouse_data_dir).resolve()
    config = ServerConfig(
        path=data_path,
        users=users_from_settings(settings, data_path),
        host=host,
        port=port,
        max_workers=workers,
        readonly_workers=readonly_workers,
        options=options_from_settings(settings, host, max_body_bytes),
    )
    try:
        run_server(config)
    except EngineStartError as error:
        click.echo(f"coinstream clickhouse serve: {error}", err=True)
        sys.exit(1)
    except OSError as error:
        click.echo(
            f"coinstream clickhouse serve: cannot listen on {config.host}:{config.port}: {error.strerror or error}",
            err=True,
        )
        sys.exit(1)
