"""`coinstream backfill` and `coinstream produce historical` as an operator runs them: subprocesses
against the simulated API, the real broker and the embedded ClickHouse server — killed with
SIGKILL half-way, stopped by the credit budget, and run once from cron."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from coinstream.common.settings import DEFAULT_COINS
from coinstream.local_broker import free_port
from coinstream.producers.historical.days import close_ms, days_between
from tests.fixtures_sim_api import WRONG_KEY, cli_env, read_topic, reference_rate
from tests.test_loader_support import run_loader, unique_prefix
from tests.test_metrics_producer import scrape
from tests.test_status import status

TEN = list(DEFAULT_COINS)
HISTORY = "/coins/single/history"
NOW = "2025-03-31T13:00:00Z"
START, END = date(2025, 3, 2), date(2025, 3, 31)
SUMMARY = re.compile(r"(\d+) delivered, (\d+) gaps, (\d+) already settled; (\d+) credits used")


def coinstream(*args: str) -> list[str]:
    return [sys.executable, "-m", "coinstream", *args]


@pytest.fixture
def cli(tmp_path, kafka_bootstrap, sim_api, clickhouse_server, clickhouse_database, clickhouse_client):
    """Run `coinstream` against the test's broker, simulated API and database; kill leftovers."""
    prefix = unique_prefix()
    started: list[subprocess.Popen] = []

    class Cli:
        topic = prefix + "coins_historical"
        ch = clickhouse_client
        sim = sim_api

        def env(self, now: str = NOW, **extra: str) -> dict[str, str]:
            # No /metrics endpoint unless a test names a port: never the fixed default one. The
            # clock starts at `now` (the `clock.start` test hook), pinning the days a run covers.
            return cli_env(
                **{
                    "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                    "LCW_BASE_URL": sim_api.base_url,
                    "CLICKHOUSE_URL": clickhouse_server.dsn(database=clickhouse_database),
                    "LCW_RETRY_BACKOFF_S": "0.001",
                    "LCW_RETRY_MAX_WAIT_S": "0.05",
                    "TZ": "UTC",
                    "HISTORICAL_METRICS_PORT": "0",
                    "COINSTREAM_TEST_HOOKS": f"clock.start={now}",
                    **extra,
                }
            )

        def args(self, *args: str) -> list[str]:
            return [*args, "--topic", self.topic]

        def run(self, *args: str, now: str = NOW, **extra: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                coinstream(*self.args(*args)),
                cwd=tmp_path,
                env=self.env(now, **extra),
                capture_output=True,
                text=True,
                timeout=90,
            )

        def start(self, *args: str, **extra: str) -> subprocess.Popen:
            log = (tmp_path / f"run-{len(started)}.log").open("w")
            process = subprocess.Popen(
                coinstream(*self.args(*args)), cwd=tmp_path, env=self.env(**extra), stdout=log, stderr=subprocess.STDOUT
            )
            log.close()
            started.append(process)
            return process

        def settled(self) -> int:
            try:
                return clickhouse_client.query("SELECT count() FROM hist_backfill_progress").result_rows[0][0]
            except Exception:  # the subprocess has not created the table yet
                return 0

        def closes(self, expected: int) -> list:
            return read_topic(kafka_bootstrap, self.topic, expected=expected)

        def load(self) -> None:
            run_loader(kafka_bootstrap, clickhouse_client, prefix, tables=["coins_historical"])

    yield Cli()
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _range(start: date = START, end: date = END) -> tuple[str, ...]:
    return ("--start", start.isoformat(), "--end", end.isoformat())


