"""The candle series the indicators run over, one per timeframe, read where they are stored.

Each timeframe's candles are the rows of a view the charts read (`view`), but the maintainer reads
the table under it with a GROUP BY that picks the same values: a view's FINAL or LIMIT 1 BY is
applied to the whole table before an outer filter, and a cycle wants the last few buckets of each
series, which the tables' primary keys (code, time) find directly. tests/test_indicators.py checks
that each source returns its view's rows.

Every `select` yields code, bucket_start (DateTime, UTC), close, high, low (NULL when the source
has no range: the daily closes) for the rows matching `{where}`, a condition on `code` and on
`time` (SQL for the table's own time column as a DateTime). `step_s` is the bucket length, used to tell a
gap (`gap_before`: the previous bucket is not the adjacent one).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CandleSource:
    """How a timeframe's candles are read; see the module docstring."""

    view: str
    table: str
    time: str
    select: str
    step_s: int
    has_range: bool = True

    def query(self, where: str) -> str:
        """The candles matching `where`, a condition on `code` and on `self.time`. Only the template
        is formatted: braces in `where` (coin codes come from the data) are never interpreted."""
        return self.select.format(table=self.table, where=where)


# The rollups keep partial states per (code, bucket); merged, they are the view's FINAL values.
_ROLLUP = (
    "SELECT code, bucket_start, argMaxMerge(close_state) AS close, max(high_max) AS high, "
    "min(low_min) AS low FROM {table} WHERE {where} GROUP BY code, bucket_start"
)


def _rollup(timeframe: str, step_s: int) -> CandleSource:
    return CandleSource(f"v_candles_{timeframe}", f"candles_{timeframe}", "bucket_start", _ROLLUP, step_s)


TIMEFRAMES: dict[str, CandleSource] = {
    # A window's latest update: the highest (_topic_epoch, _offset), as v_ohlc_by_minute picks it.
    "1m": CandleSource(
        "v_ohlc_by_minute",
        "ohlc_by_minute",
        "toDateTime(window_start, 'UTC')",
        "SELECT code, toDateTime(window_start, 'UTC') AS bucket_start, argMax(close, (_topic_epoch, _offset)) AS close, "
        "argMax(high, (_topic_epoch, _offset)) AS high, argMax(low, (_topic_epoch, _offset)) AS low "
        "FROM {table} WHERE {where} GROUP BY code, window_start",
        60,
    ),
    "5m": _rollup("5m", 300),
    "15m": _rollup("15m", 900),
    "1h": _rollup("1h", 3600),
    "4h": _rollup("4h", 14400),
    "1d": _rollup("1d", 86400),
    # A day's latest fetch of its close: the highest (fetched_at, _offset), as v_hist_daily picks it.
    "daily_close": CandleSource(
        "v_hist_daily",
        "coins_historical",
        "toDateTime(date, 'UTC')",
        "SELECT code, toDateTime(date, 'UTC') AS bucket_start, argMax(rate, (fetched_at, _offset)) AS close, "
        "CAST(NULL AS Nullable(Float64)) AS high, CAST(NULL AS Nullable(Float64)) AS low "
        "FROM {table} WHERE {where} GROUP BY code, date",
        86400,
        has_range=False,
    ),
}
