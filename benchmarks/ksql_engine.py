"""Benchmark: the project's two ksql statements on Kafka, our engine vs. Quix Streams.

    python benchmarks/ksql_engine.py [--records 200000] [--quix-python PATH]

The same generated input (coin records as the producer writes them, keyed by code, a few out of
order within the grace period) is produced to a fresh local broker for each engine; each engine
then runs the 1-minute tumbling OHLC and the 60 s/30 s hopping average, Kafka in -> Kafka out,
with durable state (our changelog; Quix's RocksDB + changelog topics):

- ours, `coinstream ksql run --no-cache`: one output per update, like Quix's `.current()`;
- ours, `coinstream ksql run` (default): latest value per window at each commit, like ksqlDB;
- Quix Streams: `tumbling_window(...).agg(First, Max, Min, Last).current()` and
  `hopping_window(...).agg(Mean).current()`.

Throughput is measured by each process from its first input record to the end of the commit
that made its last output durable (group joins and start-up excluded). Peak RSS comes from
wait4() for each engine's process. Final values (last record per key and window) are compared.

Quix Streams pins an older confluent-kafka, so it lives in its own virtualenv:
    python -m venv /tmp/quix-venv && /tmp/quix-venv/bin/pip install quixstreams
and --quix-python points at that interpreter (default: $QUIX_PYTHON, else this interpreter).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from coinstream.local_broker import LocalBroker

ROOT = Path(__file__).resolve().parents[1]

T0 = 1_700_000_000_000
COINS = ["USDT", "BTC", "ETH", "FDUSD", "XRP", "SOL", "USDC", "DOGE", "LINK", "AAVE"]
PARTITIONS = 3

QUIX_APP = r"""
import json, resource, sys, time
from quixstreams import Application
from quixstreams.dataframe.windows import First, Last, Max, Mean, Min

bootstrap, expected, state_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
app = Application(broker_address=bootstrap, consumer_group="quix-bench", auto_offset_reset="earliest",
                  state_dir=state_dir, commit_interval=1.0, loglevel="WARNING")
source = app.topic("coins_current_full", key_deserializer="str", value_deserializer="json",
                   timestamp_extractor=lambda value, headers, timestamp, kind: value["fetched_at"])
ohlc_topic = app.topic("quix_ohlc_by_minute", key_serializer="str", value_serializer="json")
avg_topic = app.topic("quix_mov_avg_60s", key_serializer="str", value_serializer="json")
progress = {"count": 0, "first": None}

def tick(value):
    if progress["first"] is None:
        progress["first"] = time.monotonic()
    progress["count"] += 1
    if progress["count"] == expected:
        app.stop()

sdf = app.dataframe(source)
sdf = sdf.update(tick)
sdf.tumbling_window(duration_ms=60_000, grace_ms=120_000).agg(
    open=First("rate"), high=Max("rate"), low=Min("rate"), close=Last("rate")).current().to_topic(ohlc_topic)
sdf.hopping_window(duration_ms=60_000, step_ms=30_000, grace_ms=120_000).agg(
    mov_avg=Mean("rate")).current().to_topic(avg_topic)
