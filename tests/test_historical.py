"""The daily-close backfill in-process, against the simulated API, the real broker, the embedded
ClickHouse server and the real loader.

"Now" is injected (a clock), so which days are closed never depends on the wall clock. Every
expected rate is recomputed from the walk's documented formula (`reference_rate`) at 12:00 UTC of
its day; every expected request count is the arithmetic in the comment next to it.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from coinstream.common.settings import DEFAULT_COINS, load_settings
from coinstream.producers.client import SIMULATED_API_KEY
from coinstream.producers.historical import HistoricalService, Task
from coinstream.producers.historical.days import close_ms, days_between
from coinstream.producers.historical.schedule import run_scheduled
from tests.fixtures_sim_api import read_topic, reference_rate
from tests.test_loader_support import run_loader, unique_prefix

TEN = list(DEFAULT_COINS)  # USDT BTC ETH FDUSD XRP SOL USDC DOGE LINK AAVE
UTC = timezone.utc
NOW = datetime(2025, 3, 31, 13, 0, tzinfo=UTC)
START, END = date(2025, 3, 2), date(2025, 3, 31)  # 30 days
HISTORY = "/coins/single/history"


class Clock:
    """An injectable "now" that moves only when the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def backfill_env(isolated_env, kafka_bootstrap, sim_api, clickhouse_server, clickhouse_database, clickhouse_client):
    """Build HistoricalService instances on the test's topic, database and simulated API."""
    prefix = unique_prefix()
    topic = prefix + "coins_historical"
    opened: list[HistoricalService] = []

    class Env:
        def __init__(self) -> None:
            self.prefix, self.topic, self.ch, self.sim = prefix, topic, clickhouse_client, sim_api

        def service(self, clock: Clock, **overrides: Any) -> HistoricalService:
            overrides.setdefault("lcw_retry_backoff_s", 0.001)
            overrides.setdefault("lcw_retry_max_wait_s", 0.05)
            settings = load_settings(
                env_file=None,
                kafka_bootstrap_servers=kafka_bootstrap,
                lcw_base_url=sim_api.base_url,
                clickhouse_url=clickhouse_server.dsn(database=clickhouse_database),
                **overrides,
            )
            service = HistoricalService(
                settings, topic=topic, clock=clock, show_progress=False, clickhouse=clickhouse_client
            )
            opened.append(service)
            return service

        def closes(self, expected: int) -> list:
            return read_topic(kafka_bootstrap, topic, expected=expected)

        def load(self) -> None:
            run_loader(kafka_bootstrap, clickhouse_client, prefix, tables=["coins_historical"])

        def rows(self, sql: str) -> list[tuple]:
            return clickhouse_client.query(sql).result_rows

    yield Env()
    for service in opened:
        service.close()


def requests(env) -> dict[str, int]:
    return env.sim.admin.stats()["requests"]


def test_ten_coins_thirty_days_land_as_300_daily_rows_at_the_walk_rate(backfill_env):
    env = backfill_env
    with env.service(Clock(NOW)) as service:
        report = service.run(TEN, START, END)
    assert report.complete, report.summary()
    assert (report.delivered, report.gaps, report.already, report.total) == (300, 0, 0, 300)
    # One /credits read, then one call per coin and day: 10 × 30.
    assert requests(env) == {"/credits": 1, HISTORY: 300}
    assert report.credits_used == 301 and report.retries == 0

    records = env.closes(300)
    assert len(records) == 300
    assert Counter((r.key, r.value["date"]) for r in records) == {
        (code, day.isoformat()): 1 for code in TEN for day in days_between(START, END)
    }
    for record in records:
        value = record.value
        day = date.fromisoformat(value["date"])
        assert value["code"] == record.key
        assert value["ts"] == close_ms(day)
        assert value["rate"] == reference_rate(record.key, close_ms(day))
        assert record.timestamp_ms == value["fetched_at"]
        assert value["name"] and value["rank"] >= 1 and {"volume", "cap", "liquidity"} <= set(value)

    env.load()
    rows = env.rows("SELECT code, date, rate, ts FROM v_hist_daily ORDER BY code, date")
    assert len(rows) == 300
    expected = sorted(
        (
            code,
            day,
            reference_rate(code, close_ms(day)),
            datetime.combine(day, datetime.min.time()) + timedelta(hours=12),
        )
        for code in TEN
        for day in days_between(START, END)
    )
    assert sorted(rows) == expected
    assert env.rows("SELECT count() FROM coins_historical_clickpipes_error") == [(0,)]
    # The per-coin watermark: every day settled, from the first to the last.
    assert sorted(
        env.rows(
            "SELECT code, first_date, watermark, next_date, days_delivered, days_gap "
            f"FROM v_hist_watermark WHERE topic = '{env.topic}'"
        )
    ) == sorted((code, START, END, END + timedelta(days=1), 30, 0) for code in TEN)

    # A re-run settles nothing new and asks the API nothing.
    with env.service(Clock(NOW + timedelta(hours=1))) as service:
        again = service.run(TEN, START, END)
    assert again.complete and (again.delivered, again.already, again.credits_used) == (0, 300, 0)
    assert requests(env) == {"/credits": 1, HISTORY: 300}
    assert len(env.closes(300)) == 300


