"""The local ksql engine: the project's statements and the ksqlDB semantics they rely on.

Every expected value below was computed by hand from the inputs (window starts, averages, wrapped
integers, Java-style formatting); the comments show the arithmetic.
"""

from __future__ import annotations

import glob
import struct
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from coinstream.ksql.engine import Pipeline
from coinstream.ksql.planner import plan_script
from coinstream.ksql.testrunner import run
from tests.ksql.known_coins import EXPECTED_AVG, EXPECTED_LOG, EXPECTED_OHLC, EXPECTED_REJECTED, INPUTS, T0

ROOT = Path(__file__).resolve().parents[1]
PROJECT_SQL = "\n".join(Path(p).read_text() for p in sorted(glob.glob(str(ROOT / "ksql/*.sql"))))
# The settings' default clock skew (RATE_MAX_CLOCK_SKEW_MS), as `coinstream ksql run` substitutes it.
VARIABLES = {"max_clock_skew_ms": "60000"}


def plain(value):
    """Decoded output with DOUBLEs as floats (the runner keeps JSON numbers exact as Decimal)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def produce(statements: str, inputs: list[dict]) -> tuple[dict[str, list[dict]], list]:
    result = run(statements, inputs, [], VARIABLES)
    assert result.exit_code == 0, result.report
    return {topic: [plain(r) for r in records] for topic, records in result.actual.items()}, result.processing_log


def test_project_statements_on_a_known_input() -> None:
    topics, log = produce(PROJECT_SQL, INPUTS)
    assert topics["ohlc_by_minute"] == EXPECTED_OHLC
    assert topics["mov_avg_60s"] == EXPECTED_AVG
    assert topics["coins_current_rejected"] == EXPECTED_REJECTED
    assert [(entry.source, entry.offset, entry.reason.split(":")[0], entry.kind) for entry in log] == EXPECTED_LOG


def test_windowed_key_layout_and_value_without_key_columns() -> None:
    pipeline = Pipeline(plan_script(PROJECT_SQL, VARIABLES))
    value = orjson.dumps({"code": "DOGE", "rate": 0.25, "fetched_at": T0})
    out = pipeline.process("coins_current_full", 0, 0, b"DOGE", value, 123)
    assert [(o[0], o[1], orjson.loads(o[2]), o[3]) for o in out] == [
        (
            "ohlc_by_minute",
            b"DOGE" + struct.pack(">q", T0 - 20_000),
            {
                "COIN_CODE": "DOGE",
                "WINDOW_START": "2023-11-14 22:13",
                "OPEN": 0.25,
                "HIGH": 0.25,
                "LOW": 0.25,
                "CLOSE": 0.25,
            },
            T0,
        ),
        (
            "mov_avg_60s",
            b"DOGE" + struct.pack(">q", T0 - 50_000),
            {"COIN_CODE": "DOGE", "WINDOW_START": "2023-11-14 22:12:30", "MOV_AVG": 0.25},
            T0,
        ),
        (
            "mov_avg_60s",
            b"DOGE" + struct.pack(">q", T0 - 20_000),
            {"COIN_CODE": "DOGE", "WINDOW_START": "2023-11-14 22:13:00", "MOV_AVG": 0.25},
            T0,
        ),
    ]


AGG_SQL = """
CREATE STREAM s (id BIGINT KEY, v INT, d DOUBLE, name STRING) WITH (kafka_topic='s', value_format='JSON');
CREATE TABLE agg AS SELECT id, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS sv, AVG(v) AS av, MIN(name) AS mn,
  MAX(d) AS mx, LATEST_BY_OFFSET(name, false) AS last_name, EARLIEST_BY_OFFSET(v, 2) AS first2,
  TOPK(d, 2) AS top2 FROM s GROUP BY id;
