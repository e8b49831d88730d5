"""`coinstream clickhouse views`: what each view answers, read from its spec file.

The views' `.yml` files are their documentation; this command prints them (a listing, one view in
full, or a Markdown table), so no README keeps a copy that could drift. A sub-command of the
`clickhouse` group (coinstream/cli/commands/clickhouse.py).
"""

from __future__ import annotations

import click


@click.command("views")
@click.argument("name", required=False)
@click.option("--markdown", is_flag=True, help="Print every view as a Markdown table instead of a listing.")
def views_command(name: str | None, markdown: bool) -> None:
    """List the views (a line each: name, whether a dashboard reads it, what it answers), or show
    NAME in full: what it answers, its columns and types, the tests that check it."""
    from coinstream.clickhouse.view_docs import view_detail, views_listing, views_markdown

    if name and markdown:
        raise click.UsageError("--markdown lists every view; give no NAME with it")
    if markdown:
        click.echo(views_markdown())
    elif name:
        try:
            click.echo(view_detail(name))
        except KeyError as error:
            raise click.ClickException(error.args[0]) from None
    else:
        click.echo(views_listing())
