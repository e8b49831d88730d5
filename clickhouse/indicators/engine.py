"""The indicator engine: one coin's buckets in, TA-Lib's indicators and the state to go on from out.

Why not TA-Lib itself: the store is kept current bucket by bucket, and TA-Lib only computes a
series from its first bucket. The engine gives the same values (TA-Lib, default settings, is the
reference the views and the tests hold them to) and also the state after every bucket, so a later
call continues a series from its stored state and the buckets its windows reach back to, without
the rest of its history.

How it stays equal to TA-Lib and to itself:
- Windows (the SMAs, the Bollinger bands, the stochastic) are computed from the values in each
  window, never as a running sum: a window's value depends on its buckets alone, so a continued
  series gives the same bits as one computed whole, and a year of minutes accumulates no drift.
- Recurrences (the EMAs, MACD's fast and signal lines, Wilder's averages of RSI and ATR) are
  first-order linear filters, solved in C by `scipy.signal.lfilter`. The state stored is the
  filter's last output; the initial condition rebuilt from it is exactly what the uninterrupted
  filter held at that point, so continuing is bit for bit.
- Seeds are TA-Lib's: the mean of the first values, summed in order as TA-Lib sums them.

Positions count the buckets of a series from 0 (the buckets that exist: a missing bucket is no
row, and `gap_before` says that one is missing before a row).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

Floats = NDArray[np.float64]

SMA_PERIODS = (7, 20, 30, 50, 200)
EMA_PERIODS = (12, 26, 50, 200)
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
RSI_PERIOD = 14
BB_PERIOD = 20
BB_DEVIATIONS = 2.0
ATR_PERIOD = 14
STOCH_FAST_K, STOCH_SLOW_K, STOCH_SLOW_D = 14, 3, 3
# TA-Lib's test for a flat stochastic window: a range within 1e-14 of the extremes' magnitude is
# rounding, not a range, and %K is then 0.
STOCH_FLAT_RANGE = 1e-14

# TA-Lib starts MACD's fast EMA where the slow one starts, and its three lines once the signal has
# its first value.
MACD_START = MACD_SLOW - 1
MACD_FIRST_OUTPUT = MACD_START + MACD_SIGNAL - 1
# TA-Lib gives %K and %D from the first bucket where %D has its first value.
STOCH_FIRST_OUTPUT = (STOCH_FAST_K - 1) + (STOCH_SLOW_K - 1) + (STOCH_SLOW_D - 1)

# The buckets before the first one computed that a window reaches back to (SMA 200 the farthest).
HISTORY = max(max(SMA_PERIODS) - 1, BB_PERIOD - 1, STOCH_FIRST_OUTPUT, 1)
# From this position of the last prior bucket on every recurrence has its seed (EMA 200 the last),
# so a continuation needs no value the state does not carry; before it, compute from position 0.
CONTINUE_FROM = max(max(EMA_PERIODS) - 1, MACD_FIRST_OUTPUT, RSI_PERIOD, ATR_PERIOD)

OUTPUT_COLUMNS = (
    "gap_before",
    "close",
    *(f"sma_{period}" for period in SMA_PERIODS),
    *(f"ema_{period}" for period in EMA_PERIODS),
    "macd",
    "macd_signal",
    "macd_hist",
    "rsi_14",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "bb_percent_b",
    "bb_bandwidth",
    "atr_14",
    "stoch_k",
    "stoch_d",
)
STATE_COLUMNS = (
    "position",
    *(f"ema_{period}" for period in EMA_PERIODS),
    "macd_fast",
    "macd_signal_state",
    "avg_gain",
    "avg_loss",
    "atr_state",
)


@dataclass(frozen=True)
class Series:
    """One coin's buckets in time order: only those that exist, nothing filled in.

    `high` and `low` are NaN when the source has no range (the daily closes)."""

    t: NDArray[np.int64]  # bucket starts, epoch seconds
    close: Floats
    high: Floats
    low: Floats

    def __post_init__(self) -> None:
        lengths = {len(self.t), len(self.close), len(self.high), len(self.low)}
        if len(lengths) != 1:
            raise ValueError(f"a series' arrays differ in length: {sorted(lengths)}")


@dataclass(frozen=True)
class Prior:
    """What precedes the buckets to compute: the last HISTORY buckets before them (in order), and
    the state (STATE_COLUMNS, position as its int value) after the last of those."""

    series: Series
    state: Mapping[str, float]


@dataclass(frozen=True)
class _Smoothing:
    """A first-order recurrence y = decay·y' + gain·x, seeded with the mean of its first `period` inputs."""

    period: int
    gain: float
    decay: float

    @classmethod
    def ema(cls, period: int) -> _Smoothing:
        k = 2.0 / (period + 1)  # TA-Lib's PER_TO_K
        return cls(period, k, 1.0 - k)

    @classmethod
    def wilder(cls, period: int) -> _Smoothing:
        """Wilder's average, (avg' · (period − 1) + x) / period."""
        return cls(period, 1.0 / period, (period - 1) / period)


