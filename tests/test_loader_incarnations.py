"""The local broker restarts under a running loader: its topics come back empty, offsets from 0.

What the README promises: nothing lost, nothing doubled. Before topic incarnations the restarted
topic's inserts repeated the deduplication tokens of the first run and ClickHouse dropped them, and
the windowed views kept a window's old update (higher offset) over the newer one.
"""

from __future__ import annotations

import threading
import time
import uuid

from coinstream.clickhouse.loader import Loader, LoaderConfig
from coinstream.local_broker import LocalBroker, free_port
from tests.test_loader_support import consumer_conf, create_topics, json_bytes, ms, produce, windowed_key

pytest_plugins = ["tests.fixtures_clickhouse"]

W0 = ms("2024-03-10T10:00:00")


def current(code: str, rate: float, at: int) -> tuple[bytes, bytes, int]:
    return code.encode(), json_bytes({"code": code, "rate": rate, "fetched_at": at}), at


def candle(code: str, window: int, o: float, h: float, low: float, c: float, at: int):
    return windowed_key(code, window), json_bytes({"OPEN": o, "HIGH": h, "LOW": low, "CLOSE": c}), at


def wait_for(predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_broker_restart_under_a_running_loader_lands_the_new_incarnation_once(
    clickhouse_server, clickhouse_database, clickhouse_client
):
    from coinstream.clickhouse.migrations import migrate

    migrate(clickhouse_client)
    port = free_port()
    tables = ["coins_current_full", "ohlc_by_minute"]
    prefix = f"inc{uuid.uuid4().hex[:8]}."
    live, candles = prefix + "coins_current_full", prefix + "ohlc_by_minute"

    def count(sql: str) -> int:
        return clickhouse_client.query(sql).result_rows[0][0]

    broker = LocalBroker(port=port).start()
    loader_client = clickhouse_server.client(database=clickhouse_database)
    loader = Loader(
        consumer_conf(broker.bootstrap, f"g-{uuid.uuid4().hex[:6]}"),
        loader_client,
        LoaderConfig(tables=tuple(tables), topic_prefix=prefix, batch_ms=100),
    )
    thread = threading.Thread(target=loader.run, daemon=True)
    try:
        create_topics(broker.bootstrap, prefix, tables=tables)
        # First run: 4 rates, and four updates of the 10:00 candle (offsets 0..3); the 4th is the
        # candle as it stood when the broker went down.
        produce(broker.bootstrap, live, [current("BTC", 100.0 + i, W0 + i * 10_000) for i in range(4)])
        produce(
            broker.bootstrap,
            candles,
            [candle("BTC", W0, 100, 100 + i, 100, 100 + i, W0 + i * 10_000) for i in range(4)],
        )
        thread.start()
        wait_for(
            lambda: (
                count("SELECT count() FROM coins_current_full") == 4
                and count("SELECT count() FROM ohlc_by_minute") == 4
            )
        )

        broker.stop()  # like kill: memory storage, everything of the first run is gone
        broker = LocalBroker(port=port).start()
        create_topics(broker.bootstrap, prefix, tables=tables)
        # Second run: 2 more rates at offsets 0..1, and the window's final update at offset 0.
        produce(broker.bootstrap, live, [current("BTC", 200.0 + i, W0 + 40_000 + i * 10_000) for i in range(2)])
        produce(broker.bootstrap, candles, [candle("BTC", W0, 100, 201, 100, 201, W0 + 50_000)])
        wait_for(
            lambda: (
                count("SELECT count() FROM coins_current_full") == 6
                and count("SELECT count() FROM ohlc_by_minute") == 5
            ),
            timeout_s=60,
        )
    finally:
        loader.request_stop()
        thread.join(30)
        loader_client.close()
        broker.stop()
    assert not thread.is_alive()

    assert [
        tuple(row)
        for row in clickhouse_client.query(
            "SELECT _topic_epoch, _offset, rate FROM coins_current_full ORDER BY fetched_at"
        ).result_rows
    ] == [(0, 0, 100.0), (0, 1, 101.0), (0, 2, 102.0), (0, 3, 103.0), (1, 0, 200.0), (1, 1, 201.0)]
    # The window's latest update is the second incarnation's, though its offset (0) is lower.
    assert [
        tuple(row)
        for row in clickhouse_client.query("SELECT code, open, high, low, close FROM v_ohlc_by_minute").result_rows
    ] == [("BTC", 100.0, 201.0, 100.0, 201.0)]
    # The 1-minute rollup of the live rates counts every rate once: 4 + 2.
    assert clickhouse_client.query("SELECT sum(samples) FROM v_candles_5m").result_rows == [(6,)]


def test_replayed_rates_land_only_where_clickhouse_lacks_them(kafka_bootstrap, clickhouse_client):
    """The producer's journal, published again into a new incarnation: what had landed is skipped
    by (code, fetched_at), what the old broker lost lands, a replay repeated in one batch lands once."""
    from confluent_kafka import Producer

    from coinstream.clickhouse.migrations import migrate
    from coinstream.common.kafka_topics import REPLAY_HEADER
    from tests.test_loader_support import run_loader, unique_prefix

    migrate(clickhouse_client)
    prefix = unique_prefix()
    topic = prefix + "coins_current_full"
    create_topics(kafka_bootstrap, prefix, tables=["coins_current_full"])
    produce(kafka_bootstrap, topic, [current("BTC", 100.0 + i, W0 + i * 1000) for i in range(3)])
    first = run_loader(kafka_bootstrap, clickhouse_client, prefix, tables=["coins_current_full"])
    assert first.metrics.totals == {"rows": 3, "errors": 0, "duplicates": 0}

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "broker.address.family": "v4"})
    # Replays of 0..2 (landed), of a 4th rate the old broker lost, that one twice; then a live rate.
    for i in (0, 1, 2, 3, 3):
        key, value, at = current("BTC", 100.0 + i, W0 + i * 1000)
        producer.produce(topic, value, key, timestamp=at, headers=[(REPLAY_HEADER, b"1")])
    key, value, at = current("BTC", 104.0, W0 + 4000)
    producer.produce(topic, value, key, timestamp=at)
    assert producer.flush(30) == 0
    second = run_loader(kafka_bootstrap, clickhouse_client, prefix, tables=["coins_current_full"])
    # The new group starts at offset 0: messages 0-2 are redeliveries (identity), 3-8 new messages,
    # of which the replays of rates 0-2 and the second replay of rate 3 are already held.
    assert second.metrics.totals == {"rows": 2, "errors": 0, "duplicates": 7}
    assert [
        tuple(row)
        for row in clickhouse_client.query(
            "SELECT rate, count() FROM coins_current_full GROUP BY rate ORDER BY rate"
        ).result_rows
    ] == [(100.0, 1), (101.0, 1), (102.0, 1), (103.0, 1), (104.0, 1)]


