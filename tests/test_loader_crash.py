"""kill -9 of `coinstream load` between insert and commit, restart, and a clean SIGTERM stop.

The first loader inserts its first batch and is killed (SIGKILL) before committing the offsets, so
Kafka redelivers that batch to the second loader, which cuts it into batches of another size.
Every table and view must then hold exactly what the messages say: no row and no candle doubled.
A third loader is stopped with SIGTERM: it finishes its batch, commits, and exits 0, and its
Prometheus endpoint reports the rows it loaded and a lag of 0.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from coinstream.local_broker import free_port
from tests.helpers.polling import wait_for
from tests.test_loader_support import (
    FAST_GROUP,
    create_topics,
    json_bytes,
    loader_env,
    ms,
    produce,
    start_loader_process,
    unique_prefix,
    windowed_key,
)

pytest_plugins = ["tests.fixtures_clickhouse"]

START = ms("2024-03-09T23:50:00")
CODES = {"BTC": 100.0, "ETH": 50.0, "STABLECOIN": 10.0}  # rates stay >= base - 6 > 0
TABLES = "coins_current_full,ohlc_by_minute"
FAST = [arg for key, value in FAST_GROUP.items() for arg in ("-X", f"{key}={value}")]


def live_messages(steps: range) -> list[tuple[bytes, bytes, int]]:
    messages = []
    for step in steps:
        at = START + step * 20_000
        for code, base in CODES.items():
            rate = base + (step * 7 % 13) - 6 + step * 0.25
            messages.append((code.encode(), json_bytes({"code": code, "rate": rate, "fetched_at": at}), at))
    return messages


def ohlc_messages() -> list[tuple[bytes, bytes, int]]:
    messages = []
    for update in range(10):
        for code, minute in (("BTC", "23:58"), ("BTC", "23:59"), ("STABLECOIN", "23:59"), ("ETH", "00:00")):
            day = "2024-03-10" if minute == "00:00" else "2024-03-09"
            window = ms(f"{day}T{minute}:00")
            value = {"OPEN": 1.0, "HIGH": 1.0 + update, "LOW": 1.0 - update / 100, "CLOSE": 1.0 + update / 2}
            messages.append((windowed_key(code, window), json_bytes(value), window + update))
    return messages


def candles(messages: list[tuple[bytes, bytes, int]], bucket_ms: int) -> list[tuple]:
    """OHLC and sample count per (code, bucket), computed directly from the messages."""
    import json

    buckets: dict[tuple[str, int], list[float]] = defaultdict(list)
    for _key, value, at in messages:
        coin = json.loads(value)
        buckets[(coin["code"], at // bucket_ms * bucket_ms)].append(coin["rate"])
    return sorted(
        (code, start, rates[0], max(rates), min(rates), rates[-1], len(rates))
        for (code, start), rates in buckets.items()
    )


def committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "broker.address.family": "v4", **FAST_GROUP}
    )
    try:
        return consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        consumer.close()


def count(client: Any, table: str) -> int:
    return client.query(f"SELECT count() FROM {table}").result_rows[0][0]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)


def test_kill_9_between_insert_and_commit_then_restart_and_sigterm(
    kafka_bootstrap: str, clickhouse_server: Any, clickhouse_client: Any, clickhouse_database: str, tmp_path: Path
):
    from coinstream.clickhouse.migrations import migrate

    migrate(clickhouse_client)
    prefix = unique_prefix()
    group = f"crash-{prefix[1:-1]}"
    create_topics(kafka_bootstrap, prefix, tables=TABLES.split(","))
    live = live_messages(range(100))
    updates = ohlc_messages()
    produce(kafka_bootstrap, prefix + "coins_current_full", live)
    produce(kafka_bootstrap, prefix + "ohlc_by_minute", updates)
    env = loader_env(kafka_bootstrap, clickhouse_server.dsn(database=clickhouse_database))
    common = [
        "--topics",
        TABLES,
        "--topic-prefix",
        prefix,
        "--group",
        group,
        "--no-migrate",
        "--report-interval",
        "0.5",
        *FAST,
    ]

    def landed():
        return count(clickhouse_client, "coins_current_full") + count(clickhouse_client, "ohlc_by_minute")

    # 1. Insert the first batch of 50 messages, then die before committing.
    first_log = tmp_path / "first.log"
    first = start_loader_process(
        [*common, "--batch-rows", "50", "--batch-ms", "600000"],
        {**env, "COINSTREAM_TEST_HOOKS": "loader.pause-after-insert=60"},
        first_log,
        tmp_path,
    )
    try:
        wait_for(lambda: "pausing" in first_log.read_text(), "the first batch to be inserted")
        assert landed() == 50
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        stop(first)
    assert committed(kafka_bootstrap, group, prefix + "coins_current_full") < 0  # nothing committed

    # 2. Restart with another batch size: the 50 redelivered messages are recognised and skipped.
    second_log = tmp_path / "second.log"
    second = start_loader_process(
        [*common, "--batch-rows", "37", "--batch-ms", "200", "--stop-when-idle", "1.5"], env, second_log, tmp_path
    )
    try:
        assert second.wait(60) == 0, second_log.read_text()[-3000:]
    finally:
        stop(second)
    assert "totals rows=290 errors=0 duplicates_skipped=50" in second_log.read_text()
    assert committed(kafka_bootstrap, group, prefix + "coins_current_full") == len(live)
    assert committed(kafka_bootstrap, group, prefix + "ohlc_by_minute") == len(updates)
    assert_exact(clickhouse_client, live, updates)

    # 3. A loader stopped by SIGTERM finishes its batch, commits and exits 0; metrics are served.
    port = free_port()
    third_log = tmp_path / "third.log"
    third = start_loader_process(
        [*common, "--batch-rows", "1000", "--batch-ms", "200", "--metrics-port", str(port)], env, third_log, tmp_path
    )
    more = live_messages(range(100, 110))
    try:
        wait_for(lambda: "assigned" in third_log.read_text(), "the third loader's assignment")
        produce(kafka_bootstrap, prefix + "coins_current_full", more)
        wait_for(lambda: count(clickhouse_client, "coins_current_full") == len(live) + len(more), "the new messages")
        # The counters move right after ClickHouse answered the insert: wait for them too.
        wait_for(
            lambda: 'coinstream_loader_rows_total{table="coins_current_full"} 30.0' in metrics(port),
            "the rows counter in the metrics",
        )
        wait_for(
            lambda: (
                f'coinstream_loader_consumer_lag{{partition="0",topic="{prefix}coins_current_full"}} 0.0'
                in metrics(port)
            ),
            "a lag of 0 in the metrics",
        )
        assert 'coinstream_loader_duplicates_total{table="coins_current_full"}' not in metrics(port)
        third.send_signal(signal.SIGTERM)
        assert third.wait(20) == 0, third_log.read_text()[-3000:]
    finally:
        stop(third)
    assert "loader: stopped" in third_log.read_text()
    assert committed(kafka_bootstrap, group, prefix + "coins_current_full") == len(live) + len(more)
    assert_exact(clickhouse_client, live + more, updates)


def metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return ""


def assert_exact(client: Any, live: list, updates: list) -> None:
    assert count(client, "coins_current_full_clickpipes_error") == 0
    assert count(client, "ohlc_by_minute_clickpipes_error") == 0
    assert client.query("SELECT count(), uniqExact(_offset) FROM coins_current_full").result_rows == [
        (len(live), len(live))
    ]
    assert client.query("SELECT count(), uniqExact(_offset) FROM ohlc_by_minute").result_rows == [
        (len(updates), len(updates))
    ]

    def as_utc(millis):
        return dt.datetime.fromtimestamp(millis / 1000, dt.timezone.utc).replace(tzinfo=None)

    got_5m = [
        (code, start, o, h, low, c, n)
        for start, code, o, h, low, c, n in client.query(
            "SELECT * FROM v_candles_5m ORDER BY code, bucket_start"
        ).result_rows
    ]
    assert got_5m == [(code, as_utc(start), o, h, low, c, n) for code, start, o, h, low, c, n in candles(live, 300_000)]
    got_day = [
        (code, date, o, h, low, c, n)
        for date, code, _name, o, h, low, c, n in client.query(
            "SELECT * FROM v_ohlc_by_day ORDER BY code, date"
        ).result_rows
    ]
    assert got_day == [
        (code, as_utc(start).date(), o, h, low, c, n) for code, start, o, h, low, c, n in candles(live, 86_400_000)
    ]
    # Ten updates per window; the last (update 9) is the window's value.
    assert client.query(
        "SELECT code, window_start, open, high, low, close FROM v_ohlc_by_minute ORDER BY code, window_start"
    ).result_rows == [
        ("BTC", dt.datetime(2024, 3, 9, 23, 58), 1.0, 10.0, 0.91, 5.5),
        ("BTC", dt.datetime(2024, 3, 9, 23, 59), 1.0, 10.0, 0.91, 5.5),
        ("ETH", dt.datetime(2024, 3, 10, 0, 0), 1.0, 10.0, 0.91, 5.5),
        ("STABLECOIN", dt.datetime(2024, 3, 9, 23, 59), 1.0, 10.0, 0.91, 5.5),
    ]
