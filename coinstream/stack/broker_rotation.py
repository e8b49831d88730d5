"""Keep the local broker's memory flat: rotate it when it grows past a limit.

Why: the local broker (Tansu with memory storage) keeps every record for ever and enforces no
retention; at the free tier's maximum rate it grows by about 450 MiB a day. A rotation is a
drain-and-restart that loses nothing, because every consumer's progress lives outside the broker:

1. the producers are paused (stopped with SIGTERM: they flush what they hold and exit);
2. the supervisor waits until the ksql engine's group has committed every input record (its
   outputs are delivered before it commits) and then until the loader's group has committed every
   record of every topic (it commits only what ClickHouse holds);
3. the engine and the loader are paused too, the broker is restarted empty and awaited;
4. everything is resumed. The engine restores its windows from its local state (the changelogs are
   gone), the loader lands the re-created topics under their new incarnation; the producers'
   journals were cleared once drained (everything in them has landed), so nothing is published
   again.

A rotation starts only while the engine and the loader keep up (`MAX_LAG_TO_START`); an abandoned
one is retried after a growing number of checks. A failing check is reported and retried.

If the pipeline does not drain within `DRAIN_TIMEOUT_S` (ClickHouse away, say), nothing is
restarted: the producers are resumed and the rotation is tried again at the next check.

The broker's memory and the last rotation are written to `<data dir>/stack/broker.json`, which
`coinstream status` shows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from coinstream.common.kafka_config import base_config
from coinstream.common.kafka_lag import committed_lag
from coinstream.common.settings import Settings
from coinstream.producers.journal import DeliveryJournal
from coinstream.stack.supervisor import StackError, Supervisor

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 30.0
DRAIN_TIMEOUT_S = 120.0
# A rotation starts only when the engine and the loader are this close to the end of their topics:
# a pipeline that is not keeping up (ClickHouse away) would not drain, and the producers would be
# paused for nothing.
MAX_LAG_TO_START = 5_000
# After an abandoned rotation, the next try waits this many check intervals, doubling up to 20.
MAX_BACKOFF_CHECKS = 20
PRODUCERS = ("producer", "historical")
CONSUMERS = ("ksql", "loader")
# The groups and topics of the stack's engine and loader (their defaults; `up` passes no others).
ENGINE_GROUP, ENGINE_TOPICS = "coinstream-ksql", ["coins_current_full"]
LOADER_GROUP = "coinstream-clickhouse-loader"
LOADER_TOPICS = ["coins_current_full", "coins_historical", "ohlc_by_minute", "mov_avg_60s"]


@dataclass
class BrokerMemory:
    """What `coinstream status` shows about the local broker."""

    rss_bytes: int
    measured_at: str
    rotations: int = 0
    last_rotation_at: str | None = None
    last_rotation_rss_bytes: int | None = None


def state_path(settings: Settings) -> Path:
    return settings.coinstream_data_dir / "stack" / "broker.json"


def read_state(settings: Settings) -> BrokerMemory | None:
    """The last state the supervisor wrote, or None (no `up` ran with a local broker)."""
    try:
        return BrokerMemory(**json.loads(state_path(settings).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_state(settings: Settings, state: BrokerMemory) -> None:
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(state)))
    os.replace(temporary, path)


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants (the broker command runs Tansu as a child)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class BrokerRotation:
    """The background task of `coinstream up` that measures the broker and rotates it."""

    def __init__(
        self,
        supervisor: Supervisor,
        settings: Settings,
        limit_bytes: int,
        check_interval_s: float = CHECK_INTERVAL_S,
        drain_timeout_s: float = DRAIN_TIMEOUT_S,
    ) -> None:
        self.supervisor = supervisor
        self.settings = settings
        self.limit_bytes = limit_bytes
        self.check_interval_s = check_interval_s
        self.drain_timeout_s = drain_timeout_s
        self.state = read_state(settings) or BrokerMemory(0, _now())
        names = {state.service.name for state in supervisor.states}
        self._producers = [name for name in PRODUCERS if name in names]
        self._consumers = [name for name in CONSUMERS if name in names]
        self._kafka = base_config(settings)
        self.task: asyncio.Task | None = None  # run()'s task, set by whoever schedules it

    def broker_rss(self) -> int:
        process = self.supervisor.state_of("broker").process
        return tree_rss(process.pid) if process is not None and process.returncode is None else 0

    async def run(self) -> None:
        """Measure every check interval; rotate past the limit. Never dies of a failed check."""
        skip = 0
        backoff = 1
        while True:
            await asyncio.sleep(self.check_interval_s)
            try:
                rss = self.broker_rss()
                self.state.rss_bytes, self.state.measured_at = rss, _now()
                _write_state(self.settings, self.state)
                if skip:
                    skip -= 1
                    continue
                if self.limit_bytes and rss > self.limit_bytes:
                    if not await asyncio.to_thread(self._close_to_the_end):
                        self.supervisor.say(
                            "broker",
                            f"memory {rss / 1048576:.0f} MiB past the limit, but the "
                            "pipeline is behind: not rotating now",
                        )
                    elif await self.rotate(rss):
                        backoff = 1
                    else:
                        skip, backoff = backoff, min(backoff * 2, MAX_BACKOFF_CHECKS)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.supervisor.say(
                    "broker", f"memory check failed ({type(error).__name__}: {error}); trying again at the next check"
                )

    def _close_to_the_end(self) -> bool:
        engine = self._lag(ENGINE_GROUP, ENGINE_TOPICS) if "ksql" in self._consumers else 0
        return engine + self._lag(LOADER_GROUP, LOADER_TOPICS) <= MAX_LAG_TO_START

    def _clear_journals(self) -> None:
        """Everything the producers journaled has landed (the pipeline drained): nothing to publish
        again after the broker's restart."""
        for path in (self.settings.coinstream_data_dir / "producer").glob("*.sqlite"):
            journal = DeliveryJournal(path)
            try:
                journal.clear()
            finally:
                journal.close()

    def _lag(self, group: str, topics: list[str]) -> int:
        return committed_lag(self._kafka, group, topics)

    async def _drained(self) -> bool:
        """True once the engine, then the loader, have committed everything (within the timeout)."""
        deadline = time.monotonic() + self.drain_timeout_s
        while time.monotonic() < deadline:
            try:
                if "ksql" in self._consumers and await asyncio.to_thread(self._lag, ENGINE_GROUP, ENGINE_TOPICS) != 0:
                    await asyncio.sleep(0.5)
                    continue
                if await asyncio.to_thread(self._lag, LOADER_GROUP, LOADER_TOPICS) == 0:
                    return True
            except Exception as error:
                log.debug("drain check failed: %s", error)
            await asyncio.sleep(0.5)
        return False

    async def drain_for_stop(self, timeout_s: float = 30.0) -> None:
        """Before `up` stops: pause the producers and wait (bounded) until the engine and the loader
        have committed everything, so the broker, which forgets on stop, holds nothing unread."""
        say = self.supervisor.say
        if self.task is not None:  # no rotation may start (or go on) while the stack drains
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        say("broker", "stopping: pausing the producers and draining the pipeline first")
        for name in self._producers:
            await self.supervisor.pause(name, "stopping")
        previous, self.drain_timeout_s = self.drain_timeout_s, timeout_s
        try:
            if await self._drained():
                await asyncio.to_thread(self._clear_journals)
            else:
                say(
                    "broker",
                    f"not drained within {timeout_s:.0f}s: stopping anyway (the producers "
                    "publish what was not landed again at the next start)",
                )
        finally:
            self.drain_timeout_s = previous

    async def rotate(self, rss: int) -> bool:
        """Drain the pipeline and restart the broker empty; False (and nothing restarted) if it
        does not drain in time."""
        say = self.supervisor.say
        mib = rss / 1048576
        say(
            "broker",
            f"memory {mib:.0f} MiB > {self.limit_bytes / 1048576:.0f} MiB: rotating "
            "(pause producers, drain, restart empty)",
        )
        for name in self._producers:
            await self.supervisor.pause(name, "broker rotation")
        try:
            if not await self._drained():
                say(
                    "broker",
                    f"rotation abandoned: the pipeline did not drain within "
                    f"{self.drain_timeout_s:.0f}s; trying again later",
                )
                return False
            await asyncio.to_thread(self._clear_journals)
            for name in self._consumers:
                await self.supervisor.pause(name, "broker rotation")
            try:
                await self.supervisor.restart_and_wait("broker", "rotation")
            finally:
                for name in self._consumers:
                    self.supervisor.resume(name)
        except StackError as error:
            say("broker", f"rotation failed: {error}")
            return False
        finally:
            for name in self._producers:
                self.supervisor.resume(name)
        self.state.rotations += 1
        self.state.last_rotation_at = _now()
        self.state.last_rotation_rss_bytes = rss
        self.state.rss_bytes, self.state.measured_at = self.broker_rss(), _now()
        _write_state(self.settings, self.state)
        say("broker", f"rotated: {mib:.0f} MiB -> {self.state.rss_bytes / 1048576:.0f} MiB")
        return True