def compute(series: Series, step: int, has_range: bool, prior: Prior | None = None) -> dict[str, NDArray[Any]]:
    """Rows for `series` only (not the prior's): OUTPUT_COLUMNS + STATE_COLUMNS, arrays of len(series.t).

    Without a prior the series starts at position 0. With one, positions go on from the prior's,
    windows reach into its buckets and the recurrences continue from its state; a prior that
    cannot be continued exactly (see CONTINUE_FROM, HISTORY) raises ValueError, and the caller
    computes the series from its first bucket instead. `step` is the bucket length in seconds
    (what tells a gap); `has_range` is False for a source without high and low (no ATR, no
    stochastic)."""
    history = _history(prior)
    frame = _joined(history, series)
    first = len(history.t)
    count = len(frame.t) - first
    state = None if prior is None else prior.state
    start = 0 if prior is None else int(prior.state["position"]) + 1

    rows: dict[str, NDArray[Any]] = {
        "gap_before": _gaps(frame.t, step)[first:],
        "close": frame.close[first:].copy(),
    }
    means = {period: _window_means(frame.close, period) for period in SMA_PERIODS}
    for period, mean in means.items():
        rows[f"sma_{period}"] = mean[first:]
    for period in EMA_PERIODS:
        rows[f"ema_{period}"] = _smoothed(
            frame.close[first:], _Smoothing.ema(period), period - 1, _from(state, f"ema_{period}")
        )
    rows.update(_macd(frame.close[first:], rows[f"ema_{MACD_SLOW}"], state))
    rows.update(_rsi(frame.close, first, state))
    rows.update(_bollinger(frame.close, means[BB_PERIOD], first))
    rows.update(_ranged(frame, first, state) if has_range else _unranged(count))
    rows["position"] = np.arange(start, start + count, dtype=np.int64)
    return rows


def _history(prior: Prior | None) -> Series:
    """The prior's last HISTORY buckets (none without a prior), once it is known to continue exactly."""
    if prior is None:
        empty = np.empty(0)
        return Series(t=np.empty(0, dtype=np.int64), close=empty, high=empty, low=empty)
    missing = [name for name in STATE_COLUMNS if name not in prior.state]
    if missing:
        raise ValueError(f"the prior's state lacks {missing}")
    position = prior.state["position"]
    if not position >= CONTINUE_FROM:
        raise ValueError(f"prior at position {position}: below {CONTINUE_FROM} not every recurrence is seeded")
    kept = len(prior.series.t)
    if kept < HISTORY:
        raise ValueError(f"prior of {kept} buckets: the windows need the last {HISTORY}")
    return Series(
        t=prior.series.t[kept - HISTORY :],
        close=prior.series.close[kept - HISTORY :],
        high=prior.series.high[kept - HISTORY :],
        low=prior.series.low[kept - HISTORY :],
    )


def _joined(history: Series, series: Series) -> Series:
    """History then series, as one series of the dtypes the arithmetic needs."""
    if len(history.t) and len(series.t) and not history.t[-1] < series.t[0]:
        raise ValueError("the prior's buckets must all precede the series'")
    return Series(
        t=np.concatenate([history.t, series.t]).astype(np.int64, copy=False),
        close=np.concatenate([history.close, series.close]).astype(np.float64, copy=False),
        high=np.concatenate([history.high, series.high]).astype(np.float64, copy=False),
        low=np.concatenate([history.low, series.low]).astype(np.float64, copy=False),
    )


def _from(state: Mapping[str, float] | None, name: str) -> float | None:
    return None if state is None else float(state[name])


def _gaps(t: NDArray[np.int64], step: int) -> NDArray[np.bool_]:
    """Whether the bucket before each one is missing (never for the first)."""
    gaps = np.zeros(len(t), dtype=bool)
    gaps[1:] = np.diff(t) != step
    return gaps


