"""`coinstream clickhouse migrate`: the table migrations, then the views, on CLICKHOUSE_URL or the
local server. A sub-command of the `clickhouse` group (coinstream/cli/commands/clickhouse.py).
"""

from __future__ import annotations

import click

from coinstream.common.settings import Settings


@click.command("migrate")
@click.option(
    "--database", default=None, help="Database to migrate (default: the one in CLICKHOUSE_URL, else 'default')."
)
@click.pass_obj
def migrate_command(settings: Settings, database: str | None) -> None:
    """Apply the table migrations in order, each once (refusing a changed applied file), then bring
    every view to its file's definition."""
    import clickhouse_connect

    from coinstream.clickhouse.migrations import MigrationError, migrate

    options = settings.clickhouse_target().connect_kwargs()
    if database:
        options["database"] = database
    if options["database"] != "default":
        admin = clickhouse_connect.get_client(**{**options, "database": "default"})
        try:
            admin.command(f"CREATE DATABASE IF NOT EXISTS `{options['database']}`")
        finally:
            admin.close()
    client = clickhouse_connect.get_client(**options)
    try:
        report = migrate(client)
    except MigrationError as error:
        raise click.ClickException(str(error)) from None
    finally:
        client.close()
    for name in report.applied:
        click.echo(f"applied {name}")
    click.echo(f"{len(report.applied)} applied, {len(report.already_applied)} already applied")
