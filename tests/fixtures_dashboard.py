"""A known dataset for the dashboard and Metabase-card tests, inserted into the landing tables.

Load with ``pytest_plugins = ["tests.fixtures_clickhouse", "tests.fixtures_dashboard"]``.

Why insert into the landing tables directly: the dashboards read views; how rows reach the
landing tables (Kafka, the loader) is tested elsewhere. The rows carry the columns the loader would
write, including the Kafka metadata, and the materialized views (candle rollups, latest state)
fire on these inserts exactly as on the loader's.

The dataset, 2024-03-10 from 10:00:00 UTC for ten minutes:

- BTC: a rate every 15 s (40 rates). In minute m (0-9) the four rates are
  60000 + 100*m + (0, +30, -20, +10), so each 1-minute candle is open 60000+100m,
  high +30, low -20, close +10; the last rate (10:09:45) is 60910.
- ETH: a rate every 30 s (20 rates): 3000 + 5*i, the last (10:09:30) 3095.
- ohlc_by_minute (ksqlDB's output): two EMIT CHANGES updates per coin and minute (a first partial
  one, then the final candle above), so the views must keep one candle per minute.
- mov_avg_60s: 60 s windows advancing by 30 s, starts 09:59:30 … 10:09:30 (21 per coin), the
  average of the coin's rates in [start, start + 60 s).
- coins_historical: BTC closes 2024-02-25 … 2024-03-09 (50000 + 500*d for the d-th day),
  ETH closes 2024-03-01 … 2024-03-09 (2500 + 50*d).

Test modules import the names below directly, so assertion rewriting is off: PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

UTC = dt.timezone.utc
START = dt.datetime(2024, 3, 10, 10, 0, 0, tzinfo=UTC)
BTC_STEPS = (0.0, 30.0, -20.0, 10.0)

LIVE_COLUMNS = [
    "code",
    "fetched_at",
    "rate",
    "volume",
    "cap",
    "delta_day",
    "delta_week",
    "name",
    "_topic",
    "_partition",
    "_offset",
    "_timestamp",
    "_key",
]
OHLC_COLUMNS = [
    "code",
    "window_start",
    "open",
    "high",
    "low",
    "close",
    "_topic",
    "_partition",
    "_offset",
    "_timestamp",
    "_key",
]
MOV_AVG_COLUMNS = ["code", "window_start", "mov_avg", "_topic", "_partition", "_offset", "_timestamp", "_key"]
HISTORY_COLUMNS = [
    "code",
    "date",
    "ts",
    "rate",
    "volume",
    "cap",
    "name",
    "fetched_at",
    "_topic",
    "_partition",
    "_offset",
    "_timestamp",
    "_key",
]

COINS = {  # code: (name, 24 h volume, cap, delta day, delta week)
    "BTC": ("Bitcoin", 3.0e10, 1.2e12, 1.02, 0.95),
    "ETH": ("Ethereum", 1.5e10, 3.6e11, 0.99, 1.10),
}


def btc_rates() -> list[tuple[dt.datetime, float]]:
    return [(START + dt.timedelta(seconds=15 * i), 60000.0 + 100 * (i // 4) + BTC_STEPS[i % 4]) for i in range(40)]


def eth_rates() -> list[tuple[dt.datetime, float]]:
    return [(START + dt.timedelta(seconds=30 * i), 3000.0 + 5 * i) for i in range(20)]


def _windowed_key(code: str, start: dt.datetime) -> str:
    # The landing tables keep the raw key as a string column; its exact bytes do not matter here.
    return f"{code}@{int(start.timestamp() * 1000)}"


def live_rows() -> list[list[Any]]:
    rows = []
    for code, rates in (("BTC", btc_rates()), ("ETH", eth_rates())):
        name, volume, cap, delta_day, delta_week = COINS[code]
        for at, rate in rates:
            rows.append(
                [code, at, rate, volume, cap, delta_day, delta_week, name, "coins_current_full", 0, len(rows), at, code]
            )
    return rows


def ohlc_rows() -> list[list[Any]]:
    """Two updates per coin and minute: the first rate alone, then the whole minute."""
    rows: list[list[Any]] = []
    for code, rates in (("BTC", btc_rates()), ("ETH", eth_rates())):
        for minute in range(10):
            start = START + dt.timedelta(minutes=minute)
            inside = [rate for at, rate in rates if start <= at < start + dt.timedelta(minutes=1)]
            first = inside[0]
            for o, h, low, c in ((first, first, first, first), (first, max(inside), min(inside), inside[-1])):
                rows.append(
                    [
                        code,
                        start,
                        o,
                        h,
                        low,
                        c,
                        "ohlc_by_minute",
                        0,
                        len(rows),
                        start + dt.timedelta(seconds=59),
                        _windowed_key(code, start),
                    ]
                )
    return rows


def mov_avg_rows() -> list[list[Any]]:
    rows: list[list[Any]] = []
    for code, rates in (("BTC", btc_rates()), ("ETH", eth_rates())):
        for hop in range(21):
            start = START + dt.timedelta(seconds=30 * hop - 30)
            inside = [rate for at, rate in rates if start <= at < start + dt.timedelta(seconds=60)]
            rows.append(
                [
                    code,
                    start,
                    sum(inside) / len(inside),
                    "mov_avg_60s",
                    0,
                    len(rows),
                    start + dt.timedelta(seconds=59),
                    _windowed_key(code, start),
                ]
            )
    return rows


def history_rows() -> list[list[Any]]:
    rows: list[list[Any]] = []
    series = (("BTC", dt.date(2024, 2, 25), 14, 50000.0, 500.0), ("ETH", dt.date(2024, 3, 1), 9, 2500.0, 50.0))
    for code, first_day, days, base, step in series:
        name, volume, cap, *_ = COINS[code]
        for d in range(days):
            day = first_day + dt.timedelta(days=d)
            noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
            fetched = noon + dt.timedelta(minutes=5)
            rows.append(
                [
                    code,
                    day,
                    noon,
                    base + step * d,
                    volume,
                    cap,
                    name,
                    fetched,
                    "coins_historical",
                    0,
                    len(rows),
                    fetched,
                    code,
                ]
            )
    return rows


def load_known_dataset(client: Any) -> None:
    """Insert the whole dataset (the database must be migrated), then compute its indicators as
    `coinstream indicators` would (one cycle)."""
    from coinstream.clickhouse.indicators.maintainer import IndicatorMaintainer

    client.insert("coins_current_full", live_rows(), column_names=LIVE_COLUMNS)
    client.insert("ohlc_by_minute", ohlc_rows(), column_names=OHLC_COLUMNS)
    client.insert("mov_avg_60s", mov_avg_rows(), column_names=MOV_AVG_COLUMNS)
    client.insert("coins_historical", history_rows(), column_names=HISTORY_COLUMNS)
    IndicatorMaintainer(client).run_once()


@contextmanager
def _new_database(clickhouse_server: Any, fill: Callable[[Any], None] | None = None) -> Iterator[str]:
    """A new database with the schema applied, then `fill`ed if given; dropped afterwards."""
    from coinstream.clickhouse.migrations import migrate

    name = f"dash_{uuid.uuid4().hex[:12]}"
    admin = clickhouse_server.client()
    admin.command(f"CREATE DATABASE {name}")
    client = clickhouse_server.client(database=name)
    try:
        migrate(client)
        if fill is not None:
            fill(client)
        yield name
    finally:
        client.close()
        admin.command(f"DROP DATABASE IF EXISTS {name} SYNC")
        admin.close()


@pytest.fixture
def migrated_database(clickhouse_server: Any) -> Iterator[str]:
    """A fresh database with the schema applied and no rows; dropped afterwards."""
    with _new_database(clickhouse_server) as name:
        yield name


@pytest.fixture(scope="module")
def known_dataset_database(clickhouse_server: Any) -> Iterator[str]:
    """A database with the schema and the known dataset, shared by one test module."""
    with _new_database(clickhouse_server, load_known_dataset) as name:
        yield name


@dataclass
class DashboardProcess:
    """A `coinstream dashboard --port 0` subprocess and the URL it printed."""

    process: subprocess.Popen
    url: str

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


def start_dashboard(
    clickhouse_server: Any, database: str, cwd: Path, *args: str, clickhouse_url: str | None = None
) -> DashboardProcess:
    """Start the dashboard reading `database` as the read-only user; wait for its URL line."""
    from tests.fixtures_clickhouse import TEST_READONLY_PASSWORD, TEST_READONLY_USER

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLICKHOUSE_", "METABASE_", "KAFKA_", "LCW_"))
    }
    env.update(
        {
            "TZ": "UTC",
            # The full user's URL names server and database; the read-only user replaces its credentials.
            "CLICKHOUSE_URL": clickhouse_url or clickhouse_server.dsn(database=database),
            "CLICKHOUSE_READONLY_USER": TEST_READONLY_USER,
            "CLICKHOUSE_READONLY_PASSWORD": TEST_READONLY_PASSWORD,
        }
    )
    log = cwd / "dashboard.log"  # a file, not a pipe: a full pipe would block the server
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "coinstream", "dashboard", "--port", "0", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    line = process.stdout.readline() if process.stdout else ""
    prefix = "coinstream dashboard: serving "
    if not line.startswith(prefix):
        process.kill()
        process.wait(15)
        raise RuntimeError(f"the dashboard did not start: {line!r} {log.read_text()[-2000:]}")
    return DashboardProcess(process, line[len(prefix) :].split()[0].rstrip("/"))
