"""The current-rates producer: poll `/coins/map` for the configured coins, publish one record per coin.

Why it looks like this:
- One `/coins/map` call (one credit) covers up to 100 coins, so a poll costs ceil(coins / 100)
  credits and the sustainable interval follows from the daily budget minus the backfill's reserve
  (`plan_interval`); a faster one is refused with the arithmetic.
- Each coin becomes a record in `coins_current_full`: key = the code (UTF-8), value = every field
  the API returned plus `fetched_at` (epoch ms, when the response arrived), Kafka timestamp =
  `fetched_at`. A coin that is missing from the answer, or that is not a valid live rate
  (common/rate_validity.py: a null, zero, negative or non-finite rate, a code other than the one
  asked for), is logged and counted, never published — a 0 would be read as a crash of the coin.
- Every poll's records are journaled on local disk before they are handed to Kafka
  (`journal.DeliveryJournal`); at start, records journaled for an incarnation of the topic the broker
  has since forgotten (the local broker keeps topics in memory) are published again, marked as
  replays (`replay_forgotten`).
- The Kafka producer is idempotent with acks=all (`common.kafka_config.producer_config`), delivery
  reports are counted, and a stop request (SIGINT/SIGTERM via `stop`) ends the loop between polls
  and flushes, so every record handed to Kafka is acknowledged before the process exits.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from coinstream.common.kafka_config import admin_config
from coinstream.common.kafka_topics import REPLAY_HEADER, ensure_topics
from coinstream.common.rate_validity import DEFAULT_MAX_CLOCK_SKEW_MS, rate_record_problem
from coinstream.common.settings import Settings
from coinstream.producers.client import LiveCoinWatchClient
from coinstream.producers.credits import SECONDS_PER_DAY
from coinstream.producers.errors import CreditBudgetExceeded, LcwError, LcwRejectedError
from coinstream.producers.journal import DeliveryJournal
from coinstream.producers.metrics import ProducerMetrics

log = logging.getLogger(__name__)

TOPIC = "coins_current_full"
MAX_CODES_PER_CALL = 100
# The default interval leaves this share of the budget unused, for retries and restarts.
DEFAULT_INTERVAL_HEADROOM = 0.05


class IntervalTooFast(ValueError):
    """The requested polling interval would spend more credits per day than the budget allows."""


class ShutdownRequested(Exception):
    """Raised from an interrupted wait: a stop was requested (SIGINT/SIGTERM)."""


def credits_per_poll(n_codes: int) -> int:
    return max(1, math.ceil(n_codes / MAX_CODES_PER_CALL))


def current_budget(settings: Settings) -> tuple[int, str]:
    """Credits per UTC day the current-rates producer may let the key spend, and how that figure arises."""
    budget = settings.daily_credit_budget - settings.historical_daily_credits
    label = (
        f"DAILY_CREDIT_BUDGET {settings.daily_credit_budget} − HISTORICAL_DAILY_CREDITS "
        f"{settings.historical_daily_credits} reserved for the backfill"
    )
    return budget, label


def plan_interval(settings: Settings, requested_s: float | None, n_codes: int, source: str = "--interval") -> float:
    """The polling interval to use: `requested_s` (or POLL_INTERVAL_S) if the budget sustains it,
    else the budget-derived default. Raise `IntervalTooFast` with the arithmetic when it does not."""
    per_poll = credits_per_poll(n_codes)
    available, label = current_budget(settings)
    calls = f"{per_poll} /coins/map call{'s' if per_poll > 1 else ''} for {n_codes} coins"
    if available <= 0:
        raise IntervalTooFast(f"no credits are left for current rates: {label} = {available}")
    minimum = SECONDS_PER_DAY * per_poll / available
    if requested_s is None and settings.poll_interval_s is not None:
        requested_s, source = settings.poll_interval_s, "POLL_INTERVAL_S"
    if requested_s is None:
        # Round up to 1/100 s after leaving headroom, so the default never exceeds the budget.
        return math.ceil(minimum / (1 - DEFAULT_INTERVAL_HEADROOM) * 100) / 100
    if requested_s < minimum:
        needed = SECONDS_PER_DAY / requested_s * per_poll
        raise IntervalTooFast(
            f"{source} {requested_s:g} s is too fast: each poll costs {per_poll} credit(s) "
            f"({calls}), so polling every {requested_s:g} s needs {SECONDS_PER_DAY} / "
            f"{requested_s:g} × {per_poll} = {needed:.0f} credits per UTC day, but only {label} = "
            f"{available} are available; the fastest allowed interval is {SECONDS_PER_DAY} × "
            f"{per_poll} / {available} = {minimum:.3f} s"
        )
    return requested_s


def prepare_topic(settings: Settings, topic: str = TOPIC) -> list[str]:
    """Create the topic if it is missing, with the configured partitions and replication factor."""
    return ensure_topics(
        admin_config(settings), [topic], settings.kafka_topic_partitions, settings.kafka_replication_factor
    )


def _chunks(codes: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(codes), size):
        yield list(codes[start : start + size])


@dataclass
class PollResult:
    """What one poll did: records handed to Kafka, and coins left out with the reason."""

    published: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    fetched_at_ms: list[int] = field(default_factory=list)


class CurrentRatesProducer:
    """Polls the API and publishes current rates; `run` loops, `poll_once` does one poll."""

    def __init__(
        self,
        client: LiveCoinWatchClient,
        producer: Producer,
        codes: Sequence[str],
        currency: str = "USD",
        topic: str = TOPIC,
        metrics: ProducerMetrics | None = None,
        journal: DeliveryJournal | None = None,
        topic_id: str = "",
        max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS,
    ) -> None:
        self.client = client
        self.producer = producer
        self.journal = journal
        self.topic_id = topic_id  # the incarnation journaled records go to
        self.max_clock_skew_ms = max_clock_skew_ms
        self._delivered_seqs: list[int] = []
        self.codes = list(dict.fromkeys(codes))
        self.currency = currency
        self.topic = topic
        self.metrics = metrics or client.metrics

    # ---- one poll ------------------------------------------------------------------------------

    def poll_once(self) -> PollResult:
        """Fetch every configured coin (one call per 100 codes) and hand the records to Kafka."""
        result = PollResult()
        for chunk in _chunks(self.codes, MAX_CODES_PER_CALL):
            response = self.client.coins_map(chunk, self.currency, meta=True)
            result.fetched_at_ms.append(response.received_at_ms)
            self._publish(chunk, response.data, response.received_at_ms, result)
        self.producer.poll(0)
        self._record_deliveries()
        return result

    def _publish(self, requested: list[str], coins: list[Any], fetched_at: int, result: PollResult) -> None:
        by_code: dict[str, dict[str, Any]] = {}
        ready: list[tuple[bytes, bytes, int]] = []
        for coin in coins:
            if isinstance(coin, dict) and isinstance(coin.get("code"), str):
                by_code.setdefault(coin["code"], coin)
        for code in requested:
            coin = by_code.get(code)
            if coin is None:
                self._missing(code, "missing", result)
                continue
            problem = rate_record_problem(
                code,
                coin.get("code"),
                coin.get("rate"),
                fetched_at,
                now_ms=int(time.time() * 1000),
                max_skew_ms=self.max_clock_skew_ms,
            )
            if problem is not None:  # the one definition of a valid live rate (common/rate_validity.py)
                self._missing(code, "null_rate" if coin.get("rate") is None else "invalid_rate", result, problem)
                continue
            value = json.dumps({**coin, "fetched_at": fetched_at}, separators=(",", ":"), ensure_ascii=False)
            ready.append((code.encode("utf-8"), value.encode("utf-8"), fetched_at))
            result.published.append(code)
        seqs: list[int | None] = [None] * len(ready)
        if self.journal is not None and ready:
            seqs = list(self.journal.append(self.topic, self.topic_id, ready))
        for (key_bytes, value_bytes, timestamp), seq in zip(ready, seqs, strict=False):
            self._produce(key_bytes, value_bytes, timestamp, seq=seq)
        unexpected = sorted(set(by_code) - set(requested))
        if unexpected:
            log.debug("ignoring coins the request did not ask for: %s", ", ".join(unexpected))

    def _missing(self, code: str, reason: str, result: PollResult, detail: str | None = None) -> None:
        result.missing[code] = reason
        self.metrics.coins_missing.labels(code, reason).inc()
        log.warning(
            "coin %s not published: %s",
            code,
            "absent from the API's answer" if reason == "missing" else detail or reason,
        )

    def replay_forgotten(self) -> int:
        """Publish again the journaled records of incarnations of the topic the broker no longer has
        (header `coinstream-replay`); returns how many. Call before the first poll."""
        if self.journal is None:
            return 0
        records = self.journal.forgotten(self.topic, self.topic_id)
        if not records:
            return 0
        log.warning(
            "publishing %d record(s) of the last %.0f s again: the broker no longer has the "
            "incarnation of %s they were delivered to (consumers skip what they already hold)",
            len(records),
            self.journal.retention_s,
            self.topic,
        )
        for record in records:
            self._produce(record.key, record.value, record.timestamp_ms, replay=True)
        unacknowledged = self.producer.flush(60)
        if unacknowledged:
            raise RuntimeError(f"{unacknowledged} replayed record(s) not acknowledged within 60 s")
        self.journal.moved(records, self.topic_id)
        return len(records)

    def _produce(
        self, key: bytes, value: bytes, timestamp_ms: int, replay: bool = False, seq: int | None = None
    ) -> None:
        headers: list[tuple[str, str | bytes | None]] | None = [(REPLAY_HEADER, b"1")] if replay else None
        on_delivery = self._on_delivery if seq is None else partial(self._on_journaled_delivery, seq)
        while True:
            try:
                self.producer.produce(
                    self.topic, key=key, value=value, timestamp=timestamp_ms, on_delivery=on_delivery, headers=headers
                )
                break
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self.producer.poll(0.5)
        self.metrics.records_produced.labels(self.topic).inc()

    def _on_journaled_delivery(self, seq: int, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self._delivered_seqs.append(seq)
        self._on_delivery(error, message)

    def _record_deliveries(self) -> None:
        """Mark the acknowledged records delivered in the journal (after each serve of reports)."""
        if self.journal is not None and self._delivered_seqs:
            seqs, self._delivered_seqs = self._delivered_seqs, []
            self.journal.delivered(seqs)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        raw_key = message.key()
        key = raw_key.decode("utf-8", "replace") if raw_key else ""
        if error is not None:
            self.metrics.delivery_failures.labels(self.topic).inc()
            log.error("delivery of %s failed: %s", key, error)
            return
        self.metrics.records_delivered.labels(self.topic).inc()
        log.debug(
            "delivered key=%s ts=%d to %s[%d]@%d",
            key,
            message.timestamp()[1],
            message.topic(),
            message.partition(),
            message.offset(),
        )

    # ---- the loop ------------------------------------------------------------------------------

    def run(self, interval_s: float, stop: threading.Event, once: bool = False, max_polls: int | None = None) -> int:
        """Poll every `interval_s` until `stop` is set (or once / `max_polls` times); return polls made.

        Transient failures (all retries used) are logged and counted, and the next poll comes at
        its time; a rejected key or request and an exhausted credit budget end the run (raised).
        In `once` mode any failure is raised.
        """
        polls = 0
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                self.poll_once()
                self.metrics.polls.labels("ok").inc()
            except ShutdownRequested:
                break
            except (LcwRejectedError, CreditBudgetExceeded):
                self.metrics.polls.labels("failed").inc()
                raise
            except LcwError as error:
                self.metrics.polls.labels("failed").inc()
                if once:
                    raise
                log.error("poll failed, next poll at its time: %s", error)
            polls += 1
            if once or (max_polls is not None and polls >= max_polls):
                break
            next_at += interval_s
            now = time.monotonic()
            if next_at < now:  # a slow poll (retries): start again from now, do not burst
                next_at = now
            self._serve_until(next_at, stop)
        return polls

    def _serve_until(self, deadline: float, stop: threading.Event) -> None:
        """Wait for the next poll while serving delivery reports; return early on stop."""
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.producer.poll(min(left, 0.1))
            self._record_deliveries()

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for every outstanding delivery report; return how many are still unacknowledged."""
        remaining = self.producer.flush(timeout_s)
        self._record_deliveries()
        return remaining


def interruptible_sleep(stop: threading.Event) -> Callable[[float], None]:
    """A `sleep` for the client's retry waits that ends early, raising `ShutdownRequested`, on stop."""

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise ShutdownRequested()

    return sleep
