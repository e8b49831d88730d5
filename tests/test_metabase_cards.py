"""Every card of the dashboard spec runs on ClickHouse, as Metabase would send it, as the read-only user.

The card SQL is substituted the way Metabase does (`metabase.native.substitute`: the coin as a
quoted literal, `[[ … ]]` kept only with a value) and must return exactly the columns the spec
declares. A few cards are also checked row by row against values worked out by hand from the
known dataset (tests/fixtures_dashboard.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from coinstream.metabase.native import NativeQueryError, bind, substitute, template_tags
from coinstream.metabase.spec import load_spec

pytest_plugins = ["tests.fixtures_clickhouse", "tests.fixtures_dashboard"]

SPEC = load_spec()


def at(minute: int, second: int = 0) -> dt.datetime:
    """10:mm:ss on 2024-03-10 as the naive UTC datetime clickhouse-connect returns."""
    return dt.datetime(2024, 3, 10, 10, minute, second)


@pytest.fixture(scope="module")
def readonly(clickhouse_server: Any, known_dataset_database: str):
    client = clickhouse_server.client(readonly=True, database=known_dataset_database, autogenerate_session_id=False)
    try:
        yield client
    finally:
        client.close()


def run(client: Any, key: str, coin: str | None) -> tuple[list[str], list[tuple]]:
    sql = substitute(SPEC.card(key).sql, {"coin": coin})
    result = client.query(sql)
    return list(result.column_names), [tuple(row) for row in result.result_rows]


@pytest.mark.parametrize("coin", ["BTC", None], ids=["coin=BTC", "no-coin"])
@pytest.mark.parametrize("key", [card.key for card in SPEC.cards])
def test_every_card_returns_its_declared_columns(readonly, key, coin):
    columns, rows = run(readonly, key, coin)
    assert columns == list(SPEC.card(key).columns)
    assert rows, f"card {key} returned no rows over the known dataset"


def test_one_minute_candles_of_btc_one_per_minute_despite_two_updates(readonly):
    _, rows = run(readonly, "ohlc_1m", "BTC")
    assert rows == [
        (at(m), "BTC", 60000.0 + 100 * m, 60030.0 + 100 * m, 59980.0 + 100 * m, 60010.0 + 100 * m) for m in range(10)
    ]


def test_five_minute_candles_from_the_rollups(readonly):
    _, rows = run(readonly, "candles_5m", "BTC")
    # 10:00-10:04:45: open = first rate, high = minute 4's high, low = minute 0's low, 20 rates.
    assert rows == [
        (at(0), "BTC", 60000.0, 60430.0, 59980.0, 60410.0, 20),
        (at(5), "BTC", 60500.0, 60930.0, 60480.0, 60910.0, 20),
    ]


def test_without_a_coin_every_coin_is_covered(readonly):
    _, rows = run(readonly, "candles_15m", None)
    assert [(row[0], row[1], row[2], row[5], row[6]) for row in rows] == [
        (at(0), "BTC", 60000.0, 60910.0, 40),
        (at(0), "ETH", 3000.0, 3095.0, 20),
    ]


def test_latest_rate_and_overview(readonly):
    assert run(readonly, "latest_rate", "ETH")[1] == [(3095.0,)]
    assert run(readonly, "latest_rate", None)[1] == [(60910.0,)]  # the largest cap: BTC
    _, rows = run(readonly, "market_overview", None)
    assert [row[:5] for row in rows] == [
        ("BTC", "Bitcoin", 60910.0, pytest.approx(2.0), pytest.approx(-5.0)),
        ("ETH", "Ethereum", 3095.0, pytest.approx(-1.0), pytest.approx(10.0)),
    ]


def test_price_with_moving_average_at_window_ends(readonly):
    _, rows = run(readonly, "price_mov_avg_60s", "BTC")
    rates = [row for row in rows if row[2] is not None]
    averages = [row for row in rows if row[3] is not None]
    assert len(rates) == 40 and len(averages) == 21
    # The window [09:59:30, 10:00:30) holds 10:00:00 and 10:00:15: (60000 + 60030) / 2, drawn at 10:00:30.
    assert averages[0] == (at(0, 30), "BTC", None, (60000.0 + 60030.0) / 2)
    assert rates[-1] == (at(9, 45), "BTC", 60910.0, None)


def test_daily_close_and_ten_day_average(readonly):
    _, rows = run(readonly, "daily_close_10d", "ETH")
    assert len(rows) == 9
    # 2024-03-09 is ETH's 9th close (2500 + 50*8 = 2900); all nine days are within 10 days.
    assert rows[-1] == (
        dt.date(2024, 3, 9),
        dt.datetime(2024, 3, 9, 12),
        "ETH",
        2900.0,
        sum(2500.0 + 50 * d for d in range(9)) / 9,
    )


def test_daily_close_and_thirty_day_average(readonly):
    _, rows = run(readonly, "daily_close_30d", "BTC")
    # BTC's 14 closes 2024-02-25 … 03-09 are 50000 + 500*d (d = 0 … 13), all within 30 days of 03-09.
    assert len(rows) == 14
    assert rows[-1] == (dt.date(2024, 3, 9), dt.datetime(2024, 3, 9, 12), "BTC", 56500.0, 50000.0 + 500 * 6.5)


def test_performance_against_exact_calendar_days(readonly):
    _, rows = run(readonly, "performance", None)
    # Latest closes: BTC 2024-03-09 (56500; 03-08 56000, 03-02 53000), ETH 2024-03-09 (2900; 03-08 2850,
    # 03-02 2550). 30, 90, 365 days back and 2023 have no close; the closes only rose: ATH = latest.
    noon = dt.datetime(2024, 3, 9, 12)
    assert rows == [
        (
            "BTC",
            56500.0,
            noon,
            pytest.approx((56500 / 56000 - 1) * 100, rel=1e-12),
            pytest.approx((56500 / 53000 - 1) * 100, rel=1e-12),
            None,
            None,
            None,
            None,
            56500.0,
            0.0,
        ),
        (
            "ETH",
            2900.0,
            noon,
            pytest.approx((2900 / 2850 - 1) * 100, rel=1e-12),
            pytest.approx((2900 / 2550 - 1) * 100, rel=1e-12),
            None,
            None,
            None,
            None,
            2900.0,
            0.0,
        ),
    ]


def test_volatility_and_drawdown_of_the_daily_closes(readonly):
    import math
    import statistics

    _, rows = run(readonly, "volatility", "BTC")
    closes = [50000.0 + 500 * d for d in range(14)]
    returns = [math.log(closes[d] / closes[d - 1]) for d in range(1, 14)]
    # 03-09: the returns dated 03-03 … 03-09 (the last 7) and all 13 for 30 and 90 days; 02-25 has none.
    assert rows[0] == (dt.date(2024, 2, 25), "BTC", None, None, None)
    assert rows[-1] == (
        dt.date(2024, 3, 9),
        "BTC",
        pytest.approx(statistics.stdev(returns[-7:]) * math.sqrt(365), rel=1e-9),
        pytest.approx(statistics.stdev(returns) * math.sqrt(365), rel=1e-9),
        pytest.approx(statistics.stdev(returns) * math.sqrt(365), rel=1e-9),
    )
    _, rows = run(readonly, "drawdown", "BTC")
    assert rows == [(dt.date(2024, 2, 25) + dt.timedelta(days=d), "BTC", 0.0, 0.0, 0.0) for d in range(14)]


def test_indicator_cards_per_timeframe(readonly):
    # BTC has 10 one-minute candles, 2 of 5 minutes and 1 of every longer timeframe: each is shorter
    # than any indicator's lookback except SMA(7)'s, so every RSI, MACD and band value is NULL.
    _, rows = run(readonly, "rsi", "BTC")
    by_timeframe = {tf: sum(row[1] == tf for row in rows) for tf in ("1m", "5m", "15m", "1h", "4h", "1d")}
    assert by_timeframe == {"1m": 10, "5m": 2, "15m": 1, "1h": 1, "4h": 1, "1d": 1}
    assert all(row[3:] == (None, None, None) for row in rows)
    _, rows = run(readonly, "macd", "BTC")
    assert len(rows) == 16 and all(row[3:] == (None, None, None) for row in rows)
    _, rows = run(readonly, "bollinger", "BTC")
    one_minute = [row for row in rows if row[1] == "1m"]
    # The 1-minute closes are 60010 + 100*m; the bands need 20 of them.
    assert [row[3] for row in one_minute] == [60010.0 + 100 * m for m in range(10)]
    assert all(value is None for row in one_minute for value in row[4:])


def test_a_quote_in_the_coin_is_a_literal_not_sql(readonly):
    _, rows = run(readonly, "ohlc_1m", "BTC' OR '1'='1")
    assert rows == []


def test_bound_parameters_give_the_same_rows_as_metabase_literals(readonly):
    for card in SPEC.cards:
        sql, parameters = bind(card.sql, {"coin": "ETH"})
        bound = [tuple(row) for row in readonly.query(sql, parameters=parameters).result_rows]
        assert bound == run(readonly, card.key, "ETH")[1], card.key


def test_template_rules():
    sql = "SELECT 1 WHERE x = {{a}} [[ AND y = {{ b }} ]] [[ AND z = {{c}} AND w = {{a}} ]]"
    assert template_tags(sql) == ("a", "b", "c")
    assert substitute(sql, {"a": 5, "b": "q\\'"}) == "SELECT 1 WHERE x = 5  AND y = 'q\\\\\\''  "
    assert substitute(sql, {"a": 1.5, "c": "z"}) == "SELECT 1 WHERE x = 1.5   AND z = 'z' AND w = 1.5 "
    with pytest.raises(NativeQueryError, match="required parameter 'a'"):
        substitute(sql, {"b": "x"})
    for bad in ("[[ [[ x ]] ]]", "x ]]", "[[ x", "{{snippet: s}}", "{{#12}}"):
        with pytest.raises(NativeQueryError):
            template_tags(bad)
    assert bind("SELECT {{a}}, {{b}} [[, {{c}}]]", {"a": "x", "b": 2, "c": None}) == (
        "SELECT {a:String}, {b:Int64} ",
        {"a": "x", "b": 2},
    )
