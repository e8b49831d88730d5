"""A consumer-group rebalance while the loader has a batch between insert and commit.

Found by the end-to-end kill test (tests/test_e2e.py): a loader restarted after kill -9 joined the
group while the killed member was still in it, so a second rebalance came while its insert worker
was landing a batch. The worker committed synchronously, which librdkafka holds back until the
rebalance is over, and the rebalance callback waited for the worker: the loader hung for good,
with its last rows never landed. The consuming thread now commits; this test forces the same
situation with the `loader.pause-after-insert` test hook and a second member joining during the pause.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from tests.helpers.polling import wait_for
from tests.test_loader_support import (
    FAST_GROUP,
    consumer_conf,
    create_topics,
    json_bytes,
    loader_env,
    produce,
    start_loader_process,
    unique_prefix,
)

pytest_plugins = ["tests.fixtures_clickhouse"]

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
FAST = [arg for key, value in FAST_GROUP.items() for arg in ("-X", f"{key}={value}")]


def test_loader_survives_a_rebalance_while_a_batch_is_between_insert_and_commit(
    kafka_bootstrap: str, clickhouse_server: Any, clickhouse_client: Any, clickhouse_database: str, tmp_path: Path
):
    from coinstream.clickhouse.migrations import migrate

    migrate(clickhouse_client)
    prefix = unique_prefix()
    group = f"rebalance-{prefix[1:-1]}"
    topic = prefix + "coins_current_full"
    create_topics(kafka_bootstrap, prefix, tables=["coins_current_full"])
    messages = [
        (b"BTC", json_bytes({"code": "BTC", "rate": 100.0 + i, "fetched_at": START_MS + i * 1000}), START_MS + i * 1000)
        for i in range(120)
    ]
    produce(kafka_bootstrap, topic, messages)
    log = tmp_path / "loader.log"
    loader = start_loader_process(
        [
            "--topics",
            "coins_current_full",
            "--topic-prefix",
            prefix,
            "--group",
            group,
            "--no-migrate",
            "--batch-rows",
            "40",
            "--batch-ms",
            "600000",
            *FAST,
        ],
        loader_env(
            kafka_bootstrap,
            clickhouse_server.dsn(database=clickhouse_database),
            COINSTREAM_TEST_HOOKS="loader.pause-after-insert=3",
        ),
        log,
        tmp_path,
    )

    def count():
        return clickhouse_client.command("SELECT count() FROM coins_current_full")

    try:
        wait_for(lambda: "pausing" in log.read_text(), "the first batch to be inserted")
        # A second member joins the group while the first batch waits for its commit.
        other = Consumer(consumer_conf(kafka_bootstrap, group))
        other.subscribe([topic])
        stop = threading.Event()

        def poll_without_consuming() -> None:
            while not stop.is_set():
                other.poll(0.1)  # nothing is committed by this member

        thread = threading.Thread(target=poll_without_consuming)
        thread.start()
        try:
            time.sleep(6)  # the rebalance happens and settles
        finally:
            stop.set()
            thread.join()
            other.close()  # leaves: the loader gets the partition back
        wait_for(lambda: count() == len(messages), "every message to land", timeout_s=90)
        loader.send_signal(signal.SIGTERM)
        assert loader.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if loader.poll() is None:
            loader.kill()
            loader.wait(10)
    assert clickhouse_client.query(
        "SELECT count(), uniqExact(_offset), min(_offset), max(_offset) FROM coins_current_full"
    ).result_rows == [(120, 120, 0, 119)]
    check = Consumer(consumer_conf(kafka_bootstrap, group))
    try:
        assert check.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == len(messages)
    finally:
        check.close()
