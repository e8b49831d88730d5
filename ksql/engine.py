"""Run query plans over records: decode, filter, aggregate into windows, emit output records.

Why independent of Kafka: the test runner, the property test and the Kafka runner all feed the
same `Pipeline` with (topic, partition, offset, key bytes, value bytes, timestamp) and get output
records back as (topic, key bytes, value bytes, timestamp, window). The Kafka runner adds
delivery, offsets and the changelog around it; the test runner compares the outputs.

State lives per input partition ("task", as in Kafka Streams), because stream time, and with it
the grace rule, is per partition. Each (key, window) state is a list:
    [max ROWTIME in the window, next input offset not yet applied, aggregate slots...]
The second slot makes replays after a restart idempotent: a record whose offset is below it was
already applied to that window and is skipped (see ksql/kafka_runner.py).

Two emission modes for EMIT CHANGES: "each" (one output per update, what ksqlDB's test runner
shows with its record cache off) and "cached" (the latest value per key and window at each
flush, what a ksqlDB server does with its record cache on). EMIT FINAL emits once per window when
stream time passes window end + grace.
"""

from __future__ import annotations

import heapq
import logging
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from coinstream.ksql import timefmt
from coinstream.ksql.errors import RecordError
from coinstream.ksql.planner import Catalog, QueryPlan, SourceDef
from coinstream.ksql.serde import RowSerde, session_windowed_key, split_windowed_key, time_windowed_key
from coinstream.ksql.windows import SessionWindows, TimeWindows

log = logging.getLogger(__name__)

_LONG = struct.Struct(">q")
NO_TIME = -(2**63)

# An output record: (topic, key bytes, value bytes or None, timestamp ms, window or None) where
# window is (start, end, "time"|"session").
Output = tuple

# What went wrong, as one of a small fixed set (the reason is free text): metrics count entries by
# kind, and a consumer of the processing-log topic can filter on it without parsing reasons.
DESERIALIZATION = "deserialization"  # the record's bytes do not decode into the source's columns
TIMESTAMP = "timestamp"  # its event time is null, unparseable or negative
EXPRESSION = "expression"  # a projected column failed (the output carries NULL there)
WHERE = "where"  # the WHERE clause failed (the record is dropped)
GROUP_BY_KEY = "group_by_key"  # the GROUP BY expression failed (dropped)
NULL_GROUP_KEY = "null_group_key"  # the GROUP BY key is null (dropped)
LATE_RECORD = "late_record"  # a window it belongs to has closed (dropped from that window)
OTHER = "other"  # an entry made elsewhere that did not say
PROCESSING_LOG_KINDS = (DESERIALIZATION, TIMESTAMP, EXPRESSION, WHERE, GROUP_BY_KEY, NULL_GROUP_KEY, LATE_RECORD, OTHER)


@dataclass
class ProcessingLogEntry:
    """A record that could not be (fully) processed, and why (ksqlDB's processing log)."""

    source: str  # query id, or the source name for decoding errors
    topic: str
    partition: int
    offset: int
    reason: str
    key: bytes | None = None
    value: bytes | None = None
    kind: str = OTHER  # one of PROCESSING_LOG_KINDS; last, so positional construction keeps working


ErrorSink = Callable[[ProcessingLogEntry], None]


# ---- reading sources ---------------------------------------------------------------------------------------------------


