"""`coinstream up --service-args`: extra arguments for one service (tuning, benchmarks/freshness.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from coinstream.common.settings import load_settings
from coinstream.stack.services import local_stack


def argv_of(services, name: str) -> list[str]:
    return list(next(service for service in services if service.name == name).argv)


def test_extra_args_are_appended_to_the_named_services_only(isolated_env):
    settings = load_settings(env_file=None)
    plain = local_stack(settings)
    tuned = local_stack(
        settings,
        extra_args={
            "loader": ["--batch-ms", "100", "-X", "fetch.wait.max.ms=20"],
            "ksql": ["--commit-interval-ms", "100"],
        },
    )
    assert argv_of(tuned, "loader") == argv_of(plain, "loader") + ["--batch-ms", "100", "-X", "fetch.wait.max.ms=20"]
    assert argv_of(tuned, "ksql") == argv_of(plain, "ksql") + ["--commit-interval-ms", "100"]
    assert [argv_of(tuned, s.name) for s in plain if s.name not in ("loader", "ksql")] == [
        list(s.argv) for s in plain if s.name not in ("loader", "ksql")
    ]
    # The simulated key gets the larger of the free tier and the configured budget.
    assert argv_of(plain, "sim-api")[-2:] == ["--daily-credits", "10000"]
    assert argv_of(local_stack(load_settings(env_file=None, daily_credit_budget=250_000)), "sim-api")[-2:] == [
        "--daily-credits",
        "250000",
    ]


def test_extra_args_for_a_service_not_in_the_stack_are_refused(isolated_env):
    settings = load_settings(env_file=None)
    with pytest.raises(
        ValueError,
        match="no service 'loader' in this stack "
        r"\(services: broker, clickhouse\)",
    ):
        local_stack(settings, infrastructure_only=True, extra_args={"loader": ["--batch-ms", "1"]})


@pytest.mark.parametrize(
    "value, message",
    [
        ("loader", "expected SERVICE=ARGS, got 'loader'"),
        ("nosuch=--x", "no service 'nosuch' in this stack"),
    ],
)
def test_up_refuses_bad_service_args_before_starting_anything(isolated_env, tmp_path, value, message):
    result = subprocess.run(
        [sys.executable, "-m", "coinstream", "up", "--service-args", value],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "starting:" not in result.stdout
