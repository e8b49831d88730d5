"""`coinstream broker`: the local Kafka broker in the foreground."""

from __future__ import annotations

import sys

import click

from coinstream.cli.setting_options import setting_option
from coinstream.common.processes import stop_requested_on_signals
from coinstream.local_broker import BrokerError, LocalBroker

# How often the foreground loop checks that the broker process is still alive.
LIVENESS_CHECK_S = 0.5


@click.command("broker")
@setting_option("--port", setting="kafka_local_port", help="TCP port on 127.0.0.1")
def command(port: int) -> None:
    """Run a local Kafka broker (Tansu, memory storage) on 127.0.0.1 until Ctrl+C or SIGTERM."""
    broker = LocalBroker(port=port, quiet=False)
    try:
        broker.start()
    except BrokerError as error:
        raise click.ClickException(str(error)) from None
    # The handlers are in place before readiness is announced: whoever reads the ready line may
    # signal at once, and that must be a clean stop, never an exception outside any handler.
    try:
        with stop_requested_on_signals("stopping the broker") as stop:
            if broker.kind == "mock":
                click.echo("Tansu is not available on this platform: serving librdkafka's mock cluster.")
            click.echo(f"Kafka broker ({broker.kind}) ready: bootstrap servers {broker.bootstrap}")
            sys.stdout.flush()
            while not stop.wait(LIVENESS_CHECK_S):
                code = broker.exit_code()
                if code is not None:
                    raise click.ClickException(f"the broker exited unexpectedly with code {code}")
            click.echo("stopping the broker")
    finally:
        broker.stop()