class SourceReader:
    """Decodes a record of one source's topic into the source's row layout."""

    def __init__(self, source: SourceDef) -> None:
        self.source = source
        keys, values = source.key_columns, source.value_columns
        self._key_count = len(keys)
        self._decode_key = RowSerde(
            source.key_format,
            [c.name for c in keys],
            [c.type for c in keys],
            is_key=True,
            delimiter=source.key_delimiter,
        ).deserializer()
        self._decode_value = RowSerde(
            source.value_format,
            [c.name for c in values],
            [c.type for c in values],
            is_key=False,
            wrap_single=source.wrap_single_value,
            delimiter=source.value_delimiter,
        ).deserializer()
        self._window_kind = source.window_kind
        self._window_size = source.window_size or 0  # set for time windows (the only ones that use it)
        self._ts_index = None
        self._ts_parse = None
        if source.timestamp_column is not None:
            index, column = source.find(source.timestamp_column)  # type: ignore[misc]  # the planner checked the column exists
            self._ts_index = index
            if column.type.base == "STRING":
                pattern = timefmt.parser(source.timestamp_format or "")
                self._ts_parse = lambda text: pattern.parse_millis(text, timefmt.zone(None))

    def read_null_value(self, key: bytes | None, timestamp: int, partition: int, offset: int) -> list:
        """The row of a record whose value is null: key columns decoded, value columns NULL.

        ksqlDB passes such a row through a stream's projection as a null value (a filter or an
        aggregation drops it); a timestamp taken from a value column cannot be read, so the
        record is dropped then."""
        if self._ts_index is not None and self._ts_index >= self._key_count:
            raise RecordError("null value: its timestamp column cannot be read", TIMESTAMP)
        window_start = window_end = None
        if self._window_kind is not None:
            if key is None:
                raise RecordError("windowed source record without a key")
            session = self._window_kind == "SESSION"
            key, window_start, window_end = split_windowed_key(key, session)
            if not session:
                window_end = window_start + self._window_size
        row = self._decode_key(key) if self._key_count else []
        row += [None] * len(self.source.value_columns)
        if self._ts_index is not None:
            raw = row[self._ts_index]
            if raw is None:
                raise RecordError(f"timestamp column {self.source.timestamp_column} is null", TIMESTAMP)
            try:
                timestamp = self._ts_parse(raw) if self._ts_parse is not None else raw
            except ValueError as error:
                raise RecordError(f"cannot parse timestamp column: {error}", TIMESTAMP) from None
        if timestamp is None or timestamp < 0:
            raise RecordError(f"negative or missing timestamp ({timestamp}): record skipped", TIMESTAMP)
        row += [timestamp, partition, offset, window_start, window_end]
        return row

    def read(self, key: bytes | None, value: bytes | None, timestamp: int, partition: int, offset: int) -> list:
        if value is None:
            raise RecordError("null value (tombstone): ignored by a stream")
        window_start = window_end = None
        if self._window_kind is not None:
            if key is None:
                raise RecordError("windowed source record without a key")
            session = self._window_kind == "SESSION"
            key, window_start, window_end = split_windowed_key(key, session)
            if not session:
                window_end = window_start + self._window_size
        row = self._decode_key(key) if self._key_count else []
        row += self._decode_value(value)
        if self._ts_index is not None:
            raw = row[self._ts_index]
            if raw is None:
                raise RecordError(f"timestamp column {self.source.timestamp_column} is null", TIMESTAMP)
            if self._ts_parse is not None:
                try:
                    raw = self._ts_parse(raw)
                except ValueError as error:
                    raise RecordError(
                        f"cannot parse timestamp column {self.source.timestamp_column}: {error}", TIMESTAMP
                    ) from None
            timestamp = raw
        if timestamp is None or timestamp < 0:
            raise RecordError(f"negative or missing timestamp ({timestamp}): record skipped", TIMESTAMP)
        row.append(timestamp)
        row.append(partition)
        row.append(offset)
        row.append(window_start)
        row.append(window_end)
        return row


# ---- queries ---------------------------------------------------------------------------------------------------------------


