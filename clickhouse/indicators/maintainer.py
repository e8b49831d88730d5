"""Keeps `indicator_rows` and `indicator_latest` equal to the indicators of the candles as they are.

Every insert into a candle source marks, per code, the earliest bucket it touched
(`indicator_dirty`, written by materialized views, so the loader, the rollups and any backfill
mark without knowing about indicators). A cycle reads the marks made since the previous cycle began
(minus a margin: a mark can become visible a moment after the candles it describes, or before
them), and recomputes each marked series from its earliest marked bucket to its end: from the
stored state of the bucket before it (and the buckets a window reaches back to), or from the
first bucket when the series is still warming up or nothing is stored. A new bucket, the open
bucket changing, a late rate for an old bucket and a re-sent daily close are all the same case.

Restarts: the cycle's start is recorded in `indicator_cycles` only after all its rows are
inserted, so a maintainer killed mid-cycle re-reads those marks when it starts again, and
recomputing is idempotent (the rows are replaced by key). Marks expire after 7 days; a
maintainer whose last cycle is older than that, or that has none, rebuilds every series.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from coinstream.clickhouse.indicators.engine import (
    CONTINUE_FROM,
    HISTORY,
    OUTPUT_COLUMNS,
    STATE_COLUMNS,
    Prior,
    Series,
    compute,
)
from coinstream.clickhouse.indicators.sources import TIMEFRAMES, CandleSource

log = logging.getLogger(__name__)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
MARKS_KEPT = dt.timedelta(days=7)
# Series read per query: a series continued from its stored state reads a few buckets (every
# series of a timeframe in one query in steady state); one rebuilt from its first bucket reads
# all of them (a year of 1-minute candles is 525,600 buckets per coin), so fewer at a time.
CONTINUED_PER_QUERY = 1000
REBUILT_PER_QUERY = 10
# Codes are written into the queries (twice each, with a start time): bounded in bytes too, so a
# thousand long codes never exceed a server's max_query_size (256 KiB by default).
CODE_BYTES_PER_QUERY = 64 * 1024
# Rows per insert: ~40 columns of 8 bytes, so ~80 MB of Arrow per insert at most (a server limits
# a request's body; the embedded one to 256 MiB by default).
ROWS_PER_INSERT = 250_000
# The store's column for each of the engine's state values: state_ and the name without a _state
# suffix (a state is never mistaken for the indicator of the same name), position as it is.
STORED_STATE = {name: name if name == "position" else "state_" + name.removesuffix("_state") for name in STATE_COLUMNS}
# Buckets kept in memory per series after it is stored: the next cycle's prior comes from them
# (HISTORY before its first bucket), which in steady state is the open bucket or the next one.
TAIL_KEPT = HISTORY + 64
Columns = dict[str, np.ndarray]
INDICATORS = [name for name in OUTPUT_COLUMNS if name not in ("gap_before", "close")]


@dataclass
class _Pending:
    """Rows computed but not inserted yet (one insert per cycle in steady state), the latest row
    of each series, and the tails to keep once the rows are stored."""

    tables: list[pa.Table] = field(default_factory=list)
    latest: list[pa.Table] = field(default_factory=list)
    tails: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)
    rows: int = 0

    def add(self, key: tuple[str, str], table: pa.Table, tail: dict[str, np.ndarray]) -> None:
        self.tables.append(table)
        self.latest.append(table.slice(table.num_rows - 1, 1).select(LATEST_COLUMNS))
        self.tails[key] = tail
        self.rows += table.num_rows

    def stored(self) -> None:
        """The rows are in ClickHouse: forget them, keep the latest rows for their own insert."""
        self.tables, self.tails, self.rows = [], {}, 0


@dataclass
class CycleReport:
    """What one cycle did: series recomputed and bucket rows written, per timeframe."""

    cycle_start: dt.datetime
    series: dict[str, int] = field(default_factory=dict)
    buckets: dict[str, int] = field(default_factory=dict)

    @property
    def total_buckets(self) -> int:
        return sum(self.buckets.values())


def _chunks(codes: list[str], most: int) -> list[list[str]]:
    """`codes` in order, at most `most` and about CODE_BYTES_PER_QUERY of code text per chunk."""
    chunks: list[list[str]] = []
    size = 0
    for code in codes:
        cost = 2 * len(code.encode()) + 64  # in the IN list and the transform, quoted, with a start time
        if not chunks or len(chunks[-1]) >= most or size + cost > CODE_BYTES_PER_QUERY:
            chunks.append([])
            size = 0
        chunks[-1].append(code)
        size += cost
    return chunks


def _sql_list(values: Iterable[str]) -> str:
    return "[" + ", ".join("'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'" for value in values) + "]"


def _since_by_code(codes: Mapping[str, dt.datetime]) -> str:
    """SQL mapping a row's code to its series' first bucket to recompute."""
    keys = list(codes)
    starts = ", ".join(f"toDateTime({int(codes[code].timestamp())}, 'UTC')" for code in keys)
    return f"transform(code, {_sql_list(keys)}, [{starts}], toDateTime(0, 'UTC'))"


class IndicatorMaintainer:
    """One ClickHouse database's indicator store, brought up to date by `run_once()`."""

    def __init__(self, client: Any, margin_s: float = 30.0, timeframes: Mapping[str, CandleSource] = TIMEFRAMES):
        self._client = client
        self._margin = dt.timedelta(seconds=margin_s)
        self._timeframes = dict(timeframes)
        self._last_cycle: dt.datetime | None = None
        self._last_version: dt.datetime | None = None
        self._tails: dict[tuple[str, str], Columns] = {}
        self._pending = _Pending()
        self._started = False

    def run_once(self) -> CycleReport:
        """Recompute every series marked since the previous cycle (on the first call: since the last
        completed cycle recorded in ClickHouse, or everything)."""
        cycle_start = self._client.query("SELECT now64(3, 'UTC')").result_rows[0][0]
        cycle_start = cycle_start.replace(tzinfo=dt.timezone.utc)
        if not self._started:
            self._last_cycle = self._recorded_cycle()
            self._last_version = self._stored_version()
            self._started = True
        if self._last_cycle is None or cycle_start - self._last_cycle > MARKS_KEPT - self._margin:
            dirty = self._every_series()
        else:
            # The server's clock may have stepped back since the last cycle: marks are then stamped
            # before that cycle's start, so read from whichever is earlier.
            dirty = self._marked_since(min(self._last_cycle, cycle_start) - self._margin)
        # The rows' version only goes up, whatever the clock does: a recomputed row must replace
        # the one it recomputes (ReplacingMergeTree keeps the highest computed_at).
        version = cycle_start
        if self._last_version is not None and version <= self._last_version:
            version = self._last_version + dt.timedelta(milliseconds=1)
        report = CycleReport(cycle_start)
        self._pending = _Pending()
        for timeframe, codes in dirty.items():
            if timeframe in self._timeframes and codes:
                report.series[timeframe] = len(codes)
                report.buckets[timeframe] = self._recompute(timeframe, codes, version)
        self._flush()
        self._last_version = version
        self._client.insert(
            "indicator_cycles", [[cycle_start, report.total_buckets]], column_names=["cycle_start", "buckets"]
        )
        self._last_cycle = cycle_start
        return report

    def _stored_version(self) -> dt.datetime | None:
        """The highest computed_at stored: the floor of the next cycle's version."""
        latest, count = self._client.query("SELECT max(computed_at), count() FROM indicator_latest").result_rows[0]
        return latest.replace(tzinfo=dt.timezone.utc) if count else None

    def _recorded_cycle(self) -> dt.datetime | None:
        rows = self._client.query("SELECT max(cycle_start), count() FROM indicator_cycles").result_rows
        latest, count = rows[0]
        return latest.replace(tzinfo=dt.timezone.utc) if count else None

    def _marked_since(self, since: dt.datetime) -> dict[str, dict[str, dt.datetime]]:
        rows = self._client.query(
            "SELECT timeframe, code, min(since) FROM indicator_dirty WHERE marked_at >= {since:DateTime64(3, 'UTC')} "
            "GROUP BY timeframe, code",
            parameters={"since": since},
        ).result_rows
        dirty: dict[str, dict[str, dt.datetime]] = {}
        for timeframe, code, first in rows:
            dirty.setdefault(timeframe, {})[code] = first.replace(tzinfo=dt.timezone.utc)
        return dirty

    def _every_series(self) -> dict[str, dict[str, dt.datetime]]:
        """Every code of every timeframe, from its first bucket: a rebuild."""
        return {
            timeframe: {
                code: EPOCH for (code,) in self._client.query(f"SELECT DISTINCT code FROM {source.table}").result_rows
            }
            for timeframe, source in self._timeframes.items()
        }

    def _recompute(self, timeframe: str, since: dict[str, dt.datetime], cycle_start: dt.datetime) -> int:
        """Rows from each code's `since` bucket to its last, from the stored state before it."""
        source = self._timeframes[timeframe]
        before: dict[str, Columns] = {}
        codes = sorted(since)
        for chunk in _chunks(codes, CONTINUED_PER_QUERY):
            before |= self._stored_before(timeframe, {code: since[code] for code in chunk})
        priors = {code: prior for code, columns in before.items() if (prior := _prior(columns)) is not None}
        continued = sorted(priors)
        rebuilt = [code for code in codes if code not in priors]
        groups = [
            *_chunks(continued, CONTINUED_PER_QUERY),
            *_chunks(rebuilt, REBUILT_PER_QUERY),
        ]
        written = 0
        for group in groups:
            starts = {code: (since[code] if code in priors else EPOCH) for code in group}
            for code, series in self._candles(source, starts).items():
                rows = compute(series, source.step_s, source.has_range, priors.get(code))
                table = self._arrow_rows(timeframe, code, series, rows, cycle_start)
                tail = _tail(before.get(code) if code in priors else None, series, rows)
                self._pending.add((timeframe, code), table, tail)
                written += table.num_rows
                if self._pending.rows >= ROWS_PER_INSERT:
                    self._flush_rows()
        return written

    def _flush_rows(self) -> None:
        """Insert the pending rows; only then keep their series' tails for the next cycle."""
        if self._pending.tables:
            table = pa.concat_tables(self._pending.tables)
            for offset in range(0, table.num_rows, ROWS_PER_INSERT):
                self._client.insert_arrow("indicator_rows", table.slice(offset, ROWS_PER_INSERT))
        self._tails |= self._pending.tails
        self._pending.stored()

    def _flush(self) -> None:
        """The rows, then each series' latest row: a reader of indicator_latest never sees a row
        that indicator_rows does not have yet."""
        self._flush_rows()
        if self._pending.latest:
            self._client.insert_arrow("indicator_latest", pa.concat_tables(self._pending.latest))
        self._pending = _Pending()

    def _stored_before(self, timeframe: str, since: dict[str, dt.datetime]) -> dict[str, Columns]:
        """The last HISTORY stored buckets before each code's `since`, in time order, with their
        state: from the rows this maintainer stored last (kept in memory), else from ClickHouse.

        ClickHouse is read first within a window of the primary key (HISTORY buckets back from the
        earliest `since`, eight times over for gaps), which holds every series in steady state; a
        series with fewer rows there is read again without the bound."""
        found: dict[str, Columns] = {}
        for code, first in since.items():
            tail = self._tails.get((timeframe, code))
            if tail is not None:
                end = int(np.searchsorted(tail["t"], first.timestamp()))
                if end >= HISTORY:
                    found[code] = {name: values[end - HISTORY : end] for name, values in tail.items()}
        missing = {code: first for code, first in since.items() if code not in found}
        if not missing:
            return found
        lookback = dt.timedelta(seconds=self._timeframes[timeframe].step_s * HISTORY * 8)
        bounded = self._prior_rows(timeframe, missing, min(missing.values()) - lookback)
        short = {code: first for code, first in missing.items() if len(bounded.get(code, {}).get("t", ())) < HISTORY}
        rows = bounded | (self._prior_rows(timeframe, short, None) if short else {})
        return found | {
            code: {name: values[::-1] for name, values in columns.items()} for code, columns in rows.items()
        }

    def _prior_rows(
        self, timeframe: str, since: dict[str, dt.datetime], not_before: dt.datetime | None
    ) -> dict[str, dict[str, np.ndarray]]:
        bound = (
            f"AND bucket_start >= toDateTime({int(max(not_before, EPOCH).timestamp())}, 'UTC') " if not_before else ""
        )
        table = self._client.query_arrow(
            f"SELECT code, toUnixTimestamp(bucket_start) AS t, close, high, low, {', '.join(STORED_STATE.values())} "
            "FROM indicator_rows FINAL "
            f"WHERE timeframe = {{timeframe:String}} AND code IN {_sql_list(since)} {bound}"
            f"AND bucket_start < {_since_by_code(since)} "
            f"ORDER BY code ASC, bucket_start DESC LIMIT {HISTORY} BY code",
            parameters={"timeframe": timeframe},
        )
        return _by_code(table)

    def _candles(self, source: CandleSource, starts: dict[str, dt.datetime]) -> dict[str, Series]:
        """Each code's candles from its start bucket on, in time order."""
        lower = int(min(starts.values()).timestamp())
        where = (
            f"code IN {_sql_list(starts)} "
            # The literal bound reaches the primary key; the per-code one picks each series' start.
            f"AND {source.time} >= toDateTime({lower}, 'UTC') AND {source.time} >= {_since_by_code(starts)}"
        )
        table = self._client.query_arrow(
            "SELECT code, toUnixTimestamp(bucket_start) AS t, toFloat64(close) AS close, "
            f"toNullable(toFloat64(high)) AS high, toNullable(toFloat64(low)) AS low FROM ({source.query(where)}) "
            "WHERE close IS NOT NULL ORDER BY code, t"
        )
        return {
            code: Series(
                t=columns["t"].astype(np.int64), close=columns["close"], high=columns["high"], low=columns["low"]
            )
            for code, columns in _by_code(table).items()
        }

    @staticmethod
    def _arrow_rows(
        timeframe: str, code: str, series: Series, rows: Mapping[str, np.ndarray], cycle_start: dt.datetime
    ) -> pa.Table:
        count = len(series.t)
        columns: dict[str, pa.Array] = {
            "timeframe": pa.array([timeframe] * count, pa.string()),
            "code": pa.array([code] * count, pa.string()),
            "bucket_start": pa.array(series.t.astype("datetime64[s]"), pa.timestamp("s", tz="UTC")),
            "gap_before": pa.array(rows["gap_before"].astype(bool)),
            "close": pa.array(series.close, pa.float64()),
            "high": pa.array(series.high, pa.float64(), from_pandas=True),
            "low": pa.array(series.low, pa.float64(), from_pandas=True),
        }
        for name in INDICATORS:
            columns[name] = pa.array(rows[name], pa.float64(), from_pandas=True)
        for name, stored in STORED_STATE.items():
            values = rows[name]
            columns[stored] = pa.array(values.astype(np.uint32) if stored == "position" else values)
        columns["computed_at"] = pa.array([cycle_start] * count, pa.timestamp("ms", tz="UTC"))
        return pa.table(columns)


