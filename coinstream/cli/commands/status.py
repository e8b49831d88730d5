"""`coinstream status`: is every part up? One line per part, exit 0 only when all are ok.

The probes live in `coinstream.stack.health`; this module selects parts, prints and sets the exit
code, so the same command serves an operator at a terminal, a script (`--format json`) and a
container health check (`--only producer-metrics`).
"""

from __future__ import annotations

import click

from coinstream.common.settings import Settings
from coinstream.stack import health


@click.command("status")
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(health.PARTS),
    help="Probe only this part (repeatable). A part asked for that is not configured counts as down.",
)
@click.option(
    "--skip",
    multiple=True,
    type=click.Choice(health.PARTS),
    help="Do not probe this part (repeatable), e.g. --skip dashboard when none runs.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 60),
    default=3.0,
    show_default=True,
    help="Seconds each probe may take (probes run at the same time).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A table for people, JSON for scripts.",
)
@click.pass_obj
def command(
    settings: Settings, only: tuple[str, ...], skip: tuple[str, ...], timeout: float, output_format: str
) -> None:
    """Report the health of Kafka, ClickHouse, LiveCoinWatch, ksqlDB, Metabase, the dashboard and
    the metrics endpoints; exit 0 when every configured part is ok, 1 otherwise.

    The LiveCoinWatch probe asks /credits with the key, which costs one credit.
    """
    selected = [
        check
        for check in health.checks(settings, timeout)
        if (not only or check.part in only) and check.part not in skip
    ]
    results = health.run_checks(selected, health.secrets_of(settings))
    if only:
        results = [
            health.PartHealth(r.part, r.address, health.DOWN, r.detail) if r.state == health.OFF else r for r in results
        ]
    click.echo(health.render_json(results) if output_format == "json" else health.render_table(results))
    raise SystemExit(0 if all(result.state != health.DOWN for result in results) else 1)
