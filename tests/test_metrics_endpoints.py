"""`coinstream ksql run` serves its counters on /metrics (KSQL_METRICS_PORT, --metrics-port).

The project's own statements, on topics of their own in the session's broker, over the hand-checked
input of tests/ksql/known_coins.py (decodable records, one of them late, six that are not valid
rate records, and one that is not JSON): every counter is checked against what that file independently says
the engine must output and log. A second run of the same application restores its open windows
from the changelog and must say how many. The daily-close job's endpoint is checked in
tests/test_historical_cli.py.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from coinstream.cli.commands.ksql import read_script, statement_files
from coinstream.common.processes import terminate
from coinstream.local_broker import find_tansu_binary, free_port
from tests.fixtures_sim_api import cli_env
from tests.helpers.polling import wait_for
from tests.ksql.known_coins import EXPECTED_AVG, EXPECTED_LOG, EXPECTED_OHLC, EXPECTED_REJECTED, INPUTS
from tests.test_ksql_kafka_run import produce_known_inputs, read_topic, start_runner
from tests.test_loader_support import loader_command, loader_env, unique_prefix
from tests.test_metrics_producer import scrape
from tests.test_status import status

pytestmark = pytest.mark.skipif(find_tansu_binary() is None, reason="needs the Tansu broker binary")

GRACE_MS = 120_000  # both statements: GRACE PERIOD 2 MINUTES
TIMING = ("coinstream_ksql_commit_cycles_total", "coinstream_ksql_commit_cycle_seconds")


def prefixed_statements(tmp_path: Path, prefix: str) -> Path:
    """ksql/*.sql with every KAFKA_TOPIC prefixed, so this test's topics are its own."""
    text, count = re.subn(r"KAFKA_TOPIC = '(\w+)'", rf"KAFKA_TOPIC = '{prefix}\1'", read_script(statement_files(())))
    assert count == 4
    path = tmp_path / "statements.sql"
    path.write_text(text)
    return path


def open_windows(expected: list[dict], stream_time: int) -> int:
    """(key, window) pairs of `expected` that stream time has not closed: end + grace > stream time."""
    return len({(r["key"], r["window"]["start"]) for r in expected if r["window"]["end"] + GRACE_MS > stream_time})


def counters(samples: dict) -> dict:
    """Every sample except the commit-cycle timing (how many cycles ran depends on the clock)."""
    return {key: value for key, value in samples.items() if not key[0].startswith(TIMING)}


def test_engine_metrics_count_the_known_input_exactly(kafka_bootstrap, tmp_path, topic_name):
    prefix = f"{topic_name}-"
    source, ohlc, avg, rejected = (
        prefix + name for name in ("coins_current_full", "ohlc_by_minute", "mov_avg_60s", "coins_current_rejected")
    )
    log_topic, app_id = prefix + "processing-log", prefix + "app"
    produce_known_inputs(kafka_bootstrap, source)
    args = (
        "--no-cache",
        "--app-id",
        app_id,
        "--processing-log-topic",
        log_topic,
        str(prefixed_statements(tmp_path, prefix)),
    )
    # Stream time at the end: the highest fetched_at of the records the aggregates took (all in
    # partition 0): the rejected ones (the one from 2199 among them) never move it.
    stream_time = max(r["timestamp"] for r in EXPECTED_OHLC + EXPECTED_AVG)
    windows = {
        "CTAS_OHLC_BY_MINUTE_2": open_windows(EXPECTED_OHLC, stream_time),
        "CTAS_MOV_AVG_60S_3": open_windows(EXPECTED_AVG, stream_time),
    }
    assert windows == {"CTAS_OHLC_BY_MINUTE_2": 2, "CTAS_MOV_AVG_60S_3": 4}  # by hand: known_coins.py

    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    runner = start_runner(kafka_bootstrap, tmp_path, "--metrics-port", str(port), *args)
    try:
        lag_key = ("coinstream_ksql_consumer_lag", (("partition", "0"), ("topic", source)))
        # Lag is refreshed at the end of each commit cycle: 0 once the cycle that carried the last
        # input record is over, so every counter of this input is final then.
        wait_for(lambda: _scrape_or_empty(url).get(lag_key) == 0, "the engine to catch up")
        samples = scrape(url)
        engine_status = status(tmp_path, "--only", "engine-metrics", "--format", "json", KSQL_METRICS_PORT=str(port))
    finally:
        terminate(runner, 30)
    assert runner.returncode == 0, runner.log_path.read_text()
    assert f"engine metrics on {url}" in runner.log_path.read_text()

    logged = Counter((source_name, kind) for source_name, _offset, _reason, kind in EXPECTED_LOG)
    assert counters(samples) == {
        ("coinstream_ksql_records_in_total", (("topic", source),)): len(INPUTS),
        ("coinstream_ksql_records_out_total", (("topic", ohlc),)): len(EXPECTED_OHLC),
        ("coinstream_ksql_records_out_total", (("topic", avg),)): len(EXPECTED_AVG),
        ("coinstream_ksql_records_out_total", (("topic", rejected),)): len(EXPECTED_REJECTED),
        **{
            ("coinstream_ksql_processing_log_entries_total", (("kind", kind), ("source", name))): count
            for (name, kind), count in logged.items()
        },
        **{("coinstream_ksql_open_windows", (("query", query),)): count for query, count in windows.items()},
        # A first run: the changelogs were empty.
        **{("coinstream_ksql_restored_windows_total", (("query", query),)): 0 for query in windows},
        lag_key: 0,
    }
    cycles = samples[("coinstream_ksql_commit_cycles_total", ())]
    assert cycles >= 1
    assert samples[("coinstream_ksql_commit_cycle_seconds_count", ())] == cycles
    assert engine_status.returncode == 0, engine_status.stdout + engine_status.stderr
    assert json.loads(engine_status.stdout) == [
        {
            "part": "engine-metrics",
            "address": url,
            "state": "ok",
            "detail": f"consumer lag 0 over 1 partition, {len(INPUTS)} records in, "
            f"{len(EXPECTED_OHLC) + len(EXPECTED_AVG) + len(EXPECTED_REJECTED)} out, "
            f"{len(EXPECTED_LOG)} processing-log entries",
        }
    ]
    # The processing-log topic carries the same kinds, entry by entry.
    entries = [json.loads(value) for *_ignored, value, _ts in read_topic(kafka_bootstrap, log_topic)]
    assert [(e["source"], e["offset"], e["kind"]) for e in entries] == [
        (name, offset, kind) for name, offset, _reason, kind in EXPECTED_LOG
    ]

    # The same application again: nothing new to read, the open windows restored from the changelog.
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    restored = {
        ("coinstream_ksql_restored_windows_total", (("query", query),)): count for query, count in windows.items()
    }
    second = start_runner(kafka_bootstrap, tmp_path, "--metrics-port", str(port), *args)
    try:
        wait_for(lambda: restored.items() <= _scrape_or_empty(url).items(), "the windows to be restored")
        wait_for(
            lambda: all(
                _scrape_or_empty(url).get(("coinstream_ksql_open_windows", (("query", query),))) == count
                for query, count in windows.items()
            ),
            "the open windows to be counted",
        )
        samples = scrape(url)
    finally:
        terminate(second, 30)
    assert second.returncode == 0, second.log_path.read_text()
    # No record read, written or logged; no lag reported before the first record is consumed.
    assert counters(samples) == {
        **restored,
        **{("coinstream_ksql_open_windows", (("query", query),)): count for query, count in windows.items()},
    }


def _scrape_or_empty(url: str) -> dict:
    """The endpoint's samples, or {} while it does not answer yet."""
    try:
        return scrape(url)
    except OSError:
        return {}


def test_a_busy_metrics_port_stops_the_engine_naming_the_setting(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "coinstream", "ksql", "run"],
            cwd=tmp_path,
            env=cli_env(KSQL_METRICS_PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: cannot serve /metrics on 127.0.0.1:{port}: Address already in use "
        "(set KSQL_METRICS_PORT or --metrics-port; 0 = off)"
    )


def test_a_busy_metrics_port_stops_the_loader_naming_the_setting(
    tmp_path, kafka_bootstrap, clickhouse_server, clickhouse_database
):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        env = loader_env(
            kafka_bootstrap, clickhouse_server.dsn(database=clickhouse_database), LOADER_METRICS_PORT=str(port)
        )
        result = subprocess.run(
            loader_command("--topic-prefix", unique_prefix()),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: cannot serve /metrics on 127.0.0.1:{port}: Address already in use "
        "(set LOADER_METRICS_PORT or --metrics-port; 0 = off)"
    )