class QueryRuntime:
    """Common parts: output serdes and error isolation per projected column."""

    def __init__(self, plan: QueryPlan, on_error: ErrorSink) -> None:
        self.plan = plan
        self.query_id = plan.query_id
        self.topic = plan.sink.topic
        self.on_error = on_error
        sink = plan.sink
        self._ser_key = RowSerde(
            sink.key_format,
            [c.name for c in sink.key_columns],
            [c.type for c in sink.key_columns],
            is_key=True,
            delimiter=sink.key_delimiter,
        ).serializer()
        self._ser_value = RowSerde(
            sink.value_format,
            [c.name for c in sink.value_columns],
            [c.type for c in sink.value_columns],
            is_key=False,
            wrap_single=sink.wrap_single_value,
            delimiter=sink.value_delimiter,
        ).serializer()
        self._rowtime = plan.source.pseudo_index("ROWTIME")
        self.skip_below: dict[int, int] = {}  # partition -> first offset not yet applied (set on restore)
        self.dropped_late = 0
        self.replaying = False  # the current record is a replay (see Pipeline.process)

    def _error(self, row: list, reason: str, kind: str) -> None:
        source = self.plan.source
        self.on_error(
            ProcessingLogEntry(
                self.query_id,
                source.topic,
                row[source.pseudo_index("ROWPARTITION")],
                row[source.pseudo_index("ROWOFFSET")],
                reason,
                kind=kind,
            )
        )

    def _safe_items(self, args: tuple, row_for_log: list, error: Exception) -> tuple:
        """Evaluate each projected column on its own: a failing one becomes NULL (ksqlDB does the same)."""
        values = []
        for function, label in zip(self.plan.item_functions, self.plan.item_labels, strict=False):
            try:
                values.append(function(*args))
            except Exception as item_error:
                self._error(
                    row_for_log,
                    f"Error computing expression for column {label}: {type(item_error).__name__}: {item_error}",
                    EXPRESSION,
                )
                values.append(None)
        del error
        return tuple(values)

    def _where(self, row: list) -> bool:
        where = self.plan.where
        if where is None:
            return True
        try:
            return where(row)
        except Exception as error:
            self._error(row, f"Error evaluating WHERE: {type(error).__name__}: {error}", WHERE)
            return False

    # hooks the pipeline calls
    def process(self, row: list, out: list) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def process_null_value(self, row: list, out: list) -> None:
        """A record with a null value (row: key columns only); aggregations skip it."""

    def flush(self, out: list) -> None:
        """Emit cached updates (cached mode only)."""

    def drain_changes(self, partition: int) -> list:
        return []

    def tasks(self) -> Iterable[int]:
        return ()


class ProjectRuntime(QueryRuntime):
    """CREATE STREAM AS SELECT without aggregation: filter and project each record."""

    def __init__(self, plan: QueryPlan, on_error: ErrorSink) -> None:
        super().__init__(plan, on_error)
        source = plan.source
        self._windowed = source.window_kind
        self._ws_index = source.pseudo_index("WINDOWSTART")
        self._offset_index = source.pseudo_index("ROWOFFSET")
        self._partition_index = source.pseudo_index("ROWPARTITION")

    def process_null_value(self, row: list, out: list) -> None:
        """ksqlDB's filter drops a null row; its projection maps it to a null value with the same key."""
        if self.plan.where is not None:
            return
        self._emit(row, None, out)

    def process(self, row: list, out: list) -> None:
        if self.skip_below and row[self._offset_index] < self.skip_below.get(row[self._partition_index], 0):
            return
        if not self._where(row):
            return
        try:
            values = self.plan.project(row)
        except Exception as error:
            values = self._safe_items((row,), row, error)
        self._emit(row, values, out)

    def _emit(self, row: list, values: tuple | None, out: list) -> None:
        if self.skip_below and row[self._offset_index] < self.skip_below.get(row[self._partition_index], 0):
            return
        key = self._ser_key(self.plan.project_key(row))
        window = None
        if self._windowed is not None:
            start, end = row[self._ws_index], row[self._ws_index + 1]
            if self._windowed == "SESSION":
                key = session_windowed_key(key, start, end)
                window = (start, end, "session")
            else:
                key = time_windowed_key(key, start)
                window = (start, end, "time")
        value = None if values is None else self._ser_value(values)
        out.append((self.topic, key, value, row[self._rowtime], window))


