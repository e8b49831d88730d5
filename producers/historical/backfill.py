"""The backfill: every (coin, day) not yet settled -> one `/coins/single/history` call -> Kafka -> settled.

Why one close at a time, each settled before the next is requested: the budget, not the speed, is
what limits a backfill (a few hundred credits a day against ~15 ms of work per close), so every
credit should buy exactly one settled close. For each (code, day), oldest day first and the coins
in their configured order within a day (so all coins' closes advance together):

1. ask `/coins/single/history` with start = end = 12:00 UTC of the day (integer ms) — never for a
   day whose 12:00 UTC has not come (checked against the injectable clock before every request);
2. publish the close to the topic (key = code, `records.close_from_history`), flush, and wait for
   the broker's acknowledgement (idempotent producer, acks=all);
3. only then settle the pair in ClickHouse (`store.ProgressStore`) — the per-coin watermark.

A kill between 1 and 3 loses at most that one credit: the next run requests the day again (and
if the broker had acknowledged it, re-publishes a message the views deduplicate). An empty
history, a null rate or an unknown coin (404: every pending day of that coin in this run, for one
credit) is settled as a gap with the reason. Retryable API failures are retried by the client;
when it gives up, the backfill cools down and tries the same close again, and stops after
`max_giveups` in a row. A spent credit budget stops the run cleanly, saying how far it got and when
credits renew.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from coinstream.producers.client import LiveCoinWatchClient
from coinstream.producers.current import ShutdownRequested
from coinstream.producers.errors import CreditBudgetExceeded, LcwError, LcwRejectedError
from coinstream.producers.historical.budget import BackfillCredits
from coinstream.producers.historical.days import (
    Clock,
    as_utc,
    close_instant,
    close_ms,
    days_between,
    utc_now,
)
from coinstream.producers.historical.display import make_progress
from coinstream.producers.historical.records import Close, Gap, close_from_history
from coinstream.producers.historical.store import DELIVERED, GAP, ProgressStore, Settled, StoreUnavailable
from coinstream.producers.metrics import ProducerMetrics

log = logging.getLogger("coinstream.producers.historical")

TOPIC = "coins_historical"
FATAL_STATUSES = frozenset({401, 403})


class DeliveryFailed(RuntimeError):
    """The broker did not acknowledge a close; it is not settled and the next run requests it again."""


class NotClosedYet(RuntimeError):
    """A day whose 12:00 UTC is still ahead reached the request step (a bug: never sent)."""


@dataclass(frozen=True)
class Task:
    """One close to settle."""

    code: str
    day: date

    def __str__(self) -> str:
        return f"{self.code} {self.day}"


@dataclass
class BackfillReport:
    """What one run did, and where the next one starts."""

    codes: list[str]
    start: date
    end: date
    already: int = 0
    delivered: int = 0
    gaps: int = 0
    credits_used: int = 0
    retries: int = 0
    # None = complete; "budget" (credits spent), "stop" (asked to stop), "failed" (transient
    # failure: the next run resumes), "rejected" (the API refused the key: fix the settings).
    stopped: str | None = None
    reason: str = ""
    next_task: Task | None = None
    resumes_at: datetime | None = None
    note: str = ""

    @property
    def days(self) -> int:
        return max(0, (self.end - self.start).days + 1)

    @property
    def total(self) -> int:
        return self.days * len(self.codes)

    @property
    def settled(self) -> int:
        return self.already + self.delivered + self.gaps

    @property
    def complete(self) -> bool:
        return self.stopped is None

    def summary(self) -> str:
        """One paragraph for the operator: the counts, then why it stopped and how it resumes."""
        span = f"{self.start}..{self.end}" if self.days else "no closed day in range"
        text = (
            f"backfill {span}: {len(self.codes)} coins × {self.days} days = {self.total} closes; "
            f"{self.delivered} delivered, {self.gaps} gaps, {self.already} already settled; "
            f"{self.credits_used} credits used, {self.retries} retries."
        )
        if self.note:
            text += f" Note: {self.note}."
        if self.complete:
            return text + (f" Complete up to {self.end}." if self.days else "")
        where = f" Settled {self.settled} of {self.total}; next: {self.next_task}." if self.next_task else ""
        if self.stopped == "budget":
            renews = (
                f" Resumes when credits renew at {self.resumes_at:%Y-%m-%d %H:%M} UTC: run "
                "again then (`coinstream produce historical` does so itself)."
                if self.resumes_at
                else ""
            )
            return f"{text} Stopped: {self.reason}{where}{renews}"
        if self.stopped == "stop":
            return f"{text} Stopped on request.{where} Run again to resume."
        return f"{text} Stopped: {self.reason}{where} The next run resumes there."


class Backfill:
    """Settles daily closes for coins and days; `run` is one pass over a range."""

    def __init__(
        self,
        client: LiveCoinWatchClient,
        producer: Producer,
        store: ProgressStore,
        credits: BackfillCredits | None = None,
        *,
        topic: str = TOPIC,
        currency: str = "USD",
        clock: Clock = utc_now,
        metrics: ProducerMetrics | None = None,
        stop: threading.Event | None = None,
        cooldown_s: float = 30.0,
        max_giveups: int = 3,
        delivery_timeout_s: float = 30.0,
        show_progress: bool | None = None,
    ) -> None:
        self.client = client
        self.producer = producer
        self.store = store
        self.credits = credits
        self.topic = topic
        self.currency = currency
        self.clock = clock
        self.metrics = metrics or client.metrics
        self.stop = stop or threading.Event()
        self.cooldown_s = cooldown_s
        self.max_giveups = max(1, max_giveups)
        self.delivery_timeout_s = delivery_timeout_s
        self.show_progress = show_progress

    # ---- planning ------------------------------------------------------------------------------

    def plan(
        self, codes: Sequence[str], start: date, end: date, retry_gaps: bool = False, reconcile: bool = False
    ) -> tuple[list[Task], int]:
        """The unsettled (code, day) pairs in order (oldest day first), and how many are settled."""
        codes = list(dict.fromkeys(codes))
        settled = self.store.settled(codes, start, end)
        if retry_gaps:
            settled = {pair: outcome for pair, outcome in settled.items() if outcome != GAP}
        if reconcile:
            unlanded = self.store.unlanded(codes, start, end)
            if unlanded:
                log.warning(
                    "%d close(s) marked delivered are not in coins_historical: requesting them again", len(unlanded)
                )
            settled = {pair: outcome for pair, outcome in settled.items() if pair not in unlanded}
        tasks = [Task(code, day) for day in days_between(start, end) for code in codes if (code, day) not in settled]
        return tasks, len(codes) * max(0, (end - start).days + 1) - len(tasks)

    # ---- one pass ------------------------------------------------------------------------------

    def run(
        self,
        codes: Sequence[str],
        start: date,
        end: date,
        *,
        retry_gaps: bool = False,
        reconcile: bool = False,
        note: str = "",
    ) -> BackfillReport:
        """Settle every unsettled close of `codes` from `start` to `end` (closed days only)."""
        codes = list(dict.fromkeys(codes))
        report = BackfillReport(codes, start, end, note=note)
        before = self.metrics.snapshot()
        tasks, report.already = self.plan(codes, start, end, retry_gaps, reconcile)
        if tasks:
            log.info(
                "backfill %s..%s into %s: %d coins × %d days = %d closes, %d already settled, %d to request",
                start,
                end,
                self.topic,
                len(codes),
                report.days,
                report.total,
                report.already,
                len(tasks),
            )
        progress = (
            make_progress(
                report.total, report.already, f"backfill {len(codes)} coins × {report.days} days", self.show_progress
            )
            if tasks
            else None
        )
        unknown: set[str] = set()
        giveups = 0
        index = 0
        try:
            while index < len(tasks):
                task = tasks[index]
                if task.code in unknown:
                    index += 1
                    continue
                if self.stop.is_set():
                    self._stopped(report, "stop", "", task)
                    break
                try:
                    for settled in self._settle(task, tasks[index:], unknown, report):
                        if progress is not None:
                            progress.advance(f"{settled.code} {settled.day}")
                    giveups = 0
                    index += 1
                except CreditBudgetExceeded as error:
                    self._stopped(report, "budget", str(error), task)
                    report.resumes_at = error.renews_at
                    break
                except ShutdownRequested:
                    self._stopped(report, "stop", "", task)
                    break
                except LcwRejectedError as error:  # 401/403: the key, not the data
                    self._stopped(report, "rejected", str(error), task)
                    break
                except (LcwError, DeliveryFailed, StoreUnavailable) as error:
                    giveups += 1
                    if isinstance(error, LcwError) and giveups < self.max_giveups:
                        log.warning(
                            "%s: %s; cooling down %g s, then trying again (%d of %d)",
                            task,
                            error,
                            self.cooldown_s,
                            giveups,
                            self.max_giveups - 1,
                        )
                        if self.stop.wait(self.cooldown_s):
                            self._stopped(report, "stop", "", task)
                            break
                        continue
                    self._stopped(report, "failed", str(error), task)
                    break
        finally:
            if progress is not None:
                progress.close()
            after = self.metrics.snapshot()
            report.credits_used = after["credits_used"] - before["credits_used"]
            report.retries = after["api_retries"] - before["api_retries"]
        return report

    def _stopped(self, report: BackfillReport, kind: str, reason: str, task: Task) -> None:
        report.stopped, report.reason, report.next_task = kind, reason, task

    # ---- one close -----------------------------------------------------------------------------

    def _settle(self, task: Task, pending: Sequence[Task], unknown: set[str], report: BackfillReport) -> list[Settled]:
        """Request, publish and settle one close; return what was settled (several for a 404)."""
        now = as_utc(self.clock())
        if close_instant(task.day) > now:
            raise NotClosedYet(f"{task}: 12:00 UTC is after {now:%Y-%m-%d %H:%M:%S} UTC")
        instant = close_ms(task.day)
        try:
            response = self.client.coin_history(task.code, instant, instant, self.currency, meta=True)
        except LcwRejectedError as error:
            if error.status in FATAL_STATUSES:
                raise
            if error.status == 404:
                unknown.add(task.code)
                reason = f"unknown coin: {error}"
                rows = [
                    Settled(other.code, other.day, GAP, reason, credits=int(other == task))
                    for other in pending
                    if other.code == task.code
                ]
            else:
                rows = [Settled(task.code, task.day, GAP, f"rejected: {error}", credits=1)]
            self._record_gaps(rows, report)
            return rows
        outcome = close_from_history(task.code, task.day, response.data, response.received_at_ms)
        if isinstance(outcome, Gap):
            rows = [Settled(task.code, task.day, GAP, outcome.reason, credits=response.attempts)]
            self._record_gaps(rows, report)
            return rows
        partition, offset = self._publish(outcome)
        row = Settled(task.code, task.day, DELIVERED, partition=partition, offset=offset, credits=response.attempts)
        self.store.record([row])
        report.delivered += 1
        return [row]

    def _record_gaps(self, rows: list[Settled], report: BackfillReport) -> None:
        self.store.record(rows)
        for row in rows:
            report.gaps += 1
            self.metrics.coins_missing.labels(row.code, row.reason.split(":", 1)[0]).inc()
        log.warning(
            "gap: %s %s%s: %s",
            rows[0].code,
            rows[0].day,
            f" and {len(rows) - 1} more day(s)" if len(rows) > 1 else "",
            rows[0].reason,
        )

    def _publish(self, close: Close) -> tuple[int, int]:
        """Produce one close and wait for the broker's acknowledgement: (partition, offset)."""
        outcome: dict[str, Any] = {}

        def delivered(error: KafkaError | None, message: Message) -> None:
            outcome["error"], outcome["message"] = error, message

        while True:
            try:
                self.producer.produce(
                    self.topic,
                    key=close.key,
                    value=close.value_bytes(),
                    timestamp=close.fetched_at_ms,
                    on_delivery=delivered,
                )
                break
            except BufferError:
                self.producer.poll(0.5)
        self.metrics.records_produced.labels(self.topic).inc()
        self.producer.flush(self.delivery_timeout_s)
        if not outcome:
            self.metrics.delivery_failures.labels(self.topic).inc()
            raise DeliveryFailed(
                f"{close.code} {close.day}: not acknowledged by the broker within {self.delivery_timeout_s:g} s"
            )
        if outcome["error"] is not None:
            self.metrics.delivery_failures.labels(self.topic).inc()
            raise DeliveryFailed(f"{close.code} {close.day}: delivery to {self.topic} failed: {outcome['error']}")
        self.metrics.records_delivered.labels(self.topic).inc()
        message = outcome["message"]
        return message.partition(), message.offset()
