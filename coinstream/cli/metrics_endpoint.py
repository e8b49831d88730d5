"""The /metrics endpoint of a long-running command, as every command with a `--metrics-port` serves it.

Why one helper: `produce current`, `produce historical` and `ksql run` each serve their registry
for exactly as long as they run, and must fail the same way when the port is taken — a clear
message naming the setting to change, before any work starts — and log the same line saying
where to scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import click
from prometheus_client import CollectorRegistry

from coinstream.common.metrics_http import MetricsEndpointError, MetricsServer, serve_metrics

log = logging.getLogger("coinstream.metrics")


def metrics_port(setting: int, option: int | None, once: bool = False) -> int:
    """The port to serve on: `--metrics-port` if given, else the setting — or none for a one-shot
    run, which is over before anyone could scrape it (unless the port is asked for explicitly)."""
    if option is not None:
        return option
    return 0 if once else setting


@contextmanager
def metrics_endpoint(
    registry: CollectorRegistry, port: int, host: str, what: str, variable: str
) -> Iterator[MetricsServer | None]:
    """Serve `registry` on host:port/metrics (port 0: nothing) until the block ends.

    A port that cannot be bound raises `click.ClickException` naming `variable` and --metrics-port.
    """
    try:
        endpoint = serve_metrics(registry, port, host)
    except MetricsEndpointError as error:
        raise click.ClickException(f"{error} (set {variable} or --metrics-port; 0 = off)") from None
    if endpoint is not None:
        log.info("%s metrics on %s", what, endpoint.url)
    try:
        yield endpoint
    finally:
        if endpoint is not None:
            endpoint.stop()
