"""The current-rates producer against the simulated API and the real local broker (in-process)."""

from __future__ import annotations

import math
import threading
from collections import Counter

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from coinstream.common.kafka_config import producer_config
from coinstream.common.settings import DEFAULT_COINS, load_settings
from coinstream.producers.client import LiveCoinWatchClient
from coinstream.producers.credits import CreditGuard
from coinstream.producers.current import (
    CurrentRatesProducer,
    IntervalTooFast,
    credits_per_poll,
    plan_interval,
    prepare_topic,
)
from coinstream.producers.errors import CreditBudgetExceeded
from coinstream.producers.metrics import ProducerMetrics
from coinstream.producers.sim.catalog import COINS
from tests.fixtures_sim_api import read_topic, reference_rate

TEN = list(DEFAULT_COINS)
API_FIELDS = {
    "code",
    "rate",
    "volume",
    "cap",
    "liquidity",
    "delta",
    "name",
    "symbol",
    "rank",
    "age",
    "color",
    "png32",
    "png64",
    "webp32",
    "webp64",
    "exchanges",
    "markets",
    "pairs",
    "allTimeHighUSD",
    "circulatingSupply",
    "totalSupply",
    "maxSupply",
    "categories",
}


@pytest.fixture
def make_producer(isolated_env, kafka_bootstrap, sim_api, topic_name):
    """Build a producer for the test's topic and simulated API; flush and close whatever was built."""
    built: list[CurrentRatesProducer] = []

    def make(codes=TEN, budget: int | None = None, **overrides) -> CurrentRatesProducer:
        settings = load_settings(
            env_file=None,
            kafka_bootstrap_servers=kafka_bootstrap,
            lcw_base_url=sim_api.base_url,
            lcw_retry_backoff_s=0.001,
            lcw_retry_max_wait_s=1.0,
            **overrides,
        )
        prepare_topic(settings, topic_name)
        metrics = ProducerMetrics()
        client = LiveCoinWatchClient.from_settings(
            settings, credits=CreditGuard(budget) if budget else None, metrics=metrics
        )
        producer = CurrentRatesProducer(
            client, Producer(producer_config(settings)), codes, settings.currency, topic_name, metrics
        )
        built.append(producer)
        return producer

    yield make
    for producer in built:
        producer.flush(10)
        producer.client.close()


def test_five_polls_publish_fifty_records_at_the_walk_rate(make_producer, kafka_bootstrap, topic_name):
    producer = make_producer()
    polls = [producer.poll_once() for _ in range(5)]
    assert producer.flush(30) == 0
    records = read_topic(kafka_bootstrap, topic_name, expected=50)
    assert len(records) == 50
    assert Counter(record.key for record in records) == {code: 5 for code in TEN}
    for record in records:
        value = record.value
        assert set(value) == API_FIELDS | {"fetched_at"}
        assert value["code"] == record.key
        assert record.timestamp_ms == value["fetched_at"]
        assert value["rate"] == reference_rate(record.key, value["fetched_at"])
    fetched = sorted({record.value["fetched_at"] for record in records})
    assert fetched == sorted(poll.fetched_at_ms[0] for poll in polls)  # one instant per poll
    assert all(poll.published == TEN for poll in polls)
    counts = producer.metrics.snapshot()
    assert (
        counts["records_produced"],
        counts["records_delivered"],
        counts["delivery_failures"],
        counts["coins_missing"],
    ) == (50, 50, 0, 0)


def test_429_and_500_bursts_are_retried_and_the_poll_succeeds(make_producer, sim_api, kafka_bootstrap, topic_name):
    sim_api.admin.fail(429, count=2, retry_after=0, paths=["/coins/map"])
    sim_api.admin.fail(500, count=3, paths=["/coins/map"])
    producer = make_producer(lcw_retry_attempts=6)
    result = producer.poll_once()
    assert producer.flush(30) == 0
    assert sorted(result.published) == sorted(TEN)
    assert producer.metrics.retries_by_reason() == {"429": 2, "500": 3}
    assert sim_api.admin.stats()["faults_served"] == {"status:429": 2, "status:500": 3}
    assert len(read_topic(kafka_bootstrap, topic_name, expected=10)) == 10


def test_null_rates_and_missing_coins_are_counted_never_published(make_producer, sim_api, kafka_bootstrap, topic_name):
    sim_api.admin.inject(null_rate=["ETH"], omit=["BTC"])
    producer = make_producer(codes=TEN + ["NOSUCHCOIN"])
    result = producer.poll_once()
    assert producer.flush(30) == 0
    assert result.missing == {"BTC": "missing", "ETH": "null_rate", "NOSUCHCOIN": "missing"}
    assert producer.metrics.missing_by_reason() == {
        ("BTC", "missing"): 1,
        ("ETH", "null_rate"): 1,
        ("NOSUCHCOIN", "missing"): 1,
    }
    records = read_topic(kafka_bootstrap, topic_name, expected=8)
    assert sorted(record.key for record in records) == sorted(set(TEN) - {"BTC", "ETH"})


