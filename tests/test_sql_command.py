"""`coinstream sql`: ad-hoc SQL against the ClickHouse HTTP server, printed in ClickHouse's formats.

The command runs against the real embedded server (the `clickhouse_server` fixture). Most cases
invoke the click command in-process with explicit settings; two run `python -m coinstream sql` as
a subprocess to check the registration and the default target (the local server).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from coinstream.cli.commands.sql import command as sql_command
from coinstream.common.settings import load_settings
from tests.fixtures_clickhouse import TEST_PASSWORD

pytest_plugins = ["tests.fixtures_clickhouse"]

REPO = Path(__file__).resolve().parent.parent
ROWS_QUERY = "SELECT code, rate FROM coins ORDER BY code"


@pytest.fixture
def coins_database(clickhouse_client) -> str:
    clickhouse_client.command("CREATE TABLE coins (code String, rate Float64) ENGINE = MergeTree ORDER BY code")
    clickhouse_client.insert("coins", [["BTC", 64000.5], ["ETH", 3100.25], ["O'K", 1.0]], column_names=["code", "rate"])
    return clickhouse_client.database


def run_sql(url: str, *args: str):
    settings = load_settings(env_file=None, clickhouse_url=url)
    return CliRunner().invoke(sql_command, list(args), obj=settings, catch_exceptions=False)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("CSV", '"BTC",64000.5\n"ETH",3100.25\n"O\'K",1\n'),
        ("TSV", "BTC\t64000.5\nETH\t3100.25\nO\\'K\t1\n"),
        ("JSONEachRow", '{"code":"BTC","rate":64000.5}\n{"code":"ETH","rate":3100.25}\n{"code":"O\'K","rate":1}\n'),
        (
            "Pretty",
            (
                "   ┏━━━━━━┳━━━━━━━━━┓\n"
                "   ┃ code ┃    rate ┃\n"
                "   ┡━━━━━━╇━━━━━━━━━┩\n"
                "1. │ BTC  │ 64000.5 │\n"
                "   ├──────┼─────────┤\n"
                "2. │ ETH  │ 3100.25 │\n"
                "   ├──────┼─────────┤\n"
                "3. │ O'K  │       1 │\n"
                "   └──────┴─────────┘\n"
            ),
        ),
    ],
)
def test_prints_rows_in_each_format(clickhouse_server, coins_database, fmt, expected):
    result = run_sql(clickhouse_server.dsn(database=coins_database), ROWS_QUERY, "--format", fmt)
    assert (result.exit_code, result.stdout) == (0, expected)


def test_default_format_is_pretty_and_a_format_clause_wins(clickhouse_server, coins_database):
    url = clickhouse_server.dsn(database=coins_database)
    result = run_sql(url, "SELECT count() AS n FROM coins")
    assert result.stdout == "   ┏━━━┓\n   ┃ n ┃\n   ┡━━━┩\n1. │ 3 │\n   └───┘\n"
    result = run_sql(url, "SELECT code FROM coins ORDER BY code LIMIT 1 FORMAT JSONEachRow", "--format", "CSV")
    assert (result.exit_code, result.stdout) == (0, '{"code":"BTC"}\n')


def test_statements_without_rows(clickhouse_server, coins_database):
    url = clickhouse_server.dsn(database=coins_database)
    assert run_sql(url, "INSERT INTO coins VALUES ('SOL', 150)").exit_code == 0
    assert run_sql(url, "CREATE TABLE extra (a UInt8) ENGINE = Memory").exit_code == 0
    result = run_sql(url, "SELECT sum(rate), count() FROM coins", "--format", "TSV")
    assert result.stdout == "67251.75\t4\n"


def test_server_error_exits_non_zero_with_the_message(clickhouse_server, coins_database):
    result = run_sql(clickhouse_server.dsn(database=coins_database), "SELECT * FROM missing_table")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        "coinstream sql: Code: 60. DB::Exception: Unknown table expression identifier 'missing_table'"
    )
    assert TEST_PASSWORD not in result.stderr


def test_readonly_flag_uses_the_dashboard_user(clickhouse_server, coins_database, monkeypatch):
    monkeypatch.setenv("CLICKHOUSE_READONLY_USER", clickhouse_server.readonly_user)
    settings = load_settings(
        env_file=None,
        clickhouse_url=clickhouse_server.dsn(database=coins_database),
        clickhouse_readonly_user=clickhouse_server.readonly_user,
        clickhouse_readonly_password=clickhouse_server.readonly_password,
    )
    runner = CliRunner()
    result = runner.invoke(sql_command, ["SELECT count() FROM coins", "-f", "TSV", "--readonly"], obj=settings)
    assert (result.exit_code, result.stdout) == (0, "3\n")
    result = runner.invoke(sql_command, ["DROP TABLE coins", "--readonly"], obj=settings)
    assert result.exit_code == 1
    assert "Code: 164" in result.stderr and "readonly mode" in result.stderr
    assert clickhouse_server.readonly_password not in result.stderr


def test_wrong_password_and_unreachable_server_never_print_the_password(clickhouse_server):
    secret = "s3cret-not-to-print"
    result = run_sql(f"http://default:{secret}@127.0.0.1:{clickhouse_server.port}/default", "SELECT 1")
    assert result.exit_code == 1
    assert "Code: 516" in result.stderr and "Authentication failed" in result.stderr
    assert secret not in result.stderr + result.stdout
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_sql(f"http://default:{secret}@127.0.0.1:{port}/default", "SELECT 1")
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"coinstream sql: cannot query ClickHouse at http://127.0.0.1:{port}/default: Connection refused\n"
    )
    assert secret not in result.stderr


def _cli_env(**variables: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLICKHOUSE_", "COINSTREAM_", "KAFKA_", "LCW_"))
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.update(variables)
    return env


def test_cli_subprocess_against_the_local_server_by_default(clickhouse_server, coins_database, tmp_path):
    env = _cli_env(CLICKHOUSE_PORT=str(clickhouse_server.port), CLICKHOUSE_PASSWORD=TEST_PASSWORD)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "coinstream",
            "sql",
            f"SELECT code FROM {coins_database}.coins ORDER BY code",
            "--format",
            "CSV",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (0, '"BTC"\n"ETH"\n"O\'K"\n'), done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "coinstream", "sql", "SELECT nope()"],
        env=_cli_env(CLICKHOUSE_URL=clickhouse_server.dsn()),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Code: 46. DB::Exception: Function with name `nope` does not exist" in done.stderr
    assert TEST_PASSWORD not in done.stderr
