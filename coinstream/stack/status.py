"""The live status line of `coinstream up`: events/s, consumer lag and credits left.

Why from the metrics endpoints: the producer, the ksql engine and the loader already count
everything an operator asks about while the stack runs (records the broker acknowledged, rows
landed, consumer lag, credits left) and serve it on their Prometheus endpoints; the supervisor
scrapes them every interval with the parser of `coinstream status` (`health.scrape_metrics`) and
prints one line, prefixed `status |` like every other line of `up`. No endpoint (its port 0, or
no local engine with KSQLDB_URL): no such part of the line; none: no line at all.

The consumer lag is the loader's (messages not yet in ClickHouse); where the local engine runs,
the line shows the sum and each share: `consumer lag 12 (engine 10, loader 2)`.

Rates are counter increases over the interval. A counter that went down belongs to a restarted
process (counters start at 0): its increase is then its current value, as Prometheus' `increase`
treats a reset.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from coinstream.common.settings import Settings
from coinstream.stack.health import ProbeFailed, _scrape_host, scrape_metrics

STATUS_INTERVAL_S = 10.0
SCRAPE_TIMEOUT_S = 2.0

Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclass(frozen=True)
class Snapshot:
    """What the endpoints said at monotonic time `at`. None = endpoint off; `*_error` = no answer."""

    at: float
    delivered: float | None = None  # producer: records the broker acknowledged (counter)
    credits_left: float | None = None  # producer: credits it may still spend today (gauge)
    producer_error: str | None = None
    loaded: float | None = None  # loader: rows landed, in tables and error tables (counters)
    lag: float | None = None  # loader: consumer lag summed over its partitions (gauge;
    # None until the loader first reports it)
    loader_error: str | None = None
    engine_lag: float | None = None  # ksql engine: consumer lag summed (gauge; None as above)
    engine_error: str | None = None


class StatusEndpoints(NamedTuple):
    """The /metrics URLs the status line scrapes; None where there is no endpoint."""

    producer: str | None
    loader: str | None
    engine: str | None = None


def _sum(samples: Samples, name: str) -> float:
    return sum(value for _labels, value in samples.get(name, []))


def metrics_urls(settings: Settings) -> StatusEndpoints:
    """The /metrics URLs of the local stack; None where the port is 0 (and for the engine where
    a ksqlDB server runs the statements instead)."""
    host = _scrape_host(settings.metrics_host)

    def url(port: int) -> str | None:
        return f"http://{host}:{port}/metrics" if port else None

    engine = url(settings.ksql_metrics_port) if settings.uses_local_ksql_engine else None
    return StatusEndpoints(url(settings.producer_metrics_port), url(settings.loader_metrics_port), engine)


def _summed_gauge(samples: Samples, name: str) -> float | None:
    """A gauge summed over its labels; None before the process first set it."""
    values = samples.get(name)
    return sum(value for _labels, value in values) if values else None


def take_snapshot(
    endpoints: StatusEndpoints, timeout_s: float = SCRAPE_TIMEOUT_S, clock: Callable[[], float] = time.monotonic
) -> Snapshot:
    """Scrape the endpoints (blocking; `up` runs it in a thread)."""
    producer_url, loader_url, engine_url = endpoints
    at = clock()
    fields: dict = {}
    if producer_url is not None:
        try:
            samples = scrape_metrics(producer_url, timeout_s)
            fields["delivered"] = _sum(samples, "coinstream_records_delivered_total")
            credits = samples.get("coinstream_lcw_credits_remaining")
            fields["credits_left"] = credits[0][1] if credits else math.nan
        except ProbeFailed as error:
            fields["producer_error"] = str(error)
    if loader_url is not None:
        try:
            samples = scrape_metrics(loader_url, timeout_s)
            fields["loaded"] = _sum(samples, "coinstream_loader_rows_total") + _sum(
                samples, "coinstream_loader_errors_total"
            )
            # No sample before the loader's first report (a fresh or restarted loader).
            fields["lag"] = _summed_gauge(samples, "coinstream_loader_consumer_lag")
        except ProbeFailed as error:
            fields["loader_error"] = str(error)
    if engine_url is not None:
        try:
            samples = scrape_metrics(engine_url, timeout_s)
            fields["engine_lag"] = _summed_gauge(samples, "coinstream_ksql_consumer_lag")
        except ProbeFailed as error:
            fields["engine_error"] = str(error)
    return Snapshot(at, **fields)


def increase(previous: float | None, current: float) -> float:
    """A counter's increase; a lower current value means the process restarted from 0."""
    if previous is None or current < previous:
        return current
    return current - previous


def render(previous: Snapshot, current: Snapshot, restarts: Mapping[str, int] | None = None) -> str:
    """The status line (without the `status |` prefix)."""
    elapsed = max(current.at - previous.at, 1e-9)
    parts: list[str] = []
    if current.producer_error is not None:
        parts.append(f"producer metrics unavailable ({current.producer_error})")
    elif current.delivered is not None:
        rate = increase(previous.delivered, current.delivered) / elapsed
        parts.append(f"{rate:,.1f} events/s")
    if current.loader_error is not None:
        parts.append(f"loader metrics unavailable ({current.loader_error})")
    elif current.loaded is not None:
        rate = increase(previous.loaded, current.loaded) / elapsed
        parts.append(f"{rate:,.1f} rows/s loaded")
        parts.append(_lag(current))
    if current.engine_error is not None:
        parts.append(f"engine metrics unavailable ({current.engine_error})")
    if current.producer_error is None and current.credits_left is not None:
        parts.append(
            "credits left unknown" if math.isnan(current.credits_left) else f"{current.credits_left:,.0f} credits left"
        )
    restarted = [f"{name} {count}" for name, count in (restarts or {}).items() if count]
    if restarted:
        parts.append("restarts: " + ", ".join(restarted))
    return ", ".join(parts)


def _lag(current: Snapshot) -> str:
    """The loader's lag, with the engine's share where the engine reports one."""
    if current.lag is None:
        return "consumer lag not reported yet"
    if current.engine_lag is None:
        return f"consumer lag {current.lag:,.0f}"
    total = current.lag + current.engine_lag
    return f"consumer lag {total:,.0f} (engine {current.engine_lag:,.0f}, loader {current.lag:,.0f})"


async def report_status(
    say: Callable[[str, str], None],
    endpoints: StatusEndpoints,
    interval_s: float,
    restarts: Callable[[], Mapping[str, int]] = dict,
) -> None:
    """Every `interval_s`: scrape, then print one `status |` line. Runs until cancelled."""
    previous = await asyncio.to_thread(take_snapshot, endpoints)
    while True:
        await asyncio.sleep(interval_s)
        current = await asyncio.to_thread(take_snapshot, endpoints)
        say("status", render(previous, current, restarts()))
        previous = current