class _Task:
    """State of one aggregate query for one input partition."""

    __slots__ = ("stream_time", "store", "heap", "dirty", "changed", "evicted")

    def __init__(self) -> None:
        self.stream_time = NO_TIME
        self.store: dict = {}  # windowed: ws -> {key: st}; otherwise key -> st
        self.heap: list[Any] = []  # window starts present in `store` (sessions: (end, start, key))
        self.dirty: dict = {}  # (key, ws) -> st awaiting emission (cached mode)
        self.changed: dict = {}  # (key, ws) -> st awaiting the changelog
        self.evicted: list = []  # (key, ws) closed since the last drain


class AggregateRuntime(QueryRuntime):
    """GROUP BY, optionally windowed (tumbling/hopping), EMIT CHANGES or EMIT FINAL."""

    def __init__(self, plan: QueryPlan, on_error: ErrorSink, cached: bool, track_changes: bool) -> None:
        super().__init__(plan, on_error)
        self._cached = cached
        self._track = track_changes
        self._tasks: dict[int, _Task] = {}
        self._key_bytes: dict[tuple, bytes | None] = {}
        source = plan.source
        self._offset_index = source.pseudo_index("ROWOFFSET")
        self._partition_index = source.pseudo_index("ROWPARTITION")
        self._render = self._fused_renderer()
        self._having_passed: set[tuple] = set()  # (key, window) whose last emitted row passed HAVING
        windows = plan.windows
        self._windows: TimeWindows | None = windows if isinstance(windows, TimeWindows) else None
        self._size = self._grace = 0
        self._tumbling = False
        if isinstance(windows, TimeWindows):
            self._size = windows.size
            self._grace = windows.grace
            self._tumbling = windows.kind == "TUMBLING"

    # ---- helpers ------------------------------------------------------------------------------------------------------

    def _fused_renderer(self) -> Callable[[tuple, Any, Any, list], bytes | None]:
        """(key, ws, we, state) -> value bytes; JSON sinks get one generated function for both steps."""
        plan = self.plan
        sink = plan.sink
        single_unwrapped = len(sink.value_columns) == 1 and sink.wrap_single_value is False
        if sink.value_format != "JSON" or single_unwrapped or plan.having is not None or not plan.post_code:
            project, serialize, having = plan.agg_project, self._ser_value, plan.having
            if having is None:
                return lambda key, ws, we, st: serialize(project(key, ws, we, st))
            return lambda key, ws, we, st: serialize(project(key, ws, we, st)) if having(key, ws, we, st) else None
        from coinstream.ksql.serde import json_double_fixer, json_dumps

        rendered = []
        for index, (column, code) in enumerate(zip(sink.value_columns, plan.value_codes, strict=False)):
            fix = json_double_fixer(column.type)
            if fix is not None:
                plan.compiler.namespace[f"_json_fix{index}"] = fix
                code = f"_json_fix{index}({code})"
            rendered.append(f"{column.name!r}: {code}")
        items = ", ".join(rendered)
        plan.compiler.namespace["_json_dumps"] = json_dumps
        return plan.compiler.function("render", "key, ws, we, st", [plan.post_code, f"return _json_dumps({{{items}}})"])

    def task(self, partition: int) -> _Task:
        task = self._tasks.get(partition)
        if task is None:
            task = self._tasks[partition] = _Task()
        return task

    def tasks(self) -> Iterable[int]:
        return list(self._tasks)

    def key_bytes(self, key: tuple) -> bytes | None:
        if key in self._key_bytes:
            return self._key_bytes[key]
        if len(self._key_bytes) > 200_000:
            self._key_bytes.clear()
        data = self._key_bytes[key] = self._ser_key(key)
        return data

    def _having_passes(self, slot: tuple, key: tuple, ws: int | None, we: int | None, st: list | None) -> bool | None:
        """HAVING as ksqlDB's table filter: True emit the row, False emit a tombstone, None emit nothing.

        A row that fails the filter retracts the key's (window's) last emitted row with a tombstone,
        and emits nothing when the last emitted row also failed or there was none. `st` None is the
        removal of a (session) window: a tombstone only when its last row had passed."""
        passed = self._having_passed
        if st is not None:
            try:
                ok = bool(self.plan.having(key, ws, we, st))  # type: ignore[misc]  # set whenever the query has HAVING
            except Exception:
                ok = False
            if ok:
                passed.add(slot)
                return True
        if slot in passed:
            passed.discard(slot)
            return False
        return None

    def _emit(self, key: tuple, ws: int | None, st: list, out: list, row: list | None) -> None:
        we = None if ws is None else ws + self._size
        value: bytes | None
        if self.plan.having is not None:
            gate = self._having_passes((key, ws), key, ws, we, st)
            if gate is None:
                return
            if gate is False:
                key_data = self.key_bytes(key)
                if ws is None:
                    out.append((self.topic, key_data, None, st[0], None))
                else:
                    out.append((self.topic, (key_data or b"") + _LONG.pack(ws), None, st[0], (ws, we, "time")))
                return
        try:
            value = self._render(key, ws, we, st)
        except Exception as error:
            plan = self.plan
            try:
                failed_having = plan.having is not None and not plan.having(key, ws, we, st)
            except Exception:
                failed_having = True
            if failed_having:
                value = None
            else:
                log_row = row if row is not None else self._log_row(key)
                value = self._ser_value(self._safe_items((key, ws, we, st), log_row, error))
        key_data = self._key_bytes.get(key)
        if key_data is None:
            key_data = self.key_bytes(key)
        if ws is None:
            out.append((self.topic, key_data, value, st[0], None))
        else:
            out.append((self.topic, (key_data or b"") + _LONG.pack(ws), value, st[0], (ws, we, "time")))

    def _group_key(self, row: list) -> tuple | None:
        """The row's GROUP BY key; None when WHERE drops the row or the key fails or is null (logged)."""
        plan = self.plan
        if plan.where is not None and not self._where(row):
            return None
        try:
            key = plan.group_key(row)
        except Exception as error:
            self._error(row, f"Error computing GROUP BY key: {type(error).__name__}: {error}", GROUP_BY_KEY)
            return None
        if key is None:
            self._error(row, "GROUP BY key is null: record dropped", NULL_GROUP_KEY)
        return key

    def _log_row(self, key: tuple) -> list:
        row: list[Any] = [None] * self.plan.source.width
        row[self._partition_index] = -1
        row[self._offset_index] = -1
        return row

    # ---- processing --------------------------------------------------------------------------------------------------

    def process(self, row: list, out: list) -> None:
        plan = self.plan
        offset = row[self._offset_index]
        partition = row[self._partition_index]
        if self.skip_below and offset < self.skip_below.get(partition, -1):
            return  # already reflected in the restored state
        key = self._group_key(row)
        if key is None:
            return
        ts = row[self._rowtime]
        task = self._tasks.get(partition)
        if task is None:
            task = self.task(partition)
        if self._windows is None:
            self._process_unwindowed(task, key, row, ts, offset, out)
            return
        advanced = ts > task.stream_time
        if advanced:
            task.stream_time = ts
        close = task.stream_time - self._grace
        size = self._size
        store = task.store
        update = plan.agg_update
        cached = self._cached
        emit_now = not cached and not plan.emit_final
        starts = (ts - ts % size,) if self._tumbling else self._windows.starts(ts)
        for ws in starts:
            if ws + size <= close:
                if self.replaying:
                    continue  # a replay of a closed window: it counted while the window was open
                self.dropped_late += 1
                self._error(
                    row,
                    f"late record: window [{ws}, {ws + size}) closed (stream time "
                    f"{task.stream_time}, grace {self._grace} ms)",
                    LATE_RECORD,
                )
                continue
            window = store.get(ws)
            if window is None:
                window = store[ws] = {}
                heapq.heappush(task.heap, ws)
            st = window.get(key)
            if st is None:
                st = window[key] = plan.agg_init()
            elif offset < st[1] or (self.replaying and ts <= st[0]):
                continue  # already applied before a restart
            update(st, row)
            if ts > st[0]:
                st[0] = ts
            st[1] = offset + 1
            if self._track:
                task.changed[(key, ws)] = st
            if emit_now:
                self._emit(key, ws, st, out, row)
            elif cached and not plan.emit_final:
                task.dirty[(key, ws)] = st
        if advanced and task.heap and task.heap[0] + size + self._grace <= task.stream_time:
            self._close_windows(task, out)

    def _process_unwindowed(self, task: _Task, key: tuple, row: list, ts: int, offset: int, out: list) -> None:
        if ts > task.stream_time:
            task.stream_time = ts
        st = task.store.get(key)
        if st is None:
            st = task.store[key] = self.plan.agg_init()
        elif offset < st[1] or (self.replaying and ts <= st[0]):
            return
        self.plan.agg_update(st, row)
        if ts > st[0]:
            st[0] = ts
        st[1] = offset + 1
        if self._track:
            task.changed[(key, None)] = st
        if self._cached:
            task.dirty[(key, None)] = st
        else:
            self._emit(key, None, st, out, row)

    def _close_windows(self, task: _Task, out: list) -> None:
        """Drop windows whose end + grace has passed; EMIT FINAL emits them first, in end-time order."""
        limit = task.stream_time - self._size - self._grace
        heap = task.heap
        while heap and heap[0] <= limit:
            ws = heapq.heappop(heap)
            window = task.store.pop(ws, None)
            if not window:
                continue
            if self.plan.emit_final:
                for key in sorted(window, key=lambda k: self.key_bytes(k) or b""):
                    self._emit(key, ws, window[key], out, None)
            for key in window:
                if self._cached:
                    st = task.dirty.pop((key, ws), None)
                    if st is not None:
                        self._emit(key, ws, st, out, None)
                self._having_passed.discard((key, ws))
                if self._track:
                    task.changed.pop((key, ws), None)
                    task.evicted.append((key, ws))

    # ---- cached mode and changelog support ----------------------------------------------------------------------------

    def flush(self, out: list) -> None:
        for task in self._tasks.values():
            if task.dirty:
                dirty, task.dirty = task.dirty, {}
                for (key, ws), st in dirty.items():
                    self._emit(key, ws, st, out, None)

    def drain_changes(self, partition: int) -> list:
        """(key, ws, state or None) changed since the last call; None marks a closed window."""
        task = self._tasks.get(partition)
        if task is None:
            return []
        changes = [(key, ws, st) for (key, ws), st in task.changed.items()]
        changes.extend((key, ws, None) for key, ws in task.evicted)
        task.changed = {}
        task.evicted = []
        return changes

    def stream_time(self, partition: int) -> int:
        task = self._tasks.get(partition)
        return NO_TIME if task is None else task.stream_time

    def restore(
        self,
        partition: int,
        stream_time: int,
        entries: Iterable[tuple[tuple, int | None, list]],
        out: list,
        changed: bool = False,
    ) -> None:
        """Rebuild one partition's state before processing resumes; `changed` marks every restored
        state as changed, so that the next commit cycle writes it to a (new, empty) changelog."""
        task = self._tasks[partition] = _Task()
        task.stream_time = stream_time
        emit_again = changed and not self.plan.emit_final
        for key, ws, st in entries:
            if self.plan.having is not None:
                we = None if ws is None else ws + self._size
                self._having_passes((key, ws), key, ws, we, st)
            if changed and self._track:
                task.changed[(key, ws)] = st
            if emit_again:
                # The broker that lost the changelog may also have lost the last updates of the
                # window before they were read: emit its current value again.
                if self._cached:
                    task.dirty[(key, ws)] = st
                else:
                    self._emit(key, ws, st, out, None)
            if ws is None:
                task.store[key] = st
            else:
                window = task.store.get(ws)
                if window is None:
                    window = task.store[ws] = {}
                    heapq.heappush(task.heap, ws)
                window[key] = st
        if self._windows is not None and task.heap and task.heap[0] + self._size + self._grace <= stream_time:
            self._close_windows(task, out)

    def drop_partition(self, partition: int) -> None:
        self._tasks.pop(partition, None)

    def window_count(self) -> int:
        total = 0
        for task in self._tasks.values():
            if self._windows is None:
                total += len(task.store)
            else:
                total += sum(len(window) for window in task.store.values())
        return total


