"""The local broker serves confluent-kafka clients in other processes with real group semantics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from coinstream.local_broker import LocalBroker, find_tansu_binary, free_port

REPO = Path(__file__).resolve().parent.parent
MESSAGE_COUNT = 1000


def run_helper(*args: str, timeout: float = 60) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.helpers.kafka_roundtrip", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture
def broker_process():
    """`coinstream broker --port P` as a separate process, as a user would start it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "coinstream", "broker", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": ""},
    )
    ready_line = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if "ready: bootstrap servers" in line:
            ready_line = line.strip()
            break
    try:
        assert ready_line.endswith(f"127.0.0.1:{port}"), ready_line
        yield process, f"127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)


def test_tansu_binary_is_shipped_for_this_platform():
    binary = find_tansu_binary()
    assert binary is not None and binary.name == "tansu"


def test_thousand_messages_cross_processes_exactly_once_per_group(broker_process):
    _, bootstrap = broker_process
    topic = "roundtrip"
    admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(10)
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3

    assert run_helper("produce", bootstrap, topic, str(MESSAGE_COUNT)) == [{"delivered": 1000}]

    first = run_helper("consume", bootstrap, topic, "readers", "400", "15")
    second = run_helper("consume", bootstrap, topic, "readers", str(MESSAGE_COUNT), "8")
    assert len(first) == 400
    assert len(second) == 600

    everything = first + second
    positions = {(m["partition"], m["offset"]) for m in everything}
    assert len(positions) == MESSAGE_COUNT, "a message was consumed twice after its commit"
    assert {m["partition"] for m in everything} == {0, 1, 2}
    by_key = {m["key"]: m["value"] for m in everything}
    assert by_key == {f"key-{i}": {"index": i, "code": f"C{i % 7}", "rate": i * 0.5} for i in range(MESSAGE_COUNT)}


def test_broker_stops_cleanly_on_sigterm(broker_process):
    process, _ = broker_process
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0


def test_broker_command_fails_when_tansu_dies_under_it(broker_process):
    process, _ = broker_process
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert len(children) == 1, children
    os.kill(int(children[0]), signal.SIGKILL)
    assert process.wait(timeout=15) == 1
    rest = process.stdout.read()
    assert "Error: the broker exited unexpectedly with code -9" in rest


def test_local_broker_helper_starts_on_free_port_and_stops():
    with LocalBroker() as broker:
        host, port = broker.bootstrap.rsplit(":", 1)
        assert host == "127.0.0.1" and broker.kind == "tansu"
        metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
        assert [b.port for b in metadata.brokers.values()] == [int(port)]
        process = broker._process
    assert process.poll() is not None


def test_without_tansu_the_mock_cluster_serves_other_processes(monkeypatch):
    monkeypatch.setenv("TANSU_BINARY", "/nonexistent/tansu")
    with LocalBroker() as broker:
        assert broker.kind == "mock"
        assert run_helper("produce", broker.bootstrap, "mock-topic", "20") == [{"delivered": 20}]
        consumed = run_helper("consume", broker.bootstrap, "mock-topic", "g", "20", "8")
    assert sorted(m["value"]["index"] for m in consumed) == list(range(20))


def test_broker_command_says_when_it_falls_back_to_the_mock_cluster():
    env = {**os.environ, "TANSU_BINARY": "/nonexistent/tansu", "KAFKA_BOOTSTRAP_SERVERS": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "coinstream", "broker", "--port", str(free_port())],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        first, second = process.stdout.readline(), process.stdout.readline()
        assert first == "Tansu is not available on this platform: serving librdkafka's mock cluster.\n"
        assert second.startswith("Kafka broker (mock) ready: bootstrap servers 127.0.0.1:")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