app.run()
done = time.monotonic()
print(json.dumps({"records": progress["count"], "seconds": done - progress["first"],
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def generate(count: int, seed: int = 7) -> list[tuple[str, bytes, int]]:
    """(code, JSON value, fetched_at): one poll of every coin per second, 5% up to 30 s late."""
    rng = random.Random(seed)
    rates = {code: rng.uniform(0.1, 60_000) for code in COINS}
    records = []
    for index in range(count):
        code = COINS[index % len(COINS)]
        rates[code] *= 1 + rng.uniform(-0.002, 0.002)
        fetched_at = T0 + (index // len(COINS)) * 1000
        if rng.random() < 0.05:
            fetched_at -= rng.randint(1, 30_000)
        value = {
            "code": code,
            "rate": round(rates[code], 8),
            "volume": rng.uniform(1e6, 1e10),
            "cap": rng.uniform(1e8, 1e12),
            "liquidity": rng.uniform(1e5, 1e9),
            "delta": {"hour": 1.001, "day": 0.998, "week": 1.02, "month": 0.97, "quarter": 1.1, "year": 1.5},
            "name": code.title(),
            "symbol": code,
            "rank": COINS.index(code) + 1,
            "age": 4000,
            "color": "#f7931a",
            "png32": f"https://lcw.nyc3.cdn.digitaloceanspaces.com/production/currencies/32/{code.lower()}.png",
            "png64": f"https://lcw.nyc3.cdn.digitaloceanspaces.com/production/currencies/64/{code.lower()}.png",
            "webp32": f"https://lcw.nyc3.cdn.digitaloceanspaces.com/production/currencies/32/{code.lower()}.webp",
            "webp64": f"https://lcw.nyc3.cdn.digitaloceanspaces.com/production/currencies/64/{code.lower()}.webp",
            "exchanges": 300,
            "markets": 9000,
            "pairs": 4000,
            "allTimeHighUSD": 73000.0,
            "circulatingSupply": 19_500_000,
            "totalSupply": 19_500_000,
            "maxSupply": 21_000_000,
            "categories": ["currency"],
            "fetched_at": fetched_at,
        }
        records.append((code, json.dumps(value).encode(), fetched_at))
    return records


def load_input(bootstrap: str, records: list[tuple[str, bytes, int]]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    # Explicit retention configs: Quix Streams derives its changelog settings from them.
    config = {"retention.ms": "-1", "retention.bytes": "-1"}
    for future in admin.create_topics([NewTopic("coins_current_full", PARTITIONS, 1, config=config)]).values():
        future.result(timeout=30)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    for code, value, fetched_at in records:
        producer.produce("coins_current_full", value, code.encode(), timestamp=fetched_at)
        producer.poll(0)
    producer.flush(120)


def _peak_rss_kib(pid: int) -> int | None:
    """VmHWM of a live process: the peak RSS of its own address space (unlike ru_maxrss, which
    inherits the forking parent's high-water mark across exec)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def run_measured(command: list[str], env: dict[str, str], cwd: str) -> tuple[str, int]:
    """Run a process to completion; its stdout and its peak RSS in KiB (VmHWM sampled every 20 ms)."""
    peak = 0
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL)
        while process.poll() is None:
            peak = max(peak, _peak_rss_kib(process.pid) or 0)
            time.sleep(0.02)
        out.seek(0)
        text = out.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"{command[:4]} failed with {process.returncode}:\n{text[-2000:]}")
    return text, peak


def read_all(bootstrap: str, topic: str) -> list[tuple[bytes, dict]]:
    """(key, JSON value) of every record, in offset order per partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-read-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    metadata = consumer.list_topics(topic, timeout=10)
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions])
    records: list[tuple[int, int, bytes, dict]] = []
    last = time.monotonic()
    while time.monotonic() - last < 2:
        for message in consumer.consume(10_000, 0.2):
            if not message.error():
                records.append((message.partition(), message.offset(), message.key(), json.loads(message.value())))
                last = time.monotonic()
    consumer.close()
    return [(key, value) for _p, _o, key, value in sorted(records, key=lambda r: (r[0], r[1]))]


def ours(records, no_cache: bool) -> dict:
    with LocalBroker() as broker, tempfile.TemporaryDirectory() as workdir:
        load_input(broker.bootstrap, records)
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "TZ": "UTC",
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "WARNING",
        }
        command = [sys.executable, "-m", "coinstream", "ksql", "run", "--idle-exit", "3", "--metrics-port", "0"]
        if no_cache:
            command.append("--no-cache")
        text, maxrss = run_measured(command, env, workdir)
        match = re.search(r"(\d+) record\(s\) in, (\d+) out, .* (\d+) records/s over ([\d.]+) s", text)
        if match is None:
            raise SystemExit(f"unexpected runner output: {text}")
        final = {}
        for topic in ("ohlc_by_minute", "mov_avg_60s"):
            for key, value in read_all(broker.bootstrap, topic):  # the last record per window wins
                code, start = key[:-8].decode(), struct.unpack(">q", key[-8:])[0]
                if topic == "ohlc_by_minute":
                    final[(topic, code, start)] = (value["OPEN"], value["HIGH"], value["LOW"], value["CLOSE"])
                else:
                    final[(topic, code, start)] = (value["MOV_AVG"],)
        return {
            "records": int(match.group(1)),
            "outputs": int(match.group(2)),
            "seconds": float(match.group(4)),
            "maxrss_kb": maxrss,
            "final": final,
        }


def quix(records, python: str) -> dict:
    with LocalBroker() as broker, tempfile.TemporaryDirectory() as workdir:
        load_input(broker.bootstrap, records)
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        text, maxrss = run_measured(
            [python, "-c", QUIX_APP, broker.bootstrap, str(len(records)), os.path.join(workdir, "state")], env, workdir
        )
        report = json.loads(text.strip().splitlines()[-1])
        final = {}
        for topic, ours_topic in (("quix_ohlc_by_minute", "ohlc_by_minute"), ("quix_mov_avg_60s", "mov_avg_60s")):
            for key, value in read_all(broker.bootstrap, topic):  # Quix keys by code; the window is in the value
                if ours_topic == "ohlc_by_minute":
                    final[(ours_topic, key.decode(), value["start"])] = (
                        value["open"],
                        value["high"],
                        value["low"],
                        value["close"],
                    )
                else:
                    final[(ours_topic, key.decode(), value["start"])] = (value["mov_avg"],)
        return {**report, "final": final}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--quix-python", default=os.environ.get("QUIX_PYTHON", sys.executable))
    args = parser.parse_args()
    records = generate(args.records)
    print(f"input: {len(records)} records, {len(COINS)} coins, {PARTITIONS} partitions")
    results = {
        "ours --no-cache": ours(records, no_cache=True),
        "ours (cached)": ours(records, no_cache=False),
        "quixstreams": quix(records, args.quix_python),
    }
    baseline = results["quixstreams"]
    for name, result in results.items():
        rate = result["records"] / result["seconds"]
        ratio = rate / (baseline["records"] / baseline["seconds"])
        agree = result["final"] == baseline["final"]
        print(
            f"{name:16s} {rate:>10,.0f} records/s  ({result['seconds']:.2f} s)  x{ratio:.2f} vs Quix  "
            f"peak RSS {result['maxrss_kb'] / 1024:.0f} MiB  windows {len(result['final'])}  "
            f"final values {'agree' if agree else 'DIFFER'}"
        )
        if not agree:
            differing = [
                k
                for k in set(result["final"]) | set(baseline["final"])
                if result["final"].get(k) != baseline["final"].get(k)
            ]
            print(f"    {len(differing)} window(s) differ, e.g. {sorted(differing)[:3]}")


if __name__ == "__main__":
    main()