class SessionAggregateRuntime(AggregateRuntime):
    """GROUP BY with WINDOW SESSION, with Kafka Streams' merge semantics.

    A record at ts merges every session of its key that ends at or after ts - gap and starts at or
    before ts + gap. Unless the result is exactly [ts, ts], each merged session is removed with a
    tombstone (timestamped with its end) before the merged session is emitted (timestamped with
    its end). The merged session is dropped as late when its end < stream time - grace - gap.
    Sessions are kept per key as [start, end, state], and evicted once no record could reach them.
    (Not available in `ksql run`: restart safety for merging windows is not implemented.)
    """

    def __init__(self, plan: QueryPlan, on_error: ErrorSink, cached: bool, track_changes: bool) -> None:
        super().__init__(plan, on_error, cached, track_changes)
        assert isinstance(plan.windows, SessionWindows)
        self._gap = plan.windows.gap
        self._grace = plan.windows.grace
        self._windows = None  # not time windows: the base class's windowed paths must not run

    def process(self, row: list, out: list) -> None:
        plan = self.plan
        offset = row[self._offset_index]
        partition = row[self._partition_index]
        key = self._group_key(row)
        if key is None:
            return
        ts = row[self._rowtime]
        task = self.task(partition)
        gap = self._gap
        # The session store keeps sessions for gap + grace after the latest time it has seen (the
        # stream time before this record): an older session is no longer found to merge with.
        visible_from = task.stream_time - gap - self._grace + 1 if task.stream_time != NO_TIME else None
        advanced = ts > task.stream_time
        if advanced:
            task.stream_time = ts
        close = task.stream_time - self._grace - gap
        sessions = task.store.setdefault(key, [])
        merged = [
            session
            for session in sessions
            if session[1] >= ts - gap
            and session[0] <= ts + gap
            and (visible_from is None or session[1] >= visible_from)
        ]
        start = min([ts] + [session[0] for session in merged])
        end = max([ts] + [session[1] for session in merged])
        if end < close:
            self.dropped_late += 1
            self._error(
                row,
                f"late record: session [{start}, {end}] closed (stream time {task.stream_time}, "
                f"grace {self._grace} ms, gap {gap} ms)",
                LATE_RECORD,
            )
            return
        state = plan.agg_init()
        for session in merged:
            plan.agg_merge(state, session[2])  # type: ignore[misc]  # set for session windows
        if (start, end) != (ts, ts):
            for session in merged:
                sessions.remove(session)
                self._emit_session(key, session[0], session[1], None, session[1], out)
        elif merged:
            sessions.remove(merged[0])
        plan.agg_update(state, row)
        if ts > state[0]:
            state[0] = ts
        state[1] = offset + 1
        sessions.append([start, end, state])
        sessions.sort(key=lambda session: session[0])
        heapq.heappush(task.heap, (end, start, key))
        self._emit_session(key, start, end, state, end, out)
        if advanced:
            self._evict_sessions(task)

    def _emit_session(self, key: tuple, start: int, end: int, state: list | None, timestamp: int, out: list) -> None:
        key_data = self.key_bytes(key)
        windowed = session_windowed_key(key_data, start, end)
        if self.plan.having is not None:
            gate = self._having_passes((key, start, end), key, start, end, state)
            if gate is None:
                return
            if gate is False:
                state = None
        if state is None:
            value = None
        else:
            try:
                value = self._render(key, start, end, state)
            except Exception as error:
                value = self._ser_value(self._safe_items((key, start, end, state), self._log_row(key), error))
        out.append((self.topic, windowed, value, timestamp, (start, end, "session")))

    def _evict_sessions(self, task: _Task) -> None:
        """Forget sessions no future record can join or extend: end + gap < stream time - grace - gap."""
        limit = task.stream_time - self._grace - 2 * self._gap
        heap = task.heap
        while heap and heap[0][0] < limit:
            end, start, key = heapq.heappop(heap)
            self._having_passed.discard((key, start, end))
            sessions = task.store.get(key)
            if sessions:
                sessions[:] = [s for s in sessions if not (s[0] == start and s[1] == end)]
                if not sessions:
                    del task.store[key]

    def flush(self, out: list) -> None:
        """Session updates are emitted as they happen (no record cache for sessions)."""

    def window_count(self) -> int:
        return sum(len(sessions) for task in self._tasks.values() for sessions in task.store.values())


