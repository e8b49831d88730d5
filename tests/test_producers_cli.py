"""`coinstream produce current` as a user runs it: subprocesses against the simulated API and a broker."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coinstream.common.processes import terminate
from coinstream.local_broker import free_port
from coinstream.producers.client import SIMULATED_API_KEY
from tests.fixtures_sim_api import SIM_SEED, WRONG_KEY, cli_env, read_topic, reference_rate

TEN = ["USDT", "BTC", "ETH", "FDUSD", "XRP", "SOL", "USDC", "DOGE", "LINK", "AAVE"]
DELIVERED = re.compile(r"delivered key=(\S+) ts=(\d+) to (\S+)\[(\d+)\]@(\d+)")
SUMMARY = re.compile(r"(\d+) records produced, (\d+) delivered, (\d+) delivery failures")


def coinstream(*args: str) -> list[str]:
    return [sys.executable, "-m", "coinstream", *args]


def run_cli(cwd: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        coinstream(*args), cwd=cwd, env=cli_env(**env), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def start_process(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start a long-running `coinstream` command, wait for its ready line; stop it after the test."""
    started: list[subprocess.Popen] = []

    def start(name: str, args: list[str], ready: str, timeout_s: float = 30) -> subprocess.Popen:
        log = tmp_path / f"{name}.log"
        with log.open("w") as sink:
            process = subprocess.Popen(
                coinstream(*args), cwd=tmp_path, env=cli_env(), stdout=sink, stderr=subprocess.STDOUT
            )
        started.append(process)
        deadline = time.monotonic() + timeout_s
        while ready not in log.read_text():
            assert process.poll() is None, f"{name} exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"{name} not ready: {log.read_text()}"
            time.sleep(0.05)
        return process

    yield start
    for process in started:
        terminate(process, 10)


def test_end_to_end_with_broker_and_simulated_api_as_separate_processes(tmp_path, start_process):
    kafka_port, open_port, keyed_port = free_port(), free_port(), free_port()
    start_process("broker", ["broker", "--port", str(kafka_port)], "ready: bootstrap servers")
    common = ["--seed", str(SIM_SEED), "--guard-ms", "250"]
    start_process("sim", ["sim-api", "--port", str(open_port), *common], "ready at")
    start_process("sim-keyed", ["sim-api", "--port", str(keyed_port), "--api-key", "k-live-1", *common], "ready at")
    bootstrap = f"127.0.0.1:{kafka_port}"

    # Without LCW_API_KEY: the simulated API at LCW_BASE_URL.
    first = run_cli(
        tmp_path,
        "produce",
        "current",
        "--once",
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        LCW_BASE_URL=f"http://127.0.0.1:{open_port}",
    )
    assert first.returncode == 0, first.stderr
    assert "10 records produced, 10 delivered, 0 delivery failures" in first.stdout
    # With LCW_API_KEY: any LiveCoinWatch-compatible server (this one accepts only that key).
    second = run_cli(
        tmp_path,
        "produce",
        "current",
        "--once",
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        LCW_BASE_URL=f"http://127.0.0.1:{keyed_port}",
        LCW_API_KEY="k-live-1",
    )
    assert second.returncode == 0, second.stderr
    assert "k-live-1" not in second.stdout + second.stderr

    records = read_topic(bootstrap, "coins_current_full", expected=20)
    assert len(records) == 20
    assert sorted(r.key for r in records) == sorted(TEN * 2)
    assert len({r.value["fetched_at"] for r in records}) == 2
    for record in records:
        assert record.timestamp_ms == record.value["fetched_at"]
        assert record.value["rate"] == reference_rate(record.key, record.value["fetched_at"])


def test_a_wrong_key_exits_non_zero_with_a_clear_message_and_never_shows_the_key(
    tmp_path, sim_api, kafka_bootstrap, topic_name
):
    result = run_cli(
        tmp_path,
        "produce",
        "current",
        "--once",
        "--topic",
        topic_name,
        LCW_API_KEY=WRONG_KEY,
        LCW_BASE_URL=sim_api.base_url,
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        LOG_LEVEL="DEBUG",
    )
    assert result.returncode == 1
    assert "Error: LiveCoinWatch rejected the API key (401) on /credits" in result.stderr
    assert WRONG_KEY not in result.stdout + result.stderr
    assert sim_api.admin.stats()["requests"] == {"/credits": 1}  # not retried


def test_a_too_fast_interval_is_refused_with_the_arithmetic(tmp_path):
    result = run_cli(tmp_path, "produce", "current", "--interval", "1")
    assert result.returncode == 2
    text = " ".join(result.stderr.split())
    assert (
        "--interval 1 s is too fast: each poll costs 1 credit(s) (1 /coins/map call for 10 coins), "
        "so polling every 1 s needs 86400 / 1 × 1 = 86400 credits per UTC day, but only "
        "DAILY_CREDIT_BUDGET 10000 − HISTORICAL_DAILY_CREDITS 500 reserved for the backfill = "
        "9500 are available; the fastest allowed interval is 86400 × 1 / 9500 = 9.095 s"
    ) in text


def test_the_budget_guard_stops_before_the_budget_is_exceeded(tmp_path, sim_api, kafka_bootstrap, topic_name):
    # 9,500 credits are the current-rates share; /credits itself makes it 9,500 used.
    sim_api.admin.set_credits_used(SIMULATED_API_KEY, 9_499)
    result = run_cli(
        tmp_path,
        "produce",
        "current",
        "--once",
        "--topic",
        topic_name,
        LCW_BASE_URL=sim_api.base_url,
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
    )
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert "refusing /coins/map: one more request would exceed the daily credit budget" in text
    assert "9500 already used" in text and "Credits renew at" in text and "00:00 UTC" in text
    assert sim_api.admin.stats()["requests"] == {"/credits": 1}


def test_sigterm_flushes_every_reported_delivery_once(tmp_path, sim_api_factory, kafka_bootstrap, topic_name):
    sim = sim_api_factory(daily_credits=10**8)
    process = subprocess.Popen(
        coinstream("produce", "current", "--interval", "0.05", "--topic", topic_name),
        cwd=tmp_path,
        env=cli_env(
            LCW_BASE_URL=sim.base_url,
            KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            DAILY_CREDIT_BUDGET=str(10**8),
            HISTORICAL_DAILY_CREDITS="0",
            LOG_LEVEL="DEBUG",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while sum(1 for line in list(lines) if DELIVERED.search(line)) < 30:
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(10)  # stderr is read only by the reader thread; stdout is small
    stdout = process.stdout.read()
    process.stdout.close()
    process.stderr.close()
    assert process.returncode == 0, "".join(lines)
    assert "SIGTERM received" in "".join(lines)
    produced, delivered, failed = map(int, SUMMARY.search(stdout).groups())
    assert produced == delivered and failed == 0
    reported = {(int(m[4]), int(m[5])): (m[1], int(m[2])) for m in (DELIVERED.search(line) for line in lines) if m}
    assert len(reported) == delivered

    records = read_topic(kafka_bootstrap, topic_name, expected=delivered)
    in_topic = {(r.partition, r.offset): (r.key, r.timestamp_ms) for r in records}
    assert in_topic == reported  # every reported delivery is there, and nothing else
    assert len(records) == len({(r.key, r.value["fetched_at"]) for r in records})  # no duplicates
    assert produced % 10 == 0 and produced == len(records)
