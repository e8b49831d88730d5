"""Which processes make up the local stack, in dependency order, and how to tell each is ready.

A part configured to an external service (KAFKA_BOOTSTRAP_SERVERS, CLICKHOUSE_URL, LCW_API_KEY)
is not started: the stack then uses that service, exactly as every component would on its own.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence

from coinstream.common.settings import Settings
from coinstream.local_broker import BrokerError, wait_for_metadata
from coinstream.stack.supervisor import Service

# The LiveCoinWatch free tier's daily credits, and the simulated API's default.
SIMULATED_DAILY_CREDITS = 10_000


def _coinstream(*args: str) -> list[str]:
    return [sys.executable, "-m", "coinstream", *args]


def http_probe(url: str, method: str = "GET", body: bytes | None = None) -> Callable[[], bool]:
    """A readiness probe: True when `url` answers 2xx."""

    def probe() -> bool:
        request = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=1.0) as response:
                return 200 <= response.status < 300
        except (urllib.error.URLError, OSError):
            return False

    return probe


def kafka_probe(bootstrap: str) -> Callable[[], bool]:
    """A readiness probe: True when the broker answers a metadata request."""

    def probe() -> bool:
        try:
            wait_for_metadata(bootstrap, timeout_s=1.0)
            return True
        except BrokerError:
            return False

    return probe


def simulated_daily_credits(settings: Settings) -> int:
    """The simulated API's credits per day: the real free tier's 10,000, or DAILY_CREDIT_BUDGET if
    that is larger, so that a budget raised for a fast local run (a short POLL_INTERVAL_S) is one
    the simulated key can actually pay for."""
    return max(SIMULATED_DAILY_CREDITS, settings.daily_credit_budget)


def infrastructure(settings: Settings) -> list[Service]:
    """The broker and the ClickHouse server, where they are local."""
    services = []
    if settings.uses_local_kafka:
        services.append(
            Service(
                "broker",
                _coinstream("broker", "--port", str(settings.kafka_local_port)),
                ready=kafka_probe(settings.effective_kafka_bootstrap),
            )
        )
    if settings.uses_local_clickhouse:
        port = str(settings.clickhouse_port)
        services.append(
            Service(
                "clickhouse",
                _coinstream("clickhouse", "serve", "--port", port),
                ready=http_probe(f"http://127.0.0.1:{port}/ping"),
            )
        )
    return services


def pipeline(settings: Settings) -> list[Service]:
    """Schema migrations, the simulated API (without an API key), and the pipeline's processes.

    The local ksql engine runs unless KSQLDB_URL names a real ksqlDB server (which then runs the
    same statements, applied with `coinstream ksql apply`).
    """
    services = [Service("migrate", _coinstream("clickhouse", "migrate"), oneshot=True)]
    # Kafka clients restart with the local broker: it comes back without topics, group offsets or
    # producer IDs, and each client's start-up is what deals with that (incarnations, local state).
    with_broker = ("broker",) if settings.uses_local_kafka else ()
    if settings.uses_simulated_api and not settings.lcw_base_url:
        services.append(
            Service(
                "sim-api",
                _coinstream(
                    "sim-api",
                    "--port",
                    str(settings.sim_api_port),
                    "--daily-credits",
                    str(simulated_daily_credits(settings)),
                ),
                ready=http_probe(f"{settings.effective_lcw_base_url}/status", "POST", b"{}"),
            )
        )
    if settings.uses_local_ksql_engine:
        services.append(Service("ksql", _coinstream("ksql", "run"), restart_with=with_broker))
    services.append(Service("loader", _coinstream("load", "--no-migrate"), restart_with=with_broker))
    services.append(Service("producer", _coinstream("produce", "current"), restart_with=with_broker))
    # Reads and writes ClickHouse only: the broker coming and going does not concern it.
    services.append(Service("indicators", _coinstream("indicators", "--no-migrate")))
    # Closes the broker acknowledged may have been lost with it before the loader read them: each
    # start asks again for days marked delivered that ClickHouse does not hold.
    services.append(
        Service(
            "historical",
            _coinstream("produce", "historical", "--no-progress", "--reconcile-at-start"),
            restart_with=with_broker,
        )
    )
    port = str(settings.dashboard_port)
    services.append(
        Service("dashboard", _coinstream("dashboard", "--port", port), ready=http_probe(f"http://127.0.0.1:{port}/"))
    )
    return services


def local_stack(
    settings: Settings, infrastructure_only: bool = False, extra_args: Mapping[str, Sequence[str]] | None = None
) -> list[Service]:
    """Every service of `coinstream up`, in start order; `extra_args` appends command-line
    arguments to named services (tuning, benchmarks). An unknown or absent name: ValueError."""
    services = infrastructure(settings)
    if not infrastructure_only:
        services += pipeline(settings)
    by_name = {service.name: service for service in services}
    for name, args in (extra_args or {}).items():
        if name not in by_name:
            raise ValueError(f"no service {name!r} in this stack (services: {', '.join(by_name)})")
        by_name[name].argv = [*by_name[name].argv, *args]
    return services
