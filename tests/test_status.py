"""`coinstream status` as an operator runs it: a subprocess against real parts, then dead ones.

The broker, the ClickHouse server, the simulated API and the dashboard are the real local parts; the
loader's and the producer's metrics are their real counter classes served by their real code with
known counts. ksqlDB and Metabase cannot run here, so a small stand-in answers their two health
endpoints (`/info`, `/api/health`) with the bodies their docs show, and checks ksqlDB's basic auth.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from coinstream.clickhouse.loader.metrics import LoaderMetrics
from coinstream.common.metrics_http import serve_metrics
from coinstream.local_broker import free_port
from coinstream.producers.metrics import ProducerMetrics
from tests.fixtures_clickhouse import TEST_PASSWORD, TEST_READONLY_PASSWORD, TEST_READONLY_USER
from tests.fixtures_dashboard import start_dashboard
from tests.fixtures_sim_api import cli_env
from tests.helpers.http_stand_in import JsonHandler, Served

KSQL_USER, KSQL_PASSWORD = "ksql-user", "ksql-Pa55word-x"
METABASE_PASSWORD = "metabase-Pa55word-y"


def status(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coinstream", "status", *args],
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


class _StandIn(JsonHandler):
    """ksqlDB's GET /info (basic auth) and Metabase's GET /api/health, as their docs answer."""

    def do_GET(self) -> None:
        expected = "Basic " + base64.b64encode(f"{KSQL_USER}:{KSQL_PASSWORD}".encode()).decode()
        if self.path == "/info" and self.headers.get("Authorization") == expected:
            self.answer(
                200,
                {
                    "KsqlServerInfo": {
                        "version": "0.29.0",
                        "kafkaClusterId": "c1",
                        "ksqlServiceId": "default_",
                        "serverStatus": "RUNNING",
                    }
                },
            )
        elif self.path == "/info":
            self.answer(401, {"@type": "generic_error", "error_code": 40100, "message": "Unauthorized"})
        elif self.path == "/api/health":
            self.answer(200, {"status": "ok"})
        else:
            self.answer(404, {"message": "not found"})


@pytest.fixture
def stand_in() -> Iterator[str]:
    with Served(ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)) as served:
        yield served.url


@pytest.fixture
def metrics_endpoints() -> Iterator[tuple[int, int, int]]:
    """The loader's, the producer's and the daily-close job's counters with known values, on their
    /metrics (the engine's endpoint is probed against a real engine in test_metrics_endpoints.py)."""
    loader = LoaderMetrics()
    loader.inserted("coins_current_full", 40)
    loader.inserted("ohlc_by_minute", 2)
    loader.rejected("coins_current_full", "invalid_json")
    loader.report({("coins_current_full", 0): 7, ("ohlc_by_minute", 0): 0})
    producer = ProducerMetrics()
    producer.records_produced.labels("coins_current_full").inc(20)
    producer.records_delivered.labels("coins_current_full").inc(19)
    producer.delivery_failures.labels("coins_current_full").inc(1)
    producer.credits_used.inc(3)
    historical = ProducerMetrics()
    historical.records_produced.labels("coins_historical").inc(30)
    historical.records_delivered.labels("coins_historical").inc(30)
    historical.credits_used.inc(31)
    loader_endpoint = serve_metrics(loader.registry, free_port())
    producer_endpoint = serve_metrics(producer.registry, free_port())
    historical_endpoint = serve_metrics(historical.registry, free_port())
    try:
        yield loader_endpoint.port, producer_endpoint.port, historical_endpoint.port
    finally:
        loader_endpoint.stop()
        producer_endpoint.stop()
        historical_endpoint.stop()


def topic_count(bootstrap: str) -> int:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return sum(1 for name in metadata.topics if not name.startswith("__"))


def test_every_part_up_is_ok_and_exit_0(
    tmp_path, kafka_bootstrap, clickhouse_server, sim_api, stand_in, metrics_endpoints
):
    loader_port, producer_port, historical_port = metrics_endpoints
    dashboard = start_dashboard(clickhouse_server, "default", tmp_path)
    try:
        dashboard_port = int(dashboard.url.rsplit(":", 1)[1])
        topics = topic_count(kafka_bootstrap)
        result = status(
            tmp_path,
            "--format",
            "json",
            KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            **clickhouse_server.env(),
            CLICKHOUSE_READONLY_USER=TEST_READONLY_USER,
            CLICKHOUSE_READONLY_PASSWORD=TEST_READONLY_PASSWORD,
            LCW_BASE_URL=sim_api.base_url,
            KSQLDB_URL=stand_in,
            KSQLDB_USER=KSQL_USER,
            KSQLDB_PASSWORD=KSQL_PASSWORD,
            METABASE_URL=stand_in,
            METABASE_USER="admin@example.com",
            METABASE_PASSWORD=METABASE_PASSWORD,
            DASHBOARD_PORT=str(dashboard_port),
            LOADER_METRICS_PORT=str(loader_port),
            PRODUCER_METRICS_PORT=str(producer_port),
            HISTORICAL_METRICS_PORT=str(historical_port),
        )
    finally:
        dashboard.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    clickhouse = f"http://127.0.0.1:{clickhouse_server.port}/default"
    assert json.loads(result.stdout) == [
        {
            "part": "kafka",
            "address": kafka_bootstrap,
            "state": "ok",
            "detail": f"1 broker, {topics} topic{'s' if topics != 1 else ''}",
        },
        {"part": "clickhouse", "address": clickhouse, "state": "ok", "detail": "ping Ok., SELECT 1 as default"},
        {
            "part": "clickhouse-readonly",
            "address": clickhouse,
            "state": "ok",
            "detail": "ping Ok., SELECT 1 as dashboard",
        },
        # The simulator charges the /credits request itself: 10,000 - 1 left.
        {
            "part": "livecoinwatch",
            "address": sim_api.base_url,
            "state": "ok",
            "detail": "simulated API, 9,999 of 10,000 credits left today",
        },
        {"part": "ksqldb", "address": stand_in, "state": "ok", "detail": "ksqlDB 0.29.0, RUNNING"},
        {"part": "metabase", "address": stand_in, "state": "ok", "detail": "api/health ok"},
        {"part": "dashboard", "address": f"http://127.0.0.1:{dashboard_port}", "state": "ok", "detail": "healthz ok"},
        {
            "part": "loader-metrics",
            "address": f"http://127.0.0.1:{loader_port}/metrics",
            "state": "ok",
            "detail": "consumer lag 7 over 2 partitions, 42 rows loaded, 1 to error tables",
        },
        {
            "part": "producer-metrics",
            "address": f"http://127.0.0.1:{producer_port}/metrics",
            "state": "ok",
            "detail": "20 records produced, 19 delivered, 1 delivery failures, 3 credits used",
        },
        # With a ksqlDB server configured, no local engine runs (coinstream up starts none).
        {
            "part": "engine-metrics",
            "address": "-",
            "state": "off",
            "detail": "not configured: KSQLDB_URL set (ksqlDB runs the statements)",
        },
        {
            "part": "historical-metrics",
            "address": f"http://127.0.0.1:{historical_port}/metrics",
            "state": "ok",
            "detail": "30 records produced, 30 delivered, 0 delivery failures, 31 credits used",
        },
    ]
    assert topic_count(kafka_bootstrap) == topics
    stats = sim_api.admin.stats()
    assert (stats["requests"], stats["credits_used"]) == ({"/status": 1, "/credits": 1}, 1)
    for secret in (TEST_PASSWORD, TEST_READONLY_PASSWORD, KSQL_PASSWORD, METABASE_PASSWORD):
        assert secret not in result.stdout + result.stderr


def test_a_dead_port_is_down_and_exit_1(tmp_path, kafka_bootstrap, sim_api):
    dead = free_port()
    result = status(
        tmp_path,
        "--timeout",
        "2",
        "--skip",
        "dashboard",
        "--skip",
        "loader-metrics",
        "--skip",
        "producer-metrics",
        "--skip",
        "engine-metrics",
        "--skip",
        "historical-metrics",
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        LCW_BASE_URL=sim_api.base_url,
        CLICKHOUSE_URL=f"http://default:{TEST_PASSWORD}@127.0.0.1:{dead}/default",
        CLICKHOUSE_READONLY_USER=TEST_READONLY_USER,
        CLICKHOUSE_READONLY_PASSWORD=TEST_READONLY_PASSWORD,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["PART", "ADDRESS", "STATE"],
        ["kafka", kafka_bootstrap, "ok"],
        ["clickhouse", f"http://127.0.0.1:{dead}/default", "down"],
        ["clickhouse-readonly", f"http://127.0.0.1:{dead}/default", "down"],
        ["livecoinwatch", sim_api.base_url, "ok"],
        ["ksqldb", "-", "off"],
        ["metabase", "-", "off"],
    ]
    assert lines[2].endswith("  down   cannot connect (Connection refused)")
    assert lines[5].endswith("  off    not configured: KSQLDB_URL unset")
    for secret in (TEST_PASSWORD, TEST_READONLY_PASSWORD):
        assert secret not in result.stdout + result.stderr

    # A dead Kafka alone makes it 1 as well; a part asked for with --only but not configured too.
    kafka_down = status(tmp_path, "--timeout", "1", "--only", "kafka", KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{dead}")
    assert kafka_down.returncode == 1
    assert kafka_down.stdout.splitlines()[1].startswith(
        f"kafka  127.0.0.1:{dead}  down   no metadata answer within 1 s ("
    )
    unset = status(tmp_path, "--only", "ksqldb")
    assert (unset.returncode, unset.stdout.splitlines()[1]) == (
        1,
        "ksqldb  -        down   not configured: KSQLDB_URL unset",
    )
