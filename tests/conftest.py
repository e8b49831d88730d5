"""Shared fixtures: the real local parts (broker, ClickHouse server), never mocks of our own code."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from coinstream.local_broker import LocalBroker

# Fixtures of the embedded ClickHouse server and the simulated LiveCoinWatch API.
pytest_plugins = ["tests.fixtures_clickhouse", "tests.fixtures_sim_api"]

# Views, ksql time formatting and chDB all assume UTC (DESIGN §3, §6).
os.environ["TZ"] = "UTC"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A Tansu broker on a free loopback port for the whole test session."""
    with LocalBroker() as broker:
        yield broker.bootstrap


@pytest.fixture
def topic_name() -> str:
    """A topic name unique to one test, so tests sharing the broker never see each other's data."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> pytest.MonkeyPatch:
    """Environment without any coinstream setting and with no `.env` in the working directory."""
    from coinstream.common.settings import EXPECTED_FORMS, get_settings

    for variable in EXPECTED_FORMS:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()
