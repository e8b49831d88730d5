"""The scheduled job: backfill up to the latest closed day, sleep until the next close, repeat.

Why the wake-up rule below: a new close exists once a day, 12:00 UTC (plus the margin the API
needs), so that is when the job wakes — unless the credit budget stopped it, in which case more
work is already waiting and the earliest useful moment is when credits renew (00:00 UTC). A
transient failure (the API kept failing, the broker or ClickHouse was away) is tried again after
`error_retry_s`, never later than the next close. A rejected key ends the job: sleeping would not
fix it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from coinstream.producers.historical.backfill import BackfillReport
from coinstream.producers.historical.days import Clock, as_utc, next_close_run

log = logging.getLogger("coinstream.producers.historical")

ERROR_RETRY_S = 600.0


def next_wakeup(
    report: BackfillReport, now: datetime, margin: timedelta, error_retry_s: float = ERROR_RETRY_S
) -> datetime | None:
    """When the next pass should start after `report`; None = do not run again."""
    now = as_utc(now)
    next_close = next_close_run(now, margin)
    if report.stopped in ("rejected", "stop"):
        return None
    if report.stopped == "budget" and report.resumes_at is not None:
        return report.resumes_at
    if report.stopped == "failed":
        return min(now + timedelta(seconds=error_retry_s), next_close)
    return next_close


def run_scheduled(
    run_pass: Callable[[], BackfillReport],
    clock: Clock,
    margin: timedelta,
    wait: Callable[[float], bool],
    once: bool = False,
    on_report: Callable[[BackfillReport], None] = lambda report: None,
    error_retry_s: float = ERROR_RETRY_S,
) -> BackfillReport:
    """Run passes until `once`, a pass that must not be repeated, or `wait` returning True (stop).

    `wait(seconds)` sleeps and returns True when a stop was requested (`threading.Event.wait`).
    Returns the last pass's report.
    """
    while True:
        report = run_pass()
        on_report(report)
        if once:
            return report
        wake = next_wakeup(report, clock(), margin, error_retry_s)
        if wake is None:
            return report
        seconds = max(0.0, (wake - as_utc(clock())).total_seconds())
        hours, rest = divmod(int(seconds), 3600)
        log.info("next pass at %s UTC (in %d h %d min)", f"{wake:%Y-%m-%d %H:%M:%S}", hours, rest // 60)
        if wait(seconds):
            return report