def test_a_day_before_its_12_utc_plus_margin_is_never_requested(backfill_env):
    env = backfill_env
    clock = Clock(datetime(2025, 3, 31, 11, 59, 59, tzinfo=UTC))
    with env.service(clock, historical_backfill_days=2) as service:
        # Asking for 2025-03-31 before it is closed stops at 2025-03-30.
        first = service.run(["BTC", "ETH"], end=date(2025, 3, 31))
        assert (first.start, first.end, first.delivered) == (date(2025, 3, 29), date(2025, 3, 30), 4)
        assert "2025-03-31 is not closed yet" in first.note
        clock.now = datetime(2025, 3, 31, 12, 4, 59, tzinfo=UTC)  # 12:00 came; the margin not yet
        second = service.run(["BTC", "ETH"])
        assert (second.end, second.delivered, second.already) == (date(2025, 3, 30), 0, 4)
        clock.now = datetime(2025, 3, 31, 12, 5, 0, tzinfo=UTC)
        third = service.run(["BTC", "ETH"])
        assert (third.start, third.end, third.delivered) == (date(2025, 3, 30), date(2025, 3, 31), 2)
    # 2 days × 2 coins, then 03-31 × 2 coins; 03-31 was never asked before 12:05.
    assert requests(env) == {"/credits": 1, HISTORY: 6}
    assert sorted((r.key, r.value["date"]) for r in env.closes(6)) == sorted(
        (code, day) for code in ("BTC", "ETH") for day in ("2025-03-29", "2025-03-30", "2025-03-31")
    )


def test_a_budget_of_100_stops_with_the_resume_message_and_the_next_day_continues(backfill_env):
    env = backfill_env
    clock = Clock(NOW)
    with env.service(clock, historical_daily_credits=100) as service:
        report = service.run(TEN, START, END)
    # 100 credits: /credits, then 99 closes — 9 full days (90) and 9 coins of the 10th day.
    assert requests(env) == {"/credits": 1, HISTORY: 99}
    assert (report.stopped, report.delivered, report.credits_used) == ("budget", 99, 100)
    assert report.next_task == Task("AAVE", date(2025, 3, 11))
    assert report.summary() == (
        "backfill 2025-03-02..2025-03-31: 10 coins × 30 days = 300 closes; 99 delivered, 0 gaps, "
        "0 already settled; 100 credits used, 0 retries. Stopped: refusing /coins/single/history: "
        "one more request would exceed the daily credit budget (HISTORICAL_DAILY_CREDITS = 100 "
        "credits per UTC day; 100 already used on 2025-03-31 UTC). Credits renew at 2025-04-01 "
        "00:00 UTC (in 11 h 0 min). Settled 99 of 300; next: AAVE 2025-03-11. Resumes when "
        "credits renew at 2025-04-01 00:00 UTC: run again then (`coinstream produce historical` "
        "does so itself)."
    )
    assert env.rows("SELECT day, sum(credits) FROM hist_backfill_credits GROUP BY day") == [(date(2025, 3, 31), 100)]

    # The same day again: the share is spent (the ledger in ClickHouse says so), nothing is sent.
    with env.service(clock, historical_daily_credits=100) as service:
        same_day = service.run(TEN, START, END)
    assert (same_day.stopped, same_day.already, same_day.credits_used) == ("budget", 99, 0)
    assert requests(env) == {"/credits": 1, HISTORY: 99}

    # Each following day continues where the last one stopped: 99, 99, then the last 3 closes.
    for day, settled in ((1, 198), (2, 297), (3, 300)):
        clock.now = NOW + timedelta(days=day)
        with env.service(clock, historical_daily_credits=100) as service:
            report = service.run(TEN, START, END)
        assert report.settled == settled and report.already == settled - report.delivered
    assert report.complete and report.delivered == 3
    assert requests(env) == {"/credits": 4, HISTORY: 300}
    records = env.closes(300)
    assert len(records) == 300 and len({(r.key, r.value["date"]) for r in records}) == 300


