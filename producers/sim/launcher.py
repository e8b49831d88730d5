"""Start and stop the simulated API: on a background thread, or as its own process.

Why both: tests want an in-process server (starts in milliseconds, state reachable directly); a
benchmark or a CLI test wants a separate process (`python -m coinstream.producers.sim`) that does not share
the test's GIL. Both bind a free loopback port unless told otherwise, wait until `/status` answers,
and stop cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import threading
from dataclasses import replace
from types import TracebackType
from typing import Any

import requests

from coinstream.common.processes import terminate
from coinstream.common.readiness import NotReady, ProcessExited, wait_until_ready
from coinstream.producers.sim.admin import SimAdmin
from coinstream.producers.sim.server import SimConfig, SimulatedApi, bind_socket, start_site
from coinstream.producers.sim.state import SimState


class SimApiError(RuntimeError):
    """The simulated API could not be started or did not become ready."""


def wait_ready(base_url: str, timeout_s: float = 15.0, process: subprocess.Popen[Any] | None = None) -> None:
    """Block until POST `/status` answers 200 at base_url, or raise `SimApiError`."""
    try:
        wait_until_ready(
            lambda: requests.post(f"{base_url}/status", json={}, timeout=1.0).status_code == 200, timeout_s, process
        )
    except ProcessExited as exited:
        raise SimApiError(
            f"the simulated API exited with code {exited.returncode} before it was ready (is the port in use?)"
        ) from None
    except NotReady as error:
        raise SimApiError(
            f"the simulated API at {base_url} did not answer within {timeout_s:.0f}s ({error.last_error})"
        ) from None


class SimApiServer:
    """The simulated API served from a daemon thread of this process.

    `SimApiServer(seed=7).start()`; `base_url`, `state` (credits, faults, counters) and `admin`
    are then available; `stop()` or the context manager ends it. Port 0 (the default) = a free port.
    """

    def __init__(self, config: SimConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or SimConfig(port=0), **overrides)
        self.api = SimulatedApi(self.config)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.base_url = ""

    @property
    def state(self) -> SimState:
        return self.api.state

    @property
    def admin(self) -> SimAdmin:
        return SimAdmin(self.base_url)

    def start(self, timeout_s: float = 10.0) -> SimApiServer:
        sock = bind_socket(self.config.host, self.config.port)
        host, port = sock.getsockname()[:2]
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._run, args=(sock,), name="sim-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            self.stop()
            raise SimApiError(f"the simulated API did not start: {self._error}")
        return self

    def _run(self, sock: socket.socket) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            runner = await start_site(self.api, sock)
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()

        try:
            asyncio.run(main())
        except BaseException as error:  # reported to start(); the thread must not die silently
            self._error = error
            self._ready.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._thread = None

    def __enter__(self) -> SimApiServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class SimApiProcess:
    """The simulated API as a child process (`python -m coinstream.producers.sim`), on a free or given port."""

    def __init__(
        self,
        port: int | None = None,
        seed: int = 1,
        daily_credits: int = 10_000,
        accepted_keys: tuple[str, ...] = (),
        rejected_keys: tuple[str, ...] = (),
        guard_ms: int = 100,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port
        self.args = [
            "--seed",
            str(seed),
            "--daily-credits",
            str(daily_credits),
            "--guard-ms",
            str(guard_ms),
            *extra_args,
        ]
        for key in accepted_keys:
            self.args += ["--api-key", key]
        for key in rejected_keys:
            self.args += ["--reject-key", key]
        self._process: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    @property
    def admin(self) -> SimAdmin:
        return SimAdmin(self.base_url)

    def start(self, timeout_s: float = 15.0) -> SimApiProcess:
        if self.port is None:
            with bind_socket("127.0.0.1", 0) as probe:
                self.port = probe.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "coinstream.producers.sim", "--port", str(self.port), *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_ready(self.base_url, timeout_s, self._process)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        terminate(self._process, timeout_s)
        self._process = None

    def __enter__(self) -> SimApiProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
