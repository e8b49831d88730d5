"""A runner compatible with ksqlDB's standalone `ksql-test-runner` files.

    statements.sql   the statements, `;`-terminated
    input.json       {"inputs":  [{"topic", "key", "value", "timestamp", "window"}, ...]}
    output.json      {"outputs": [{"topic", "key", "value", "timestamp", "window"}, ...]}

Why it serializes and deserializes: inputs are turned into the bytes a producer would write, in
the source's declared formats, and outputs are decoded from the bytes the engine produced, so a
test checks the real key/value layouts (including the windowed key) and not just values.

Comparison follows ksqlDB's test runner: only topics named in the expected outputs are checked,
record by record in order; `timestamp` and `window` are compared when the expectation has them;
numbers compare by value (a DECIMAL also by scale, and may be written as a string).

Exit codes (`run` returns them): 0 outputs match, 1 they differ (with a readable diff), 2 a
statement was rejected (the message says invalid or unsupported), 3 an internal error (a bug).
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from coinstream.ksql.engine import Pipeline, ProcessingLogEntry
from coinstream.ksql.errors import KsqlError
from coinstream.ksql.planner import Catalog, SourceDef, plan_script
from coinstream.ksql.serde import RowSerde, json_dumps, json_loads_exact, split_windowed_key
from coinstream.ksql.types import CoercionError, coercer

EXIT_MATCH, EXIT_DIFFER, EXIT_REJECTED, EXIT_INTERNAL_ERROR = 0, 1, 2, 3
_LONG = struct.Struct(">q")


@dataclass
class TestResult:
    exit_code: int
    report: str
    actual: dict[str, list[dict]] = field(default_factory=dict)
    processing_log: list[ProcessingLogEntry] = field(default_factory=list)


def _source_for_topic(catalog: Catalog, topic: str) -> SourceDef | None:
    """The declared source reading `topic` (else a query's sink on it)."""
    candidates = [s for s in catalog.sources.values() if s.topic == topic]
    declared = [s for s in candidates if s.query is None]
    found = declared or candidates
    return found[0] if found else None


def _sink_for_topic(catalog: Catalog, topic: str) -> SourceDef | None:
    for plan in catalog.queries:
        if plan.sink.topic == topic:
            return plan.sink
    return None


# ---- turning test records into bytes ----------------------------------------------------------------------------------------


def _encode_key(source: SourceDef, record: dict) -> bytes | None:
    key = record.get("key")
    data: bytes | None
    if not source.key_columns or key is None:
        data = None
    elif source.key_format == "JSON":
        data = json_dumps(key)
    elif source.key_format == "DELIMITED":
        data = str(key).encode()
    else:
        column = source.key_columns[0]
        try:
            value = coercer(column.type)(key)
            data = RowSerde("KAFKA", [column.name], [column.type], is_key=True).serializer()((value,))
        except (CoercionError, ValueError, TypeError, OverflowError, struct.error):
            data = str(key).encode()
    window = record.get("window")
    if source.window_kind is not None and isinstance(window, dict):
        start = int(window.get("start", 0))
        if source.window_kind == "SESSION":
            return (data or b"") + _LONG.pack(int(window.get("end", start))) + _LONG.pack(start)
        return (data or b"") + _LONG.pack(start)
    return data


def _encode_value(source: SourceDef, record: dict) -> bytes | None:
    value = record.get("value")
    if value is None:
        return None
    if source.value_format == "DELIMITED":
        return (value if isinstance(value, str) else str(value)).encode()
    if source.value_format == "KAFKA":
        column = source.value_columns[0]
        try:
            converted = coercer(column.type)(value)
            return RowSerde("KAFKA", [column.name], [column.type], is_key=False).serializer()((converted,))
        except (CoercionError, ValueError, TypeError, OverflowError, struct.error):
            return str(value).encode()
    return json_dumps(value)


# ---- turning output bytes back into test records --------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def decode_output(
    sink: SourceDef, topic: str, key: bytes | None, value: bytes | None, timestamp: int, window: tuple | None
) -> dict:
    record: dict[str, Any] = {"topic": topic}
    if window is not None and key is not None:
        key, start, end = split_windowed_key(key, window[2] == "session")
        if end is None:
            end = start + (sink.window_size or 0)
        record["window"] = {"start": start, "end": end, "type": window[2]}
    if sink.key_columns and key is not None:
        values = RowSerde(
            sink.key_format,
            [c.name for c in sink.key_columns],
            [c.type for c in sink.key_columns],
            is_key=True,
            delimiter=sink.key_delimiter,
        ).deserializer()(key)
        if sink.key_format == "JSON":
            record["key"] = json_loads_exact(key)
        elif sink.key_format == "DELIMITED":
            record["key"] = key.decode("utf-8")  # ksqlDB's test runner reads DELIMITED keys as text
        elif len(values) == 1:
            record["key"] = _json_safe(values[0])
        else:
            record["key"] = {c.name: _json_safe(v) for c, v in zip(sink.key_columns, values, strict=False)}
    else:
        record["key"] = None
    if value is None:
        record["value"] = None
    elif sink.value_format == "JSON":
        record["value"] = json_loads_exact(value)
    elif sink.value_format == "DELIMITED":
        record["value"] = value.decode("utf-8")
    else:
        column = sink.value_columns[0]
        decoded = RowSerde("KAFKA", [column.name], [column.type], is_key=False).deserializer()(value)[0]
        record["value"] = _json_safe(decoded)
    record["timestamp"] = timestamp
    return record