# ---- the pipeline --------------------------------------------------------------------------------------------------------------


class Pipeline:
    """All queries of a catalog, routed by input topic."""

    def __init__(
        self, catalog: Catalog, *, cached: bool = False, track_changes: bool = False, on_error: ErrorSink | None = None
    ) -> None:
        self.catalog = catalog
        self.errors: list[ProcessingLogEntry] = []
        self.error_count = 0
        self._on_error = on_error
        self.queries: list[QueryRuntime] = []
        for plan in catalog.queries:
            if plan.kind == "project":
                self.queries.append(ProjectRuntime(plan, self._error))
            elif plan.agg_merge is not None:
                self.queries.append(SessionAggregateRuntime(plan, self._error, cached, track_changes))
            else:
                self.queries.append(AggregateRuntime(plan, self._error, cached, track_changes))
        readers: dict[str, SourceReader] = {}
        routes: dict[str, list[tuple[SourceReader, list[QueryRuntime]]]] = {}
        for runtime in self.queries:
            source = runtime.plan.source
            reader = readers.get(source.name)
            if reader is None:
                reader = readers[source.name] = SourceReader(source)
                routes.setdefault(source.topic, []).append((reader, []))
            for route_reader, runtimes in routes[source.topic]:
                if route_reader is reader:
                    runtimes.append(runtime)
        self._routes = routes

    def _error(self, entry: ProcessingLogEntry) -> None:
        self.error_count += 1
        if self._on_error is not None:
            self._on_error(entry)
        else:
            self.errors.append(entry)

    @property
    def input_topics(self) -> list[str]:
        return list(self._routes)

    @property
    def output_topics(self) -> list[str]:
        return [runtime.topic for runtime in self.queries]

    def process(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        out: list | None = None,
        replayed: bool = False,
    ) -> list:
        """Feed one input record; returns (and appends to `out`) the output records it produced.

        `replayed`: the record was published again after the broker forgot its first delivery
        (the producer's journal); an aggregate skips it for every window whose state already
        covers its timestamp (a producer's records of one key arrive in timestamp order, so a
        window that has seen a later one has seen this one)."""
        if out is None:
            out = []
        for reader, runtimes in self._routes.get(topic, ()):
            try:
                if value is None and reader.source.kind == "STREAM":
                    row = reader.read_null_value(key, timestamp, partition, offset)
                    for runtime in runtimes:
                        runtime.process_null_value(row, out)
                    continue
                row = reader.read(key, value, timestamp, partition, offset)
            except RecordError as error:
                self._error(
                    ProcessingLogEntry(reader.source.name, topic, partition, offset, str(error), key, value, error.kind)
                )
                continue
            for runtime in runtimes:
                if replayed:
                    runtime.replaying = True
                    try:
                        runtime.process(row, out)
                    finally:
                        runtime.replaying = False
                else:
                    runtime.process(row, out)
        return out

    def flush(self, out: list | None = None) -> list:
        if out is None:
            out = []
        for runtime in self.queries:
            runtime.flush(out)
        return out
