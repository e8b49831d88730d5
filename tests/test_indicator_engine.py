"""The indicator engine equals TA-Lib column for column, and a continued series equals the whole.

Fixture: seven coins generated here (fixed seeds): five of 2,000 hourly buckets with gaps (a few
buckets missing), at prices from 0.05 to 30,000, one of them starting with a constant stretch of 40
buckets (high = low = close: RSI's 0/0 case, a zero Bollinger width, a zero stochastic range) and
holding another of 400 later; plus a coin of 150 buckets (fewer than the longest window, 200) and
one of 10. Each runs with a range (ATR and the stochastic) and without one (high and low NaN, as
the daily closes). TA-Lib computes the expectations on the same series; every column must match
within 1e-9 (relative, or absolute near zero) and be NaN exactly where TA-Lib answers NaN.

Continuation: a series computed in two calls, the second from the first's last HISTORY buckets
and last state, must equal the series computed in one call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from coinstream.clickhouse.indicators.engine import (
    CONTINUE_FROM,
    HISTORY,
    OUTPUT_COLUMNS,
    STATE_COLUMNS,
    Prior,
    Series,
    compute,
)

talib = pytest.importorskip("talib")

STEP = 3600
BUCKETS = 2000
COINS = {"BTC": 30000.0, "ETH": 2000.0, "ADA": 1.0, "DOGE": 0.05, "BNB": 300.0, "SHORT": 5.0, "TINY": 7.0}
LENGTHS = {"SHORT": 150, "TINY": 10}
FLAT = "ETH"
FLAT_START = 40
FLAT_LATER = slice(900, 1300)
TOLERANCE = 1e-9
CONTINUATION_TOLERANCE = 1e-12


def make_series(code: str, has_range: bool) -> Series:
    """One coin's buckets: hourly starts with a few missing, and OHLC of a random walk."""
    rng = np.random.default_rng(sorted(COINS).index(code) + 11)
    count = LENGTHS.get(code, BUCKETS)
    jumps = np.where(rng.random(count) < 0.03, rng.integers(2, 6, count), 1)
    jumps[0] = 0
    t = 1_735_689_600 + STEP * np.cumsum(jumps)
    close = COINS[code] * np.exp(np.cumsum(rng.normal(0, 0.01, count)))
    opens = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(opens, close) * (1 + rng.uniform(0, 0.01, count))
    low = np.minimum(opens, close) * (1 - rng.uniform(0, 0.01, count))
    if code == FLAT:
        for stretch in (slice(0, FLAT_START), FLAT_LATER):
            close[stretch] = close[stretch.start]
            high[stretch] = close[stretch]
            low[stretch] = close[stretch]
    if not has_range:
        high = np.full(count, np.nan)
        low = np.full(count, np.nan)
    return Series(t=t.astype(np.int64), close=close, high=high, low=low)


def talib_columns(series: Series, has_range: bool) -> dict[str, Any]:
    """Every output column as TA-Lib computes it (default settings), %B and bandwidth from its bands."""
    close, high, low = series.close, series.high, series.low
    expected: dict[str, Any] = {"close": close}
    for period in (7, 20, 30, 50, 200):
        expected[f"sma_{period}"] = talib.SMA(close, period)
    for period in (12, 26, 50, 200):
        expected[f"ema_{period}"] = talib.EMA(close, period)
    expected["macd"], expected["macd_signal"], expected["macd_hist"] = talib.MACD(close, 12, 26, 9)
    expected["rsi_14"] = talib.RSI(close, 14)
    upper, middle, lower = talib.BBANDS(close, 20, 2, 2, 0)
    expected["bb_upper"], expected["bb_middle"], expected["bb_lower"] = upper, middle, lower
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        expected["bb_percent_b"] = np.where(width == 0, np.nan, (close - lower) / width)
        expected["bb_bandwidth"] = np.where(middle == 0, np.nan, width / middle)
    nothing = np.full(len(close), np.nan)
    expected["atr_14"] = talib.ATR(high, low, close, 14) if has_range else nothing
    expected["stoch_k"], expected["stoch_d"] = (
        talib.STOCH(high, low, close, 14, 3, 0, 3, 0) if has_range else (nothing, nothing)
    )
    return expected


def assert_matches(actual: Any, expected: Any, name: str, tolerance: float = TOLERANCE) -> None:
    assert actual.shape == expected.shape, name
    nan_differs = np.isnan(actual) != np.isnan(expected)
    assert not nan_differs.any(), f"{name}: NaN differs at {np.flatnonzero(nan_differs)[:10]}"
    close = np.isclose(actual, expected, rtol=tolerance, atol=tolerance, equal_nan=True)
    worst = np.flatnonzero(~close)[:5]
    assert close.all(), f"{name}: differs at {worst}: {actual[worst]} vs {expected[worst]}"


def head_and_tail(series: Series, split: int) -> tuple[Series, Series]:
    def part(window: slice) -> Series:
        return Series(t=series.t[window], close=series.close[window], high=series.high[window], low=series.low[window])

    return part(slice(None, split)), part(slice(split, None))


def prior_of(head: Series, rows: dict[str, Any], kept: int = HISTORY) -> Prior:
    """What a caller stores: the head's last `kept` buckets and its last row's state."""
    state = {name: float(rows[name][-1]) for name in STATE_COLUMNS}
    state["position"] = int(rows["position"][-1])
    last = slice(len(head.t) - kept, None)
    return Prior(Series(t=head.t[last], close=head.close[last], high=head.high[last], low=head.low[last]), state)


RANGES = pytest.mark.parametrize("has_range", [True, False], ids=["range", "closes-only"])


