"""ksqlDB's own query-validation tests (shared/ksql-conformance), run in-process through our test runner.

The cases are Confluent Community License files kept outside the repository; they are read from
there and never copied. `coinstream.ksql.conformance` expands and judges them like the folder's
run_qtt.py does (one `testrunner.run` per test instead of one process), so every file of cases/
and suite/ runs in seconds. The test skips when the folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coinstream.ksql import conformance

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = Path(os.environ.get("KSQL_CONFORMANCE_DIR", ROOT.parent / "shared" / "ksql-conformance"))

# What the engine measures today over cases/ + suite/; passes must never drop below these.
MIN_POSITIVE_PASS = 408
MIN_NEGATIVE_PASS = 370


def _files(folder: str) -> list[Path]:
    return sorted((CONFORMANCE / folder).glob("*.json"))


@pytest.mark.skipif(not (CONFORMANCE / "cases").is_dir(), reason="shared ksql-conformance folder not present")
def test_ksqldb_query_validation_suite() -> None:
    files = _files("cases") + _files("suite")
    assert files
    summary = conformance.run_files(files, timeout=30)
    report = "\n".join(
        f"{r.verdict} {r.kind} {r.file} :: {r.name}\n    {r.detail[-600:]}"
        for r in summary.results
        if r.verdict in ("fail", "crash")
    )
    positive, negative = summary.counts("positive"), summary.counts("negative")
    print(summary.lines())
    assert positive["fail"] == 0 and positive["crash"] == 0, report
    assert negative["fail"] == 0 and negative["crash"] == 0, report
    assert positive["pass"] >= MIN_POSITIVE_PASS, summary.lines()
    assert negative["pass"] >= MIN_NEGATIVE_PASS, summary.lines()


@pytest.mark.skipif(not (CONFORMANCE / "cases").is_dir(), reason="shared ksql-conformance folder not present")
def test_quick_cases_all_pass() -> None:
    summary = conformance.run_files(_files("cases"), timeout=30)
    assert summary.counts("positive")["fail"] == 0 and summary.counts("positive")["rejected"] == 0, summary.lines()
    assert summary.counts("negative")["fail"] == 0, summary.lines()
    assert summary.count("positive", "pass") >= 41, summary.lines()


def test_expansion_and_skips() -> None:
    test = {
        "name": "t",
        "format": ["JSON", "AVRO", "DELIMITED"],
        "statements": ["CREATE STREAM S WITH (f='{FORMAT}');"],
    }
    variants = dict(conformance.expand(test))
    assert list(variants) == ["t - JSON", "t - DELIMITED"]
    assert variants["t - DELIMITED"]["statements"] == ["CREATE STREAM S WITH (f='DELIMITED');"]
    assert conformance.skip_reason({"statements": ["x"], "enabled": False}) == "disabled"
    assert conformance.skip_reason({"statements": ["x"], "properties": {"a": 1}}) == "properties"
    assert conformance.skip_reason({"statements": ["... VALUE_FORMAT='AVRO'"]}) == "format"
    assert conformance.skip_reason({"statements": ["x"], "topics": [{"name": "t", "valueSchema": {}}]}) == "schema"
    assert conformance.skip_reason({"statements": ["x"]}) is None


def test_negative_passes_only_when_rejected() -> None:
    bad = {"name": "n", "statements": ["CREATE STREAM S (X INT) WITH (kafka_topic='t', value_format='NOPE');"]}
    assert conformance.run_case({**bad, "expectedException": {}})[0] == "pass"
    good = {
        "name": "p",
        "statements": [
            "CREATE STREAM S (ID INT KEY, X INT) WITH (kafka_topic='s', value_format='JSON');",
            "CREATE STREAM O AS SELECT ID, X + 1 AS Y FROM S;",
        ],
        "inputs": [{"topic": "s", "key": 1, "value": {"X": 2}}],
        "outputs": [{"topic": "O", "key": 1, "value": {"Y": 3}}],
    }
    assert conformance.run_case(good)[0] == "pass"
    assert conformance.run_case({**good, "expectedException": {}})[0] == "fail"
    wrong = {**good, "outputs": [{"topic": "O", "key": 1, "value": {"Y": 4}}]}
    assert conformance.run_case(wrong)[0] == "fail"


def test_time_limit_stops_a_runaway_case(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from coinstream.ksql import testrunner

    def forever(*args: object, **kwargs: object) -> None:
        while True:
            time.sleep(0.01)

    monkeypatch.setattr(testrunner, "run", forever)
    verdict, detail = conformance.run_case({"name": "x", "statements": ["x"]}, timeout=0.2)
    assert verdict == "crash" and "timed out" in detail


def test_area_table_counts_per_feature_area() -> None:
    summary = conformance.Summary(
        results=[
            conformance.CaseResult("group-by.json", "a", "positive", "pass"),
            conformance.CaseResult("group-by.json", "b", "positive", "rejected"),
            conformance.CaseResult("having.json", "c", "negative", "pass"),
            conformance.CaseResult("joins.json", "d", "positive", "skipped"),
        ]
    )
    table = summary.area_table()
    assert table[0].startswith("| area | files |")
    assert "| GROUP BY, HAVING, aggregate functions | 1 | 1 / 2 | 1 | 0 / 0 | 0 |" in table
    assert "| joins, PARTITION BY, table functions | 1 | 0 / 0 | 0 | 0 / 0 | 1 |" in table
    assert table[-1] == "| other | 1 | 0 / 0 | 0 | 1 / 1 | 0 |"
