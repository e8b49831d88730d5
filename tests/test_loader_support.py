"""Shared helpers of the loader and view tests (this module holds no tests of its own).

They produce messages to the session's Tansu broker under a topic prefix unique to the test, and
run the real loader against the embedded ClickHouse server, in-process (a thread-free call that
returns once the loader has been idle) or as a `coinstream load` subprocess.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from coinstream.clickhouse.loader import FORMATS, Loader, LoaderConfig
from coinstream.common.kafka_topics import ensure_topics

REPO = Path(__file__).resolve().parent.parent
# Tansu completes a group join in about half the session timeout; 2 s keeps tests quick.
FAST_GROUP = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500}

Message = tuple[bytes | None, bytes | None, int | None]  # key, value, timestamp ms


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


def ms(iso: str) -> int:
    """Epoch milliseconds of an ISO-8601 UTC instant such as '2024-03-09T23:58:10.500'."""
    moment = dt.datetime.fromisoformat(iso).replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp() * 1000)


def utc(iso: str) -> dt.datetime:
    """The naive UTC datetime clickhouse-connect returns for a DateTime('UTC') column."""
    return dt.datetime.fromisoformat(iso)


def windowed_key(code: str, window_start_ms: int) -> bytes:
    """A ksqlDB windowed key: the code's UTF-8 bytes, then the window start, 8 bytes big-endian."""
    return code.encode() + window_start_ms.to_bytes(8, "big")


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def create_topics(bootstrap: str, prefix: str, partitions: int = 1, tables: Iterable[str] = tuple(FORMATS)) -> None:
    ensure_topics(
        {"bootstrap.servers": bootstrap, "broker.address.family": "v4"},
        [prefix + table for table in tables],
        partitions=partitions,
    )


def produce(bootstrap: str, topic: str, messages: Iterable[Message]) -> int:
    """Produce in order (idempotent producer, so each message is stored exactly once)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "broker.address.family": "v4",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.max.bytes": 4 * 1024 * 1024,
        }
    )
    failures: list[str] = []
    count = 0

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    for key, value, timestamp in messages:
        options: dict[str, Any] = {"key": key, "value": value, "on_delivery": delivered}
        if timestamp is not None:
            options["timestamp"] = timestamp
        producer.produce(topic, **options)
        producer.poll(0)
        count += 1
    remaining = producer.flush(30)
    assert remaining == 0 and not failures, failures
    return count


def consumer_conf(bootstrap: str, group: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        **FAST_GROUP,
    }


def run_loader(
    bootstrap: str,
    client: Any,
    prefix: str,
    group: str | None = None,
    tables: Iterable[str] = tuple(FORMATS),
    idle_s: float = 1.0,
    **config: Any,
) -> Loader:
    """Run the loader in this process until it has been idle for `idle_s`; return it (metrics)."""
    loader = Loader(
        consumer_conf(bootstrap, group or f"loader-{uuid.uuid4().hex[:8]}"),
        client,
        LoaderConfig(tables=tuple(tables), topic_prefix=prefix, stop_when_idle_s=idle_s, **config),
    )
    loader.run()
    return loader


def loader_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "coinstream", "load", *args]


def loader_env(bootstrap: str, clickhouse_dsn: str, **extra: str) -> dict[str, str]:
    """The environment of a `coinstream load` subprocess: our broker, our database, no `.env`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAFKA_", "CLICKHOUSE_", "LOADER_"))}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "TZ": "UTC",
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CLICKHOUSE_URL": clickhouse_dsn,
            "LOADER_METRICS_PORT": "0",
            "LOG_LEVEL": "INFO",
        }
    )
    env.update(extra)
    return env


def start_loader_process(args: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> subprocess.Popen:
    """`coinstream load ARGS` with its output in `log_path`; the caller must stop it."""
    with open(log_path, "ab") as log_file:  # the child keeps its own descriptor
        return subprocess.Popen(
            loader_command(*args), env=env, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
