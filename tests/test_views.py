"""The views over a small dataset loaded through Kafka and the real loader, twice.

The dataset crosses UTC midnight (2024-03-09 → 2024-03-10), has a code longer than 5 characters
(STABLECOIN), a daily close of 0 before a close of 3 (ZERO: a live rate of 0 is not a valid rate
and never lands), a coin's first row (no previous rate), a coin absent
from the daily history (NEWCOIN) and one only there (OLDCOIN), gaps of several days and a missing
leap day in the history, a daily close sent twice, repeated EMIT CHANGES updates of one window
(including a late update of an older window), and it is loaded twice: a second consumer group
re-reads every topic cut into other batches. Every expected row below was worked out by hand from
the messages; the arithmetic is written out as the expression it comes from.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.test_loader_support import (
    create_topics,
    json_bytes,
    ms,
    produce,
    run_loader,
    unique_prefix,
    utc,
    windowed_key,
)

pytest_plugins = ["tests.fixtures_clickhouse"]

D = dt.date


def live(code: str, at: str, rate: float, **fields: Any) -> tuple[bytes, bytes, int]:
    fetched_at = ms(at)
    return code.encode(), json_bytes({"code": code, "rate": rate, "fetched_at": fetched_at, **fields}), fetched_at


LIVE = [
    live(
        "BTC", "2024-03-09T23:58:10", 100.0, name="Bitcoin", volume=5000.0, cap=1e12, delta={"day": 1.02, "week": 0.95}
    ),
    live("STABLECOIN", "2024-03-09T23:59:00", 1.0, name="Stable Coin"),
    live("BTC", "2024-03-09T23:58:40.500", 104.0, name="Bitcoin"),
    live("BTC", "2024-03-09T23:59:59.999", 102.0, name="Bitcoin"),
    live("BTC", "2024-03-10T00:00:00", 103.0, name="Bitcoin"),
    live("ZERO", "2024-03-10T00:00:20", 5.0, name="Zero"),
    live("STABLECOIN", "2024-03-10T00:00:30", 0.99, name="Stable Coin"),
    live("ZERO", "2024-03-10T00:00:30", 10.0, name="Zero", volume=0.0, delta={"day": 2.0, "week": None}),
    live("STABLECOIN", "2024-03-10T00:00:30.500", 1.01, name="Stable Coin", volume=None, cap=1e9),
    live("BTC", "2024-03-10T00:01:30", 101.0, name="Bitcoin"),
    live("NEWCOIN", "2024-03-10T00:03:00", 2.5, name="New Coin", delta={"day": 0.9}),
    live(
        "BTC",
        "2024-03-10T00:07:00",
        110.0,
        name="Bitcoin",
        volume=6000.0,
        cap=1.1e12,
        delta={"day": 1.05, "week": 1.10},
    ),
]


def close(code: str, date: str, rate: float, fetched_at: str, **fields: Any) -> tuple[bytes, bytes, int]:
    fetched = ms(fetched_at)
    return (
        code.encode(),
        json_bytes(
            {"code": code, "date": date, "ts": ms(f"{date}T12:00:00"), "rate": rate, "fetched_at": fetched, **fields}
        ),
        fetched,
    )


HISTORY = [
    close("BTC", "2024-02-25", 70.0, "2024-03-09T13:00:00", name="Bitcoin", volume=700.0),
    close("BTC", "2024-02-28", 80.0, "2024-03-09T13:00:01", name="Bitcoin"),
    close("BTC", "2024-03-01", 90.0, "2024-03-09T13:00:02", name="Bitcoin"),
    close("BTC", "2024-03-02", 95.0, "2024-03-09T13:00:03", name="Bitcoin"),
    close("BTC", "2024-03-08", 100.0, "2024-03-09T13:00:04", name="Bitcoin"),
    close("BTC", "2024-03-09", 98.0, "2024-03-09T13:00:05", name="Bitcoin", volume=1.0),
    close("ZERO", "2024-03-08", 0.0, "2024-03-09T13:00:06", name="Zero"),
    close("ZERO", "2024-03-09", 3.0, "2024-03-09T13:00:07", name="Zero"),
    close("OLDCOIN", "2024-03-01", 10.0, "2024-03-09T13:00:08", name="Old Coin", volume=1000.0),
    close("OLDCOIN", "2024-03-02", 12.0, "2024-03-09T13:00:09", name="Old Coin", volume=1200.0),
    # The 2024-03-09 close of BTC fetched again later (a re-run backfill): this one wins.
    close("BTC", "2024-03-09", 99.0, "2024-03-10T13:00:00", name="Bitcoin", volume=None, cap=2e12, liquidity=5.5),
]

W_2358, W_2359, W_0000 = ms("2024-03-09T23:58:00"), ms("2024-03-09T23:59:00"), ms("2024-03-10T00:00:00")


def ohlc(code: str, window: int, o: float, h: float, low: float, c: float) -> tuple[bytes, bytes, int]:
    return (
        windowed_key(code, window),
        json_bytes({"COIN_CODE": code, "WINDOW_START": "ignored", "OPEN": o, "HIGH": h, "LOW": low, "CLOSE": c}),
        window + 30_000,
    )


OHLC = [
    ohlc("BTC", W_2358, 100.0, 100.0, 100.0, 100.0),
    ohlc("BTC", W_2358, 100.0, 104.0, 100.0, 104.0),
    ohlc("STABLECOIN", W_2359, 1.0, 1.0, 1.0, 1.0),
    ohlc("BTC", W_2359, 102.0, 102.0, 102.0, 102.0),
    ohlc("STABLECOIN", W_0000, 0.99, 0.99, 0.99, 0.99),
    ohlc("BTC", W_2358, 100.0, 104.0, 99.0, 99.0),  # a late record updates the older window
    ohlc("STABLECOIN", W_0000, 0.99, 1.01, 0.99, 1.01),
]

W_235930 = ms("2024-03-09T23:59:30")


def mov_avg(code: str, window: int, value: float) -> tuple[bytes, bytes, int]:
    return windowed_key(code, window), json_bytes({"coin_code": code, "mov_avg": value}), window


MOV_AVG = [
    mov_avg("STABLECOIN", W_235930, 1.0),
    mov_avg("STABLECOIN", W_0000, 0.99),
    mov_avg("STABLECOIN", W_235930, 0.995),
    mov_avg("STABLECOIN", W_0000, 1.0),
    mov_avg("BTC", W_2358, 100.0),
    mov_avg("BTC", W_2358, 102.0),
]


@pytest.fixture(scope="module")
def views(kafka_bootstrap: str, clickhouse_server: Any):
    """One database loaded with the dataset twice (two groups, different batch sizes)."""
    database = f"views_{unique_prefix()[1:-1]}"
    admin = clickhouse_server.client()
    admin.command(f"CREATE DATABASE {database}")
    client = clickhouse_server.client(database=database)
    from coinstream.clickhouse.migrations import migrate

    migrate(client)
    prefix = unique_prefix()
    create_topics(kafka_bootstrap, prefix, partitions=2)
    produce(kafka_bootstrap, prefix + "coins_current_full", LIVE)
    produce(kafka_bootstrap, prefix + "coins_historical", HISTORY)
    produce(kafka_bootstrap, prefix + "ohlc_by_minute", OHLC)
    produce(kafka_bootstrap, prefix + "mov_avg_60s", MOV_AVG)
    first = run_loader(kafka_bootstrap, client, prefix, batch_rows=4)
    second = run_loader(kafka_bootstrap, client, prefix, batch_rows=3)
    try:
        yield client, first, second
    finally:
        client.close()
        admin.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        admin.close()


def rows(client: Any, sql: str) -> list[tuple]:
    return [tuple(row) for row in client.query(sql).result_rows]


def test_loading_twice_lands_every_message_once(views):
    client, first, second = views
    total = len(LIVE) + len(HISTORY) + len(OHLC) + len(MOV_AVG)
    assert first.metrics.totals == {"rows": total, "errors": 0, "duplicates": 0}
    assert second.metrics.totals == {"rows": 0, "errors": 0, "duplicates": total}
    assert rows(client, "SELECT count(), uniqExact(_partition, _offset) FROM coins_current_full") == [
        (len(LIVE), len(LIVE))
    ]
    assert rows(client, "SELECT count() FROM coins_historical") == [(len(HISTORY),)]
    assert rows(client, "SELECT count() FROM ohlc_by_minute") == [(len(OHLC),)]
    assert rows(client, "SELECT count() FROM mov_avg_60s") == [(len(MOV_AVG),)]


def test_v_ohlc_by_minute_keeps_the_latest_update_and_whole_codes(views):
    client, *_ = views
    assert rows(client, "SELECT * FROM v_ohlc_by_minute ORDER BY window_start, code") == [
        (utc("2024-03-09T23:58:00"), "BTC", 100.0, 104.0, 99.0, 99.0),
        (utc("2024-03-09T23:59:00"), "BTC", 102.0, 102.0, 102.0, 102.0),
        (utc("2024-03-09T23:59:00"), "STABLECOIN", 1.0, 1.0, 1.0, 1.0),
        (utc("2024-03-10T00:00:00"), "STABLECOIN", 0.99, 1.01, 0.99, 1.01),
    ]


def test_v_60_sec_mov_avg_one_row_per_coin_and_window(views):
    client, *_ = views
    assert rows(client, "SELECT * FROM v_60_sec_mov_avg ORDER BY window_start, code") == [
        (utc("2024-03-09T23:58:00"), "BTC", 102.0),
        (utc("2024-03-09T23:59:30"), "STABLECOIN", 0.995),
        (utc("2024-03-10T00:00:00"), "STABLECOIN", 1.0),
    ]


def test_v_ohlc_by_day_by_the_api_time_across_midnight(views):
    client, *_ = views
    assert rows(client, "SELECT * FROM v_ohlc_by_day ORDER BY date, code") == [
        (D(2024, 3, 9), "BTC", "Bitcoin", 100.0, 104.0, 100.0, 102.0, 3),
        (D(2024, 3, 9), "STABLECOIN", "Stable Coin", 1.0, 1.0, 1.0, 1.0, 1),
        (D(2024, 3, 10), "BTC", "Bitcoin", 103.0, 110.0, 101.0, 110.0, 3),
        (D(2024, 3, 10), "NEWCOIN", "New Coin", 2.5, 2.5, 2.5, 2.5, 1),
        (D(2024, 3, 10), "STABLECOIN", "Stable Coin", 0.99, 1.01, 0.99, 1.01, 2),
        (D(2024, 3, 10), "ZERO", "Zero", 5.0, 10.0, 5.0, 10.0, 2),
    ]


def test_v_change_by_second_null_without_or_with_zero_previous_rate(views):
    client, *_ = views
    assert rows(client, "SELECT * FROM v_change_by_second ORDER BY code, ts") == [
        (utc("2024-03-09T23:58:10"), "BTC", 100.0, None, None),
        (utc("2024-03-09T23:58:40"), "BTC", 104.0, 100.0, (104.0 / 100.0 - 1) * 100),
        (utc("2024-03-09T23:59:59"), "BTC", 102.0, 104.0, (102.0 / 104.0 - 1) * 100),
        (utc("2024-03-10T00:00:00"), "BTC", 103.0, 102.0, (103.0 / 102.0 - 1) * 100),
        (utc("2024-03-10T00:01:30"), "BTC", 101.0, 103.0, (101.0 / 103.0 - 1) * 100),
        (utc("2024-03-10T00:07:00"), "BTC", 110.0, 101.0, (110.0 / 101.0 - 1) * 100),
        (utc("2024-03-10T00:03:00"), "NEWCOIN", 2.5, None, None),
        (utc("2024-03-09T23:59:00"), "STABLECOIN", 1.0, None, None),
        # 0.99 and 1.01 fall in the same second: the later one is that second's rate.
        (utc("2024-03-10T00:00:30"), "STABLECOIN", 1.01, 1.0, (1.01 / 1.0 - 1) * 100),
        (utc("2024-03-10T00:00:20"), "ZERO", 5.0, None, None),
        (utc("2024-03-10T00:00:30"), "ZERO", 10.0, 5.0, 100.0),
    ]


def test_v_hist_daily_one_row_per_coin_and_day_latest_fetch(views):
    client, *_ = views
    assert rows(client, "SELECT date, code, rate, volume, cap, liquidity FROM v_hist_daily ORDER BY code, date") == [
        (D(2024, 2, 25), "BTC", 70.0, 700.0, None, None),
        (D(2024, 2, 28), "BTC", 80.0, None, None, None),
        (D(2024, 3, 1), "BTC", 90.0, None, None, None),
        (D(2024, 3, 2), "BTC", 95.0, None, None, None),
        (D(2024, 3, 8), "BTC", 100.0, None, None, None),
        # Sent twice: the later fetch (99, volume unknown) wins, not the earlier volume 1.0.
        (D(2024, 3, 9), "BTC", 99.0, None, 2e12, 5.5),
        (D(2024, 3, 1), "OLDCOIN", 10.0, 1000.0, None, None),
        (D(2024, 3, 2), "OLDCOIN", 12.0, 1200.0, None, None),
        (D(2024, 3, 8), "ZERO", 0.0, None, None, None),
        (D(2024, 3, 9), "ZERO", 3.0, None, None, None),
    ]


def test_v_10_day_mov_avg_over_calendar_days_with_data(views):
    client, *_ = views
    assert rows(client, "SELECT date, code, rate, mov_avg_10d FROM v_10_day_mov_avg ORDER BY code, date") == [
        (D(2024, 2, 25), "BTC", 70.0, 70.0),
        (D(2024, 2, 28), "BTC", 80.0, (70 + 80) / 2),
        (D(2024, 3, 1), "BTC", 90.0, (70 + 80 + 90) / 3),  # 02-21 … 03-01 (leap year)
        (D(2024, 3, 2), "BTC", 95.0, (70 + 80 + 90 + 95) / 4),
        (D(2024, 3, 8), "BTC", 100.0, (80 + 90 + 95 + 100) / 4),  # 02-28 … 03-08: 02-25 is out
        (D(2024, 3, 9), "BTC", 99.0, (90 + 95 + 100 + 99) / 4),  # 02-29 … 03-09
        (D(2024, 3, 1), "OLDCOIN", 10.0, 10.0),
        (D(2024, 3, 2), "OLDCOIN", 12.0, (10 + 12) / 2),
        (D(2024, 3, 8), "ZERO", 0.0, 0.0),
        (D(2024, 3, 9), "ZERO", 3.0, (0 + 3) / 2),
    ]


def test_v_change_by_day_by_calendar_date(views):
    client, *_ = views
    assert rows(
        client, "SELECT date, code, rate, change_1d_pct, change_7d_pct FROM v_change_by_day ORDER BY code, date"
    ) == [
        (D(2024, 2, 25), "BTC", 70.0, None, None),
        (D(2024, 2, 28), "BTC", 80.0, None, None),
        (D(2024, 3, 1), "BTC", 90.0, None, None),  # 02-29 has no close: not 02-28's
        (D(2024, 3, 2), "BTC", 95.0, (95 / 90 - 1) * 100, None),
        (D(2024, 3, 8), "BTC", 100.0, None, (100 / 90 - 1) * 100),  # 7 d before: 03-01
        (D(2024, 3, 9), "BTC", 99.0, (99 / 100 - 1) * 100, (99 / 95 - 1) * 100),
        (D(2024, 3, 1), "OLDCOIN", 10.0, None, None),
        (D(2024, 3, 2), "OLDCOIN", 12.0, (12 / 10 - 1) * 100, None),
        (D(2024, 3, 8), "ZERO", 0.0, None, None),
        (D(2024, 3, 9), "ZERO", 3.0, None, None),  # the day before closed at 0
    ]


def test_v_change_by_day_latest(views):
    client, *_ = views
    assert rows(client, "SELECT * FROM v_change_by_day_latest ORDER BY code") == [
        (
            "BTC",
            D(2024, 3, 9),
            99.0,
            (99 / 100 - 1) * 100,
            (99 / 95 - 1) * 100,
            "Bitcoin",
            None,
            2e12,
            utc("2024-03-09T12:00:00"),
        ),
        (
            "OLDCOIN",
            D(2024, 3, 2),
            12.0,
            (12 / 10 - 1) * 100,
            None,
            "Old Coin",
            1200.0,
            None,
            utc("2024-03-02T12:00:00"),
        ),
        ("ZERO", D(2024, 3, 9), 3.0, None, None, "Zero", None, None, utc("2024-03-09T12:00:00")),
    ]


def test_overview_for_dashboard_every_coin_null_where_unknown(views):
    client, *_ = views
    assert rows(client, "SELECT * FROM overview_for_dashboard ORDER BY code") == [
        (
            "BTC",
            "Bitcoin",
            110.0,
            (1.05 - 1) * 100,
            (1.10 - 1) * 100,
            6000.0,
            1.1e12,
            utc("2024-03-10T00:07:00"),
            "live",
        ),
        ("NEWCOIN", "New Coin", 2.5, (0.9 - 1) * 100, None, None, None, utc("2024-03-10T00:03:00"), "live"),
        ("OLDCOIN", "Old Coin", 12.0, (12 / 10 - 1) * 100, None, 1200.0, None, utc("2024-03-02T12:00:00"), "daily"),
        ("STABLECOIN", "Stable Coin", 1.01, None, None, None, 1e9, utc("2024-03-10T00:00:30.500"), "live"),
        ("ZERO", "Zero", 10.0, (2.0 - 1) * 100, None, 0.0, None, utc("2024-03-10T00:00:30"), "live"),
    ]


def test_multi_timeframe_candles(views):
    client, *_ = views
    assert rows(client, "SELECT * FROM v_candles_5m ORDER BY code, bucket_start") == [
        (utc("2024-03-09T23:55:00"), "BTC", 100.0, 104.0, 100.0, 102.0, 3),
        (utc("2024-03-10T00:00:00"), "BTC", 103.0, 103.0, 101.0, 101.0, 2),
        (utc("2024-03-10T00:05:00"), "BTC", 110.0, 110.0, 110.0, 110.0, 1),
        (utc("2024-03-10T00:00:00"), "NEWCOIN", 2.5, 2.5, 2.5, 2.5, 1),
        (utc("2024-03-09T23:55:00"), "STABLECOIN", 1.0, 1.0, 1.0, 1.0, 1),
        (utc("2024-03-10T00:00:00"), "STABLECOIN", 0.99, 1.01, 0.99, 1.01, 2),
        (utc("2024-03-10T00:00:00"), "ZERO", 5.0, 10.0, 5.0, 10.0, 2),
    ]
    btc = "WHERE code = 'BTC' ORDER BY bucket_start"
    assert rows(client, f"SELECT * FROM v_candles_15m {btc}") == [
        (utc("2024-03-09T23:45:00"), "BTC", 100.0, 104.0, 100.0, 102.0, 3),
        (utc("2024-03-10T00:00:00"), "BTC", 103.0, 110.0, 101.0, 110.0, 3),
    ]
    assert rows(client, f"SELECT * FROM v_candles_1h {btc}") == [
        (utc("2024-03-09T23:00:00"), "BTC", 100.0, 104.0, 100.0, 102.0, 3),
        (utc("2024-03-10T00:00:00"), "BTC", 103.0, 110.0, 101.0, 110.0, 3),
    ]
    assert rows(client, f"SELECT * FROM v_candles_4h {btc}") == [
        (utc("2024-03-09T20:00:00"), "BTC", 100.0, 104.0, 100.0, 102.0, 3),
        (utc("2024-03-10T00:00:00"), "BTC", 103.0, 110.0, 101.0, 110.0, 3),
    ]
    assert rows(client, f"SELECT * FROM v_candles_1d {btc}") == [
        (utc("2024-03-09T00:00:00"), "BTC", 100.0, 104.0, 100.0, 102.0, 3),
        (utc("2024-03-10T00:00:00"), "BTC", 103.0, 110.0, 101.0, 110.0, 3),
    ]
