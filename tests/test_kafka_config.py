"""Client configuration: what every consumer and producer is given, local broker or real Kafka."""

from __future__ import annotations

from coinstream.common.kafka_config import consumer_config, producer_config
from coinstream.common.settings import load_settings


def test_consumers_of_the_local_broker_ask_for_a_short_fetch_wait(isolated_env):
    config = consumer_config(load_settings(), "readers")
    # Tansu holds every fetch for the full wait: 25 ms, not librdkafka's 500 ms default.
    assert config["fetch.wait.max.ms"] == 25
    assert config["bootstrap.servers"] == "127.0.0.1:9092"
    assert config["group.id"] == "readers"
    assert config["enable.auto.commit"] is False


def test_consumers_of_a_real_kafka_keep_librdkafkas_fetch_wait(isolated_env, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1.example:9092")
    config = consumer_config(load_settings(), "readers")
    assert "fetch.wait.max.ms" not in config
    assert config["bootstrap.servers"] == "kafka-1.example:9092"


def test_explicit_options_win_over_the_defaults(isolated_env):
    config = consumer_config(load_settings(), "readers", **{"fetch.wait.max.ms": 5})
    assert config["fetch.wait.max.ms"] == 5
    assert producer_config(load_settings(), **{"linger.ms": 0})["linger.ms"] == 0
