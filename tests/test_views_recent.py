"""v_rate_by_second and v_change_by_second_recent (0008): the live charts' bounded reads.

The dataset spans more than two hours before its newest rate (12:00:00.250 UTC), so both time
bounds of v_change_by_second_recent matter: rows shown have ts after 11:00:00 (the newest second
minus one hour, exclusive), and previous rates are looked for after 10:00:00 only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from coinstream.clickhouse.migrations import migrate

pytest_plugins = ["tests.fixtures_clickhouse"]

DAY = "2024-05-01"


def utc(clock: str) -> dt.datetime:
    """The naive UTC datetime clickhouse-connect returns for DateTime columns."""
    return dt.datetime.fromisoformat(f"{DAY}T{clock}")


LIVE = [  # code, fetched_at (UTC, ms), rate
    ("AAA", "09:00:00.000", 50.0),  # more than 2 h before the newest: never read by the recent view
    ("AAA", "10:30:00.000", 80.0),  # before the hour shown: only a previous rate
    ("AAA", "11:15:00.200", 100.0),
    ("AAA", "11:15:00.700", 101.0),  # same second, later: that second's rate
    ("AAA", "12:00:00.250", 90.0),  # the newest rate
    ("BBB", "11:00:00.000", 20.0),  # exactly newest second - 1 h: not shown, but a previous rate
    ("BBB", "11:00:01.000", 30.0),
    ("CCC", "09:30:00.000", 5.0),  # outside the two hours read
    ("CCC", "11:30:00.000", 6.0),
    ("DDD", "10:45:00.000", 7.0),  # nothing in the hour shown
]


@pytest.fixture(scope="module")
def client(clickhouse_server: Any) -> Any:
    database = "views_recent"
    admin = clickhouse_server.client()
    admin.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client = clickhouse_server.client(database=database)
    migrate(client)
    rows = [
        (code, utc(at), rate, "coins_current_full", 0, offset, utc(at), code)
        for offset, (code, at, rate) in enumerate(LIVE)
    ]
    client.insert(
        "coins_current_full",
        rows,
        column_names=["code", "fetched_at", "rate", "_topic", "_partition", "_offset", "_timestamp", "_key"],
    )
    try:
        yield client
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {database}")
        client.close()
        admin.close()


def rows(client: Any, sql: str) -> list[tuple]:
    return [tuple(row) for row in client.query(sql).result_rows]


def test_the_last_rate_of_each_second(client):
    assert rows(client, "SELECT * FROM v_rate_by_second WHERE code IN ('AAA', 'BBB') ORDER BY code, ts") == [
        (utc("09:00:00"), "AAA", 50.0),
        (utc("10:30:00"), "AAA", 80.0),
        (utc("11:15:00"), "AAA", 101.0),
        (utc("12:00:00"), "AAA", 90.0),
        (utc("11:00:00"), "BBB", 20.0),
        (utc("11:00:01"), "BBB", 30.0),
    ]


def test_recent_changes_cover_the_hour_before_the_newest_rate(client):
    assert rows(client, "SELECT * FROM v_change_by_second_recent ORDER BY code, ts") == [
        (utc("11:15:00"), "AAA", 101.0, 80.0, (101.0 / 80.0 - 1) * 100),
        (utc("12:00:00"), "AAA", 90.0, 101.0, (90.0 / 101.0 - 1) * 100),
        (utc("11:00:01"), "BBB", 30.0, 20.0, (30.0 / 20.0 - 1) * 100),
        # Its previous second with a rate (09:30) is more than an hour before the hour shown.
        (utc("11:30:00"), "CCC", 6.0, None, None),
    ]


def test_the_full_view_keeps_every_second_and_the_older_previous_rate(client):
    assert rows(client, "SELECT * FROM v_change_by_second WHERE code = 'CCC' ORDER BY ts") == [
        (utc("09:30:00"), "CCC", 5.0, None, None),
        (utc("11:30:00"), "CCC", 6.0, 5.0, (6.0 / 5.0 - 1) * 100),
    ]
    assert rows(client, "SELECT count() FROM v_change_by_second") == [(9,)]
