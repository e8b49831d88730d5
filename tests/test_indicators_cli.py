"""`coinstream indicators` as an operator runs it: once, as a service, through a failing cycle.

Against the embedded ClickHouse server, in a database of its own per test. Rates go into
coins_current_full as the loader inserts them, so the candles and the marks come from the real
materialized views.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coinstream.clickhouse.migrations import migrate

pytest_plugins = ["tests.fixtures_clickhouse"]

COLUMNS = ["code", "fetched_at", "rate", "_topic", "_partition", "_offset", "_timestamp", "_key"]
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def database(clickhouse_server: Any) -> Iterator[tuple[Any, str]]:
    name = f"indicators_cli_{dt.datetime.now().strftime('%H%M%S%f')}"
    admin = clickhouse_server.client()
    admin.command(f"CREATE DATABASE {name}")
    client = clickhouse_server.client(database=name)
    migrate(client)
    try:
        yield client, name
    finally:
        client.close()
        admin.command(f"DROP DATABASE IF EXISTS {name} SYNC")
        admin.close()


def environment(clickhouse_server: Any, name: str, tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CLICKHOUSE_", "INDICATORS_"))}
    env |= {"TZ": "UTC", "CLICKHOUSE_URL": clickhouse_server.dsn(database=name), "COINSTREAM_DATA_DIR": str(tmp_path)}
    return env


def insert_rates(client: Any, code: str, minutes: range, first_offset: int) -> None:
    """A rate of 100 + minute at each of `minutes` (after 09:00 UTC)."""
    rows = []
    for index, minute in enumerate(minutes):
        at = START + dt.timedelta(minutes=minute)
        rows.append([code, at, 100.0 + minute, "coins_current_full", 0, first_offset + index, at, code])
    client.insert("coins_current_full", rows, column_names=COLUMNS)


def five_minute_closes(client: Any, code: str) -> list[tuple[str, float, Any]]:
    return client.query(
        "SELECT toString(bucket_start), close, sma_7 FROM v_indicators_5m WHERE code = {c:String} ORDER BY bucket_start",
        parameters={"c": code},
    ).result_rows


def test_once_builds_every_series_and_says_how_much(clickhouse_server: Any, database: Any, tmp_path: Path):
    client, name = database
    insert_rates(client, "ADA", range(0, 40, 5), 0)  # 8 rates, one per 5-minute bucket 09:00 … 09:35
    done = subprocess.run(
        [sys.executable, "-m", "coinstream", "indicators", "--once"],
        env=environment(clickhouse_server, name, tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # 8 five-minute buckets, 3 of 15 minutes (09:00, 09:15, 09:30), 1 each of 1h, 4h, 1d.
    assert done.stdout == "14 buckets recomputed in 5 series\n"
    rows = five_minute_closes(client, "ADA")
    assert [(start, close) for start, close, _ in rows] == [
        (f"2026-03-02 09:{minute:02d}:00", 100.0 + minute) for minute in range(0, 40, 5)
    ]
    # SMA(7) from the seventh close on: (100 + 105 + … + 130) / 7 = 115, then (105 + … + 135) / 7 = 120.
    assert [sma for _, _, sma in rows] == [None] * 6 + [115.0, 120.0]


def test_the_service_follows_new_rates_survives_a_failing_cycle_and_stops_on_sigterm(
    clickhouse_server: Any, database: Any, tmp_path: Path
):
    client, name = database
    log_path = tmp_path / "indicators.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "coinstream", "indicators", "--interval-ms", "200", "--no-migrate"],
            env=environment(clickhouse_server, name, tmp_path),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:

        def wait_for(condition: Any, what: str, timeout_s: float = 60) -> None:
            deadline = time.monotonic() + timeout_s
            while not condition():
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, f"{what}:\n{log_path.read_text()}"
                time.sleep(0.2)

        insert_rates(client, "SOL", range(0, 10, 5), 0)
        wait_for(lambda: len(five_minute_closes(client, "SOL")) == 2, "the first two buckets")

        # A cycle that cannot read its marks fails; the process stays up and tries again.
        client.command("RENAME TABLE indicator_dirty TO indicator_dirty_away")
        wait_for(lambda: "indicator cycle failed" in log_path.read_text(), "a failed cycle logged")
        time.sleep(1)
        assert process.poll() is None
        client.command("RENAME TABLE indicator_dirty_away TO indicator_dirty")
        insert_rates(client, "SOL", range(10, 20, 5), 2)
        wait_for(lambda: len(five_minute_closes(client, "SOL")) == 4, "the buckets inserted after the failure")
        assert [close for _, close, _ in five_minute_closes(client, "SOL")] == [100.0, 105.0, 110.0, 115.0]

        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(15)