# ---- comparison ---------------------------------------------------------------------------------------------------------------------


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and abs(value) != float("inf") else None
    return None


def values_match(expected: Any, actual: Any) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, dict):
        # as ksqlDB's runner: same number of fields, and each expected field matches the actual
        # field of that name (a field the record lacks reads as null)
        return (
            isinstance(actual, dict)
            and len(expected) == len(actual)
            and all(values_match(expected[k], actual.get(k)) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(values_match(e, a) for e, a in zip(expected, actual, strict=False))
        )
    expected_number, actual_number = _number(expected), _number(actual)
    if expected_number is not None and actual_number is not None:
        if isinstance(expected, float) or isinstance(actual, float):
            return float(expected) == float(actual)
        return expected_number == actual_number
    if isinstance(expected, str) and actual_number is not None:
        # ksqlDB test files may write a DECIMAL as a string ("3.40"): same value and scale.
        try:
            wanted = Decimal(expected)
        except InvalidOperation:
            return False
        if isinstance(actual, Decimal):
            return wanted == actual and wanted.as_tuple().exponent == actual.as_tuple().exponent
        return wanted == actual_number
    if isinstance(expected, (int, float, Decimal)) and isinstance(actual, str):
        return False
    return expected == actual


def record_matches(expected: dict, actual: dict) -> bool:
    if not values_match(expected.get("key"), actual.get("key")):
        return False
    if not values_match(expected.get("value"), actual.get("value")):
        return False
    if "timestamp" in expected and expected["timestamp"] != actual.get("timestamp"):
        return False
    if "window" in expected:
        wanted, got = expected["window"], actual.get("window")
        if wanted is None:
            return got is None
        if got is None:
            return False
        if int(wanted.get("start", -1)) != got["start"] or int(wanted.get("end", -1)) != got["end"]:
            return False
        if str(wanted.get("type", "time")).lower() != got["type"]:
            return False
    return True


def _show(record: dict, keys: tuple[str, ...]) -> str:
    shown = {k: record[k] for k in keys if k in record}
    return json.dumps(shown, default=lambda v: float(v) if isinstance(v, Decimal) else str(v), sort_keys=False)


def _diff(topic: str, expected: list[dict], actual: list[dict]) -> list[str]:
    lines = [f"topic {topic}: expected {len(expected)} record(s), got {len(actual)}"]
    for index in range(max(len(expected), len(actual))):
        want = expected[index] if index < len(expected) else None
        got = actual[index] if index < len(actual) else None
        keys: tuple[str, ...] = ("key", "value", "timestamp", "window")
        if want is not None:
            keys = tuple(k for k in ("key", "value", "timestamp", "window") if k in want or k in ("key", "value"))
        if want is not None and got is not None and record_matches(want, got):
            lines.append(f"    #{index}  ok        {_show(got, keys)}")
            continue
        if want is not None:
            lines.append(f"  - #{index}  expected  {_show(want, keys)}")
        if got is not None:
            lines.append(f"  + #{index}  actual    {_show(got, keys)}")
    return lines


# ---- running ----------------------------------------------------------------------------------------------------------------------------


def run_files(
    statements_path: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    variables: dict[str, str] | None = None,
) -> TestResult:
    """Run one test; an unexpected exception becomes exit code 3 (never 1, which means "outputs differ")."""
    try:
        return _run_files(statements_path, input_path, output_path, variables)
    except Exception:
        import traceback

        return TestResult(EXIT_INTERNAL_ERROR, "internal error (a bug in the engine):\n" + traceback.format_exc())


def _run_files(
    statements_path: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    variables: dict[str, str] | None = None,
) -> TestResult:
    statements = Path(statements_path).read_text(encoding="utf-8")
    inputs = json_loads_exact(Path(input_path).read_text(encoding="utf-8")).get("inputs", [])
    outputs = json_loads_exact(Path(output_path).read_text(encoding="utf-8")).get("outputs", [])
    return run(statements, inputs, outputs, variables)


def run(
    statements: str, inputs: list[dict], expected_outputs: list[dict], variables: dict[str, str] | None = None
) -> TestResult:
    try:
        catalog = plan_script(statements, variables)
    except KsqlError as error:
        kind = "invalid statement" if error.kind == "invalid" else "unsupported statement"
        return TestResult(EXIT_REJECTED, f"rejected ({kind}): {error.describe()}")
    pipeline = Pipeline(catalog)
    input_topics = set(pipeline.input_topics)
    offsets: dict[str, int] = {}
    produced: dict[str, list[dict]] = {}

    def feed(topic: str, key: bytes | None, value: bytes | None, timestamp: int) -> None:
        offset = offsets.get(topic, 0)
        offsets[topic] = offset + 1
        for out_topic, out_key, out_value, out_ts, window in pipeline.process(topic, 0, offset, key, value, timestamp):
            sink = _sink_for_topic(catalog, out_topic)
            assert sink is not None  # every output record comes from a query's sink
            produced.setdefault(out_topic, []).append(
                decode_output(sink, out_topic, out_key, out_value, out_ts, window)
            )
            if out_topic in input_topics:
                feed(out_topic, out_key, out_value, out_ts)

    for record in inputs:
        topic = str(record.get("topic"))
        source = _source_for_topic(catalog, topic)
        if source is None:
            continue
        timestamp = int(record.get("timestamp", 0) or 0)
        feed(topic, _encode_key(source, record), _encode_value(source, record), timestamp)

    expected_by_topic: dict[str, list[dict]] = {}
    for record in expected_outputs:
        expected_by_topic.setdefault(str(record.get("topic")), []).append(record)
    lines: list[str] = []
    ok = True
    for topic, expected in expected_by_topic.items():
        actual = produced.get(topic, [])
        if len(actual) != len(expected) or not all(
            record_matches(e, a) for e, a in zip(expected, actual, strict=False)
        ):
            ok = False
            lines.extend(_diff(topic, expected, actual))
    if pipeline.errors:
        lines.append(f"processing log ({len(pipeline.errors)} record(s) not fully processed):")
        for entry in pipeline.errors[:50]:
            lines.append(f"  {entry.source} {entry.topic}[{entry.partition}]@{entry.offset}: {entry.reason}")
    if ok:
        total = sum(len(v) for v in expected_by_topic.values())
        report = f"ok: {total} output record(s) match" + ("\n" + "\n".join(lines) if lines else "")
        return TestResult(EXIT_MATCH, report, produced, pipeline.errors)
    return TestResult(EXIT_DIFFER, "outputs differ:\n" + "\n".join(lines), produced, pipeline.errors)


def main(argv: list[str] | None = None) -> int:
    """`python -m coinstream.ksql.testrunner -s statements.sql -i input.json -o output.json` (no CLI start-up cost)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m coinstream.ksql.testrunner", description=__doc__.splitlines()[0])
    parser.add_argument("-s", "--statements", required=True)
    parser.add_argument("-i", "--input-file", required=True)
    parser.add_argument("-o", "--output-file", required=True)
    args = parser.parse_args(argv)
    result = run_files(args.statements, args.input_file, args.output_file)
    print(result.report, file=sys.stdout if result.exit_code == 0 else sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