"""


def test_aggregate_functions() -> None:
    inputs = [
        {"topic": "s", "key": 1, "timestamp": 10, "value": {"v": None, "d": 1.5, "name": "b"}},
        {"topic": "s", "key": 1, "timestamp": 30, "value": {"V": 2147483647, "D": None, "NAME": "a"}},
        {"topic": "s", "key": 1, "timestamp": 20, "value": {"v": 3, "d": 2.5, "name": None}},
        {"topic": "s", "key": 2, "timestamp": 40, "value": {"v": -7, "d": 0.5, "name": "z"}},
    ]
    topics, log = produce(AGG_SQL, inputs)
    assert log == []
    assert topics["AGG"] == [
        {
            "topic": "AGG",
            "key": 1,
            "timestamp": 10,
            "value": {
                "N": 1,
                "NV": 0,
                "SV": 0,
                "AV": 0.0,
                "MN": "b",
                "MX": 1.5,
                "LAST_NAME": "b",
                "FIRST2": [],
                "TOP2": [1.5],
            },
        },
        {
            "topic": "AGG",
            "key": 1,
            "timestamp": 30,
            "value": {
                "N": 2,
                "NV": 1,
                "SV": 2147483647,
                "AV": 2147483647.0,
                "MN": "a",
                "MX": 1.5,
                "LAST_NAME": "a",
                "FIRST2": [2147483647],
                "TOP2": [1.5],
            },
        },
        # SUM(INT) is an INT: 2147483647 + 3 wraps to -2147483646; AVG sums exactly: 2147483650 / 2.
        # The timestamp stays 30: a non-windowed aggregate keeps the highest ROWTIME of its key.
        {
            "topic": "AGG",
            "key": 1,
            "timestamp": 30,
            "value": {
                "N": 3,
                "NV": 2,
                "SV": -2147483646,
                "AV": 1073741825.0,
                "MN": "a",
                "MX": 2.5,
                "LAST_NAME": None,
                "FIRST2": [2147483647, 3],
                "TOP2": [2.5, 1.5],
            },
        },
        {
            "topic": "AGG",
            "key": 2,
            "timestamp": 40,
            "value": {
                "N": 1,
                "NV": 1,
                "SV": -7,
                "AV": -7.0,
                "MN": "z",
                "MX": 0.5,
                "LAST_NAME": "z",
                "FIRST2": [-7],
                "TOP2": [0.5],
            },
        },
    ]


EXPR_SQL = """
CREATE STREAM s (id INT KEY, a INT, b BIGINT, d DOUBLE, t STRING) WITH (kafka_topic='s', value_format='JSON');
CREATE STREAM o WITH (value_format='DELIMITED') AS SELECT id, a / 2 AS q, a % 3 AS m, b * 2 AS big, d / 0 AS inf,
  CASE WHEN a > 0 THEN 'pos' WHEN a < 0 THEN 'neg' ELSE 'zero' END AS sign, CAST(d AS INT) AS di,
  t LIKE 'ab%' AS lk, a IN (1, -7) AS inl, a BETWEEN -10 AND 0 AS btw, ROUND(d) AS r,
  TIMESTAMPTOSTRING(b, 'yyyy-MM-dd''T''HH:mm:ss.SSSXXX', 'America/New_York') AS ts_ny,
  COALESCE(t, 'none') AS c, SUBSTRING(t, 2) AS sub
  FROM s WHERE a IS NOT NULL;
