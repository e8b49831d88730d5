"""A small process supervisor for the local stack.

Why our own: the stack needs dependency order with readiness probes (the loader must not start
before ClickHouse answers), one-shot steps (migrations) between long-running services, restarts
with backoff, and every child's output on one terminal with a prefix. supervisord and circus run
as daemons with config files and know nothing of readiness; honcho prefixes output but never
restarts. The logic here is a few dozen lines of asyncio around `asyncio.create_subprocess_exec`.

Children get SIGTERM if the supervisor dies (Linux `PR_SET_PDEATHSIG`), so even a `kill -9` of
`coinstream up` leaves no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
# Exit code of a usage or settings error (click, and our settings check): restarting cannot help.
CONFIGURATION_ERROR_EXIT_CODE = 2


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def describe_argv(argv: Sequence[str]) -> str:
    """The command line as an operator would type it: `coinstream …` for `python -m coinstream …`."""
    argv = list(argv)
    if len(argv) >= 3 and argv[1:3] == ["-m", "coinstream"]:
        return " ".join(["coinstream", *argv[3:]])
    return " ".join(argv)


@dataclass
class Service:
    """One part of the stack.

    `ready` is a blocking probe (run in a thread) that returns True once the service answers;
    without it the service counts as ready once started. A `oneshot` service must exit 0 before the
    next one starts and is never restarted. `restart_with` names services whose restart restarts
    this one too: a Kafka client is restarted with the local broker, whose restart forgets its
    topics, group offsets and producer IDs.
    """

    name: str
    argv: Sequence[str]
    ready: Callable[[], bool] | None = None
    oneshot: bool = False
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 60.0
    restart_with: tuple[str, ...] = ()


@dataclass
class ServiceState:
    service: Service
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    status: str = "pending"  # pending, starting, running, done, backoff, failed, stopped, paused
    # Set when the supervisor itself stopped the process (a restart or a pause it asked for).
    stop_reason: str | None = None
    paused: bool = False
    resumed: asyncio.Event = field(default_factory=asyncio.Event)

    def started_process(self) -> asyncio.subprocess.Process:
        """The service's current process (`Supervisor._spawn` sets it)."""
        if self.process is None:
            raise StackError(f"{self.service.name} has not been started")
        return self.process


class StackError(RuntimeError):
    """A service could not be started (a one-shot failed, or a probe timed out)."""


