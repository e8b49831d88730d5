"""`coinstream sql "SELECT ..."`: ad-hoc SQL against ClickHouse, for analysts and operators.

Runs through clickhouse-connect over HTTP against CLICKHOUSE_URL, or the local embedded server
when it is unset, so the same command works on a laptop and against production. The server formats
the result (`X-ClickHouse-Format` sets the default output format, which a FORMAT clause in the
query overrides), so what is printed is exactly ClickHouse's own rendering. On error the server's
message is printed and the exit status is 1; the password never appears in the output.
"""

from __future__ import annotations

import sys

import click

from coinstream.common.errors import os_reason
from coinstream.common.settings import Settings

FORMATS = (
    "Pretty",
    "PrettyCompact",
    "CSV",
    "CSVWithNames",
    "TSV",
    "TSVWithNames",
    "JSON",
    "JSONEachRow",
    "Markdown",
    "Vertical",
)


def _scrub(text: str, secret: str) -> str:
    """The text with the password removed, whatever the error library put into it.

    Neither the server nor clickhouse-connect echo passwords; this is a second line of defence.
    Passwords shorter than four characters are left alone: masking every "a" would only garble
    the message.
    """
    return text.replace(secret, "***") if len(secret) >= 4 else text


def _transport_reason(error: BaseException) -> str:
    """The innermost OS-level reason (e.g. "Connection refused") behind a transport failure."""
    return os_reason(error) or str(error)


def _server_message(error: Exception) -> str:
    """The server's own error text out of clickhouse-connect's wrapping ("... server response: X (for url U)")."""
    text = str(error)
    _, found, response = text.partition("server response: ")
    if found:
        text = response
    url_note = text.rfind(" (for url ")
    return (text[:url_note] if url_note >= 0 else text).strip()


def _fail_to_reach(url: str, error: BaseException, password: str) -> None:
    reason = _scrub(_transport_reason(error), password)
    click.echo(f"coinstream sql: cannot query ClickHouse at {url}: {reason}", err=True)
    sys.exit(1)


@click.command("sql")
@click.argument("query")
@click.option(
    "--format",
    "-f",
    "output_format",
    type=click.Choice(FORMATS, case_sensitive=False),
    default="Pretty",
    show_default=True,
    help="Output format (ClickHouse's).",
)
@click.option("--readonly", is_flag=True, help="Connect as the read-only (dashboard) user.")
@click.pass_obj
def command(settings: Settings, query: str, output_format: str, readonly: bool) -> None:
    """Run QUERY on ClickHouse and print the result."""
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import DatabaseError

    target = settings.clickhouse_target(readonly=readonly)
    fmt = next(name for name in FORMATS if name.lower() == output_format.lower())
    headers = {"X-ClickHouse-Format": fmt}
    settings_for_query = {}
    if fmt.startswith("Pretty") or fmt == "Vertical":
        # ANSI colours only for a terminal, as clickhouse-client does.
        settings_for_query["output_format_pretty_color"] = "1" if sys.stdout.isatty() else "0"
    try:
        client = clickhouse_connect.get_client(**target.connect_kwargs(), autogenerate_session_id=False)
        try:
            output = client.raw_query(query, settings=settings_for_query, transport_settings=headers)
        finally:
            client.close()
    except DatabaseError as error:
        if getattr(error, "code", None) is not None or "server response: " in str(error):
            click.echo(f"coinstream sql: {_scrub(_server_message(error), target.password)}", err=True)
            sys.exit(1)
        _fail_to_reach(target.http_url, error, target.password)
    except Exception as error:  # connection refused and similar: say where, never with credentials
        _fail_to_reach(target.http_url, error, target.password)
    sys.stdout.buffer.write(output)
    sys.stdout.buffer.flush()
