"""`coinstream ksql run` against a real broker: exact outputs, layouts, and exactness across crashes.

Each test starts its own local Tansu broker (coinstream.local_broker) instead of the shared
session broker, because the project's statements use fixed topic names (coins_current_full,
ohlc_by_minute, mov_avg_60s) that other tests may also use.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import struct
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from coinstream.local_broker import LocalBroker, find_tansu_binary, free_port
from tests.ksql.known_coins import EXPECTED_AVG, EXPECTED_LOG, EXPECTED_OHLC, EXPECTED_REJECTED, INPUTS, T0

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(find_tansu_binary() is None, reason="needs the Tansu broker binary")

RUN_ARGS = ["--commit-interval-ms", "100", "--session-timeout-ms", "2000"]


@pytest.fixture
def bootstrap():
    with LocalBroker() as broker:
        yield broker.bootstrap


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=30)


def start_runner(bootstrap: str, tmp_path: Path, *args: str, hooks: str = "") -> subprocess.Popen:
    # No /metrics endpoint unless a test asks for one with --metrics-port: never a fixed port.
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TZ": "UTC",
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "INFO",
        "KSQL_METRICS_PORT": "0",
        "COINSTREAM_TEST_HOOKS": hooks,
    }
    log_path = tmp_path / f"runner-{time.monotonic_ns()}.log"
    with open(log_path, "w") as log_file:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "coinstream", "ksql", "run", *RUN_ARGS, *args],
            env=env,
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    process.log_path = log_path
    return process


def wait_until_assigned(process: subprocess.Popen, timeout_s: float = 60) -> None:
    """Block until the runner has joined the group and restored its state (it logs "assigned")."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if "ksql.kafka_runner: assigned" in process.log_path.read_text():
            return
        if process.poll() is not None:
            raise AssertionError(f"runner exited with {process.returncode}: {process.log_path.read_text()[-3000:]}")
        time.sleep(0.05)
    raise AssertionError("runner never got its partitions")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def read_topic(bootstrap: str, topic: str, idle_s: float = 1.5) -> list[tuple[int, int, bytes, bytes, int]]:
    """Every record of `topic` as (partition, offset, key, value, timestamp), by partition then offset."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions])
        records = []
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            for message in consumer.consume(1000, 0.2):
                if message.error():
                    continue
                records.append(
                    (message.partition(), message.offset(), message.key(), message.value(), message.timestamp()[1])
                )
                last = time.monotonic()
        return sorted(records, key=lambda r: (r[0], r[1]))
    finally:
        consumer.close()


def windowed_key(code: str, start: int) -> bytes:
    return code.encode() + struct.pack(">q", start)


def produce_known_inputs(bootstrap: str, topic: str = "coins_current_full") -> None:
    """tests/ksql/known_coins.py's INPUTS into a new one-partition `topic`, in order."""
    create_topic(bootstrap, topic, 1)
    producer = Producer({"bootstrap.servers": bootstrap})
    for record in INPUTS:
        value = record["value"]
        producer.produce(
            topic,
            value if isinstance(value, str) else json.dumps(value),
            record["key"].encode() if record["key"] else None,
            timestamp=record["timestamp"],
        )
    producer.flush(30)


def test_run_turns_known_input_into_exact_records(bootstrap: str, tmp_path: Path) -> None:
    produce_known_inputs(bootstrap)
    runner = start_runner(bootstrap, tmp_path, "--no-cache", "--idle-exit", "2")
    try:
        assert runner.wait(timeout=90) == 0
    finally:
        stop(runner)

    for topic, expected in (("ohlc_by_minute", EXPECTED_OHLC), ("mov_avg_60s", EXPECTED_AVG)):
        actual = [(key, json.loads(value), ts) for _p, _o, key, value, ts in read_topic(bootstrap, topic)]
        assert actual == [(windowed_key(r["key"], r["window"]["start"]), r["value"], r["timestamp"]) for r in expected]
    actual = [
        (key, json.loads(value), ts) for _p, _o, key, value, ts in read_topic(bootstrap, "coins_current_rejected")
    ]
    assert actual == [(r["key"].encode() if r["key"] else None, r["value"], r["timestamp"]) for r in EXPECTED_REJECTED]
    log = [json.loads(value) for *_ignored, value, _ts in read_topic(bootstrap, "ksql_processing_log")]
    assert [(e["source"], e["offset"], e["reason"].split(":")[0], e["kind"]) for e in log] == EXPECTED_LOG
    bad = next(e for e in log if e["source"] == "COINS_CURRENT_STREAM")
    assert (base64.b64decode(bad["value_base64"]), base64.b64decode(bad["key_base64"])) == (b"not json", b"BTC")


