"""The indicator views agree with TA-Lib on the same series, value for value and NaN for NULL.

Fixture: for every timeframe (the 1-minute candles, the 5m … 1d rollups, the daily closes) six
coins: five of 2,000 buckets with gaps (a few buckets missing), at prices from 0.05 to 30,000,
crossing UTC midnight and the 2025 → 2026 year boundary, one of them starting with a constant
stretch (RSI's 0/0 case, a zero Bollinger width, a zero stochastic range) and holding another one
later; plus a coin of 150 buckets (fewer than the longest period, 200) and one of 10. The rows go
straight into the landing and rollup tables. TA-Lib computes every indicator on each coin's
series (the buckets that exist, in time order); each view column must match within 1e-9
(relative, or absolute near zero) and be NULL exactly where TA-Lib answers NaN.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

talib = pytest.importorskip("talib")
np = pytest.importorskip("numpy")

from coinstream.clickhouse.migrations import migrate  # noqa: E402 - after the importorskip above
from coinstream.clickhouse.view_files import VIEWS_DIR  # noqa: E402

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


# The lines a per-timeframe view may have of its own: the view's name, its output columns and the
# read of its candles (the line that ends FROM v_<source>). Everything else is the one definition.
OWN_LINES = (
    re.compile(r"^CREATE OR REPLACE VIEW v_indicators_\w+ AS$"),
    re.compile(r"^SELECT (bucket_start|toDate\(bucket_start\) AS date), code, gap_before, .*$"),
    re.compile(r"^ *SELECT .* FROM v_(ohlc_by_minute|candles_\w+|hist_daily)$"),
)


def definition(path: Path) -> list[str]:
    """A per-timeframe view's SQL from its CREATE on, its own lines replaced by a placeholder."""
    text = path.read_text()
    lines = text[text.index("CREATE OR REPLACE VIEW") :].splitlines()
    return [next((f"<own {i}>" for i, own in enumerate(OWN_LINES) if own.match(line)), line) for line in lines]


def test_per_timeframe_views_are_one_definition():
    """Each v_indicators_<timeframe> holds the whole definition (so a read analyses one timeframe's
    query only); the files may differ only in the name, the output columns and the candle read."""
    definitions = {timeframe: definition(VIEWS_DIR / f"v_indicators_{timeframe}.sql") for timeframe in STEPS}
    for timeframe, lines in definitions.items():
        assert [line for line in lines if line.startswith("<own")] == ["<own 0>", "<own 1>", "<own 2>"], timeframe
        assert lines == definitions["1h"], timeframe


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
