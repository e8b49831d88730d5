"""`coinstream up` as a subprocess on free ports, and what an end-to-end test needs around it:
its output, its children by service, pausing the live flow at the simulated API, reading the
topics back from Kafka, and the views from ClickHouse (tests/test_e2e.py, benchmarks/freshness.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from coinstream.common.kafka_topics import topic_ids
from coinstream.common.settings import DEFAULT_COINS, EXPECTED_FORMS
from coinstream.local_broker import free_port
from coinstream.producers.sim.admin import SimAdmin

# How each service of `up` shows in its child's command line (after `python -m coinstream`).
SERVICE_ARGV = {
    "broker": ("broker",),
    "clickhouse": ("clickhouse", "serve"),
    "sim-api": ("sim-api",),
    "ksql": ("ksql", "run"),
    "loader": ("load",),
    "producer": ("produce", "current"),
    "historical": ("produce", "historical"),
    "dashboard": ("dashboard",),
}


class UpProcess:
    """One `coinstream up`. Output is drained by a thread into `lines` (so no pipe ever fills)."""

    def __init__(self, workdir: Path, settings: dict[str, str] | None = None, args: Iterable[str] = ()) -> None:
        self.workdir = workdir
        self.ports = {
            name: free_port()
            for name in (
                "kafka",
                "clickhouse",
                "sim",
                "dashboard",
                "loader_metrics",
                "producer_metrics",
                "engine_metrics",
                "historical_metrics",
            )
        }
        # Nothing from the caller's environment that is a coinstream setting, and no .env (cwd).
        env = {key: value for key, value in os.environ.items() if key not in EXPECTED_FORMS}
        env.update(
            {
                "KAFKA_LOCAL_PORT": str(self.ports["kafka"]),
                "CLICKHOUSE_PORT": str(self.ports["clickhouse"]),
                "SIM_API_PORT": str(self.ports["sim"]),
                "DASHBOARD_PORT": str(self.ports["dashboard"]),
                "LOADER_METRICS_PORT": str(self.ports["loader_metrics"]),
                "PRODUCER_METRICS_PORT": str(self.ports["producer_metrics"]),
                "KSQL_METRICS_PORT": str(self.ports["engine_metrics"]),
                "HISTORICAL_METRICS_PORT": str(self.ports["historical_metrics"]),
                "COINSTREAM_DATA_DIR": str(workdir / "data"),
                "TZ": "UTC",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(settings or {})
        self.env = env
        self.args = list(args)
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.process: subprocess.Popen | None = None
        self._seen: list[psutil.Process] = []

    # ---- life cycle ---------------------------------------------------------------------------

    def start(self, timeout_s: float = 120.0) -> UpProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coinstream", "up", *self.args],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        threading.Thread(target=self._drain, daemon=True).start()
        self.wait_for_line(lambda line: line.endswith("Ctrl+C stops everything"), timeout_s)
        return self

    def again(self, args: Iterable[str] = (), **settings: str) -> UpProcess:
        """Another `up` (not started) on the same data directory, ports and settings, plus
        `settings`: a restart as a user with a pinned `.env` does it."""
        other = UpProcess(self.workdir, args=args)
        other.ports, other.env = self.ports, {**self.env, **settings}
        return other

    def _drain(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        with (self.workdir / "up.log").open("a", encoding="utf-8") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                with self._lock:
                    self.lines.append(line.rstrip("\n"))

    def output(self, since: int = 0) -> list[str]:
        with self._lock:
            return self.lines[since:]

    def wait_for_line(self, match: Callable[[str], bool], timeout_s: float, since: int = 0) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            for line in self.output(since):
                if match(line):
                    return line
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError("coinstream up exited; output:\n" + "\n".join(self.output()[-60:]))
            if time.monotonic() > deadline:
                raise AssertionError("line not seen; output:\n" + "\n".join(self.output()[-60:]))
            time.sleep(0.2)

    def children(self) -> list[psutil.Process]:
        """Every process below `up` (recorded, so `stop` can check each one is gone)."""
        found = psutil.Process(self.process.pid).children(recursive=True)
        known = {p.pid for p in self._seen}
        self._seen += [p for p in found if p.pid not in known]
        return found

    def service(self, name: str, timeout_s: float = 60.0, not_pid: int | None = None) -> psutil.Process:
        """The running process of service `name` (waiting for one whose pid is not `not_pid`)."""
        wanted = list(SERVICE_ARGV[name])
        deadline = time.monotonic() + timeout_s
        while True:
            for child in psutil.Process(self.process.pid).children():
                try:
                    argv = child.cmdline()
                    if (
                        argv[1:3] == ["-m", "coinstream"]
                        and argv[3 : 3 + len(wanted)] == wanted
                        and child.pid != not_pid
                        and child.status() != psutil.STATUS_ZOMBIE
                    ):
                        self.children()
                        return child
                except psutil.NoSuchProcess:
                    continue
            if time.monotonic() > deadline:
                raise AssertionError(f"no running {name} process; output:\n" + "\n".join(self.output()[-40:]))
            time.sleep(0.1)

    def stop(self, timeout_s: float = 60.0) -> tuple[int | None, list[int]]:
        """Ctrl+C; returns (exit code, pids of processes of the stack still alive after 5 s)."""
        if self.process is None:
            return None, []
        if self.process.poll() is None:
            self.children()
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _gone, alive = psutil.wait_procs(self._seen, timeout=5)
        return self.process.returncode, [p.pid for p in alive]

    def broker_pid(self) -> int:
        """The Tansu process below the stack's `coinstream broker`."""
        for child in self.service("broker").children(recursive=True):
            if "tansu" in child.name():
                return child.pid
        raise AssertionError("no Tansu process under the broker service")

    def kill_leftovers(self) -> None:
        """Last resort after a failed test: only processes this stack started."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for process in self._seen:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()

    # ---- addresses ----------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['kafka']}"

    @property
    def sim(self) -> SimAdmin:
        return SimAdmin(f"http://127.0.0.1:{self.ports['sim']}")

    def metrics_url(self, part: str) -> str:
        return f"http://127.0.0.1:{self.ports[part + '_metrics']}/metrics"

    def clickhouse(self):
        import clickhouse_connect

        from coinstream.common.local_credentials import read_credentials

        # The passwords the stack's server generated on its first start, as any command finds them.
        stored = read_credentials(Path(self.env["COINSTREAM_DATA_DIR"]) / "clickhouse")
        assert stored is not None, "the ClickHouse server has not generated its passwords"
        return clickhouse_connect.get_client(
            host="127.0.0.1",
            port=self.ports["clickhouse"],
            username="default",
            password=stored.password,
        )


def part_name(argv: list[str]) -> str:
    """A process of the stack as a person names it: `ksql run` for `python -m coinstream ksql run`,
    else its program's name."""
    return " ".join(argv[3:5]) if argv[1:3] == ["-m", "coinstream"] else Path(argv[0]).name