def test_a_malformed_body_is_retried_and_a_failed_poll_does_not_end_the_run(
    make_producer, sim_api, kafka_bootstrap, topic_name
):
    producer = make_producer(lcw_retry_attempts=3)
    sim_api.admin.malformed(count=3 + 1, paths=["/coins/map"])  # poll 1 gives up, poll 2 retries once
    polls = producer.run(0.0, threading.Event(), max_polls=2)
    assert producer.flush(30) == 0
    assert polls == 2
    counts = producer.metrics.snapshot()
    assert (counts["polls_failed"], counts["polls_ok"]) == (1, 1)
    assert producer.metrics.retries_by_reason() == {"malformed": 3}
    assert len(read_topic(kafka_bootstrap, topic_name, expected=10)) == 10


def test_the_budget_guard_ends_the_run_before_the_budget_is_exceeded(
    make_producer, sim_api, kafka_bootstrap, topic_name
):
    producer = make_producer(budget=4)
    with pytest.raises(CreditBudgetExceeded):
        producer.run(0.0, threading.Event())
    assert producer.flush(30) == 0
    # /credits, then three polls; the fourth poll is refused before it is sent.
    assert sim_api.admin.stats()["requests"] == {"/credits": 1, "/coins/map": 3}
    assert len(read_topic(kafka_bootstrap, topic_name, expected=30)) == 30


def test_more_than_a_hundred_coins_take_one_call_per_hundred(make_producer, sim_api, kafka_bootstrap, topic_name):
    codes = list(COINS)
    assert len(codes) > 100
    producer = make_producer(codes=codes)
    result = producer.poll_once()
    assert producer.flush(30) == 0
    assert result.published == codes and len(result.fetched_at_ms) == 2
    assert sim_api.admin.stats()["requests"] == {"/coins/map": 2}
    records = read_topic(kafka_bootstrap, topic_name, expected=len(codes))
    assert sorted(record.key for record in records) == sorted(codes)
    assert all(r.value["rate"] == reference_rate(r.key, r.value["fetched_at"]) for r in records)


def test_topics_get_the_configured_partitions(isolated_env, kafka_bootstrap, topic_name):
    settings = load_settings(env_file=None, kafka_bootstrap_servers=kafka_bootstrap, kafka_topic_partitions=3)
    assert prepare_topic(settings, topic_name) == [topic_name]
    assert prepare_topic(settings, topic_name) == []
    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic_name, timeout=10)
    assert len(metadata.topics[topic_name].partitions) == 3


# ---- the interval arithmetic ---------------------------------------------------------------------


def test_the_default_interval_follows_from_the_budget(isolated_env):
    settings = load_settings(env_file=None)  # 10,000 credits/day, 500 reserved for the backfill
    minimum = 86_400 / 9_500
    assert plan_interval(settings, None, 10) == math.ceil(minimum / 0.95 * 100) / 100 == 9.58
    assert plan_interval(settings, 9.1, 10) == 9.1
    assert plan_interval(load_settings(env_file=None, poll_interval_s=60), None, 10) == 60
    assert credits_per_poll(100) == 1 and credits_per_poll(101) == 2


def test_a_too_fast_interval_is_refused_with_the_arithmetic(isolated_env):
    settings = load_settings(env_file=None)
    with pytest.raises(IntervalTooFast) as raised:
        plan_interval(settings, 5, 10)
    assert str(raised.value) == (
        "--interval 5 s is too fast: each poll costs 1 credit(s) (1 /coins/map call for 10 coins), "
        "so polling every 5 s needs 86400 / 5 × 1 = 17280 credits per UTC day, but only "
        "DAILY_CREDIT_BUDGET 10000 − HISTORICAL_DAILY_CREDITS 500 reserved for the backfill = 9500 "
        "are available; the fastest allowed interval is 86400 × 1 / 9500 = 9.095 s"
    )
    with pytest.raises(IntervalTooFast, match="POLL_INTERVAL_S 2 s is too fast"):
        plan_interval(load_settings(env_file=None, poll_interval_s=2), None, 10)
    with pytest.raises(IntervalTooFast, match="2 credit"):
        plan_interval(settings, 10, 150)
    with pytest.raises(IntervalTooFast, match="no credits are left"):
        plan_interval(load_settings(env_file=None, historical_daily_credits=10_000), None, 10)
