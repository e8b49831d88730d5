"""Run ksqlDB query-validation-test (QTT) files through the engine's test runner, in-process.

A QTT file is `{"tests": [...]}`; each test has `statements`, `inputs`, `outputs` and optionally
`format` (a list of formats the test is instantiated with, replacing `{FORMAT}` in its text) and
`expectedException` (a negative test: it passes when the statements are rejected).

Variants are expanded and skipped as ksqlDB's standalone runner would see them: only the JSON,
DELIMITED and KAFKA formats are instantiated; a test is skipped when it is disabled, needs
per-test properties or config, is pinned to versions, declares schemas, uses a topic format other
than those three, or names AVRO, PROTOBUF or JSON_SR in its statements.

Each test runs through `testrunner.run` after the same JSON round trip the file-based runner sees
(statements joined by newlines; inputs and outputs written as JSON and read back exactly), with a
per-test time limit. Verdicts: positive tests pass (outputs match), fail (they differ), rejected
(a statement was refused), crash (internal error or time limit); negative tests pass when the
statements are rejected and fail when they are accepted.

    python -m coinstream.ksql.conformance [--verbose] [--only TEXT] [--timeout S] [--areas] FILE.json...

prints a line per failure and crash, then

    positive: pass N, fail N, rejected N, crash N, skipped N
    negative: pass N, fail N, rejected N, crash N, skipped N

(with `--areas`, first a Markdown table of the results per feature area of the suite) and exits 1
when anything failed or crashed, else 0.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coinstream.ksql.serde import json_loads_exact

RUNNABLE_FORMATS = frozenset({"JSON", "DELIMITED", "KAFKA"})


def _stems(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Feature areas of ksqlDB's suite, by file name (without .json); other files count as "other".
AREAS: dict[str, tuple[str, ...]] = {
    "formats and serialization": _stems(
        "json delimited kafka none serdes formats key-schemas multi-col-keys elements avro protobuf json_sr "
        "multiple-avro-maps sink-topic-naming sink-partitions-replicas quoted-identifiers identifiers"
    ),
    "sources, statements, system columns": _stems(
        "source-stream source-table table drop_source insert-into create-type asserts headers system-columns "
        "row-offset-and-partition windowed-source select select-struct-all"
    ),
    "operators, literals, casts, structs/arrays/maps": _stems(
        "operators binary-arithmetic binary-comparison comparison-expression between in like case-expression "
        "cast literals null floating-point decimal bytes bytes-and-strings udf-implicit-cast "
        "magic-timestamp-conversion simple-struct more-complex-struct arrayindex array map create_array "
        "create_map create-struct struct-udfs"
    ),
    "scalar functions": _stems(
        "math concat string substring replace len greatest least chr instr initcap regex split split-to-map "
        "string-lpad-rpad bytes-lpad-rpad encode md5 url elt-field geodistance array-min-max-sort array-remove "
        "array-set-functions arraycontains arrayjoin slice json_array_contains json_array_length json_concat "
        "json_items json_keys json_records extract-json-field is_json_string to_json_string udf transform-array "
        "transform-map reduce-array reduce-map complex-lambda"
    ),
    "date and time": _stems(
        "date time timestamp dateadd datesub datestring stringdate stringtimestamp timestampformat timestampadd "
        "timestampsub timeadd timesub format-date format-time parse-date parse-time from-days from-unixtime "
        "unix-date unix-timestamp convert-tz"
    ),
    "GROUP BY, HAVING, aggregate functions": _stems(
        "group-by average average-udaf earliest-offset-udaf topk-distinct topk-group-by udaf count-distinct "
        "collect-list collect-set histogram correlation-udaf standarddeviation generic-variadic-udaf "
        "middle-variadic-udaf multi-arg-udaf obj-var-col-arg-udaf variadic-udaf test-custom-udaf min-group-by cube"
    ),
    "windows": _stems("tumbling-windows hopping-windows session-windows"),
    "joins, PARTITION BY, table functions": _stems(
        "joins fk-join fk-n-way-join multi-joins stream-table-join table-table-join join-with-custom-timestamp "
        "partition-by table-functions explode"
    ),
}
_AREA_OF = {stem: area for area, stems in AREAS.items() for stem in stems}


def area_of(file_name: str) -> str:
    return _AREA_OF.get(file_name.removesuffix(".json"), "other")


VERDICTS = ("pass", "fail", "rejected", "crash", "skipped")


@dataclass
class CaseResult:
    file: str
    name: str
    kind: str  # "positive" | "negative"
    verdict: str  # one of VERDICTS
    detail: str = ""


@dataclass
class Summary:
    results: list[CaseResult] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def count(self, kind: str, verdict: str) -> int:
        return sum(1 for r in self.results if r.kind == kind and r.verdict == verdict)

    def counts(self, kind: str) -> dict[str, int]:
        return {verdict: self.count(kind, verdict) for verdict in VERDICTS}

    def lines(self) -> list[str]:
        return [
            f"{kind}: " + ", ".join(f"{verdict} {n}" for verdict, n in self.counts(kind).items())
            for kind in ("positive", "negative")
        ]

    def area_table(self) -> list[str]:
        """A Markdown table: per feature area, its files and what happened to their tests."""
        rows: dict[str, dict[str, Any]] = {}
        for result in self.results:
            row = rows.setdefault(area_of(result.file), {"files": set(), "counts": {}})
            row["files"].add(result.file)
            key = (result.kind, result.verdict)
            row["counts"][key] = row["counts"].get(key, 0) + 1
        lines = [
            "| area | files | positive cases passed / run | rejected as unsupported | negative cases refused / run "
            "| skipped |",
            "|---|---|---|---|---|---|",
        ]
        order = [*AREAS, "other"]
        for area in sorted(rows, key=order.index):
            counts = rows[area]["counts"]

            def run(kind: str, counts: dict = counts) -> int:
                return sum(n for (k, verdict), n in counts.items() if k == kind and verdict != "skipped")

            positive_pass = counts.get(("positive", "pass"), 0)
            rejected = counts.get(("positive", "rejected"), 0)
            negative_pass = counts.get(("negative", "pass"), 0)
            skipped = counts.get(("positive", "skipped"), 0) + counts.get(("negative", "skipped"), 0)
            lines.append(
                f"| {area} | {len(rows[area]['files'])} | {positive_pass} / {run('positive')} | {rejected} "
                f"| {negative_pass} / {run('negative')} | {skipped} |"
            )
        return lines

    @property
    def bad(self) -> int:
        return sum(1 for r in self.results if r.verdict in ("fail", "crash"))


def expand(test: dict) -> Iterator[tuple[str, dict]]:
    """(name, test) for each format variant the test is instantiated with."""
    formats = test.get("format")
    if not formats:
        yield test["name"], test
        return
    for fmt in formats:
        if str(fmt).upper() not in RUNNABLE_FORMATS:
            continue
        yield f"{test['name']} - {fmt}", json.loads(json.dumps(test).replace("{FORMAT}", fmt))


def skip_reason(test: dict) -> str | None:
    if test.get("enabled") is False:
        return "disabled"
    if test.get("properties") or test.get("config"):
        return "properties"
    if test.get("versions"):
        return "versions"
    for topic in test.get("topics", []):
        if any(k in topic for k in ("schema", "valueSchema", "keySchema")):
            return "schema"
        if str(topic.get("valueFormat", topic.get("format", "JSON"))).upper() not in RUNNABLE_FORMATS:
            return "format"
    text = " ".join(test["statements"]).upper()
    if any(fmt in text for fmt in ("AVRO", "PROTOBUF", "JSON_SR")):
        return "format"
    return None


class _TimeLimit(BaseException):
    """Raised inside a test that ran past its time limit (BaseException: not caught as an engine error)."""


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after `seconds` (SIGALRM; only in the main thread, else no limit)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise _TimeLimit

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_case(test: dict, timeout: float = 30.0) -> tuple[str, str]:
    """(verdict, detail) for one expanded test."""
    from coinstream.ksql import testrunner

    statements = "\n".join(test["statements"]) + "\n"
    inputs = json_loads_exact(json.dumps({"inputs": test.get("inputs", [])})).get("inputs", [])
    outputs = json_loads_exact(json.dumps({"outputs": test.get("outputs", [])})).get("outputs", [])
    try:
        with _time_limit(timeout):
            try:
                result = testrunner.run(statements, inputs, outputs)
            except Exception:
                import traceback

                result = testrunner.TestResult(testrunner.EXIT_INTERNAL_ERROR, traceback.format_exc())
    except _TimeLimit:
        return "crash", f"timed out after {timeout:g} s"
    if "expectedException" in test:
        return ("pass" if result.exit_code == testrunner.EXIT_REJECTED else "fail"), result.report
    verdict = {
        testrunner.EXIT_MATCH: "pass",
        testrunner.EXIT_DIFFER: "fail",
        testrunner.EXIT_REJECTED: "rejected",
    }.get(result.exit_code, "crash")
    return verdict, result.report


def run_files(paths: list[str | Path], only: str | None = None, timeout: float = 30.0) -> Summary:
    summary = Summary()
    for path in map(Path, paths):
        try:
            tests = json.loads(path.read_text(encoding="utf-8")).get("tests", [])
        except ValueError:  # a few upstream files are not strict JSON
            summary.unreadable.append(path.name)
            continue
        for test in tests:
            for name, variant in expand(test):
                if only and only not in name:
                    continue
                kind = "negative" if "expectedException" in variant else "positive"
                reason = skip_reason(variant)
                verdict, detail = ("skipped", reason) if reason else run_case(variant, timeout)
                summary.results.append(CaseResult(path.name, name, kind, verdict, detail))
    return summary


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m coinstream.ksql.conformance", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--verbose", action="store_true", help="a line for every test, not only failures")
    parser.add_argument("--only", help="run only the tests whose name contains this text")
    parser.add_argument("--timeout", type=float, default=30.0, help="time limit per test, seconds")
    parser.add_argument("--areas", action="store_true", help="also print a Markdown table per feature area")
    args = parser.parse_args(argv)
    summary = run_files(args.files, args.only, args.timeout)
    for name in summary.unreadable:
        print(f"unreadable {name}")
    for r in summary.results:
        if args.verbose or r.verdict in ("fail", "crash"):
            print(f"{r.verdict:8s} {r.kind:8s} {r.file} :: {r.name}")
            if r.verdict in ("fail", "crash") and r.detail:
                print("    " + r.detail[-800:].replace("\n", "\n    "))
    if args.areas:
        print("\n".join(summary.area_table()))
    for line in summary.lines():
        print(line)
    return 1 if summary.bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