def test_a_run_killed_half_way_and_run_again_lands_exactly_300_rows(cli):
    process = cli.start("backfill", *_range(), "--no-progress")
    deadline = time.monotonic() + 60
    while cli.settled() < 100:
        assert process.poll() is None, "the backfill ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.kill()  # SIGKILL: no clean-up code runs
    process.wait(10)
    settled_at_kill = cli.settled()
    assert 100 <= settled_at_kill < 300

    second = cli.run("backfill", *_range(), "--no-progress")
    assert second.returncode == 0, second.stderr
    delivered, gaps, already, _ = map(int, SUMMARY.search(second.stdout).groups())
    assert (delivered + already, gaps, already) == (300, 0, settled_at_kill)
    assert "Complete up to 2025-03-31." in second.stdout

    # Every close was requested once, except possibly the one in flight at the kill; each run
    # read /credits once. No retries happened, so credits used = requests.
    stats = cli.sim.admin.stats()
    assert stats["requests"]["/credits"] == 2
    assert 300 <= stats["requests"][HISTORY] <= 301
    assert stats["credits_used"] == stats["requests"][HISTORY] + 2

    records = cli.closes(300)
    assert len({(r.key, r.value["date"]) for r in records}) == 300
    # A close acknowledged by the broker but not yet settled at the kill is published again.
    assert 300 <= len(records) <= stats["requests"][HISTORY]
    cli.load()
    rows = cli.ch.query("SELECT code, date, rate FROM v_hist_daily").result_rows
    assert sorted(rows) == sorted(
        (code, day, reference_rate(code, close_ms(day))) for code in TEN for day in days_between(START, END)
    )


def test_the_budget_stops_the_cli_with_status_75_and_the_next_day_resumes(cli):
    # 30 s before 13:00: the injected clock runs on, and "in 11 h 0 min" holds for 30 s.
    first = cli.run("backfill", *_range(date(2025, 3, 30)), now="2025-03-31T12:59:30Z", HISTORICAL_DAILY_CREDITS="5")
    assert first.returncode == 75, first.stderr
    text = " ".join(first.stdout.split())
    assert text == (
        "backfill 2025-03-30..2025-03-31: 10 coins × 2 days = 20 closes; 4 delivered, 0 gaps, "
        "0 already settled; 5 credits used, 0 retries. Stopped: refusing /coins/single/history: "
        "one more request would exceed the daily credit budget (HISTORICAL_DAILY_CREDITS = 5 "
        "credits per UTC day; 5 already used on 2025-03-31 UTC). Credits renew at 2025-04-01 "
        "00:00 UTC (in 11 h 0 min). Settled 4 of 20; next: XRP 2025-03-30. Resumes when credits "
        "renew at 2025-04-01 00:00 UTC: run again then (`coinstream produce historical` does so "
        "itself)."
    )
    assert cli.sim.admin.stats()["requests"] == {"/credits": 1, HISTORY: 4}

    # After UTC midnight (by the injected clock) the share is fresh: the run picks up at XRP.
    second = cli.run("backfill", *_range(date(2025, 3, 30)), now="2025-04-01T00:00:01Z", HISTORICAL_DAILY_CREDITS="5")
    assert second.returncode == 75, second.stderr
    assert "4 delivered, 0 gaps, 4 already settled; 5 credits used" in second.stdout
    assert "next: LINK 2025-03-30." in second.stdout
    third = cli.run("backfill", *_range(date(2025, 3, 30)), now="2025-04-01T00:00:02Z")
    assert third.returncode == 0, third.stderr
    assert "12 delivered, 0 gaps, 8 already settled; 13 credits used" in third.stdout
    assert cli.sim.admin.stats()["requests"] == {"/credits": 3, HISTORY: 20}


def test_produce_historical_once_backfills_the_default_window_and_exits(cli):
    # A one-shot run serves no /metrics (it would be over before a scrape): a busy
    # HISTORICAL_METRICS_PORT does not stop it.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = cli.run(
            "produce",
            "historical",
            "--once",
            COINS="BTC,ETH",
            HISTORICAL_BACKFILL_DAYS="2",
            HISTORICAL_METRICS_PORT=str(busy.getsockname()[1]),
        )
    assert result.returncode == 0, result.stderr
    assert (
        "backfill 2025-03-30..2025-03-31: 2 coins × 2 days = 4 closes; 4 delivered, 0 gaps, "
        "0 already settled; 5 credits used, 0 retries. Complete up to 2025-03-31."
    ) in result.stdout
    records = cli.closes(4)
    assert sorted((r.key, r.value["date"], r.value["rate"]) for r in records) == sorted(
        (code, day.isoformat(), reference_rate(code, close_ms(day)))
        for code in ("BTC", "ETH")
        for day in (date(2025, 3, 30), date(2025, 3, 31))
    )


