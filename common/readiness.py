"""Waiting for a process we started to become ready: one helper for every launcher.

The broker, the embedded ClickHouse server and the simulated API are each started as a child
process and answer some probe once they are ready (a metadata request, `/ping`, `/status`). Each
launcher waits the same way: poll the probe until it says yes, stop at once if the child exited (a
busy port, a bad configuration), give up after a deadline with the probe's last error. The polling
itself is tenacity's.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed


class ProcessExited(Exception):
    """The child exited before it was ready; `returncode` is its exit status."""

    def __init__(self, returncode: int) -> None:
        super().__init__(f"exited with code {returncode}")
        self.returncode = returncode


class NotReady(Exception):
    """The probe did not succeed before the deadline; `last_error` is the probe's last exception."""

    def __init__(self, last_error: BaseException | None) -> None:
        super().__init__(str(last_error) if last_error else "no answer")
        self.last_error = last_error


def wait_until_ready(
    probe: Callable[[], bool],
    timeout_s: float,
    process: subprocess.Popen[Any] | None = None,
    interval_s: float = 0.05,
) -> None:
    """Call `probe` until it returns True; an exception from it counts as "not yet".

    Raises `ProcessExited` as soon as `process` has exited, `NotReady` after `timeout_s`.
    """
    errors: list[BaseException] = []

    def attempt() -> bool:
        if process is not None and process.poll() is not None:
            raise ProcessExited(process.returncode)
        try:
            return probe()
        except Exception as error:  # the probe's failure is what "not ready" looks like
            errors[:] = [error]
            return False

    retrying = Retrying(
        stop=stop_after_delay(timeout_s), wait=wait_fixed(interval_s), retry=retry_if_result(lambda ready: not ready)
    )
    try:
        retrying(attempt)
    except RetryError:
        raise NotReady(errors[0] if errors else None) from None
