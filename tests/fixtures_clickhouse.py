"""Fixtures for tests that need ClickHouse: the embedded server (chDB behind ClickHouse's HTTP API).

Load with ``pytest_plugins = ["tests.fixtures_clickhouse"]`` (in tests/conftest.py, or a test module).

- `clickhouse_server`: one server subprocess for the whole test session, on a free loopback port,
  over a temporary data directory, with the passwords below. A `RunningServer`: `.client()`,
  `.client(readonly=True)`, `.dsn()`, `.env()` (CLICKHOUSE_URL for `coinstream` subprocesses),
  `.url`, `.port`. Stopped at the end of the session.
- `clickhouse_database`: a fresh database for one test (dropped afterwards), so tests sharing the
  server never see each other's tables.
- `clickhouse_client`: a clickhouse-connect client (full user) whose default database is
  `clickhouse_database`; closed afterwards.
- `clickhouse_server_factory`: start more servers (own data directories, restarts, kill -9);
  every server it started is stopped at the end of the test.

Test modules also import the names below directly, so assertion rewriting is off: PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coinstream.clickhouse.server.launcher import RunningServer, start_server

TEST_PASSWORD = "test-Pa55word"
TEST_READONLY_USER = "dashboard"
TEST_READONLY_PASSWORD = "test-ro-Pa55word"


def start_test_server(path: Path, **options: Any) -> RunningServer:
    """A server with the test credentials (overridable), ready to answer."""
    options.setdefault("password", TEST_PASSWORD)
    options.setdefault("readonly_user", TEST_READONLY_USER)
    options.setdefault("readonly_password", TEST_READONLY_PASSWORD)
    return start_server(path, **options)


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_test_server(tmp_path_factory.mktemp("clickhouse") / "data")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clickhouse_server_factory(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def factory(path: Path | None = None, **options: Any) -> RunningServer:
        server = start_test_server(path or tmp_path / f"ch-{len(started)}", **options)
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def clickhouse_database(clickhouse_server: RunningServer) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = clickhouse_server.client()
    admin.command(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {name} SYNC")
        admin.close()


@pytest.fixture
def clickhouse_client(clickhouse_server: RunningServer, clickhouse_database: str) -> Iterator[Any]:
    client = clickhouse_server.client(database=clickhouse_database)
    try:
        yield client
    finally:
        client.close()