"""


def test_expressions_and_delimited_output() -> None:
    inputs = [
        {"topic": "s", "key": 1, "timestamp": 1, "value": {"a": -7, "b": T0 + 123, "d": 2.5, "t": "abc"}},
        {"topic": "s", "key": 2, "timestamp": 2, "value": {"a": 7, "b": 9223372036854775807, "d": -2.5, "t": None}},
        {"topic": "s", "key": 3, "timestamp": 3, "value": {"a": None, "b": 1, "d": 1.0, "t": "x"}},
        {"topic": "s", "key": 4, "timestamp": 4, "value": {"a": 0, "b": 0, "d": 1e300, "t": "x,y"}},
    ]
    topics, log = produce(EXPR_SQL, inputs)
    assert [(r["key"], r["value"], r["timestamp"]) for r in topics["O"]] == [
        # -7/2 truncates to -3; Java's -7 % 3 is -1; 2.5/0 is Infinity; ROUND(2.5) = 3;
        # 22:13:20.123 UTC is 17:13:20.123 in New York (UTC-5 in November). ksqlDB's CSV printer
        # quotes a record's first field when it does not start with a letter or digit.
        (1, '"-3",-1,3400000000246,Infinity,neg,2,true,true,true,3,2023-11-14T17:13:20.123-05:00,abc,bc', 1),
        # BIGINT 2 * 9223372036854775807 wraps to -2; ROUND(-2.5) = -2 (halves go up); the instant is out of
        # range for a date, so that column is NULL (and logged); NULL LIKE is NULL; SUBSTRING(NULL) is NULL.
        (2, "3,1,-2,-Infinity,pos,-2,,false,false,-2,,none,", 2),
        # CAST(1e300 AS INT) saturates; ROUND(1e300) saturates at the BIGINT maximum; strings with the
        # delimiter are quoted.
        (
            4,
            "0,0,0,Infinity,zero,2147483647,false,false,true,9223372036854775807,"
            '1969-12-31T19:00:00.000-05:00,"x,y",",y"',
            4,
        ),
    ]
    assert [(entry.offset, entry.reason.split(":")[0], entry.kind) for entry in log] == [
        (1, "Error computing expression for column TS_NY", "expression")
    ]


KINDS_SQL = """
CREATE STREAM s (id STRING KEY, a INT, ts STRING) WITH (kafka_topic='s', value_format='JSON', timestamp='ts',
  timestamp_format='yyyy-MM-dd HH:mm:ss');