def test_run_refuses_session_windows(bootstrap: str, tmp_path: Path) -> None:
    script = tmp_path / "session.sql"
    script.write_text(
        "CREATE STREAM s (id STRING KEY, v INT) WITH (kafka_topic='s', value_format='JSON');\n"
        "CREATE TABLE t AS SELECT id, COUNT(*) AS n FROM s WINDOW SESSION (5 SECONDS) GROUP BY id;\n"
    )
    runner = start_runner(bootstrap, tmp_path, str(script))
    try:
        assert runner.wait(timeout=60) == 2
    finally:
        stop(runner)
    assert "coinstream ksql run: unsupported: CTAS_T_1: SESSION windows in ksql run" in runner.log_path.read_text()


# ---- crash and restart ------------------------------------------------------------------------------------------

COINS = ["BTC", "ETH", "SOL", "DOGE", "XRP", "LINKLONGCODE"]
PARTITIONS = 3


def generate(count: int) -> list[tuple[int, str, float | None, int]]:
    """(partition, code, rate, fetched_at): mostly increasing time, some late within grace, some beyond."""
    records = []
    for i in range(count):
        code = COINS[i % len(COINS)]
        ts = T0 + i * 250
        if i % 7 == 3:
            ts -= 20_000 + (i % 5) * 17_000  # 20-88 s late: inside the 2-minute grace
        if i % 50 == 17:
            ts -= 400_000  # far too late: dropped
        rate = None if i % 31 == 5 else round(100 + (i * 37 % 101) / 7, 4)
        records.append((COINS.index(code) % PARTITIONS, code, rate, ts))
    return records


def batch_final_values(records) -> tuple[dict, dict]:
    """An independent batch computation of the final value of every window.

    Applies the same grace rule: stream time is the highest timestamp seen so far on the record's
    partition; a window takes a record only while window end > stream time - 120 s.
    """
    stream_time: dict[int, int] = {}
    candles: dict[tuple[str, int], dict] = {}
    averages: dict[tuple[str, int], dict] = {}
    for partition, code, rate, ts in records:
        if rate is None:
            continue  # not a valid rate record: rejected before any aggregate (stream time unmoved)
        now = stream_time[partition] = max(stream_time.get(partition, ts), ts)
        start = ts - ts % 60_000
        if start + 60_000 > now - 120_000:
            c = candles.setdefault((code, start), {"open": None, "high": None, "low": None, "close": None, "ts": ts})
            c["ts"] = max(c["ts"], ts)
            if rate is not None:
                c["open"] = rate if c["open"] is None else c["open"]
                c["high"] = rate if c["high"] is None else max(c["high"], rate)
                c["low"] = rate if c["low"] is None else min(c["low"], rate)
                c["close"] = rate
        for hop in (ts - ts % 30_000 - 30_000, ts - ts % 30_000):
            if hop < 0 or not hop <= ts < hop + 60_000 or hop + 60_000 <= now - 120_000:
                continue
            a = averages.setdefault((code, hop), {"sum": 0.0, "n": 0, "ts": ts})
            a["ts"] = max(a["ts"], ts)
            if rate is not None:
                a["sum"] += rate
                a["n"] += 1

    def text(ms: int, fmt: str) -> str:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime(fmt)

    ohlc = {
        windowed_key(code, start): (
            {
                "COIN_CODE": code,
                "WINDOW_START": text(start, "%Y-%m-%d %H:%M"),
                "OPEN": c["open"],
                "HIGH": c["high"],
                "LOW": c["low"],
                "CLOSE": c["close"],
            },
            c["ts"],
        )
        for (code, start), c in candles.items()
    }
    mov = {
        windowed_key(code, start): (
            {
                "COIN_CODE": code,
                "WINDOW_START": text(start, "%Y-%m-%d %H:%M:%S"),
                "MOV_AVG": a["sum"] / a["n"] if a["n"] else 0.0,
            },
            a["ts"],
        )
        for (code, start), a in averages.items()
    }
    return ohlc, mov


def final_values(bootstrap: str, topic: str) -> tuple[dict, set]:
    """Last record per windowed key, and the (key, partition) pairs seen."""
    latest, placements = {}, set()
    for partition, _offset, key, value, ts in read_topic(bootstrap, topic):
        latest[key] = (json.loads(value), ts)
        placements.add((key[:-8], partition))
    return latest, placements


