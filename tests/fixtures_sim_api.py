"""Fixtures and helpers for tests that talk to the simulated LiveCoinWatch API.

Load with ``pytest_plugins = ["tests.fixtures_sim_api"]`` (in tests/conftest.py, or a test module).

- `sim_api`: a fresh simulated API on a free loopback port for one test (in-thread, started in
  milliseconds), seed `SIM_SEED`, answering 401 to `WRONG_KEY`. `sim_api.admin` injects faults.
- `sim_api_factory`: the same with other options (`sim_api_factory(daily_credits=5)`).
- `reference_rate`: the price walk recomputed from the formula in `producers/sim/walk.py`'s
  docstring — written from that text, not by calling the module — so tests check the simulator.
- `read_topic`: every record of a topic, read without a consumer group (no join wait).
- `cli_env`: an environment for `coinstream` subprocesses without any inherited coinstream setting.

Test modules also import the helpers directly, possibly before pytest loads this file as a plugin;
it holds no assertions, so assertion rewriting is off: PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from coinstream.common.settings import EXPECTED_FORMS
from coinstream.producers.sim.catalog import COINS
from coinstream.producers.sim.launcher import SimApiServer

SIM_SEED = 20240601
WRONG_KEY = "wrong-key-5d41402abc4b2a76"
# Tests on a busy two-core machine: keep responses well away from a price-step boundary.
TEST_GUARD_MS = 250

# The class table of the walk's docstring.
_CLASS_VOLATILITY = {"stable": 0.002, "major": 0.03, "large": 0.045, "mid": 0.06, "meme": 0.09}
_CLASS_LEVELS = {"stable": 12, "major": 24, "large": 24, "mid": 24, "meme": 24}


def _u(seed: int, name: str, level: int, k: int) -> float:
    digest = hashlib.blake2b(f"{seed}|{name}|{level}|{k}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 2 - 1


def _v(seed: int, name: str, level: int, n: int) -> float:
    span = 2**level
    k = n // span
    r = n - k * span
    a, b = _u(seed, name, level, k), _u(seed, name, level, k + 1)
    return a + (b - a) * (r / 2.0**level)


def reference_rate(code: str, t_ms: int, seed: int = SIM_SEED, fx: float = 1.0) -> float:
    """The documented rate of `code` at instant `t_ms` (USD unless `fx` says otherwise)."""
    coin = COINS[code]  # reference price and volatility class: data, not computation
    sigma = _CLASS_VOLATILITY[coin.volatility] / 320.0
    n = t_ms // 1000
    x = 0.0
    for level in range(_CLASS_LEVELS[coin.volatility]):
        x = x + (sigma * math.sqrt(2.0**level)) * _v(seed, code, level, n)
    return float(format(coin.price * math.exp(x) * fx, ".10g"))


@pytest.fixture
def sim_api_factory() -> Iterator[Callable[..., SimApiServer]]:
    """Start simulated APIs with chosen options; all are stopped after the test."""
    started: list[SimApiServer] = []

    def start(**options: Any) -> SimApiServer:
        options.setdefault("seed", SIM_SEED)
        options.setdefault("rejected_keys", frozenset({WRONG_KEY}))
        options.setdefault("guard_ms", TEST_GUARD_MS)
        server = SimApiServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sim_api(sim_api_factory: Callable[..., SimApiServer]) -> SimApiServer:
    """A fresh simulated API for one test (seed SIM_SEED, 401 for WRONG_KEY, 10,000 credits/day)."""
    return sim_api_factory()


@dataclass(frozen=True)
class Record:
    """A Kafka record as a test sees it."""

    key: str
    value: dict[str, Any]
    timestamp_ms: int
    partition: int
    offset: int


def read_topic(
    bootstrap: str, topic: str, expected: int | None = None, idle_s: float = 0.5, timeout_s: float = 20.0
) -> list[Record]:
    """Every record of `topic` from the beginning: stops `idle_s` after the last record once
    `expected` (if given) are read — the idle wait would reveal duplicates — or at `timeout_s`."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{topic}",
            "enable.auto.commit": False,
            "broker.address.family": "v4",
            "fetch.wait.max.ms": 100,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Record] = []
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                if (expected is None or len(records) >= expected) and time.monotonic() - last > idle_s:
                    break
                continue
            if message.error():
                continue
            records.append(
                Record(
                    message.key().decode("utf-8"),
                    json.loads(message.value()),
                    message.timestamp()[1],
                    message.partition(),
                    message.offset(),
                )
            )
            last = time.monotonic()
        return records
    finally:
        consumer.close()


def cli_env(**variables: str) -> dict[str, str]:
    """os.environ without any coinstream setting, plus `variables` (for `coinstream` subprocesses)."""
    env = {name: value for name, value in os.environ.items() if name not in EXPECTED_FORMS}
    env.update(variables)
    return env