def test_constants_and_columns():
    assert HISTORY == 199
    assert CONTINUE_FROM == 199
    series = make_series("BTC", True)
    rows = compute(series, STEP, True)
    assert set(rows) == set(OUTPUT_COLUMNS) | set(STATE_COLUMNS)
    assert all(len(values) == BUCKETS for values in rows.values())
    assert rows["gap_before"].dtype == np.bool_
    assert rows["position"].dtype == np.int64
    assert rows["position"].tolist() == list(range(BUCKETS))


@RANGES
@pytest.mark.parametrize("code", sorted(COINS))
def test_every_column_equals_talib(code: str, has_range: bool):
    series = make_series(code, has_range)
    rows = compute(series, STEP, has_range)
    for name, expected in talib_columns(series, has_range).items():
        assert_matches(rows[name], expected, name)


@pytest.mark.parametrize("code", sorted(COINS))
def test_gap_before_marks_missing_buckets(code: str):
    series = make_series(code, True)
    rows = compute(series, STEP, True)
    assert rows["gap_before"].tolist() == [False, *(np.diff(series.t) != STEP).tolist()]
    if len(series.t) == BUCKETS:
        assert rows["gap_before"].any()


@pytest.mark.parametrize("code", ["BTC", FLAT, "DOGE"])
def test_state_columns_carry_the_recurrences(code: str):
    """The state is TA-Lib's running values: MACD's fast EMA less the slow one is MACD, Wilder's
    averages give RSI, the ATR state is ATR; NaN until each is seeded."""
    series = make_series(code, True)
    rows = compute(series, STEP, True)
    expected = talib_columns(series, True)
    macd_from_state = rows["macd_fast"] - rows["ema_26"]
    assert_matches(macd_from_state[33:], expected["macd"][33:], "macd_fast")
    assert np.isnan(rows["macd_fast"][:25]).all() and not np.isnan(rows["macd_fast"][25:]).any()
    assert_matches(rows["macd_signal_state"], expected["macd_signal"], "macd_signal_state")
    total = rows["avg_gain"] + rows["avg_loss"]
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi_from_state = np.where(total == 0, 0.0, 100.0 * rows["avg_gain"] / total)
    assert_matches(rsi_from_state, expected["rsi_14"], "avg_gain/avg_loss")
    assert_matches(rows["atr_state"], expected["atr_14"], "atr_state")


def test_flat_start_rsi_is_zero_until_the_first_change():
    series = make_series(FLAT, True)
    rows = compute(series, STEP, True)
    first_change = int(np.flatnonzero(np.diff(series.close))[0]) + 1
    assert first_change == FLAT_START
    assert (rows["rsi_14"][14:first_change] == 0.0).all()
    assert (talib.RSI(series.close, 14)[14:first_change] == 0.0).all()


def test_flat_windows_have_zero_width_and_no_percent_b():
    series = make_series(FLAT, True)
    rows = compute(series, STEP, True)
    inside = np.r_[19:FLAT_START, FLAT_LATER.start + 19 : FLAT_LATER.stop]
    width = rows["bb_upper"] - rows["bb_lower"]
    assert (width[inside] == 0.0).all()
    assert np.isnan(rows["bb_percent_b"][inside]).all()
    assert (rows["bb_bandwidth"][inside] == 0.0).all()
    upper, _, lower = talib.BBANDS(series.close, 20, 2, 2, 0)
    assert ((upper - lower)[inside] == 0.0).all()
    outside = np.setdiff1d(np.arange(19, BUCKETS), inside)
    assert (width[outside] > 0).all()


@RANGES
@pytest.mark.parametrize("code", [FLAT, "BTC"])
@pytest.mark.parametrize("split", [200, 201, 250, 1000, 1999])
def test_continuation_equals_the_whole_series(code: str, has_range: bool, split: int):
    series = make_series(code, has_range)
    whole = compute(series, STEP, has_range)
    head, tail = head_and_tail(series, split)
    head_rows = compute(head, STEP, has_range)
    tail_rows = compute(tail, STEP, has_range, prior_of(head, head_rows))
    assert set(tail_rows) == set(whole)
    assert tail_rows["position"].tolist() == list(range(split, BUCKETS))
    assert tail_rows["gap_before"].tolist() == whole["gap_before"][split:].tolist()
    for name in sorted(set(whole) - {"position", "gap_before"}):
        joined = np.concatenate([head_rows[name], tail_rows[name]])
        assert_matches(joined, whole[name], name, CONTINUATION_TOLERANCE)


def test_a_longer_prior_gives_the_same_rows():
    series = make_series(FLAT, True)
    head, tail = head_and_tail(series, 1000)
    head_rows = compute(head, STEP, True)
    exact = compute(tail, STEP, True, prior_of(head, head_rows))
    longer = compute(tail, STEP, True, prior_of(head, head_rows, kept=len(head.t)))
    for name in exact:
        assert np.array_equal(exact[name], longer[name], equal_nan=True), name


@pytest.mark.parametrize("split", [150, 199])
def test_a_prior_below_continue_from_raises(split: int):
    """A head of 199 buckets ends at position 198: EMA 200 has no seed yet."""
    series = make_series("BTC", True)
    head, tail = head_and_tail(series, split)
    head_rows = compute(head, STEP, True)
    with pytest.raises(ValueError, match="position"):
        compute(tail, STEP, True, prior_of(head, head_rows, kept=min(split, HISTORY)))


def test_a_prior_with_too_few_buckets_raises():
    series = make_series("BTC", True)
    head, tail = head_and_tail(series, 500)
    head_rows = compute(head, STEP, True)
    with pytest.raises(ValueError, match="buckets"):
        compute(tail, STEP, True, prior_of(head, head_rows, kept=HISTORY - 1))
