"""Exactly-once mechanics: deduplication tokens through the materialized views, redelivered
batches cut differently, and a re-created topic whose offsets start again at 0."""

from __future__ import annotations

import time
import uuid

from confluent_kafka.admin import AdminClient

from coinstream.clickhouse.loader.batch import dedup_token
from coinstream.clickhouse.loader.formats import CURRENT_COLUMNS, FORMATS, parse
from coinstream.clickhouse.loader.records import Record
from coinstream.clickhouse.loader.sink import ClickHouseSink
from tests.test_loader_support import (
    create_topics,
    json_bytes,
    ms,
    produce,
    run_loader,
    unique_prefix,
)

pytest_plugins = ["tests.fixtures_clickhouse"]

T0 = ms("2024-03-10T00:00:00")


def coin(code: str, rate: float, at: int) -> tuple[bytes, bytes, int]:
    return code.encode(), json_bytes({"code": code, "rate": rate, "fetched_at": at}), at


def state(client) -> list[tuple]:
    return [
        tuple(row)
        for row in client.query(
            "SELECT (SELECT count() FROM coins_current_full), "
            "(SELECT sum(samples) FROM v_candles_5m), (SELECT sum(samples) FROM v_candles_1d), "
            "(SELECT groupArray(rate) FROM (SELECT rate FROM overview_for_dashboard ORDER BY code))"
        ).result_rows
    ]


def test_same_insert_twice_with_its_token_is_dropped_with_the_views(clickhouse_client):
    from coinstream.clickhouse.migrations import migrate

    migrate(clickhouse_client)
    records = [
        Record(
            "coins_current_full",
            0,
            offset,
            T0 + offset * 1000,
            b"BTC",
            json_bytes({"code": "BTC", "rate": 10.0 + offset, "fetched_at": T0 + offset * 1000}),
        )
        for offset in range(5)
    ]
    rows = [row for record in records for row in parse(FORMATS["coins_current_full"], record, 1 << 20)]
    sink = ClickHouseSink(clickhouse_client)
    token = dedup_token("coins_current_full", records)
    assert token == "coins_current_full|coins_current_full#0:0:0-4"
    # The same offsets of a later incarnation of the topic (re-created: epoch 2) are other messages.
    again = [Record(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value, topic_epoch=2) for r in records]
    assert dedup_token("coins_current_full", again) == "coins_current_full|coins_current_full#2:0:0-4"

    sink.insert("coins_current_full", CURRENT_COLUMNS, rows, token)
    assert state(clickhouse_client) == [(5, 5, 5, [14.0])]
    # A retry of the same insert (its answer was lost): ClickHouse drops it, and the materialized
    # views behind the table do not see it either.
    sink.insert("coins_current_full", CURRENT_COLUMNS, rows, token)
    assert state(clickhouse_client) == [(5, 5, 5, [14.0])]
    # The token is what protects: the same rows under another token are a new insert.
    sink.insert("coins_current_full", CURRENT_COLUMNS, rows, token + "-other")
    assert state(clickhouse_client) == [(10, 10, 10, [14.0])]


def test_rereading_in_other_batches_with_new_messages_lands_only_the_new(kafka_bootstrap, clickhouse_client):
    from coinstream.clickhouse.migrations import migrate

    migrate(clickhouse_client)
    prefix = unique_prefix()
    create_topics(kafka_bootstrap, prefix, tables=["coins_current_full"])
    topic = prefix + "coins_current_full"
    produce(kafka_bootstrap, topic, [coin("BTC", 100.0 + i, T0 + i * 60_000) for i in range(20)])
    first = run_loader(kafka_bootstrap, clickhouse_client, prefix, tables=["coins_current_full"], batch_rows=6)
    assert first.metrics.totals == {"rows": 20, "errors": 0, "duplicates": 0}
    produce(kafka_bootstrap, topic, [coin("BTC", 200.0 + i, T0 + (20 + i) * 60_000) for i in range(10)])
    # Another group re-reads all 30 messages in batches of 7: batch 18..24 mixes both kinds.
    second = run_loader(kafka_bootstrap, clickhouse_client, prefix, tables=["coins_current_full"], batch_rows=7)
    assert second.metrics.totals == {"rows": 10, "errors": 0, "duplicates": 20}
    assert clickhouse_client.query(
        "SELECT count(), uniqExact(_offset), min(_offset), max(_offset), sum(rate) FROM coins_current_full"
    ).result_rows == [(30, 30, 0, 29, sum(100.0 + i for i in range(20)) + sum(200.0 + i for i in range(10)))]
    assert clickhouse_client.query("SELECT sum(samples) FROM v_candles_1h").result_rows == [(30,)]


def test_recreated_topic_is_loaded_anew_not_mistaken_for_the_old_one(kafka_bootstrap, clickhouse_client):
    from coinstream.clickhouse.migrations import migrate

    migrate(clickhouse_client)
    prefix = unique_prefix()
    topic = prefix + "coins_current_full"
    group = f"recreate-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix, tables=["coins_current_full"])
    produce(kafka_bootstrap, topic, [coin("ETH", 10.0 + i, T0 + i * 1000) for i in range(5)])
    run_loader(kafka_bootstrap, clickhouse_client, prefix, group=group, tables=["coins_current_full"])

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap, "broker.address.family": "v4"})
    admin.delete_topics([topic], operation_timeout=10)[topic].result(10)
    deadline = time.monotonic() + 10
    while topic in admin.list_topics(timeout=5).topics and time.monotonic() < deadline:
        time.sleep(0.1)
    create_topics(kafka_bootstrap, prefix, tables=["coins_current_full"])
    # Offsets 0..4 again, in one batch as before: the same offset range, so before incarnations
    # the insert repeated the first one's deduplication token and ClickHouse dropped it silently.
    produce(kafka_bootstrap, topic, [coin("ETH", 50.0 + i, T0 + 3_600_000 + i * 1000) for i in range(5)])
    again = run_loader(kafka_bootstrap, clickhouse_client, prefix, group=group, tables=["coins_current_full"])

    assert again.metrics.totals == {"rows": 5, "errors": 0, "duplicates": 0}
    assert [
        tuple(row)
        for row in clickhouse_client.query(
            "SELECT _topic_epoch, _offset, rate FROM coins_current_full ORDER BY fetched_at"
        ).result_rows
    ] == [
        (0, 0, 10.0),
        (0, 1, 11.0),
        (0, 2, 12.0),
        (0, 3, 13.0),
        (0, 4, 14.0),
        (1, 0, 50.0),
        (1, 1, 51.0),
        (1, 2, 52.0),
        (1, 3, 53.0),
        (1, 4, 54.0),
    ]
    assert [
        row[0]
        for row in clickhouse_client.query(
            "SELECT epoch FROM kafka_topic_incarnations WHERE topic = {t:String} ORDER BY epoch",
            parameters={"t": topic},
        ).result_rows
    ] == [0, 1]
    # Within the new incarnation a redelivery is still recognised: a new group re-reads all five.
    reread = run_loader(kafka_bootstrap, clickhouse_client, prefix, tables=["coins_current_full"])
    assert reread.metrics.totals == {"rows": 0, "errors": 0, "duplicates": 5}
    assert clickhouse_client.query("SELECT count() FROM coins_current_full").result_rows == [(10,)]
