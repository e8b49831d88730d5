"""The indicator views agree with TA-Lib on the same series, value for value and NaN for NULL.

Fixture: for every timeframe (the 1-minute candles, the 5m … 1d rollups, the daily closes) six
coins: five of 2,000 buckets with gaps (a few buckets missing), at prices from 0.05 to 30,000,
crossing UTC midnight and the 2025 → 2026 year boundary, one of them starting with a constant
stretch (RSI's 0/0 case, a zero Bollinger width, a zero stochastic range) and holding another one
later; plus a coin of 150 buckets (fewer than the longest period, 200) and one of 10. The rows go
straight into the landing and rollup tables, and `coinstream indicators`' maintainer runs one
cycle. TA-Lib computes every indicator on each coin's series (the buckets that exist, in time
order); each view column must match within 1e-9 (relative, or absolute near zero) and be NULL
exactly where TA-Lib answers NaN.

Then the store is attacked the way the pipeline uses it: candles arriving in parts, a late rate
changing an old bucket, a maintainer restarted or killed before it recorded its cycle, rates
through the real insert path (the rollups' materialized views must mark the series).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

talib = pytest.importorskip("talib")
np = pytest.importorskip("numpy")

from coinstream.clickhouse.indicators.maintainer import IndicatorMaintainer  # noqa: E402 - after importorskip
from coinstream.clickhouse.indicators.sources import TIMEFRAMES  # noqa: E402
from coinstream.clickhouse.migrations import migrate  # noqa: E402

pytest_plugins = ["tests.fixtures_clickhouse"]

BUCKETS = 2000
STEPS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400, "daily_close": 86400}
# Every series ends after 2026-01-01 00:00 UTC and starts before it.
YEAR_START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
COINS = {"BTC": 30000.0, "ETH": 2000.0, "ADA": 1.0, "DOGE": 0.05, "BNB": 300.0, "SHORT": 5.0, "TINY": 7.0}
LENGTHS = {"SHORT": 150, "TINY": 10}
TOLERANCE = 1e-9


def series(timeframe: str, code: str, seed: int) -> dict[str, Any]:
    """One coin's buckets: times with gaps, and OHLC of a random walk (constant stretches for FLAT)."""
    rng = np.random.default_rng(seed)
    count = LENGTHS.get(code, BUCKETS)
    step = STEPS[timeframe]
    # Steps of one interval, now and then two to five (missing buckets).
    jumps = np.where(rng.random(count) < 0.03, rng.integers(2, 6, count), 1)
    jumps[0] = 0
    offsets = np.cumsum(jumps)
    start = int(YEAR_START.timestamp()) - step * int(offsets[count // 2])
    times = start + step * offsets
    returns = rng.normal(0, 0.01, count)
    close = COINS[code] * np.exp(np.cumsum(returns))
    if code == "ETH":
        close[:40] = close[40]  # from the first bucket: no gain, no loss
        close[900:1300] = close[900]  # a long one later: RSI's averages decay, the bands close
    opens = np.concatenate([[close[0]], close[:-1]])
    spread = rng.uniform(0, 0.01, count)
    high = np.maximum(opens, close) * (1 + spread)
    low = np.minimum(opens, close) * (1 - spread)
    if code == "ETH":
        high[:40] = low[:40] = close[:40]
        high[900:1300] = low[900:1300] = close[900]
        opens[:40] = close[:40]
        opens[900:1300] = close[900]
    return {"t": times.astype(np.int64), "open": opens, "high": high, "low": low, "close": close}


def fixture_series() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (timeframe, code): series(timeframe, code, seed=index * 100 + position)
        for index, timeframe in enumerate(STEPS)
        for position, code in enumerate(COINS)
    }


def load(client: Any, data: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Rows straight into ohlc_by_minute, candles_5m … candles_1d and coins_historical."""
    client.command(
        "CREATE TABLE fixture_candles (timeframe String, code String, t DateTime('UTC'), open Float64, "
        "high Float64, low Float64, close Float64) ENGINE = MergeTree ORDER BY (timeframe, code, t)"
    )
    rows = [
        [timeframe, code, dt.datetime.fromtimestamp(int(t), dt.timezone.utc), *values]
        for (timeframe, code), s in data.items()
        for t, *values in zip(s["t"], s["open"], s["high"], s["low"], s["close"], strict=True)
    ]
    client.insert("fixture_candles", rows, column_names=["timeframe", "code", "t", "open", "high", "low", "close"])
    client.command(
        "INSERT INTO ohlc_by_minute (code, window_start, open, high, low, close, _topic, _partition, _offset, "
        "_timestamp, _key) SELECT code, t, open, high, low, close, 'ohlc_by_minute', 0, rowNumberInAllBlocks(), t, "
        "code FROM fixture_candles WHERE timeframe = '1m'"
    )
    for timeframe in ("5m", "15m", "1h", "4h", "1d"):
        client.command(
            f"INSERT INTO candles_{timeframe} SELECT code, t, argMinState(open, toInt128(0)), max(high), min(low), "
            f"argMaxState(close, toInt128(0)), toUInt64(1) FROM fixture_candles WHERE timeframe = '{timeframe}' "
            "GROUP BY code, t"
        )
    client.command(
        "INSERT INTO coins_historical (code, date, ts, rate, fetched_at, _topic, _partition, _offset, _timestamp, "
        "_key) SELECT code, toDate(t), t + INTERVAL 12 HOUR, close, t + INTERVAL 13 HOUR, 'coins_historical', 0, "
        "rowNumberInAllBlocks(), t, code FROM fixture_candles WHERE timeframe = 'daily_close'"
    )


def reference(s: dict[str, Any], step: int, with_range: bool) -> dict[str, Any]:
    """Every column as TA-Lib (and, for %B, bandwidth and gaps, plain arithmetic on it) gives it."""
    close, high, low = s["close"], s["high"], s["low"]
    upper, middle, lower = talib.BBANDS(close, 20, 2.0, 2.0, 0)
    macd, signal, hist = talib.MACD(close, 12, 26, 9)
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        percent_b = np.where(width == 0, np.nan, (close - lower) / width)
        bandwidth = np.where(middle == 0, np.nan, width / middle)
    out: dict[str, Any] = {
        "gap_before": np.concatenate([[False], np.diff(s["t"]) != step]),
        "close": close,
        **{f"sma_{n}": talib.SMA(close, n) for n in (7, 20, 30, 50, 200)},
        **{f"ema_{n}": talib.EMA(close, n) for n in (12, 26, 50, 200)},
        "macd": macd,
        "macd_signal": signal,
        "macd_hist": hist,
        "rsi_14": talib.RSI(close, 14),
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
        "bb_percent_b": percent_b,
        "bb_bandwidth": bandwidth,
    }
    if with_range:
        slow_k, slow_d = talib.STOCH(high, low, close, 14, 3, 0, 3, 0)
        out |= {"atr_14": talib.ATR(high, low, close, 14), "stoch_k": slow_k, "stoch_d": slow_d}
    return out


@pytest.fixture(scope="module")
def loaded(clickhouse_server: Any):
    database = f"indicators_{dt.datetime.now().strftime('%H%M%S%f')}"
    admin = clickhouse_server.client()
    admin.command(f"CREATE DATABASE {database}")
    client = clickhouse_server.client(database=database)
    migrate(client)
    data = fixture_series()
    load(client, data)
    IndicatorMaintainer(client).run_once()
    try:
        yield client, data
    finally:
        client.close()
        admin.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        admin.close()


def mismatches(name: str, actual: list[Any], expected: Any) -> list[str]:
    """Where a view column and the reference differ: a NULL against a number, or beyond 1e-9."""
    if name == "gap_before":
        bad = [i for i, (a, e) in enumerate(zip(actual, expected, strict=True)) if a != e]
        return [f"{name}: {len(bad)} rows, first [{i}]: {actual[i]} != {expected[i]}" for i in bad[:1]]
    values = np.array([np.nan if a is None else a for a in actual], dtype=float)
    nulls = np.array([a is None for a in actual])
    wrong = (nulls != np.isnan(expected)) | (
        ~nulls & ~np.isclose(values, expected, rtol=TOLERANCE, atol=TOLERANCE, equal_nan=True)
    )
    bad = np.flatnonzero(wrong)
    return [f"{name}: {len(bad)} rows, first [{i}]: {actual[i]!r} != {expected[i]!r}" for i in bad[:1]]


@pytest.mark.parametrize("timeframe", list(STEPS))
def test_indicator_views_match_talib(loaded: Any, timeframe: str):
    client, data = loaded
    view = f"v_indicators_{timeframe}"
    time_column = "date" if timeframe == "daily_close" else "bucket_start"
    with_range = timeframe != "daily_close"
    result = client.query(f"SELECT * FROM {view} ORDER BY code, {time_column}")
    columns = dict(zip(result.column_names, zip(*result.result_rows, strict=True), strict=True))
    codes = columns["code"]
    problems: list[str] = []
    for code in COINS:
        s = data[(timeframe, code)]
        rows = [i for i, c in enumerate(codes) if c == code]
        times = [columns[time_column][i] for i in rows]
        if timeframe == "daily_close":
            assert times == [dt.datetime.fromtimestamp(int(t), dt.timezone.utc).date() for t in s["t"]], code
        else:
            assert times == [dt.datetime.fromtimestamp(int(t), dt.timezone.utc).replace(tzinfo=None) for t in s["t"]]
        expected = reference(s, STEPS[timeframe], with_range)
        assert set(result.column_names) - {time_column, "code"} == set(expected), code
        for name, values in expected.items():
            problems += [f"{code} {p}" for p in mismatches(name, [columns[name][i] for i in rows], values)]
    assert problems == []


def test_the_fixture_has_what_the_comparison_needs(loaded: Any):
    """Gaps, the constant stretch with RSI's 0/0 answer, a year boundary and short coins."""
    _, data = loaded
    for timeframe, step in STEPS.items():
        for code in COINS:
            s = data[(timeframe, code)]
            assert len(s["t"]) == LENGTHS.get(code, BUCKETS)
            assert s["t"][0] < YEAR_START.timestamp() <= s["t"][-1], (timeframe, code)
            if code not in LENGTHS:
                assert (np.diff(s["t"]) != step).sum() > 10, (timeframe, code)
        rsi = talib.RSI(data[(timeframe, "ETH")]["close"], 14)
        assert (rsi[14:40] == 0).all(), "TA-Lib answers 0 when the average gain and loss are both 0"
        assert np.isnan(talib.SMA(data[(timeframe, "SHORT")]["close"], 200)).all()


@pytest.mark.parametrize("timeframe", list(STEPS))
def test_shared_view_has_the_per_timeframe_rows(loaded: Any, timeframe: str):
    """v_indicators (every timeframe, for the dashboard's cards) and v_indicators_<timeframe> are
    written separately; the same rows, value for value, say they did not drift apart."""
    client, _ = loaded
    time_column = "toDate(bucket_start) AS date" if timeframe == "daily_close" else "bucket_start"
    columns = "gap_before, close, sma_7, sma_20, sma_30, sma_50, sma_200, ema_12, ema_26, ema_50, ema_200, macd, "
    columns += "macd_signal, macd_hist, rsi_14, bb_upper, bb_middle, bb_lower, bb_percent_b, bb_bandwidth"
    if timeframe != "daily_close":
        columns += ", atr_14, stoch_k, stoch_d"
    order = "code, date" if timeframe == "daily_close" else "code, bucket_start"
    shared = client.query(
        f"SELECT code, {time_column}, {columns} FROM v_indicators WHERE timeframe = '{timeframe}' ORDER BY {order}"
    ).result_rows
    own = client.query(
        f"SELECT code, {order.split(', ')[1]}, {columns} FROM v_indicators_{timeframe} ORDER BY {order}"
    ).result_rows
    assert len(own) > 0
    assert shared == own


def test_latest_view_is_the_last_row_of_each_series(loaded: Any):
    """v_indicators_latest: one row per timeframe and coin, its last bucket, TA-Lib's last values."""
    client, data = loaded
    result = client.query(
        "SELECT timeframe, code, bucket_start, close, ema_200, macd_signal, rsi_14, bb_lower, atr_14, stoch_d "
        "FROM v_indicators_latest ORDER BY timeframe, code"
    )
    assert [(row[0], row[1]) for row in result.result_rows] == sorted(data)
    problems: list[str] = []
    for row in result.result_rows:
        timeframe, code, bucket_start = row[:3]
        s = data[(timeframe, code)]
        assert bucket_start == dt.datetime.fromtimestamp(int(s["t"][-1]), dt.timezone.utc).replace(tzinfo=None)
        expected = reference(s, STEPS[timeframe], timeframe != "daily_close")
        for name, actual in zip(["close", "ema_200", "macd_signal", "rsi_14", "bb_lower"], row[3:8], strict=True):
            problems += [f"{timeframe} {code} {p}" for p in mismatches(name, [actual], expected[name][-1:])]
        if timeframe == "daily_close":
            assert row[8:] == (None, None), code
        else:
            for name, actual in zip(["atr_14", "stoch_d"], row[8:], strict=True):
                problems += [f"{timeframe} {code} {p}" for p in mismatches(name, [actual], expected[name][-1:])]
    assert problems == []


@pytest.fixture
def fresh(clickhouse_server: Any):
    """A migrated database of its own, for the tests that change candles between cycles."""
    database = f"indicators_inc_{dt.datetime.now().strftime('%H%M%S%f')}"
    admin = clickhouse_server.client()
    admin.command(f"CREATE DATABASE {database}")
    client = clickhouse_server.client(database=database)
    migrate(client)
    try:
        yield client
    finally:
        client.close()
        admin.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        admin.close()


def insert_1h(client: Any, code: str, s: dict[str, Any], rows: slice, version: int = 0) -> None:
    """Candles straight into candles_1h; a higher `version` wins the bucket's close (argMax)."""
    values = [
        (code, dt.datetime.fromtimestamp(int(t), dt.timezone.utc), float(o), float(h), float(lo), float(c))
        for t, o, h, lo, c in zip(s["t"], s["open"], s["high"], s["low"], s["close"], strict=True)
    ][rows]
    client.insert("fixture_1h", values, column_names=["code", "t", "open", "high", "low", "close"])
    client.command(
        "INSERT INTO candles_1h SELECT code, t, argMinState(open, toInt128(0)), max(high), min(low), "
        f"argMaxState(close, toInt128({version})), toUInt64(1) FROM fixture_1h GROUP BY code, t"
    )
    client.command("TRUNCATE TABLE fixture_1h")
    time.sleep(0.01)  # marks of this insert are strictly older than the next cycle's start


def assert_matches_talib_1h(client: Any, series_by_code: dict[str, dict[str, Any]]) -> None:
    result = client.query("SELECT * FROM v_indicators_1h ORDER BY code, bucket_start")
    columns = dict(zip(result.column_names, zip(*result.result_rows, strict=True), strict=True))
    assert sorted(set(columns["code"])) == sorted(series_by_code)
    problems: list[str] = []
    for code, s in series_by_code.items():
        rows = [i for i, c in enumerate(columns["code"]) if c == code]
        assert len(rows) == len(s["t"]), code
        for name, values in reference(s, 3600, True).items():
            problems += [f"{code} {p}" for p in mismatches(name, [columns[name][i] for i in rows], values)]
    assert problems == []


def test_candles_in_parts_a_late_change_and_a_restart_give_talibs_values(fresh: Any):
    """Each cycle recomputes exactly the marked series from the marked bucket; the result is the
    one-shot answer for the candles as they end up."""
    client = fresh
    client.command(
        "CREATE TABLE fixture_1h (code String, t DateTime('UTC'), open Float64, high Float64, "
        "low Float64, close Float64) ENGINE = Memory"
    )
    growing, revised = series("1h", "BTC", seed=11), series("1h", "ETH", seed=12)
    insert_1h(client, "GROW", growing, slice(0, 1200))
    insert_1h(client, "REV", revised, slice(0, BUCKETS))
    first = IndicatorMaintainer(client, margin_s=0).run_once()
    assert first.buckets == {"1h": 1200 + BUCKETS} and first.series == {"1h": 2}

    insert_1h(client, "GROW", growing, slice(1200, BUCKETS))
    # A late rate: bucket 600 of REV closes elsewhere inside its range (high and low unchanged).
    late = {key: values.copy() for key, values in revised.items()}
    late["close"][600] = (late["high"][600] + late["low"][600]) / 2
    insert_1h(client, "REV", late, slice(600, 601), version=1)

    restarted = IndicatorMaintainer(client, margin_s=0)
    second = restarted.run_once()
    assert second.buckets == {"1h": (BUCKETS - 1200) + (BUCKETS - 600)}
    assert_matches_talib_1h(client, {"GROW": growing, "REV": late})
    assert restarted.run_once().buckets == {}


class _KilledBeforeRecording:
    """A client whose process dies between inserting the rows and recording the cycle."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def insert(self, table: str, *args: Any, **kwargs: Any) -> Any:
        if table == "indicator_cycles":
            raise ConnectionError("killed")
        return self._client.insert(table, *args, **kwargs)


def test_a_cycle_that_was_not_recorded_is_done_again(fresh: Any):
    client = fresh
    client.command(
        "CREATE TABLE fixture_1h (code String, t DateTime('UTC'), open Float64, high Float64, "
        "low Float64, close Float64) ENGINE = Memory"
    )
    s = series("1h", "BTC", seed=13)
    insert_1h(client, "KILL", s, slice(0, 1500))
    with pytest.raises(ConnectionError):
        IndicatorMaintainer(_KilledBeforeRecording(client), margin_s=0).run_once()
    insert_1h(client, "KILL", s, slice(1500, BUCKETS))
    report = IndicatorMaintainer(client, margin_s=0).run_once()
    assert report.buckets == {"1h": BUCKETS}  # nothing recorded: every series from its start
    assert_matches_talib_1h(client, {"KILL": s})


def test_rates_through_the_rollups_mark_their_series(fresh: Any):
    """Rates inserted like the loader's: the rollups' materialized views fill the candles and mark
    the series; a later rate inside an older bucket changes that bucket's row."""
    client = fresh

    def rate(offset: int, minute: int, value: float) -> list[Any]:
        at = dt.datetime(2026, 3, 1, 0, minute, tzinfo=dt.timezone.utc)
        return ["XRP", at, value, "coins_current_full", 0, offset, at, "XRP"]

    columns = ["code", "fetched_at", "rate", "_topic", "_partition", "_offset", "_timestamp", "_key"]
    client.insert("coins_current_full", [rate(0, 1, 1.0), rate(1, 7, 2.0), rate(2, 21, 4.0)], column_names=columns)
    time.sleep(0.01)
    maintainer = IndicatorMaintainer(client, margin_s=0)
    assert maintainer.run_once().buckets == {"5m": 3, "15m": 2, "1h": 1, "4h": 1, "1d": 1}

    def five_minute_rows() -> list[tuple[Any, ...]]:
        return client.query(
            "SELECT toString(bucket_start), gap_before, close, sma_7, rsi_14, atr_14 FROM v_indicators_5m "
            "WHERE code = 'XRP' ORDER BY bucket_start"
        ).result_rows

    assert five_minute_rows() == [
        ("2026-03-01 00:00:00", False, 1.0, None, None, None),
        ("2026-03-01 00:05:00", False, 2.0, None, None, None),
        ("2026-03-01 00:20:00", True, 4.0, None, None, None),
    ]
    client.insert("coins_current_full", [rate(3, 8, 3.0)], column_names=columns)
    time.sleep(0.01)
    # 5m from its first bucket again: a state before position 199 is not a seed to continue from.
    assert maintainer.run_once().buckets == {"5m": 3, "15m": 2, "1h": 1, "4h": 1, "1d": 1}
    assert [row[2] for row in five_minute_rows()] == [1.0, 3.0, 4.0]
    latest = client.query(
        "SELECT timeframe, toString(bucket_start), close FROM v_indicators_latest WHERE code = 'XRP' ORDER BY timeframe"
    ).result_rows
    assert latest == [
        ("15m", "2026-03-01 00:15:00", 4.0),
        ("1d", "2026-03-01 00:00:00", 4.0),
        ("1h", "2026-03-01 00:00:00", 4.0),
        ("4h", "2026-03-01 00:00:00", 4.0),
        ("5m", "2026-03-01 00:20:00", 4.0),
    ]


@pytest.mark.parametrize("timeframe", list(STEPS))
def test_each_candle_source_reads_its_views_rows(loaded: Any, timeframe: str):
    """The maintainer reads the tables under the candle views (their primary keys find a series'
    last buckets); what it reads must be the view's rows, value for value."""
    client, _ = loaded
    source = TIMEFRAMES[timeframe]
    own = client.query(
        f"SELECT code, bucket_start, close, high, low FROM ({source.query(f'{source.time} >= toDateTime(0)')}) "
        "ORDER BY code, bucket_start"
    ).result_rows
    time_column, close, high, low = {
        "1m": ("window_start", "close", "high", "low"),
        "daily_close": ("toDateTime(date, 'UTC')", "rate", "NULL", "NULL"),
    }.get(timeframe, ("bucket_start", "close", "high", "low"))
    view = client.query(
        f"SELECT code, {time_column}, {close}, {high}, {low} FROM {source.view} ORDER BY code, {time_column}"
    ).result_rows
    assert len(own) == sum(LENGTHS.get(code, BUCKETS) for code in COINS)
    assert own == view


def test_sources_pick_a_windows_latest_update_and_a_days_latest_fetch_as_the_views_do(fresh: Any):
    client = fresh
    at = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    columns = ["code", "window_start", "open", "high", "low", "close", "_topic", "_topic_epoch", "_partition"]
    columns += ["_offset", "_timestamp", "_key"]
    minute = dt.timedelta(minutes=1)
    updates = [  # (window, close, epoch, offset): the highest (epoch, offset) of a window wins
        (at, 1.0, 0, 0),
        (at, 2.0, 0, 5),
        (at, 3.0, 1, 0),  # the topic's next incarnation: newer although its offset is lower
        (at + minute, 7.0, 0, 6),
    ]
    rows = [["XRP", w, 1.0, 9.0, 0.5, c, "ohlc_by_minute", e, 0, o, w, "XRP"] for w, c, e, o in updates]
    client.insert("ohlc_by_minute", rows, column_names=columns)
    fetches = [(at + dt.timedelta(hours=12, seconds=5), 10.0, 0), (at + dt.timedelta(hours=13), 11.0, 1)]
    client.insert(
        "coins_historical",
        [
            ["XRP", at.date(), at + dt.timedelta(hours=12), r, f, "coins_historical", 0, o, f, "XRP"]
            for f, r, o in fetches
        ],
        column_names=[
            "code",
            "date",
            "ts",
            "rate",
            "fetched_at",
            "_topic",
            "_partition",
            "_offset",
            "_timestamp",
            "_key",
        ],
    )
    minute, daily = TIMEFRAMES["1m"], TIMEFRAMES["daily_close"]
    minute_rows = client.query(
        f"SELECT toString(bucket_start), close FROM ({minute.query(f'{minute.time} >= toDateTime(0)')}) "
        "ORDER BY bucket_start"
    ).result_rows
    assert minute_rows == [("2026-03-01 00:00:00", 3.0), ("2026-03-01 00:01:00", 7.0)]
    assert (
        minute_rows
        == client.query("SELECT toString(window_start), close FROM v_ohlc_by_minute ORDER BY window_start").result_rows
    )
    daily_rows = client.query(
        f"SELECT toString(bucket_start), close FROM ({daily.query(f'{daily.time} >= toDateTime(0)')})"
    ).result_rows
    assert daily_rows == [("2026-03-01 00:00:00", 11.0)]
    assert client.query("SELECT rate FROM v_hist_daily").result_rows == [(11.0,)]


def insert_daily(client: Any, rows: list[tuple[str, dt.date, float]], first_offset: int = 0) -> None:
    """Daily closes as the loader lands them (code, date, rate)."""
    columns = ["code", "date", "ts", "rate", "fetched_at", "_topic", "_partition", "_offset", "_timestamp", "_key"]
    values = []
    for index, (code, day, rate) in enumerate(rows):
        noon = dt.datetime.combine(day, dt.time(12), tzinfo=dt.timezone.utc)
        values.append([code, day, noon, rate, noon, "coins_historical", 0, first_offset + index, noon, code])
    client.insert("coins_historical", values, column_names=columns)
    time.sleep(0.01)


def test_hostile_and_long_coin_codes_neither_break_a_cycle_nor_other_series(fresh: Any):
    """Codes come from the data: braces, quotes and backslashes stay literal, and six hundred codes
    of 64 four-byte characters (over 256 KiB of code text) are split across queries."""
    client = fresh
    day0 = dt.date(2025, 1, 1)
    hostile = ["X{time}Y", "A'B\\C", "{where}", "Z'); DROP TABLE indicator_rows; --"]
    long_codes = [chr(0x1D400 + n % 26) * 63 + chr(0x1D400 + n // 26) for n in range(600)]
    rows = [("BTC", day0 + dt.timedelta(days=d), float(d + 1)) for d in range(300)]
    rows += [(code, day0, 5.0) for code in hostile + long_codes]
    insert_daily(client, rows)
    report = IndicatorMaintainer(client, margin_s=0).run_once()
    assert report.series == {"daily_close": 1 + len(hostile) + len(long_codes)}
    assert report.buckets == {"daily_close": 300 + len(hostile) + len(long_codes)}
    closes = dict(
        client.query("SELECT code, close FROM v_indicators_daily_close WHERE date = '2025-01-01'").result_rows
    )
    assert closes == {"BTC": 1.0, **{code: 5.0 for code in hostile + long_codes}}
    # BTC's closes are 1 … 300: its last SMA(7) is (294 + … + 300) / 7 = 297.
    last = client.query("SELECT close, sma_7 FROM v_indicators_latest WHERE code = 'BTC'").result_rows
    assert last == [(300.0, 297.0)]


class _ClockSteppedBack:
    """A client whose server clock has stepped back ten minutes (an NTP step, a resumed VM)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def query(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        if sql == "SELECT now64(3, 'UTC')":
            sql = "SELECT now64(3, 'UTC') - INTERVAL 10 MINUTE"
        return self._client.query(sql, *args, **kwargs)


def test_a_clock_stepping_back_still_replaces_recomputed_rows(fresh: Any):
    client = fresh
    day0 = dt.date(2025, 1, 1)
    insert_daily(client, [("ETH", day0 + dt.timedelta(days=d), 100.0 + d) for d in range(250)])
    IndicatorMaintainer(client, margin_s=0).run_once()
    # The day 249 is sent again with another close, and a new day arrives; the clock is now behind.
    insert_daily(
        client, [("ETH", day0 + dt.timedelta(days=249), 500.0), ("ETH", day0 + dt.timedelta(days=250), 600.0)], 250
    )
    report = IndicatorMaintainer(_ClockSteppedBack(client), margin_s=0).run_once()
    # Marks are read from the stepped-back clock's now minus the margin: the first load's marks,
    # stamped less than ten minutes ago, are read again, so the series is recomputed from day 0.
    assert report.buckets == {"daily_close": 251}
    tail = client.query(
        "SELECT toString(date), close FROM v_indicators_daily_close WHERE code = 'ETH' ORDER BY date DESC LIMIT 2"
    ).result_rows
    assert tail == [("2025-09-08", 600.0), ("2025-09-07", 500.0)]
    assert client.query("SELECT toString(bucket_start), close FROM v_indicators_latest").result_rows == [
        ("2025-09-08 00:00:00", 600.0)
    ]
