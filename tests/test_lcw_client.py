"""The LiveCoinWatch client against the simulated API over real HTTP: retries, errors, credits."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from coinstream.common.settings import load_settings
from coinstream.producers.client import SIMULATED_API_KEY, LiveCoinWatchClient, RetryPolicy, parse_retry_after
from coinstream.producers.credits import CreditGuard
from coinstream.producers.errors import (
    CreditBudgetExceeded,
    LcwGaveUpError,
    LcwRejectedError,
    LcwTransientError,
    redact,
)
from coinstream.producers.metrics import ProducerMetrics
from coinstream.producers.sim.launcher import SimApiServer
from tests.fixtures_sim_api import WRONG_KEY, reference_rate

KEY = "client-test-key"
FAST = RetryPolicy(attempts=5, backoff_s=0.001, max_wait_s=5.0)


def make_client(
    sim: SimApiServer,
    key: str | None = KEY,
    budget: int | None = None,
    retry: RetryPolicy = FAST,
    read_timeout_s: float = 5.0,
    waits: list[float] | None = None,
    base_url: str | None = None,
) -> LiveCoinWatchClient:
    """A client whose retry waits are recorded in `waits` instead of slept (no test waits for real)."""
    return LiveCoinWatchClient(
        base_url or sim.base_url,
        key,
        credits=CreditGuard(budget) if budget else None,
        retry=retry,
        connect_timeout_s=2.0,
        read_timeout_s=read_timeout_s,
        metrics=ProducerMetrics(),
        sleep=(waits.append if waits is not None else (lambda _s: None)),
    )


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---- retries -------------------------------------------------------------------------------------


def test_429_and_500_bursts_are_retried_exactly_as_injected(sim_api):
    sim_api.admin.fail(429, count=2, paths=["/coins/map"])
    sim_api.admin.fail(500, count=2, paths=["/coins/map"])
    waits: list[float] = []
    client = make_client(sim_api, budget=10_000, waits=waits)
    response = client.coins_map(["BTC", "ETH"], "USD", meta=True)
    assert [coin["code"] for coin in response.data] == ["BTC", "ETH"]
    assert response.data[0]["rate"] == reference_rate("BTC", response.received_at_ms)
    assert response.attempts == 5
    assert client.metrics.retries_by_reason() == {"429": 2, "500": 2}
    assert len(waits) == 4
    assert sim_api.admin.stats()["faults_served"] == {"status:429": 2, "status:500": 2}
    # Every attempt is a credit: /credits at start + 5 attempts, as the simulator counted.
    assert client.credits.used_today == 6 == sim_api.state.credits_used(KEY, now_ms())
    assert client.metrics.snapshot()["credits_used"] == 6


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    policy = RetryPolicy(attempts=10, backoff_s=1.0, max_wait_s=8.0)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 8.0)]:
        waits = [policy.backoff(attempt) for _ in range(200)]
        assert all(base / 2 <= wait <= base for wait in waits)
        assert len(set(waits)) > 1  # jittered


def test_retry_after_is_honoured(sim_api):
    sim_api.admin.fail(429, count=1, retry_after=2, paths=["/coins/map"])
    waits: list[float] = []
    make_client(sim_api, waits=waits).coins_map(["BTC"])
    assert len(waits) == 1 and waits[0] >= 2.0


def test_retry_after_longer_than_the_maximum_wait_ends_the_attempts(sim_api):
    sim_api.admin.fail(429, count=1, retry_after=3600, paths=["/coins/map"])
    waits: list[float] = []
    with pytest.raises(LcwGaveUpError) as raised:
        make_client(sim_api, waits=waits).coins_map(["BTC"])
    assert waits == [] and raised.value.attempts == 1
    assert "asked to wait 3600 s" in str(raised.value) and "LCW_RETRY_MAX_WAIT_S" in str(raised.value)
    assert isinstance(raised.value.last, LcwTransientError) and raised.value.last.status == 429


def test_retry_after_forms():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    in_a_minute = datetime.fromtimestamp(time.time() + 60, timezone.utc)
    assert 55 <= parse_retry_after(format_datetime(in_a_minute, usegmt=True)) <= 60


def test_attempts_are_bounded(sim_api):
    sim_api.admin.fail(503, count=10, paths=["/coins/map"])
    with pytest.raises(LcwGaveUpError) as raised:
        make_client(sim_api, retry=RetryPolicy(3, 0.001, 1.0)).coins_map(["BTC"])
    assert raised.value.attempts == 3
    assert "giving up on /coins/map after 3 attempt(s)" in str(raised.value)
    assert sim_api.admin.stats()["faults_served"] == {"status:503": 3}


def test_malformed_bodies_are_retried(sim_api):
    sim_api.admin.malformed(count=2, paths=["/coins/map"])
    client = make_client(sim_api)
    response = client.coins_map(["SOL"])
    assert response.attempts == 3 and response.data[0]["code"] == "SOL"
    assert client.metrics.retries_by_reason() == {"malformed": 2}


def test_read_timeouts_are_retried(sim_api):
    sim_api.admin.slow(1.5, count=1, paths=["/coins/map"])
    client = make_client(sim_api, read_timeout_s=0.3)
    assert client.coins_map(["BTC"]).attempts == 2
    assert client.metrics.retries_by_reason() == {"timeout": 1}


def test_connection_errors_are_retried_then_given_up(sim_api):
    sim_api.stop()
    client = make_client(sim_api, retry=RetryPolicy(3, 0.001, 1.0))
    with pytest.raises(LcwGaveUpError) as raised:
        client.coins_map(["BTC"])
    assert raised.value.attempts == 3
    assert client.metrics.retries_by_reason() == {"connection": 2}


# ---- rejections ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_are_not_retried_and_carry_the_error_body(sim_api, status):
    sim_api.admin.fail(status, count=3, paths=["/coins/map"])
    client = make_client(sim_api)
    with pytest.raises(LcwRejectedError) as raised:
        client.coins_map(["BTC"])
    error = raised.value
    assert (error.status, error.code) == (status, status)
    assert error.description.startswith("Injected fault")
    assert sim_api.admin.stats()["faults_served"] == {f"status:{status}": 1}
    assert client.metrics.retries_by_reason() == {}


def test_a_wrong_key_is_a_clear_error_without_the_key(sim_api, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(sim_api, key=WRONG_KEY, budget=10_000)
    with pytest.raises(LcwRejectedError) as raised:
        client.coins_map(["BTC"])
    message = str(raised.value)
    assert message == ("LiveCoinWatch rejected the API key (401) on /credits: The API key is missing or not valid")
    assert WRONG_KEY not in message and WRONG_KEY not in repr(raised.value.args)
    assert WRONG_KEY not in caplog.text
    assert raised.value.status_text == "Unauthorized"


def test_redact_removes_every_occurrence():
    assert redact("key abc and abc", "abc") == "key [redacted] and [redacted]"
    assert redact("nothing", None) == "nothing"


# ---- credits -------------------------------------------------------------------------------------


def test_the_budget_guard_refuses_before_the_budget_is_exceeded(sim_api):
    client = make_client(sim_api, budget=4)
    for _ in range(3):  # /credits first (1), then 3 calls: 4 credits
        client.coins_map(["BTC"])
    with pytest.raises(CreditBudgetExceeded) as raised:
        client.coins_map(["BTC"])
    assert "exceed the daily credit budget (DAILY_CREDIT_BUDGET = 4" in str(raised.value)
    assert "Credits renew at" in str(raised.value) and "00:00 UTC" in str(raised.value)
    assert sim_api.state.credits_used(KEY, now_ms()) == 4


def test_the_guard_starts_from_what_credits_reports(sim_api):
    sim_api.admin.set_credits_used(KEY, 9_996)
    client = make_client(sim_api, budget=10_000)
    assert client.credits_status() == {"dailyCreditsRemaining": 3, "dailyCreditsLimit": 10_000}
    for _ in range(3):
        client.coins_map(["ETH"])
    with pytest.raises(CreditBudgetExceeded):
        client.coins_map(["ETH"])
    assert sim_api.state.credits_used(KEY, now_ms()) == 10_000
    assert sim_api.admin.stats()["responses"] == {"200": 4}  # never a 429 from the API


def test_the_guard_counts_retries(sim_api):
    sim_api.admin.fail(500, count=5, paths=["/coins/map"])
    client = make_client(sim_api, budget=3)
    with pytest.raises(CreditBudgetExceeded):
        client.coins_map(["BTC"])
    assert sim_api.state.credits_used(KEY, now_ms()) == 3


def test_the_refusal_says_when_credits_renew():
    guard = CreditGuard(1, "DAILY_CREDIT_BUDGET", clock=lambda: datetime(2030, 1, 1, 21, 30, tzinfo=timezone.utc))
    guard.reserve("/coins/map")
    with pytest.raises(CreditBudgetExceeded) as raised:
        guard.reserve("/coins/map")
    assert str(raised.value) == (
        "refusing /coins/map: one more request would exceed the daily credit budget "
        "(DAILY_CREDIT_BUDGET = 1 credits per UTC day; 1 already used on 2030-01-01 UTC). "
        "Credits renew at 2030-01-02 00:00 UTC (in 2 h 30 min)."
    )
    assert raised.value.renews_at == datetime(2030, 1, 2, tzinfo=timezone.utc)


def test_the_guard_starts_over_on_a_new_utc_day():
    today = [datetime(2030, 1, 1, 23, 59, tzinfo=timezone.utc)]
    guard = CreditGuard(1, clock=lambda: today[0])
    guard.reserve("/coins/map")
    today[0] = datetime(2030, 1, 2, 0, 0, 1, tzinfo=timezone.utc)
    guard.reserve("/coins/map")
    assert guard.used_today == 1


# ---- endpoints -----------------------------------------------------------------------------------


def test_status_needs_no_key_and_no_credit(sim_api):
    client = make_client(sim_api, budget=5)
    assert client.status() == {}
    assert client.credits.used_today == 0 and sim_api.admin.stats()["credits_used"] == 0


def test_single_list_and_history(sim_api):
    client = make_client(sim_api)
    single = client.coins_single("ETH", meta=False)
    assert single.data["rate"] == reference_rate("ETH", single.received_at_ms)
    assert len(client.coins_list(limit=100).data) == 100
    noon = now_ms() // 86_400_000 * 86_400_000 - 86_400_000 + 43_200_000
    history = client.coin_history("BTC", noon, noon).data["history"]
    assert [(p["date"], p["rate"]) for p in history] == [(noon, reference_rate("BTC", noon))]


def test_from_settings_uses_the_simulator_without_a_key(isolated_env):
    client = LiveCoinWatchClient.from_settings(load_settings(env_file=None))
    assert client.base_url == "http://127.0.0.1:8788" and client._key == SIMULATED_API_KEY
    keyed = LiveCoinWatchClient.from_settings(
        load_settings(env_file=None, lcw_api_key="k-123", lcw_retry_attempts=2, lcw_read_timeout_s=3)
    )
    assert keyed.base_url == "https://api.livecoinwatch.com"
    assert keyed.retry.attempts == 2 and keyed.timeout == (5.0, 3.0)
