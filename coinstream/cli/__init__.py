"""The `coinstream` command line.

Each sub-command lives in its own module under `coinstream/cli/commands/` and exposes a click
command or group named `command`; they are discovered here, so adding a command never means
editing a central list.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from coinstream.cli import commands as _commands_package
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


def _register_commands() -> None:
    for module_info in sorted(pkgutil.iter_modules(_commands_package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{_commands_package.__name__}.{module_info.name}")
        command = getattr(module, "command", None)
        if isinstance(command, click.Command):
            main.add_command(command)


_register_commands()