CREATE STREAM w AS SELECT id, a FROM s WHERE 10 / a > 1;
CREATE TABLE g AS SELECT 10 / a AS k, COUNT(*) AS n FROM s GROUP BY 10 / a;
"""


def test_each_processing_log_entry_says_its_kind() -> None:
    """The kinds of the failures not covered above: WHERE, GROUP BY key, timestamp, undecodable value."""
    inputs = [
        # 10 / 0 fails in both queries: WHERE of W, GROUP BY of G.
        {"topic": "s", "key": "x", "timestamp": 1, "value": {"a": 0, "ts": "2024-01-01 00:00:00"}},
        {"topic": "s", "key": "x", "timestamp": 1, "value": {"a": 1, "ts": None}},
        {"topic": "s", "key": "x", "timestamp": 1, "value": {"a": 1, "ts": "garbage"}},
        {"topic": "s", "key": "x", "timestamp": 1, "value": "not an object"},
    ]
    _topics, log = produce(KINDS_SQL, inputs)
    assert [(entry.source, entry.offset, entry.reason.split(":")[0], entry.kind) for entry in log] == [
        ("CSAS_W_1", 0, "Error evaluating WHERE", "where"),
        ("CTAS_G_2", 0, "Error computing GROUP BY key", "group_by_key"),
        ("S", 1, "timestamp column TS is null", "timestamp"),
        ("S", 2, "cannot parse timestamp column TS", "timestamp"),
        ("S", 3, "Failed to deserialize JSON", "deserialization"),
    ]


def test_having_failures_are_tombstones() -> None:
    # HAVING is ksqlDB's table filter: a failing row retracts the key's last emitted row with a
    # tombstone, and emits nothing when no row of the key was emitted (or the last one failed too).
    statements = (
        "CREATE STREAM s (id BIGINT KEY, v INT) WITH (kafka_topic='s', value_format='JSON');\n"
        "CREATE TABLE h AS SELECT id, COUNT(*) AS c FROM s GROUP BY id HAVING COUNT(*) > 1;\n"
        "CREATE TABLE l AS SELECT id, COUNT(*) AS c FROM s GROUP BY id HAVING COUNT(*) < 2;"
    )
    inputs = [{"topic": "s", "key": k, "timestamp": i, "value": {"v": 1}} for i, k in enumerate([1, 1, 2, 1])]
    topics, _ = produce(statements, inputs)
    assert [(r["key"], r["value"]) for r in topics["H"]] == [(1, {"C": 2}), (1, {"C": 3})]
    assert [(r["key"], r["value"], r["timestamp"]) for r in topics["L"]] == [
        (1, {"C": 1}, 0),
        (1, None, 1),
        (2, {"C": 1}, 2),
    ]


def test_emit_final_emits_each_window_once_when_it_closes() -> None:
    statements = (
        "CREATE STREAM s (id STRING KEY, v INT) WITH (kafka_topic='s', value_format='JSON');\n"
        "CREATE TABLE f AS SELECT id, COUNT(*) AS c, SUM(v) AS total FROM s "
        "WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY id EMIT FINAL;"
    )
    records = [
        ("B", 9_000, 1),
        ("A", 1_000, 2),
        ("A", 5_000, 3),
        ("A", 12_000, 4),
        ("A", 3_000, 100),
        ("B", 15_000, 5),
        ("A", 25_000, 6),
    ]
    inputs = [{"topic": "s", "key": k, "timestamp": ts, "value": {"v": v}} for k, ts, v in records]
    topics, log = produce(statements, inputs)
    # Grace is 0 with EMIT FINAL: A@12000 closes [0,10000) (A: 2 rows, B: 1 row, in key order);
    # A@3000 is then late; A@25000 closes [10000,20000). [20000,30000) stays open.
    assert [(r["key"], r["window"]["start"], r["timestamp"], r["value"]) for r in topics["F"]] == [
        ("A", 0, 5_000, {"C": 2, "TOTAL": 5}),
        ("B", 0, 9_000, {"C": 1, "TOTAL": 1}),
        ("A", 10_000, 12_000, {"C": 1, "TOTAL": 4}),
        ("B", 10_000, 15_000, {"C": 1, "TOTAL": 5}),
    ]
    assert [(entry.reason.split(":")[0], entry.kind) for entry in log] == [("late record", "late_record")]


def test_group_by_value_columns_with_json_key() -> None:
    statements = (
        "CREATE STREAM s (id BIGINT KEY, region STRING, kind STRING, amount DOUBLE) "
        "WITH (kafka_topic='s', value_format='JSON');\n"
        "CREATE TABLE t WITH (KEY_FORMAT='JSON') AS SELECT region, kind, SUM(amount) AS total, "
        "AS_VALUE(region) AS r FROM s WHERE amount > 0 GROUP BY region, kind;"
    )
    inputs = [
        {"topic": "s", "key": 1, "value": {"region": "eu", "kind": "x", "amount": 1.5}},
        {"topic": "s", "key": 2, "value": {"region": "eu", "kind": "x", "amount": -4.0}},
        {"topic": "s", "key": 3, "value": {"region": "us", "kind": "x", "amount": 2.0}},
        {"topic": "s", "key": 4, "value": {"region": "eu", "kind": "x", "amount": 0.25}},
        {"topic": "s", "key": 5, "value": {"region": None, "kind": "x", "amount": 9.0}},
    ]
    topics, log = produce(statements, inputs)
    assert [(r["key"], r["value"]) for r in topics["T"]] == [
        ({"REGION": "eu", "KIND": "x"}, {"TOTAL": 1.5, "R": "eu"}),
        ({"REGION": "us", "KIND": "x"}, {"TOTAL": 2.0, "R": "us"}),
        ({"REGION": "eu", "KIND": "x"}, {"TOTAL": 1.75, "R": "eu"}),
    ]
    assert [(entry.reason, entry.kind) for entry in log] == [("GROUP BY key is null: record dropped", "null_group_key")]


def test_timestamp_to_string_uses_the_process_zone_without_a_zone_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    statements = (
        "CREATE STREAM s (id STRING KEY, ts BIGINT) WITH (kafka_topic='s', value_format='JSON', "
        "timestamp='ts');\n"
        "CREATE STREAM o AS SELECT id, TIMESTAMPTOSTRING(ROWTIME, 'yyyy-MM-dd HH:mm:ss z') AS local, "
        "TIMESTAMPTOSTRING(ROWTIME, 'HH:mm', 'Asia/Kolkata') AS ist FROM s;"
    )
    inputs = [{"topic": "s", "key": "k", "value": {"ts": T0}}]
    monkeypatch.setenv("TZ", "UTC")
    topics, _ = produce(statements, inputs)
    assert topics["O"][0]["value"] == {"LOCAL": "2023-11-14 22:13:20 UTC", "IST": "03:43"}
    monkeypatch.setenv("TZ", "Europe/Paris")  # UTC+1 in November
    topics, _ = produce(statements, inputs)
    assert topics["O"][0]["value"] == {"LOCAL": "2023-11-14 23:13:20 CET", "IST": "03:43"}
    assert topics["O"][0]["timestamp"] == T0


def test_session_windows_merge_with_tombstones() -> None:
    statements = (
        "CREATE STREAM s (id STRING KEY, v INT) WITH (kafka_topic='s', value_format='JSON');\n"
        "CREATE TABLE sess AS SELECT id, COUNT(*) AS n, SUM(v) AS total, LATEST_BY_OFFSET(v) AS last "
        "FROM s WINDOW SESSION (10 SECONDS) GROUP BY id;"
    )
    records = [("A", 0, 1), ("A", 30_000, 2), ("A", 15_000, 3), ("A", 22_000, 4), ("B", 5_000, 10)]
    inputs = [{"topic": "s", "key": k, "timestamp": ts, "value": {"v": v}} for k, ts, v in records]
    topics, log = produce(statements, inputs)
    assert log == []
    # A@15000 is more than 10 s from both existing sessions: a third session. A@22000 is within 10 s of
    # [15000,15000] and [30000,30000]: both are removed (tombstones stamped with their ends) and replaced
    # by [15000,30000] with n = 1+1+1, total = 3+2+4, last = 4 (the highest offset wins).
    assert [
        (r["key"], r["window"]["start"], r["window"]["end"], r["window"]["type"], r["timestamp"], r["value"])
        for r in topics["SESS"]
    ] == [
        ("A", 0, 0, "session", 0, {"N": 1, "TOTAL": 1, "LAST": 1}),
        ("A", 30_000, 30_000, "session", 30_000, {"N": 1, "TOTAL": 2, "LAST": 2}),
        ("A", 15_000, 15_000, "session", 15_000, {"N": 1, "TOTAL": 3, "LAST": 3}),
        ("A", 15_000, 15_000, "session", 15_000, None),
        ("A", 30_000, 30_000, "session", 30_000, None),
        ("A", 15_000, 30_000, "session", 30_000, {"N": 3, "TOTAL": 9, "LAST": 4}),
        ("B", 5_000, 5_000, "session", 5_000, {"N": 1, "TOTAL": 10, "LAST": 10}),
    ]
    # Session-windowed key: key bytes, then the 8-byte end, then the 8-byte start.
    pipeline = Pipeline(plan_script(statements, VARIABLES))
    out = pipeline.process("s", 0, 0, b"Z", b'{"v": 5}', 7_000)
    assert out[0][1] == b"Z" + struct.pack(">q", 7_000) + struct.pack(">q", 7_000)


def test_replayed_records_are_skipped_where_a_window_already_holds_them() -> None:
    """After a broker forgot its topics the producer publishes its journal again (header
    coinstream-replay): records the windows already hold must not count twice, the others must count."""
    pipeline = Pipeline(plan_script(PROJECT_SQL, VARIABLES))

    def rate(value: float, at: int) -> bytes:
        return orjson.dumps({"code": "BTC", "rate": value, "fetched_at": at})

    start = T0 - T0 % 60_000
    first = [(rate(10.0, start + 1_000), start + 1_000), (rate(30.0, start + 2_000), start + 2_000)]
    for offset, (value, at) in enumerate(first):
        pipeline.process("coins_current_full", 0, offset, b"BTC", value, at)
    # The new incarnation: the two held records replayed at offsets 0-1, one the engine never saw
    # (offset 2, replayed too), then a live record.
    replays = [*first, (rate(20.0, start + 3_000), start + 3_000)]
    out = []
    for offset, (value, at) in enumerate(replays):
        out = pipeline.process("coins_current_full", 0, offset, b"BTC", value, at, replayed=True) or out
    out = pipeline.process("coins_current_full", 0, 3, b"BTC", rate(40.0, start + 4_000), start + 4_000)
    candle = next(orjson.loads(o[2]) for o in out if o[0] == "ohlc_by_minute")
    average = [orjson.loads(o[2])["MOV_AVG"] for o in out if o[0] == "mov_avg_60s"]
    assert (candle["OPEN"], candle["HIGH"], candle["LOW"], candle["CLOSE"]) == (10.0, 40.0, 10.0, 40.0)
    assert average == [(10.0 + 30.0 + 20.0 + 40.0) / 4] * 2  # both hopping windows, each record once