def test_kill_and_restart_mid_stream_keeps_final_values_exact(bootstrap: str, tmp_path: Path) -> None:
    from coinstream.ksql.serde import kafka_partition

    create_topic(bootstrap, "coins_current_full", PARTITIONS)
    records = generate(3000)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    cursor = 0

    def feed(count: int) -> None:
        nonlocal cursor
        for partition, code, rate, ts in records[cursor : cursor + count]:
            value = {"code": code, "rate": rate, "fetched_at": ts, "name": code.lower(), "rank": 1}
            producer.produce(
                "coins_current_full", json.dumps(value).encode(), code.encode(), partition=partition, timestamp=ts
            )
        producer.flush(30)
        cursor = min(cursor + count, len(records))

    committed_probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "coinstream-ksql"})

    def committed_total() -> int:
        offsets = committed_probe.committed(
            [TopicPartition("coins_current_full", p) for p in range(PARTITIONS)], timeout=10
        )
        return sum(max(tp.offset, 0) for tp in offsets)

    def run_until_exit(*args: str, feed_per_step: int = 30, hooks: str = "") -> int:
        """Run until the runner exits, feeding new input all along (the crashes need input to happen)."""
        process = start_runner(bootstrap, tmp_path, *args, hooks=hooks)
        try:
            wait_until_assigned(process)
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline:
                feed(feed_per_step)
                time.sleep(0.1)
            return process.wait(timeout=5)
        finally:
            stop(process)

    feed(600)
    # 1. A real kill -9 at an arbitrary moment, after some offsets were committed.
    runner = start_runner(bootstrap, tmp_path)
    try:
        wait_until_assigned(runner)
        deadline = time.monotonic() + 60
        while committed_total() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert committed_total() > 0
        feed(300)
        time.sleep(0.3)
        runner.send_signal(signal.SIGKILL)
        assert runner.wait(timeout=10) == -signal.SIGKILL
    finally:
        stop(runner)
    # 2-4. Crashes at each point of the commit cycle, each while new input keeps arriving.
    assert run_until_exit(hooks="ksql.fail-at=after-outputs:2") == 137
    # mid-changelog:5 = after the states of ohlc p0-p2 and mov_avg p0-p1 were delivered, before their positions.
    assert run_until_exit(hooks="ksql.fail-at=mid-changelog:5") == 137
    assert run_until_exit(hooks="ksql.fail-at=after-changelog:2") == 137
    # 5. The rest, then a clean stop once the input is drained.
    assert cursor < len(records)
    assert run_until_exit("--idle-exit", "2", feed_per_step=len(records)) == 0
    assert cursor == len(records)
    committed_probe.close()

    expected_ohlc, expected_avg = batch_final_values(records)
    actual_ohlc, ohlc_placements = final_values(bootstrap, "ohlc_by_minute")
    actual_avg, avg_placements = final_values(bootstrap, "mov_avg_60s")
    assert len(expected_ohlc) > 70 and len(expected_avg) > 140  # ~12.5 minutes of 6 coins
    assert actual_ohlc == expected_ohlc
    assert actual_avg == expected_avg
    # Every window of a coin is on the partition Kafka Streams would use for the coin's key bytes.
    for placements in (ohlc_placements, avg_placements):
        assert placements == {(code.encode(), kafka_partition(code.encode(), PARTITIONS)) for code in COINS}


def test_window_state_outlives_a_broker_that_forgets(tmp_path: Path) -> None:
    """The local broker restarts empty (topics, changelogs, offsets gone) between two halves of the
    input; the windows open at the restart end with the values of an uninterrupted run."""
    records = generate(1200)
    half = 600  # ~2.5 minutes into the data: candles and averages are open at the restart
    port = free_port()
    state_dir = tmp_path / "state"
    latest: dict[str, dict] = {"ohlc_by_minute": {}, "mov_avg_60s": {}}

    def run_half(part: list) -> None:
        with LocalBroker(port=port) as broker:
            create_topic(broker.bootstrap, "coins_current_full", PARTITIONS)
            producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
            for partition, code, rate, ts in part:
                value = {"code": code, "rate": rate, "fetched_at": ts, "name": code.lower(), "rank": 1}
                producer.produce(
                    "coins_current_full", json.dumps(value).encode(), code.encode(), partition=partition, timestamp=ts
                )
            producer.flush(30)
            runner = start_runner(broker.bootstrap, tmp_path, "--idle-exit", "2", "--state-dir", str(state_dir))
            try:
                assert runner.wait(timeout=120) == 0, runner.log_path.read_text()[-3000:]
            finally:
                stop(runner)
            for topic, values in latest.items():
                values.update(final_values(broker.bootstrap, topic)[0])

    run_half(records[:half])
    run_half(records[half:])

    expected_ohlc, expected_avg = batch_final_values(records)
    assert latest["ohlc_by_minute"] == expected_ohlc
    assert latest["mov_avg_60s"] == expected_avg
