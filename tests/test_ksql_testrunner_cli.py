"""`coinstream ksql test`: ksql-test-runner files in, exit code and report out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests/ksql/reference"


def coinstream(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TZ": "UTC", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "coinstream", *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )


def write_case(tmp_path: Path, statements: str, inputs: list, outputs: list) -> list[str]:
    (tmp_path / "s.sql").write_text(statements)
    (tmp_path / "i.json").write_text(json.dumps({"inputs": inputs}))
    (tmp_path / "o.json").write_text(json.dumps({"outputs": outputs}))
    return [
        "ksql",
        "test",
        "-s",
        str(tmp_path / "s.sql"),
        "-i",
        str(tmp_path / "i.json"),
        "-o",
        str(tmp_path / "o.json"),
    ]


STREAM = "CREATE STREAM s (id BIGINT KEY, v BIGINT) WITH (kafka_topic='s', value_format='DELIMITED');\n"
COUNTS = STREAM + "CREATE TABLE c AS SELECT id, COUNT(*) AS n FROM s GROUP BY id;\n"


def test_reference_statements_match_hand_computed_outputs() -> None:
    result = coinstream(
        "ksql",
        "test",
        "-s",
        str(REFERENCE / "statements.sql"),
        "-i",
        str(REFERENCE / "input.json"),
        "-o",
        str(REFERENCE / "output.json"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok: 18 output record(s) match"


def test_differences_exit_1_with_a_readable_diff(tmp_path: Path) -> None:
    inputs = [{"topic": "s", "key": 7, "value": "1"}, {"topic": "s", "key": 7, "value": "2"}]
    outputs = [{"topic": "C", "key": 7, "value": "1"}, {"topic": "C", "key": 7, "value": "3"}]
    result = coinstream(*write_case(tmp_path, COUNTS, inputs, outputs))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "outputs differ:",
        "topic C: expected 2 record(s), got 2",
        '    #0  ok        {"key": 7, "value": "1"}',
        '  - #1  expected  {"key": 7, "value": "3"}',
        '  + #1  actual    {"key": 7, "value": "2"}',
    ]


def test_missing_records_are_reported(tmp_path: Path) -> None:
    inputs = [{"topic": "s", "key": 1, "value": "5"}]
    outputs = [{"topic": "C", "key": 1, "value": "1"}, {"topic": "C", "key": 1, "value": "2"}]
    result = coinstream(*write_case(tmp_path, COUNTS, inputs, outputs))
    assert result.returncode == 1
    assert "topic C: expected 2 record(s), got 1" in result.stderr
    assert '  - #1  expected  {"key": 1, "value": "2"}' in result.stderr


@pytest.mark.parametrize(
    "statements, message",
    [
        (
            STREAM + "CREATE TABLE c AS SELECT id, COUNT(*) AS n FROM s GROUP BY idd;",
            "rejected (invalid statement): invalid: line 2:60: GROUP BY column 'IDD' cannot be resolved.",
        ),
        (
            STREAM + "CREATE STREAM p AS SELECT * FROM s PARTITION BY v;",
            "rejected (unsupported statement): unsupported: line 2:36: PARTITION BY",
        ),
    ],
)
def test_rejected_statements_exit_2_saying_which(tmp_path: Path, statements: str, message: str) -> None:
    result = coinstream(*write_case(tmp_path, statements, [], []))
    assert result.returncode == 2
    assert result.stderr.strip() == message


def test_conformance_command_runs_qtt_files_and_prints_the_summary(tmp_path: Path) -> None:
    good = {
        "name": "projects",
        "format": ["JSON", "AVRO"],
        "statements": [
            "CREATE STREAM s (id BIGINT KEY, v BIGINT) WITH (kafka_topic='s', value_format='{FORMAT}');",
            "CREATE STREAM o AS SELECT id, v * 2 AS w FROM s;",
        ],
        "inputs": [{"topic": "s", "key": 1, "value": {"V": 2}}],
        "outputs": [{"topic": "O", "key": 1, "value": {"W": 4}}],
    }
    refused = {"name": "refused", "statements": ["CREATE STREAM x (a INT) WITH (value_format='JSON');"]}
    (tmp_path / "qtt.json").write_text(json.dumps({"tests": [good, {**refused, "expectedException": {}}]}))
    result = coinstream("ksql", "conformance", "--areas", str(tmp_path / "qtt.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "positive: pass 1, fail 0, rejected 0, crash 0, skipped 0" in result.stdout
    assert "negative: pass 1, fail 0, rejected 0, crash 0, skipped 0" in result.stdout
    assert "| other | 1 | 1 / 1 | 0 | 1 / 1 | 0 |" in result.stdout
    wrong = {**good, "outputs": [{"topic": "O", "key": 1, "value": {"W": 5}}]}
    (tmp_path / "wrong.json").write_text(json.dumps({"tests": [wrong]}))
    result = coinstream("ksql", "conformance", str(tmp_path / "wrong.json"))
    assert result.returncode == 1
    assert "fail     positive wrong.json :: projects - JSON" in result.stdout
