"""`coinstream sim-api`: the simulated LiveCoinWatch API in the foreground.

Requests from other web pages (an `Origin` not in HTTP_ALLOWED_ORIGINS) and for host names other
than loopback, `--host` and the host of LCW_BASE_URL (the name the producers call it by, such as
`sim-api` in docker compose) are refused with 403 (`common.http_guard`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import click

from coinstream.cli.setting_options import setting_option
from coinstream.common.settings import Settings
from coinstream.producers.sim.server import SimConfig, serve_forever
from coinstream.producers.sim.state import parse_fault_spec


def _faults(_ctx: click.Context, _param: click.Parameter, specs: tuple[str, ...]) -> list:
    try:
        return [parse_fault_spec(spec) for spec in specs]
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.command("sim-api")
@setting_option(
    "--port", setting="sim_api_port", allow_zero="any free port", help="TCP port (the ready line says which)"
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="Seed of the price walk: same seed, same prices at the same instants.",
)
@click.option(
    "--daily-credits",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Credits per key per UTC day.",
)
@click.option(
    "--api-key", "api_keys", multiple=True, help="Accept only these keys (repeatable; default: any non-empty key)."
)
@click.option(
    "--reject-key", "reject_keys", multiple=True, help="Answer 401 to this key (repeatable), e.g. to test a wrong key."
)
@click.option(
    "--guard-ms",
    type=click.IntRange(0, 900),
    default=100,
    show_default=True,
    help="Never send current rates in the last N ms of a one-second price step.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    callback=_faults,
    help="Inject a fault into the next requests: STATUS|malformed|slow:SECONDS, then "
    "optionally xCOUNT and @PATH, e.g. 429x3 or 500x2@/coins/map (repeatable).",
)
@click.pass_obj
def command(
    settings: Settings,
    port: int,
    host: str,
    seed: int,
    daily_credits: int,
    api_keys: tuple[str, ...],
    reject_keys: tuple[str, ...],
    guard_ms: int,
    faults: list,
) -> None:
    """Serve the simulated LiveCoinWatch API (real endpoints, errors and credits; seeded prices)
    until Ctrl+C or SIGTERM. Test switches live under /_sim/ (faults, credits, reset, stats)."""
    config = SimConfig(
        seed=seed,
        host=host,
        port=port,
        daily_credits=daily_credits,
        accepted_keys=frozenset(api_keys),
        rejected_keys=frozenset(reject_keys),
        guard_ms=guard_ms,
        faults=faults,
        hosts=_configured_hosts(settings),
        allowed_origins=settings.http_allowed_origins,
    )
    try:
        serve_forever(config, ready=lambda url: click.echo(f"simulated LiveCoinWatch API ready at {url} (seed {seed})"))
    except OSError as error:
        raise click.ClickException(f"cannot serve on {host}:{port}: {error.strerror or error}") from None


def _configured_hosts(settings: Settings) -> tuple[str, ...]:
    """The host of LCW_BASE_URL, when set: clients configured with it reach this server by that name."""
    name = urlsplit(settings.lcw_base_url).hostname if settings.lcw_base_url else None
    return (name,) if name else ()
