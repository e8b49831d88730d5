"""Graceful stops: of this process on SIGINT/SIGTERM, and of child processes we started.

Why shared: every long-running command (producers, loader, ksql engine, backfill) must finish its
current unit of work and flush on Ctrl+C or SIGTERM, and every launcher (broker, ClickHouse server,
simulated API) stops its child the same way: SIGTERM, a grace period, then SIGKILL.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_requested_on_signals(
    what_happens_next: str,
    on_stop: Callable[[], None] | None = None,
) -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM while the block runs; the previous handlers come back after.

    `what_happens_next` goes into the log line ("finishing the current poll and flushing");
    `on_stop` is called from the handler too, for loops that poll their own flag.
    """
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("%s received: %s", signal.Signals(signum).name, what_happens_next)
        stop.set()
        if on_stop is not None:
            on_stop()

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def terminate(process: subprocess.Popen[Any] | None, timeout_s: float) -> int | None:
    """SIGTERM the child, wait up to `timeout_s`, then SIGKILL; return its exit code. Idempotent."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