# ---- the live flow, switched at the simulated API ---------------------------------------------------


def pause_flow(stack: UpProcess, codes: Iterable[str] = DEFAULT_COINS, timeout_s: float = 60.0) -> None:
    """Make the simulated API leave every coin out of its answers, and return once the producer
    has received two answers after that: whatever an earlier answer carried has then been handed
    to Kafka (the producer publishes a poll before it sends the next one)."""
    sim = stack.sim
    sim.inject(omit=list(codes))
    before = sim.stats()["requests"].get("/coins/map", 0)
    deadline = time.monotonic() + timeout_s
    while sim.stats()["requests"].get("/coins/map", 0) < before + 2:
        if time.monotonic() > deadline:
            raise AssertionError(
                "the producer did not poll after the pause; output:\n" + "\n".join(stack.output()[-40:])
            )
        time.sleep(0.1)
    time.sleep(0.5)  # delivery of the last records (milliseconds on loopback)


def resume_flow(stack: UpProcess) -> None:
    """Clear the simulated API's overrides: coins are answered again."""
    stack.sim.reset()


# ---- Kafka --------------------------------------------------------------------------------------

LIVE_TOPIC = "coins_current_full"


class PublishedRates:
    """Every distinct live rate the broker held at any moment, read continuously."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.values: dict[tuple[str, int], bytes] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> PublishedRates:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def snapshot(self) -> dict[tuple[str, int], bytes]:
        with self._lock:
            return dict(self.values)

    def _run(self) -> None:
        config = {"bootstrap.servers": self.bootstrap, "broker.address.family": "v4", "log_level": 0}
        consumer = Consumer(
            {
                **config,
                "group.id": f"published-{time.time_ns()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 20,
            }
        )
        admin = AdminClient(config)
        incarnation = None
        last_check = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() - last_check > 0.2:
                    last_check = time.monotonic()
                    try:
                        current = topic_ids(admin, [LIVE_TOPIC], timeout_s=1).get(LIVE_TOPIC)
                    except Exception:
                        current = None
                    if current is not None and current != incarnation:
                        incarnation = current  # a new incarnation: read it from its start
                        consumer.assign([TopicPartition(LIVE_TOPIC, 0, OFFSET_BEGINNING)])
                for message in consumer.consume(1000, 0.05):
                    if message.error() or message.value() is None:
                        continue
                    decoded = json.loads(message.value())
                    with self._lock:
                        self.values.setdefault((decoded["code"], int(decoded["fetched_at"])), message.value())
        finally:
            consumer.close()


def broker_pid(up: UpProcess) -> int:
    """The Tansu process below the stack's `coinstream broker`."""
    for child in up.service("broker").children(recursive=True):
        if "tansu" in child.name():
            return child.pid
    raise AssertionError("no Tansu process under the broker service")