def test_a_wrong_key_exits_1_without_showing_it_and_settles_nothing(cli):
    result = cli.run("backfill", *_range(date(2025, 3, 31)), LCW_API_KEY=WRONG_KEY, LOG_LEVEL="DEBUG")
    assert result.returncode == 1
    assert "Error: LiveCoinWatch rejected the API key (401) on /credits" in result.stderr
    assert WRONG_KEY not in result.stdout + result.stderr
    assert cli.sim.admin.stats()["requests"] == {"/credits": 1}
    assert cli.settled() == 0


def wait_for_next_pass(process: subprocess.Popen, log: Path, timeout_s: float = 60.0) -> None:
    """Block until the scheduled job has finished its pass and says when the next one is."""
    deadline = time.monotonic() + timeout_s
    while "next pass at" not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_the_scheduled_job_sleeps_until_the_next_close_and_sigterm_ends_it_cleanly(cli, tmp_path):
    process = cli.start("produce", "historical", COINS="BTC", HISTORICAL_BACKFILL_DAYS="1")
    log = tmp_path / "run-0.log"
    wait_for_next_pass(process, log)
    # 13:00 (and a moment) on 03-31 → 12:05 on 04-01: 23 h 4 min and some seconds.
    assert "next pass at 2025-04-01 12:05:00 UTC (in 23 h 4 min)" in log.read_text()
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    assert (
        "backfill 2025-03-31..2025-03-31: 1 coins × 1 days = 1 closes; 1 delivered, 0 gaps, "
        "0 already settled; 2 credits used, 0 retries. Complete up to 2025-03-31."
    ) in log.read_text()
    assert cli.sim.admin.stats()["requests"] == {"/credits": 1, HISTORY: 1}


def test_the_scheduled_job_serves_its_counters_while_it_runs(cli, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    process = cli.start(
        "produce", "historical", COINS="BTC,ETH", HISTORICAL_BACKFILL_DAYS="2", HISTORICAL_METRICS_PORT=str(port)
    )
    log = tmp_path / "run-0.log"
    wait_for_next_pass(process, log)
    samples = scrape(url)
    result = status(tmp_path, "--only", "historical-metrics", "--format", "json", HISTORICAL_METRICS_PORT=str(port))
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0, log.read_text()
    assert f"historical metrics on {url}" in log.read_text()

    # What happened, independently: the simulator saw /credits once and one history request per
    # coin and day (2 × 2), each costing a credit; the topic holds the 4 closes.
    stats = cli.sim.admin.stats()
    assert (stats["requests"], stats["credits_used"]) == ({"/credits": 1, HISTORY: 4}, 5)
    assert len(cli.closes(4)) == 4
    remaining = samples.pop(("coinstream_lcw_credits_remaining", ()))
    assert samples == {
        ("coinstream_lcw_requests_total", (("endpoint", "/credits"), ("outcome", "ok"))): 1.0,
        ("coinstream_lcw_requests_total", (("endpoint", HISTORY), ("outcome", "ok"))): 4.0,
        ("coinstream_lcw_credits_used_total", ()): 5.0,
        ("coinstream_records_produced_total", (("topic", cli.topic),)): 4.0,
        ("coinstream_records_delivered_total", (("topic", cli.topic),)): 4.0,
    }
    # HISTORICAL_DAILY_CREDITS (500 by default) less the 5 spent.
    assert remaining == 500 - 5
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == [
        {
            "part": "historical-metrics",
            "address": url,
            "state": "ok",
            "detail": "4 records produced, 4 delivered, 0 delivery failures, 5 credits used",
        }
    ]