LATEST_COLUMNS = ["timeframe", "code", "bucket_start", "gap_before", "close", *INDICATORS, "computed_at"]


def _prior(columns: Columns) -> Prior | None:
    """The engine's prior from stored buckets, or None when the series must start from its first
    bucket (fewer buckets than the windows reach back, or a state not seeded yet)."""
    state: dict[str, float] = {name: float(columns[stored][-1]) for name, stored in STORED_STATE.items()}
    if len(columns["t"]) < HISTORY or not state["position"] >= CONTINUE_FROM:
        return None
    state["position"] = int(state["position"])
    series = Series(t=columns["t"].astype(np.int64), close=columns["close"], high=columns["high"], low=columns["low"])
    return Prior(series=series, state=state)


def _tail(before: Columns | None, series: Series, rows: Mapping[str, np.ndarray]) -> Columns:
    """The last TAIL_KEPT buckets as stored after a recomputation: what preceded it, then its rows."""
    computed: Columns = {
        "t": series.t.astype(np.float64),
        "close": series.close,
        "high": series.high,
        "low": series.low,
    }
    computed |= {stored: np.asarray(rows[name], dtype=np.float64) for name, stored in STORED_STATE.items()}
    if before is not None:
        computed = {name: np.concatenate([before[name], values]) for name, values in computed.items()}
    return {name: values[-TAIL_KEPT:].copy() for name, values in computed.items()}


def _by_code(table: pa.Table) -> dict[str, dict[str, np.ndarray]]:
    """A result sorted by code, split into each code's columns (float64, NULL as NaN)."""
    if table.num_rows == 0:
        return {}
    codes = np.asarray(table.column("code").to_pylist(), dtype=object)
    boundaries = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(codes)]])
    columns = {name: _floats(table.column(name)) for name in table.column_names if name != "code"}
    return {
        str(codes[start]): {name: values[start:end] for name, values in columns.items()}
        for start, end in zip(starts, ends, strict=True)
    }


def _floats(column: Any) -> np.ndarray:
    """An Arrow column as float64, NULL as NaN."""
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
