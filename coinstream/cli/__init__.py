"""The `coinstream` command line.

Each top-level command lives in its own module under `coinstream/cli/commands/` as a click command
or group named `command`, and is added to `main` at the end of this module: the list of commands
is read in one place. A group adds its own sub-commands where it is defined.
"""

from __future__ import annotations

import sys

import click

from coinstream.cli.commands import (
    backfill,
    broker,
    clickhouse,
    dashboard,
    indicators,
    ksql,
    load,
    metabase,
    produce,
    sim_api,
    sql,
    status,
    up,
)
from coinstream.common.logging_setup import configure_logging
from coinstream.common.settings import Settings, SettingsError, get_settings


def load_settings_or_exit() -> Settings:
    """Settings for a command; a malformed setting ends the process with its explanation."""
    try:
        return get_settings()
    except SettingsError as error:
        click.echo(f"coinstream: {error}", err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="coinstream")
@click.pass_context
def main(ctx: click.Context) -> None:
    """coinstream: real-time cryptocurrency rates from LiveCoinWatch to Kafka, ksqlDB and ClickHouse."""
    if ctx.resilient_parsing or _asks_for_help():
        return
    settings = load_settings_or_exit()
    configure_logging(settings.log_level)
    ctx.obj = settings


def _asks_for_help() -> bool:
    """Help must work even with a broken `.env`, so settings are not read for it."""
    # click parses the sub-command's arguments only after this group's callback has run.
    return any(arg in ("-h", "--help") for arg in sys.argv[1:])


for _command in (
    backfill.command,
    broker.command,
    clickhouse.command,
    dashboard.command,
    indicators.command,
    ksql.command,
    load.command,
    metabase.command,
    produce.command,
    sim_api.command,
    sql.command,
    status.command,
    up.command,
):
    main.add_command(_command)
