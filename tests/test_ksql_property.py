"""Property: for any out-of-order event stream, the engine's final value per (key, window) equals an
independent batch computation that applies the same grace rule.

The batch side is deliberately naive and shares no code with the engine: it lists the windows of a
timestamp by brute force and keeps stream time per partition (the highest timestamp seen so far
on that partition; a window takes a record only while window end > stream time - grace).
"""

from __future__ import annotations

import random
import struct

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinstream.ksql.engine import Pipeline
from coinstream.ksql.planner import plan_script

PARTITIONS = 3
HOP_SIZE, HOP_ADVANCE, HOP_GRACE = 10_000, 4_000, 15_000
TUMBLE_SIZE, TUMBLE_GRACE = 7_000, 3_000

STATEMENTS = f"""
CREATE STREAM s (k STRING KEY, v BIGINT) WITH (kafka_topic='s', value_format='JSON');
CREATE TABLE hop AS SELECT k, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS total, MIN(v) AS lo, MAX(v) AS hi,
  EARLIEST_BY_OFFSET(v) AS first, LATEST_BY_OFFSET(v) AS last, AVG(v) AS mean FROM s
  WINDOW HOPPING (SIZE {HOP_SIZE} MILLISECONDS, ADVANCE BY {HOP_ADVANCE} MILLISECONDS,
                  GRACE PERIOD {HOP_GRACE} MILLISECONDS) GROUP BY k;
CREATE TABLE tumble AS SELECT k, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS total, MIN(v) AS lo, MAX(v) AS hi,
  EARLIEST_BY_OFFSET(v) AS first, LATEST_BY_OFFSET(v) AS last, AVG(v) AS mean FROM s
  WINDOW TUMBLING (SIZE {TUMBLE_SIZE} MILLISECONDS, GRACE PERIOD {TUMBLE_GRACE} MILLISECONDS) GROUP BY k;
"""
CATALOG = plan_script(STATEMENTS)


def partition_of(key: str) -> int:
    return sum(key.encode()) % PARTITIONS


def engine_final(events: list[tuple[str, int, int | None]], cached: bool) -> dict:
    """Feed the events (in order) and keep the last output per (topic, windowed key)."""
    pipeline = Pipeline(CATALOG, cached=cached)
    offsets = [0] * PARTITIONS
    final = {}
    out: list = []
    for key, ts, value in events:
        partition = partition_of(key)
        pipeline.process("s", partition, offsets[partition], key.encode(), orjson.dumps({"v": value}), ts, out)
        offsets[partition] += 1
        if len(out) > 10_000:
            for topic, key_bytes, value_bytes, timestamp, _window in out:
                final[(topic, key_bytes)] = (value_bytes, timestamp)
            out.clear()
    pipeline.flush(out)
    for topic, key_bytes, value_bytes, timestamp, _window in out:
        final[(topic, key_bytes)] = (value_bytes, timestamp)
    return {k: (orjson.loads(v), ts) for k, (v, ts) in final.items()}


def batch_final(events: list[tuple[str, int, int | None]]) -> dict:
    def windows(ts: int, size: int, advance: int) -> list[int]:
        # Brute force over the aligned starts near ts: every window [start, start + size) holding ts.
        first_candidate = max(0, ts - size - advance) // advance * advance
        return [start for start in range(first_candidate, ts + 1, advance) if start <= ts < start + size]

    stream_time: dict[int, int] = {}
    state: dict[tuple[str, str, int], dict] = {}
    for key, ts, value in events:
        partition = partition_of(key)
        now = stream_time[partition] = max(stream_time.get(partition, ts), ts)
        for topic, size, advance, grace in (
            ("HOP", HOP_SIZE, HOP_ADVANCE, HOP_GRACE),
            ("TUMBLE", TUMBLE_SIZE, TUMBLE_SIZE, TUMBLE_GRACE),
        ):
            for start in windows(ts, size, advance):
                if start + size <= now - grace:
                    continue  # the window is closed: the record is dropped for it
                w = state.setdefault((topic, key, start), {"n": 0, "values": [], "ts": ts})
                w["n"] += 1
                w["ts"] = max(w["ts"], ts)
                if value is not None:
                    w["values"].append(value)
    result = {}
    for (topic, key, start), w in state.items():
        values = w["values"]
        result[(topic, key.encode() + struct.pack(">q", start))] = (
            {
                "N": w["n"],
                "NV": len(values),
                "TOTAL": sum(values),
                "LO": min(values, default=None),
                "HI": max(values, default=None),
                "FIRST": values[0] if values else None,
                "LAST": values[-1] if values else None,
                "MEAN": float(sum(values)) / len(values) if values else 0.0,
            },
            w["ts"],
        )
    return result


def make_events(raw: list[tuple[int, int, int, int | None]]) -> list[tuple[str, int, int | None]]:
    """(key, clock advance, lateness, value) -> (key, timestamp, value) with a forward-moving clock."""
    events, clock = [], 0
    for key, advance, lateness, value in raw:
        clock += advance
        events.append((f"k{key}", max(0, clock - lateness), value))
    return events


raw_events = st.lists(
    st.tuples(
        st.integers(0, 6),
        st.integers(0, 3_000),
        st.one_of(st.just(0), st.integers(0, 5_000), st.integers(0, 40_000)),
        st.one_of(st.none(), st.integers(-1_000, 1_000)),
    ),
    min_size=5,
    max_size=400,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_events)
def test_final_values_match_batch_computation(raw) -> None:
    events = make_events(raw)
    expected = batch_final(events)
    assert engine_final(events, cached=False) == expected
    assert engine_final(events, cached=True) == expected


def test_hundred_thousand_out_of_order_events() -> None:
    rng = random.Random(20231114)
    raw = []
    for _ in range(100_000):
        lateness = 0 if rng.random() < 0.8 else rng.choice([rng.randint(0, 4_000), rng.randint(0, 30_000)])
        value = None if rng.random() < 0.03 else rng.randint(-10_000, 10_000)
        raw.append((rng.randint(0, 11), rng.randint(0, 400), lateness, value))
    events = make_events(raw)
    expected = batch_final(events)
    actual = engine_final(events, cached=True)
    assert len(expected) > 10_000
    assert actual == expected
