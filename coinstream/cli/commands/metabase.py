"""`coinstream metabase provision`: create or update the dashboards of metabase/dashboards/ in Metabase.

Metabase is a separate server that coinstream does not start, so the dashboards are code: this command
makes a Metabase (METABASE_URL, or --url) hold the ClickHouse connection (read-only user), the
collection, the cards and the dashboard the spec describes, and prints what it created, updated or
left alone. Running it again changes nothing.

Secrets are never taken from the command line (where `ps` and shell history show them): the API key
or the password comes from the settings (METABASE_API_KEY / METABASE_PASSWORD, in the environment
or `.env`), else — only when stdin is a terminal — from a prompt that does not echo.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from coinstream.common.settings import Settings


@click.group("metabase")
def command() -> None:
    """Metabase dashboards as code."""


def _secret(value: object) -> str | None:
    if value is None:
        return None
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return text or None


def _stdin_is_a_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):  # no stdin, or a closed one
        return False


NO_CREDENTIALS = (
    "no credentials: set METABASE_API_KEY, or METABASE_USER and METABASE_PASSWORD "
    "(environment or .env), or run in a terminal to be asked for the password"
)


@command.command("provision")
@click.option("--url", default=None, help="Metabase's base URL (default: METABASE_URL).")
@click.option("--user", default=None, help="A Metabase user's e-mail (default: METABASE_USER).")
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Dashboard spec (default: metabase/dashboards/coinstream.yaml).",
)
@click.option(
    "--clickhouse-host",
    default=None,
    metavar="HOST[:PORT]",
    help="ClickHouse as Metabase reaches it (default: where coinstream reaches it).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds to wait for each Metabase request.",
)
@click.pass_obj
def provision_command(
    settings: Settings,
    url: str | None,
    user: str | None,
    spec_path: Path | None,
    clickhouse_host: str | None,
    timeout: float,
) -> None:
    """Create or update, by name, the connection, collection, cards and dashboard of the spec.

    Credentials: METABASE_API_KEY, else METABASE_USER and METABASE_PASSWORD (environment or .env);
    in a terminal, a missing password (and user) is asked for without echo. Secrets are never
    command-line options.
    """
    from coinstream.metabase.client import MetabaseClient, MetabaseError
    from coinstream.metabase.payloads import clickhouse_details
    from coinstream.metabase.provision import ProvisionError, provision
    from coinstream.metabase.spec import DEFAULT_SPEC, SpecError, load_spec

    url = url or settings.metabase_url
    if not url:
        raise click.UsageError("no Metabase: set METABASE_URL or pass --url")
    api_key = _secret(settings.metabase_api_key)
    password = None if api_key else _secret(settings.metabase_password)
    user = user or settings.metabase_user
    if not api_key and not (user and password):
        if not _stdin_is_a_terminal():
            raise click.UsageError(NO_CREDENTIALS)
        if not user:
            user = click.prompt("Metabase user (e-mail)")
        if not password:
            password = click.prompt(f"Metabase password for {user}", hide_input=True) or None
        if not (user and password):
            raise click.UsageError(NO_CREDENTIALS)
    try:
        spec = load_spec(spec_path or DEFAULT_SPEC)
    except SpecError as error:
        raise click.ClickException(str(error)) from None

    target = settings.clickhouse_target(readonly=True)
    host, port = target.host, target.port
    if clickhouse_host:
        host, _, port_text = clickhouse_host.rpartition(":") if ":" in clickhouse_host else (clickhouse_host, "", "")
        if port_text and not port_text.isdigit():
            raise click.BadParameter("expected HOST[:PORT]", param_hint="--clickhouse-host")
        port = int(port_text) if port_text else target.port
    details = clickhouse_details(host, port, target.username, target.password, target.database, target.secure)

    client = MetabaseClient(url, api_key=api_key, timeout=timeout, secrets=[target.password])
    try:
        if not api_key:
            if not (user and password):  # already refused above; the check narrows both to str
                raise click.UsageError(NO_CREDENTIALS)
            try:
                client.login(user, password)
            except MetabaseError as error:
                _fail(f"cannot log in to Metabase at {client.url}: {error}")
        try:
            report = provision(client, spec, details)
        except ProvisionError as error:
            for outcome in error.report.outcomes:
                click.echo(outcome.describe())
            _fail(f"failed on {error.kind} {error.name!r}: {error.cause}\nbefore the failure: {error.report.summary()}")
    finally:
        client.close()
    for outcome in report.outcomes:
        click.echo(outcome.describe())
    click.echo(f"Metabase at {client.url}: {report.summary()}")


def _fail(message: str) -> None:
    click.echo(f"coinstream metabase provision: {message}", err=True)
    sys.exit(1)