class Supervisor:
    """Start services in order, restart crashed ones with backoff, stop everything on request."""

    def __init__(
        self,
        services: Sequence[Service],
        *,
        out=None,
        min_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        healthy_after_s: float = 60.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self.states = [ServiceState(service) for service in services]
        self.out = out or sys.stdout
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.healthy_after_s = healthy_after_s
        self.stop_timeout_s = stop_timeout_s
        self._stopping = asyncio.Event()
        # Set by the first SIGINT/SIGTERM; `_stopping` (services really going down) by a second one,
        # by a configuration error, or once `before_stop` is done.
        self._stop_requested = asyncio.Event()
        self.failure: StackError | None = None
        self._tasks: list[asyncio.Task] = []
        self._width = max((len(s.name) for s in services), default=8)
        # Awaited before a requested stop (Ctrl+C, SIGTERM) stops anything: e.g. draining the
        # pipeline so that the local broker, which forgets on stop, holds nothing unread.
        self.before_stop: Callable[[], Coroutine[Any, Any, None]] | None = None

    # ---- output -------------------------------------------------------------------------------

    def say(self, name: str, line: str) -> None:
        self.out.write(f"{name:<{self._width}} | {line}\n")
        self.out.flush()

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        while True:
            line = await stream.readline()
            if not line:
                return
            self.say(name, line.decode(errors="replace").rstrip())

    # ---- lifecycle ----------------------------------------------------------------------------

    async def _spawn(self, state: ServiceState) -> None:
        service = state.service
        state.status = "starting"
        process = await asyncio.create_subprocess_exec(
            *service.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **service.env},
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            start_new_session=True,
        )
        state.process = process
        state.started_at = time.monotonic()
        if process.stdout is None:  # stdout=PIPE always gives a reader
            raise StackError(f"{service.name}: its output is not piped")
        self._tasks.append(asyncio.create_task(self._pump(service.name, process.stdout)))

    async def _await_ready(self, state: ServiceState) -> None:
        service = state.service
        if service.oneshot:
            code = await state.started_process().wait()
            if code != 0:
                state.status = "failed"
                raise StackError(f"{service.name} failed with exit code {code}")
            state.status = "done"
            return
        deadline = time.monotonic() + service.ready_timeout_s
        while service.ready is not None and not await asyncio.to_thread(service.ready):
            returncode = state.started_process().returncode
            if returncode is not None:
                raise StackError(f"{service.name} exited with code {returncode} before it was ready")
            if time.monotonic() > deadline or self._stopping.is_set():
                raise StackError(f"{service.name} was not ready within {service.ready_timeout_s:.0f}s")
            await asyncio.sleep(0.2)
        state.status = "running"

    async def _watch(self, state: ServiceState) -> None:
        """Restart the service whenever it exits, with exponential backoff, until stopping."""
        backoff = self.min_backoff_s
        while not self._stopping.is_set():
            code = await state.started_process().wait()
            if self._stopping.is_set():
                return
            if state.stop_reason is not None:
                await self._restart_requested(state)
                continue
            if code == CONFIGURATION_ERROR_EXIT_CODE:
                state.status = "failed"
                self.say(
                    state.service.name, "exited with a configuration error; not restarting it. Stopping the stack."
                )
                self.failure = StackError(f"{state.service.name} has a configuration error (see its output above)")
                self._stopping.set()
                return
            if time.monotonic() - state.started_at >= self.healthy_after_s:
                backoff = self.min_backoff_s
            state.status = "backoff"
            self.say(state.service.name, f"exited with code {code}; restarting in {backoff:.1f}s")
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                return
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, self.max_backoff_s)
            if state.paused and not await self._until_resumed(state):
                return  # paused while in backoff: it stays down until resumed
            state.restarts += 1
            await self._respawn_with_dependents(state, "exited")

    async def _until_resumed(self, state: ServiceState) -> bool:
        """Wait while the service is paused; False if the stack stops meanwhile."""
        state.status = "paused"
        resumed = asyncio.create_task(state.resumed.wait())
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({resumed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        resumed.cancel()
        stopping.cancel()
        return not self._stopping.is_set()

    async def _restart_requested(self, state: ServiceState) -> None:
        """The supervisor stopped this process itself: start it again at once, or when resumed."""
        reason, state.stop_reason = state.stop_reason, None
        if reason == "pause" and state.paused and not await self._until_resumed(state):
            return
        state.restarts += 1
        await self._respawn_with_dependents(state, "is restarting")

    async def _respawn_with_dependents(self, state: ServiceState, what: str) -> None:
        """Start the service again. The services bound to it (`restart_with`) are stopped first and
        started again once it is ready: a client of the old broker must never join the new one
        (it would sit in the new broker's consumer group as a member that never answers)."""
        name = state.service.name
        dependents = [
            other.service.name for other in self.states if name in other.service.restart_with and not other.paused
        ]
        await asyncio.gather(
            *(self.pause(dependent, f"{name} {what} (its state is gone with it)") for dependent in dependents)
        )
        try:
            await self._spawn(state)
            if dependents:
                try:
                    await self._await_ready(state)
                except StackError as error:
                    self.say(name, f"not ready again ({error}); starting its clients anyway")
            state.status = "running"
        finally:
            for dependent in dependents:
                self.resume(dependent)

    def state_of(self, name: str) -> ServiceState:
        for state in self.states:
            if state.service.name == name:
                return state
        raise KeyError(name)

    def _stop_process(self, state: ServiceState, reason: str) -> bool:
        process = state.process
        if process is None or process.returncode is not None or state.service.oneshot:
            return False
        state.stop_reason = reason
        process.send_signal(signal.SIGTERM)
        return True

    async def pause(self, name: str, why: str) -> None:
        """Stop the service (SIGTERM) and keep it stopped until `resume`; returns once it exited."""
        state = self.state_of(name)
        state.resumed.clear()
        state.paused = True
        if self._stop_process(state, "pause"):
            self.say(name, f"pausing: {why}")
            process = state.started_process()
            try:
                await asyncio.wait_for(process.wait(), timeout=self.stop_timeout_s)
            except asyncio.TimeoutError:
                self.say(name, "did not stop in time; killing it")
                process.kill()
                await process.wait()

    def resume(self, name: str) -> None:
        """Start a paused service again."""
        state = self.state_of(name)
        if state.paused:
            self.say(name, "resuming")
        state.paused = False
        state.resumed.set()

    async def restart_and_wait(self, name: str, why: str) -> None:
        """Restart the service (and those that restart with it); returns once it is ready again."""
        state = self.state_of(name)
        if not self._stop_process(state, "restart"):
            return
        self.say(name, f"restarting: {why}")
        old = state.started_process()
        await old.wait()
        while state.process is old and not self._stopping.is_set():
            await asyncio.sleep(0.05)
        state.status = "starting"
        await self._await_ready(state)

    def run_in_background(self, coroutine) -> asyncio.Task:
        """Run `coroutine` next to the services (the status line); `stop` cancels it."""
        task = asyncio.create_task(coroutine)
        self._tasks.append(task)
        return task

    async def start(self) -> None:
        """Start every service in order, each after the previous one is ready (or done)."""
        for state in self.states:
            self.say(state.service.name, "starting: " + describe_argv(state.service.argv))
            await self._spawn(state)
            await self._await_ready(state)
            if not state.service.oneshot:
                self.say(state.service.name, "ready")
                self._tasks.append(asyncio.create_task(self._watch(state)))

    async def stop(self) -> None:
        """Stop long-running services in reverse order: SIGTERM, then SIGKILL after a timeout."""
        self._stopping.set()
        for state in reversed(self.states):
            process = state.process
            if process is None or process.returncode is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=self.stop_timeout_s)
            except asyncio.TimeoutError:
                self.say(state.service.name, "did not stop in time; killing it")
                process.kill()
                await process.wait()
            state.status = "stopped"
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_signal(self) -> None:
        if self._stop_requested.is_set():
            self._stopping.set()  # asked twice: stop now
        self._stop_requested.set()

    async def _run_before_stop(self, hook: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `hook` while the services keep running (and restarting); a second stop request
        (Ctrl+C again) or a configuration error cuts it short."""
        work = asyncio.create_task(hook())
        now = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({work, now}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            work.cancel()
            now.cancel()
            await asyncio.gather(work, now, return_exceptions=True)

    async def run_until_stopped(self, on_ready: Callable[[], None] | None = None) -> None:
        """Start everything, then wait for SIGINT/SIGTERM; always stop what was started."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal)
        try:
            starting = asyncio.create_task(self.start())
            requested = asyncio.create_task(self._stop_requested.wait())
            stopping = asyncio.create_task(self._stopping.wait())
            done, _ = await asyncio.wait({starting, requested, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting in done:
                starting.result()  # raise a start failure
                if on_ready is not None:
                    on_ready()
                await asyncio.wait({requested, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if self.before_stop is not None and self.failure is None and not self._stopping.is_set():
                    await self._run_before_stop(self.before_stop)
                requested.cancel()
                stopping.cancel()
            else:
                requested.cancel()
                stopping.cancel()
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
        finally:
            await self.stop()
        if self.failure is not None:
            raise self.failure
