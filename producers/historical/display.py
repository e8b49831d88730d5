"""How a backfill shows its progress: a tqdm bar on a terminal, plain log lines everywhere else.

Why both: an operator running `coinstream backfill` by hand wants coins × days, the rate and an
ETA at a glance; cron, containers and CI capture stderr into files, where a redrawn bar is noise
and a few timestamped lines are what one reads afterwards.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

log = logging.getLogger("coinstream.producers.historical")


class Progress(Protocol):
    """What the backfill reports to: `advance` once per settled close, `close` at the end."""

    def advance(self, note: str = "") -> None: ...

    def close(self) -> None: ...


class BarProgress:
    """A tqdm bar: n of coins × days, closes per second, ETA."""

    def __init__(self, total: int, done: int, description: str, stream: TextIO) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=total, initial=done, desc=description, unit="close", file=stream, dynamic_ncols=True, smoothing=0.1
        )

    def advance(self, note: str = "") -> None:
        if note:
            self._bar.set_postfix_str(note, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


class LogProgress:
    """A log line every `every_s` seconds (and at the end): n/total, rate and ETA."""

    def __init__(
        self,
        total: int,
        done: int,
        description: str,
        every_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.done, self.description = total, done, description
        self._start_done = done
        self._every_s = every_s
        self._monotonic = monotonic
        self._started = self._last = monotonic()
        self._note = ""

    def advance(self, note: str = "") -> None:
        self.done += 1
        self._note = note or self._note
        now = self._monotonic()
        if now - self._last >= self._every_s:
            self._last = now
            self._log(now)

    def close(self) -> None:
        self._log(self._monotonic())

    def _log(self, now: float) -> None:
        elapsed = now - self._started
        new = self.done - self._start_done
        rate = new / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = f"{left / rate:.0f} s" if rate > 0 else "unknown"
        log.info(
            "%s: %d/%d closes settled (%.1f/s, ETA %s)%s",
            self.description,
            self.done,
            self.total,
            rate,
            eta,
            f"; last {self._note}" if self._note else "",
        )


def make_progress(
    total: int, done: int, description: str, show_bar: bool | None = None, stream: TextIO | None = None
) -> Progress:
    """A bar when `show_bar` (None = when `stream`, default stderr, is a terminal), else log lines."""
    stream = stream or sys.stderr
    if show_bar is None:
        show_bar = stream.isatty()
    if show_bar:
        return BarProgress(total, done, description, stream)
    return LogProgress(total, done, description)
