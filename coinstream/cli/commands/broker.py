"""`coinstream broker`: the local Kafka broker in the foreground."""

from __future__ import annotations

import signal
import sys

import click

from coinstream.local_broker import BrokerError, LocalBroker


class _StopRequested(Exception):
    """Raised from the signal handler so the blocking wait unwinds before the broker is stopped."""


def _raise_stop(_signum: int, _frame: object) -> None:
    raise _StopRequested


@click.command("broker")
@click.option("--port", type=click.IntRange(1, 65535), default=9092, show_default=True,
              help="TCP port on 127.0.0.1.")
def command(port: int) -> None:
    """Run a local Kafka broker (Tansu, memory storage) on 127.0.0.1 until Ctrl+C or SIGTERM."""
    broker = LocalBroker(port=port, quiet=False)
    try:
        broker.start()
    except BrokerError as error:
        raise click.ClickException(str(error)) from None
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    if broker.kind == "mock":
        click.echo("Tansu is not available on this platform: serving librdkafka's mock cluster.")
    click.echo(f"Kafka broker ({broker.kind}) ready: bootstrap servers {broker.bootstrap}")
    sys.stdout.flush()
    try:
        code = broker.wait()
    except _StopRequested:
        click.echo("stopping the broker")
        return
    finally:
        broker.stop()
    raise click.ClickException(f"the broker exited unexpectedly with code {code}")