# Windows: NaN until a row's window is full.


def _window_sums(values: Floats, period: int) -> Floats:
    """The sum of each row's window of `period` values ending at it, from that window's values alone."""
    sums = np.full(len(values), np.nan)
    if len(values) >= period:
        sums[period - 1 :] = np.convolve(values, np.ones(period), mode="valid")
    return sums


def _window_means(values: Floats, period: int) -> Floats:
    return _window_sums(values, period) / period


def _window_extreme(values: Floats, period: int, pick: np.ufunc) -> Floats:
    """The lowest (`pick` = np.minimum) or highest (np.maximum) value of each row's window.

    By doubling spans: after the loop `best[i]` covers `span` values from i, the largest power of 2
    not above `period`, and two such spans cover a window. About log2(period) passes over the
    rows, each exact (a minimum or maximum never rounds)."""
    extreme = np.full(len(values), np.nan)
    rows = len(values) - period + 1
    if rows <= 0:
        return extreme
    best, span = values, 1
    while span * 2 <= period:
        best = pick(best[:-span], best[span:])
        span *= 2
    extreme[period - 1 :] = pick(best[:rows], best[period - span : period - span + rows])
    return extreme


def _window_deviation(values: Floats, means: Floats, period: int) -> Floats:
    """Population standard deviation of each row's window about its mean, exactly 0 on a flat window.

    Summed over the window's offsets (vectorised over rows), from the deviations themselves: the
    mean of squares minus the squared mean loses every digit on a near-flat window of large
    prices. A flat window (min == max) is 0 outright, so a constant stretch never shows a width
    made of rounding."""
    deviation = np.full(len(values), np.nan)
    rows = len(values) - period + 1
    if rows <= 0:
        return deviation
    centre = means[period - 1 :]
    squares = np.zeros(rows)
    difference = np.empty(rows)
    for offset in range(period):
        np.subtract(values[offset : offset + rows], centre, out=difference)
        np.multiply(difference, difference, out=difference)
        np.add(squares, difference, out=squares)
    result = np.sqrt(squares / period)
    flat = _window_extreme(values, period, np.minimum) == _window_extreme(values, period, np.maximum)
    result[flat[period - 1 :]] = 0.0
    deviation[period - 1 :] = result
    return deviation


def _ratio(numerator: Floats, denominator: Floats) -> Floats:
    """numerator / denominator, NaN where the denominator is 0."""
    quotient = np.full(len(numerator), np.nan)
    np.divide(numerator, denominator, out=quotient, where=denominator != 0)
    return quotient


# Recurrences: seeded from scratch, or continued from a state.


def _smoothed(inputs: Floats, smoothing: _Smoothing, seed_at: int, previous: float | None) -> Floats:
    """The recurrence over `inputs` (one per row), continued from `previous`; without one, from
    scratch: NaN before row `seed_at`, there the mean of the `period` inputs ending at it."""
    if previous is not None:
        return _filtered(inputs, smoothing, previous)
    values = np.full(len(inputs), np.nan)
    if len(inputs) > seed_at:
        # TA-Lib sums the seed's inputs one after the other: cumsum is that order.
        seed = float(np.cumsum(inputs[seed_at - smoothing.period + 1 : seed_at + 1])[-1]) / smoothing.period
        values[seed_at] = seed
        values[seed_at + 1 :] = _filtered(inputs[seed_at + 1 :], smoothing, seed)
    return values


def _filtered(inputs: Floats, smoothing: _Smoothing, previous: float) -> Floats:
    """y[i] = decay·y[i-1] + gain·inputs[i] from y[-1] = previous, in C.

    lfilter's delay after an output y is 0·x + decay·y, which is decay·y exactly: the initial
    condition below is what an uninterrupted run holds at the same point, bit for bit."""
    if len(inputs) == 0:
        return np.empty(0)
    outputs, _ = lfilter([smoothing.gain], [1.0, -smoothing.decay], inputs, zi=[previous * smoothing.decay])
    return np.asarray(outputs, dtype=np.float64)


