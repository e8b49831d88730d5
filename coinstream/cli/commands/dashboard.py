"""`coinstream dashboard`: the live local dashboard, rendering metabase/dashboards/ in a browser.

Reads ClickHouse as the read-only user (CLICKHOUSE_READONLY_USER on the local server, or on
CLICKHOUSE_URL when that variable is set) and serves the page on 127.0.0.1, so traders can watch
the same cards as in Metabase, plus candlesticks, without Metabase. Requests from other web pages
(an `Origin` not in HTTP_ALLOWED_ORIGINS) and for other host names (DNS rebinding) get 403.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from coinstream.cli.setting_options import setting_option
from coinstream.common.optional_imports import without_dataframe_libraries
from coinstream.common.settings import Settings


@click.command("dashboard")
@setting_option("--port", setting="dashboard_port", allow_zero="any free port", help="TCP port (the URL is printed)")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--interval",
    "interval_s",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between ClickHouse polls of each open page.",
)
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Dashboard spec (default: metabase/dashboards/coinstream.yaml).",
)
@click.pass_obj
def command(settings: Settings, port: int, host: str, interval_s: float, spec_path: Path | None) -> None:
    """Serve the live dashboard (candles, moving averages, overview) until Ctrl-C."""
    without_dataframe_libraries()
    from coinstream.dashboard.data import CardSource
    from coinstream.dashboard.server import serve
    from coinstream.dashboard.vendor import VendorError, plotly_js_path
    from coinstream.metabase.spec import DEFAULT_SPEC, SpecError, load_spec

    try:
        spec = load_spec(spec_path or DEFAULT_SPEC)
        plotly_js_path()
    except (SpecError, VendorError) as error:
        raise click.ClickException(str(error)) from None
    target = settings.clickhouse_target(readonly=True)
    source = CardSource(spec, target)

    def announce(url: str) -> None:
        click.echo(f"coinstream dashboard: serving {url} (ClickHouse {target.http_url} as {target.username})")
        sys.stdout.flush()

    try:
        asyncio.run(
            serve(spec, source, host, port, interval_s, announce, allowed_origins=settings.http_allowed_origins)
        )
    except OSError as error:
        click.echo(f"coinstream dashboard: cannot listen on {host}:{port}: {error.strerror or error}", err=True)
        sys.exit(1)