def test_the_key_total_caps_the_backfill_whoever_spent_the_rest(backfill_env):
    env = backfill_env
    # Another user of the key already spent 9,995 of DAILY_CREDIT_BUDGET 10,000 today.
    env.sim.admin.set_credits_used(SIMULATED_API_KEY, 9_995)
    with env.service(Clock(NOW)) as service:
        report = service.run(TEN, START, END)
    # /credits makes it 9,996; four closes make it 10,000.
    assert requests(env) == {"/credits": 1, HISTORY: 4}
    assert report.stopped == "budget" and report.delivered == 4
    assert "(DAILY_CREDIT_BUDGET = 10000 credits per UTC day; 10000 already used" in report.reason


def test_a_429_storm_is_survived(backfill_env):
    env = backfill_env
    # 12 × 429: the client's 5 attempts fail twice (two give-ups, each followed by a cool-down),
    # then 2 more 429s and the third batch's third attempt succeeds.
    env.sim.admin.fail(429, count=12, retry_after=0, paths=[HISTORY])
    codes, start, end = ["BTC", "SOL"], date(2025, 3, 27), date(2025, 3, 31)
    with env.service(Clock(NOW), lcw_retry_attempts=5) as service:
        report = service.run(codes, start, end)
    assert report.complete, report.summary()
    assert report.delivered == 10
    assert requests(env) == {"/credits": 1, HISTORY: 10 + 12}
    assert env.sim.admin.stats()["responses"] == {"200": 11, "429": 12}
    assert report.retries == 4 + 4 + 2  # a give-up's fifth failure is not followed by a retry
    records = env.closes(10)
    assert sorted((r.key, r.value["date"], r.value["rate"]) for r in records) == sorted(
        (code, day.isoformat(), reference_rate(code, close_ms(day)))
        for code in codes
        for day in days_between(start, end)
    )


def test_a_storm_longer_than_the_give_ups_stops_and_the_next_run_resumes(backfill_env):
    env = backfill_env
    env.sim.admin.fail(503, count=15, paths=[HISTORY])  # 3 give-ups × 5 attempts
    with env.service(Clock(NOW), lcw_retry_attempts=5) as service:
        report = service.run(["BTC"], date(2025, 3, 30), date(2025, 3, 31))
    assert report.stopped == "failed" and report.next_task == Task("BTC", date(2025, 3, 30))
    assert report.delivered == 0 and "giving up on /coins/single/history after 5 attempt(s)" in report.reason
    with env.service(Clock(NOW)) as service:
        again = service.run(["BTC"], date(2025, 3, 30), date(2025, 3, 31))
    assert again.complete and again.delivered == 2
    assert requests(env) == {"/credits": 2, HISTORY: 15 + 2}


