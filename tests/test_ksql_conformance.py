"""ksqlDB's own query-validation tests (shared/ksql-conformance), run through our test runner.

The cases are Confluent Community License files kept outside the repository; they are read from
there and never copied. The runner used is `python -m coinstream.ksql.testrunner`, the same code as
`coinstream ksql test` without the CLI's start-up (tests/test_ksql_testrunner_cli.py covers the CLI).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = Path(os.environ.get("KSQL_CONFORMANCE_DIR", ROOT.parent / "shared" / "ksql-conformance"))


@pytest.mark.skipif(not (CONFORMANCE / "run_qtt.py").is_file(), reason="shared ksql-conformance folder not present")
def test_ksqldb_query_validation_cases() -> None:
    cases = sorted(str(p) for p in (CONFORMANCE / "cases").glob("*.json"))
    assert cases
    env = {
        **os.environ,
        "TZ": "UTC",
        "PYTHONPATH": str(ROOT),
        "KSQL_TEST_RUNNER": f"{sys.executable} -m coinstream.ksql.testrunner",
    }
    result = subprocess.run(
        [sys.executable, str(CONFORMANCE / "run_qtt.py"), *cases],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    summary = {}
    for kind in ("positive", "negative"):
        match = re.search(
            rf"^{kind}: pass (\d+), fail (\d+), rejected (\d+), crash (\d+), skipped (\d+)$",
            result.stdout,
            re.MULTILINE,
        )
        assert match, result.stdout + result.stderr
        summary[kind] = dict(
            zip(("pass", "fail", "rejected", "crash", "skipped"), map(int, match.groups()), strict=False)
        )
    print(summary)
    assert summary["positive"]["fail"] == 0 and summary["positive"]["crash"] == 0, result.stdout
    assert summary["negative"]["fail"] == 0 and summary["negative"]["crash"] == 0, result.stdout
    assert result.returncode == 0