def test_a_redelivered_message_that_changed_verdict_is_not_landed_twice(kafka_bootstrap, clickhouse_client):
    """A live rate 70 s ahead of the wall clock goes to the error table; read again 100 s later
    (a new consumer group) it would be valid, but it is found in the error table and skipped."""
    from coinstream.clickhouse.loader.formats import RateRules
    from coinstream.clickhouse.migrations import migrate
    from tests.test_loader_support import unique_prefix

    migrate(clickhouse_client)
    prefix = unique_prefix()
    topic = prefix + "coins_current_full"
    create_topics(kafka_bootstrap, prefix, tables=["coins_current_full"])
    produce(
        kafka_bootstrap,
        topic,
        [current("BTC", 100.0, W0), current("BTC", 101.0, W0 + 70_000), current("BTC", 102.0, W0 + 2_000)],
    )

    def load(clock_s: float) -> Loader:
        loader = Loader(
            consumer_conf(kafka_bootstrap, f"g-{uuid.uuid4().hex[:6]}"),
            clickhouse_client,
            LoaderConfig(tables=("coins_current_full",), topic_prefix=prefix, stop_when_idle_s=1.0),
        )
        loader._rules = RateRules(60_000, clock=lambda: clock_s)
        loader.run()
        return loader

    first = load(W0 / 1000 + 5)
    assert first.metrics.totals == {"rows": 2, "errors": 1, "duplicates": 0}
    second = load(W0 / 1000 + 100)
    assert second.metrics.totals == {"rows": 0, "errors": 0, "duplicates": 3}
    assert clickhouse_client.query("SELECT rate FROM coins_current_full ORDER BY rate").result_rows == [
        (100.0,),
        (102.0,),
    ]
    assert clickhouse_client.query("SELECT _offset, reason FROM coins_current_full_clickpipes_error").result_rows == [
        (1, "future fetched_at: ahead of the wall clock by more than the allowed clock skew")
    ]