def test_unknown_coins_and_null_rates_are_recorded_as_gaps_with_reasons(backfill_env):
    env = backfill_env
    env.sim.admin.inject(null_rate=["ETH"])
    codes, start, end = ["BTC", "ETH", "NOSUCHCOIN"], date(2025, 3, 29), date(2025, 3, 31)
    with env.service(Clock(NOW)) as service:
        report = service.run(codes, start, end)
    assert report.complete and (report.delivered, report.gaps) == (3, 6)
    # BTC 3 + ETH 3 (each a null rate) + NOSUCHCOIN once: its 404 settles all three of its days.
    assert requests(env) == {"/credits": 1, HISTORY: 7}
    unknown = (
        "unknown coin: LiveCoinWatch rejected the request (404 Not Found) on "
        "/coins/single/history: Coin NOSUCHCOIN not found"
    )
    null = "null rate: the API's point at 12:00 UTC has rate null"
    assert sorted(env.rows("SELECT code, date, reason, credits FROM v_hist_gaps")) == sorted(
        [("ETH", day, null, 1) for day in days_between(start, end)]
        + [("NOSUCHCOIN", day, unknown, int(day == start)) for day in days_between(start, end)]
    )
    assert sorted(env.rows("SELECT code, watermark, days_delivered, days_gap FROM v_hist_watermark")) == [
        ("BTC", end, 3, 0),
        ("ETH", end, 0, 3),
        ("NOSUCHCOIN", end, 0, 3),
    ]

    # Gaps are settled: a re-run asks nothing. With --retry-gaps, once ETH has rates again, they land.
    with env.service(Clock(NOW)) as service:
        assert service.run(codes, start, end).credits_used == 0
    env.sim.admin.reset()
    with env.service(Clock(NOW)) as service:
        retried = service.run(codes, start, end, retry_gaps=True)
    assert (retried.delivered, retried.gaps) == (3, 3)
    assert requests(env) == {"/credits": 1, HISTORY: 3 + 1}
    assert sorted(env.rows("SELECT DISTINCT code FROM v_hist_gaps")) == [("NOSUCHCOIN",)]
    records = env.closes(6)
    assert sorted((r.key, r.value["date"]) for r in records) == sorted(
        (code, day.isoformat()) for code in ("BTC", "ETH") for day in days_between(start, end)
    )


def test_the_scheduled_job_runs_up_to_the_latest_close_sleeps_until_the_next_and_repeats(backfill_env):
    env = backfill_env
    clock = Clock(NOW)  # 2025-03-31 13:00 UTC
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        clock.now += timedelta(seconds=seconds)
        return len(waits) == 2  # stop during the second sleep

    with env.service(clock, historical_backfill_days=3) as service:
        last = run_scheduled(lambda: service.run(["BTC", "ETH"]), clock, service.margin, wait)
    # Pass 1 at 03-31 13:00: 03-29..03-31 (6 closes); sleep to 04-01 12:05 = 23 h 5 min;
    # pass 2: 03-30..04-01, only 04-01 is new (2 closes); sleep to 04-02 12:05 = 24 h.
    assert waits == [23 * 3600 + 5 * 60, 24 * 3600]
    assert (last.start, last.end, last.delivered, last.already) == (date(2025, 3, 30), date(2025, 4, 1), 2, 4)
    # /credits again after UTC midnight: the key's credits renewed, the guard re-reads them.
    assert requests(env) == {"/credits": 2, HISTORY: 8}
    assert sorted(r.value["date"] for r in env.closes(8)) == sorted(
        ["2025-03-29", "2025-03-30", "2025-03-31", "2025-04-01"] * 2
    )


def test_reconcile_requests_again_what_was_delivered_but_never_landed(backfill_env):
    env = backfill_env
    codes, start, end = ["BTC"], date(2025, 3, 30), date(2025, 3, 31)
    with env.service(Clock(NOW)) as service:
        assert service.run(codes, start, end).delivered == 2
    env.load()
    # Pretend the broker lost 03-31 before the loader read it.
    env.ch.command("DELETE FROM coins_historical WHERE date = '2025-03-31'")
    with env.service(Clock(NOW)) as service:
        plain = service.run(codes, start, end)
        reconciled = service.run(codes, start, end, reconcile=True)
    assert (plain.delivered, reconciled.delivered, reconciled.already) == (0, 1, 1)
    assert requests(env) == {"/credits": 2, HISTORY: 3}