Message = tuple[int, bytes | None, bytes | None, int]  # offset, key, value, timestamp


def read_topics(
    bootstrap: str, topics: Iterable[str], idle_s: float = 2.0, timeout_s: float = 120.0
) -> dict[str, list[Message]]:
    """Every message of every partition of `topics` from the beginning (partition 0 only is used by
    the local stack), read until nothing has arrived for `idle_s`."""
    topics = list(topics)
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"e2e-reader-{time.time_ns()}",
            "enable.auto.commit": False,
            "broker.address.family": "v4",
            "fetch.wait.max.ms": 50,
            "log_level": 3,
        }
    )
    result: dict[str, list[Message]] = {topic: [] for topic in topics}
    try:
        assignment = [
            TopicPartition(topic, partition, OFFSET_BEGINNING)
            for topic in topics
            if topic in metadata.topics
            for partition in metadata.topics[topic].partitions
        ]
        for topic in topics:
            if topic in metadata.topics:
                assert list(metadata.topics[topic].partitions) == [0], f"{topic}: one partition expected"
        consumer.assign(assignment)
        last = time.monotonic()
        deadline = last + timeout_s
        while time.monotonic() - last < idle_s:
            if time.monotonic() > deadline:
                raise AssertionError(f"reading {topics} did not finish within {timeout_s} s")
            for message in consumer.consume(10_000, 0.2):
                if message.error():
                    continue
                result[message.topic()].append(
                    (message.offset(), message.key(), message.value(), message.timestamp()[1])
                )
                last = time.monotonic()
    finally:
        consumer.close()
    for messages in result.values():
        messages.sort(key=lambda m: m[0])
        assert [m[0] for m in messages] == list(range(len(messages))), "offsets not contiguous from 0"
    return result


# ---- ClickHouse -------------------------------------------------------------------------------------

VIEW_QUERIES = {
    "v_ohlc_by_minute": "SELECT code, toUnixTimestamp(window_start), open, high, low, close FROM v_ohlc_by_minute",
    "v_60_sec_mov_avg": "SELECT code, toUnixTimestamp(window_start), mov_avg FROM v_60_sec_mov_avg",
    "overview_for_dashboard": "SELECT code, name, rate, change_24h_pct, change_7d_pct, volume_24h, cap, "
    "toUnixTimestamp64Milli(updated_at), source FROM overview_for_dashboard",
    "v_candles_5m": "SELECT code, toUnixTimestamp(bucket_start), open, high, low, close, samples FROM v_candles_5m",
    "v_ohlc_by_day": "SELECT code, toString(date), name, open, high, low, close, samples FROM v_ohlc_by_day",
    "v_hist_daily": "SELECT code, toString(date), rate, volume, cap, liquidity, name, "
    "toUnixTimestamp64Milli(ts) FROM v_hist_daily",
}


def read_views(client: Any) -> dict[str, dict]:
    """Each view as {key columns: the other columns} (key = the first column or two)."""
    views: dict[str, dict] = {}
    for view, query in VIEW_QUERIES.items():
        rows = client.query(query).result_rows
        if view == "overview_for_dashboard":
            table = {row[0]: tuple(row[1:]) for row in rows}
        else:
            table = {(row[0], row[1]): (row[2] if len(row) == 3 else tuple(row[2:])) for row in rows}
        assert len(table) == len(rows), f"{view}: a key appears twice"
        views[view] = table
    return views


def landed_offsets(client: Any, table: str) -> list[int]:
    """The _offset of every row of a landing or error table (duplicates kept)."""
    return [row[0] for row in client.query(f"SELECT _offset FROM {table} ORDER BY _offset").result_rows]


def diff(name: str, actual: dict, expected: dict, limit: int = 8) -> str:
    """A short readable difference of two keyed tables ('' when equal)."""
    if actual == expected:
        return ""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    wrong = sorted(key for key in set(actual) & set(expected) if actual[key] != expected[key])
    lines = [
        f"{name}: {len(missing)} missing, {len(extra)} unexpected, {len(wrong)} different (of {len(expected)} expected)"
    ]
    lines += [f"  missing {key}: expected {expected[key]}" for key in missing[:limit]]
    lines += [f"  unexpected {key}: {actual[key]}" for key in extra[:limit]]
    lines += [f"  {key}: got {actual[key]}, expected {expected[key]}" for key in wrong[:limit]]
    return "\n".join(lines)