def _macd(close: Floats, slow: Floats, state: Mapping[str, float] | None) -> dict[str, Floats]:
    """TA-Lib's MACD(12, 26, 9): the fast EMA starts at the slow one's first bucket, seeded with the
    mean of the 12 closes ending there, so the early MACD is not ema_12 − ema_26."""
    fast = _smoothed(close, _Smoothing.ema(MACD_FAST), MACD_START, _from(state, "macd_fast"))
    macd = fast - slow
    signal = _smoothed(macd, _Smoothing.ema(MACD_SIGNAL), MACD_FIRST_OUTPUT, _from(state, "macd_signal_state"))
    shown = macd.copy()
    if state is None:
        shown[:MACD_FIRST_OUTPUT] = np.nan
    return {
        "macd": shown,
        "macd_signal": signal,
        "macd_hist": shown - signal,
        "macd_fast": fast,
        "macd_signal_state": signal.copy(),
    }


def _rsi(close: Floats, first: int, state: Mapping[str, float] | None) -> dict[str, Floats]:
    """TA-Lib's RSI(14): Wilder's averages of gains and losses, 100·gain/(gain + loss), 0 when both are 0."""
    change = np.full(len(close), np.nan)
    change[1:] = np.diff(close)
    falling = change < 0
    gains = np.where(falling, 0.0, change)[first:]
    losses = np.where(falling, -change, 0.0)[first:]
    wilder = _Smoothing.wilder(RSI_PERIOD)
    avg_gain = _smoothed(gains, wilder, RSI_PERIOD, _from(state, "avg_gain"))
    avg_loss = _smoothed(losses, wilder, RSI_PERIOD, _from(state, "avg_loss"))
    total = avg_gain + avg_loss
    rsi = 100.0 * _ratio(avg_gain, total)
    rsi[total == 0] = 0.0
    return {"rsi_14": rsi, "avg_gain": avg_gain, "avg_loss": avg_loss}


def _bollinger(close: Floats, middle: Floats, first: int) -> dict[str, Floats]:
    """TA-Lib's BBANDS(20, 2, 2, SMA) about `middle` (the 20-bucket SMA) with the population
    deviation, %B and bandwidth (NaN on a zero width or a zero middle)."""
    spread = _window_deviation(close, middle, BB_PERIOD) * BB_DEVIATIONS
    upper = (middle + spread)[first:]
    lower = (middle - spread)[first:]
    middle = middle[first:]
    width = upper - lower
    return {
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
        "bb_percent_b": _ratio(close[first:] - lower, width),
        "bb_bandwidth": _ratio(width, middle),
    }


def _ranged(frame: Series, first: int, state: Mapping[str, float] | None) -> dict[str, Floats]:
    """ATR(14) and STOCH(14, 3, SMA, 3, SMA), which need each bucket's high and low."""
    stoch_k, stoch_d = _stochastic(frame)
    atr = _smoothed(_true_range(frame)[first:], _Smoothing.wilder(ATR_PERIOD), ATR_PERIOD, _from(state, "atr_state"))
    return {"atr_14": atr, "atr_state": atr.copy(), "stoch_k": stoch_k[first:], "stoch_d": stoch_d[first:]}


def _unranged(count: int) -> dict[str, Floats]:
    return {name: np.full(count, np.nan) for name in ("atr_14", "atr_state", "stoch_k", "stoch_d")}


def _true_range(frame: Series) -> Floats:
    """TA-Lib's TRANGE: the largest of high − low and the previous close's distance to each (NaN at row 0)."""
    true_range = np.full(len(frame.t), np.nan)
    previous = frame.close[:-1]
    high = frame.high[1:]
    low = frame.low[1:]
    true_range[1:] = np.maximum(high - low, np.maximum(np.abs(previous - high), np.abs(previous - low)))
    return true_range


def _stochastic(frame: Series) -> tuple[Floats, Floats]:
    """TA-Lib's slow %K and %D: %K over 14 buckets, smoothed by SMA(3) twice; %K 0 on a flat window."""
    lowest = _window_extreme(frame.low, STOCH_FAST_K, np.minimum)
    highest = _window_extreme(frame.high, STOCH_FAST_K, np.maximum)
    spread = highest - lowest
    flat = np.abs(spread) <= STOCH_FLAT_RANGE * (np.abs(highest) + np.abs(lowest))
    fast_k = np.where(flat, 0.0, (frame.close - lowest) / np.where(flat, 1.0, spread / 100.0))
    slow_k = _window_means(fast_k, STOCH_SLOW_K)
    slow_d = _window_means(slow_k, STOCH_SLOW_D)
    slow_k[:STOCH_FIRST_OUTPUT] = np.nan
    slow_d[:STOCH_FIRST_OUTPUT] = np.nan
    return slow_k, slow_d
