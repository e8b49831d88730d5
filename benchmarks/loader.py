"""Loader throughput: Kafka -> ClickHouse through `coinstream load`'s Loader vs a raw insert.

    python -m benchmarks.loader [--messages 200000] [--batch-rows 20000]

Both sides write the same rows into the same embedded ClickHouse server (two databases with the
same schema, materialized views included) in the same run:

- raw: the rows already parsed, inserted with clickhouse-connect in batches of `--batch-rows`;
- loader: the same coins as JSON messages in a Tansu topic, consumed, parsed, validated, checked
  against what landed, inserted and committed by the real Loader (timed from partition assignment
  to the last row being visible in ClickHouse, so the group join is not counted).

Target: loader rows/s >= 50% of raw rows/s. Prints one JSON line with both figures.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

os.environ["TZ"] = "UTC"

from confluent_kafka import Producer

from coinstream.clickhouse.loader import FORMATS, Loader, LoaderConfig
from coinstream.clickhouse.loader.formats import DEFAULT_RULES
from coinstream.clickhouse.loader.records import Record
from coinstream.clickhouse.migrations import migrate
from coinstream.clickhouse.server.launcher import start_server
from coinstream.common.kafka_topics import ensure_topics
from coinstream.local_broker import LocalBroker

START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
CODES = [f"COIN{i:03d}" for i in range(100)]


def coin_value(index: int) -> bytes:
    """A realistic /coins/map coin with meta (about 700 bytes), as the producer publishes it."""
    code = CODES[index % len(CODES)]
    fetched_at = START_MS + (index // len(CODES)) * 60_000
    return json.dumps(
        {
            "code": code,
            "rate": 100.0 + (index % 977) * 0.01,
            "volume": 1.5e9,
            "cap": 2.5e11,
            "liquidity": 3.5e8,
            "delta": {"hour": 1.001, "day": 0.99, "week": 1.02, "month": 1.1, "quarter": 0.9, "year": 2.0},
            "name": f"Coin {code}",
            "symbol": code[:3],
            "rank": index % 100 + 1,
            "age": 3000,
            "color": "#f7931a",
            "png32": f"https://lcw.nyc3.cdn.digitaloceanspaces.com/production/currencies/32/{code.lower()}.png",
            "png64": f"https://lcw.nyc3.cdn.digitaloceanspaces.com/production/currencies/64/{code.lower()}.png",
            "webp32": f"https://lcw.nyc3.cdn.digitaloceanspaces.com/production/currencies/32/{code.lower()}.webp",
            "webp64": f"https://lcw.nyc3.cdn.digitaloceanspaces.com/production/currencies/64/{code.lower()}.webp",
            "exchanges": 120,
            "markets": 900,
            "pairs": 700,
            "allTimeHighUSD": 73000.0,
            "circulatingSupply": 19_000_000,
            "totalSupply": 19_000_000,
            "maxSupply": 21_000_000,
            "categories": ["layer-1", "pow"],
            "fetched_at": fetched_at,
        },
        separators=(",", ":"),
    ).encode()


def produce_all(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "broker.address.family": "v4",
            "linger.ms": 50,
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    for index, value in enumerate(values):
        fetched_at = START_MS + (index // len(CODES)) * 60_000
        while True:
            try:
                producer.produce(topic, key=CODES[index % len(CODES)].encode(), value=value, timestamp=fetched_at)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(120) == 0


def raw_rows(topic: str, values: list[bytes]) -> list[tuple]:
    spec = FORMATS["coins_current_full"]
    rows = []
    for offset, value in enumerate(values):
        key = CODES[offset % len(CODES)].encode()
        record = Record(topic, 0, offset, START_MS + (offset // len(CODES)) * 60_000, key, value)
        rows.extend(spec.parse(record, DEFAULT_RULES))
    return rows


def bench_raw(client, rows: list[tuple], batch_rows: int) -> float:
    spec = FORMATS["coins_current_full"]
    started = time.perf_counter()
    for first in range(0, len(rows), batch_rows):
        client.insert(
            "coins_current_full",
            rows[first : first + batch_rows],
            column_names=list(spec.columns),
            settings={"insert_deduplication_token": f"raw-{first}"},
        )
    return time.perf_counter() - started


def bench_loader(bootstrap: str, client, probe, prefix: str, expected: int, batch_rows: int) -> float:
    loader = Loader(
        {
            "bootstrap.servers": bootstrap,
            "broker.address.family": "v4",
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 2000,
            "heartbeat.interval.ms": 500,
        },
        client,
        LoaderConfig(
            tables=("coins_current_full",),
            topic_prefix=prefix,
            batch_rows=batch_rows,
            batch_ms=1000,
            report_interval_s=3600,
        ),
    )
    thread = threading.Thread(target=loader.run, name="loader")
    thread.start()
    try:
        while not loader.assigned:  # timing starts once the group join is done
            time.sleep(0.005)
        started = time.perf_counter()
        # The loader counts rows once ClickHouse accepted them: no polling queries that would
        # compete with the inserts for the server.
        while loader.metrics.totals["rows"] < expected:
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        assert probe.query("SELECT count() FROM coins_current_full").result_rows[0][0] == expected
        return elapsed
    finally:
        loader.request_stop()
        thread.join(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--batch-rows", type=int, default=20_000)
    args = parser.parse_args()

    values = [coin_value(index) for index in range(args.messages)]
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as scratch, LocalBroker() as broker:
        server = start_server(Path(scratch) / "ch")
        try:
            admin = server.client()
            clients = {}
            for name in ("bench_raw", "bench_loader"):
                admin.command(f"CREATE DATABASE {name}")
                clients[name] = server.client(database=name)
                migrate(clients[name])
            prefix = f"bench{uuid.uuid4().hex[:6]}."
            topic = prefix + "coins_current_full"
            ensure_topics({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4"}, [topic])
            produce_all(broker.bootstrap, topic, values)
            rows = raw_rows(topic, values)

            raw_s = bench_raw(clients["bench_raw"], rows, args.batch_rows)
            loader_s = bench_loader(
                broker.bootstrap,
                clients["bench_loader"],
                server.client(database="bench_loader"),
                prefix,
                args.messages,
                args.batch_rows,
            )
            same = [
                c.query(
                    "SELECT (SELECT count() FROM coins_current_full), "
                    "(SELECT round(sum(rate), 3) FROM coins_current_full), "
                    "(SELECT sum(samples) FROM v_candles_1d)"
                ).result_rows
                for c in clients.values()
            ]
        finally:
            server.stop()
    raw_rate, loader_rate = args.messages / raw_s, args.messages / loader_s
    print(
        json.dumps(
            {
                "messages": args.messages,
                "batch_rows": args.batch_rows,
                "raw_rows_per_s": round(raw_rate),
                "loader_rows_per_s": round(loader_rate),
                "loader_vs_raw": round(loader_rate / raw_rate, 3),
                "target": 0.5,
                "same_result": same[0] == same[1],
            }
        )
    )


if __name__ == "__main__":
    main()
