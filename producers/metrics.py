"""Counters of the producers: records produced and delivered, failures, missing coins, credits, retries.

Why prometheus_client: a later issue exposes them on a /metrics endpoint; counters kept in a
`CollectorRegistry` per instance can be served as they are, and tests (or a summary line) read
them back without a global registry shared between runs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


def _total(counter: Counter, **labels: str) -> int:
    """The sum of a counter over every label combination matching `labels`."""
    return int(
        sum(
            sample.value
            for metric in counter.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
            and all(sample.labels.get(name) == value for name, value in labels.items())
        )
    )


class ProducerMetrics:
    """One producer process's counters (one registry, so several instances never collide)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.api_requests = Counter(
            "coinstream_lcw_requests",
            "LiveCoinWatch requests sent, by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.api_retries = Counter(
            "coinstream_lcw_retries", "LiveCoinWatch requests retried, by reason", ["reason"], registry=r
        )
        self.credits_used = Counter(
            "coinstream_lcw_credits_used", "LiveCoinWatch credits spent by this process", registry=r
        )
        self.records_produced = Counter(
            "coinstream_records_produced", "Records handed to the Kafka producer", ["topic"], registry=r
        )
        self.records_delivered = Counter(
            "coinstream_records_delivered", "Records the broker acknowledged", ["topic"], registry=r
        )
        self.delivery_failures = Counter(
            "coinstream_delivery_failures", "Records the broker did not acknowledge", ["topic"], registry=r
        )
        self.coins_missing = Counter(
            "coinstream_coins_missing",
            "Requested coins not published: absent from the answer or rate null",
            ["code", "reason"],
            registry=r,
        )
        self.polls = Counter("coinstream_polls", "Polls of the API, by outcome", ["outcome"], registry=r)
        # NaN until the client has a credit guard and has read /credits (`coinstream up`'s status line).
        self.credits_remaining = Gauge(
            "coinstream_lcw_credits_remaining",
            "Credits this process may still spend today: min(its budget, the API's daily limit) "
            "minus the key's use as of the last /credits plus this process's requests since",
            registry=r,
        )
        self.credits_remaining.set(float("nan"))

    def snapshot(self) -> dict[str, int]:
        """Totals over all labels, for summary lines and tests."""
        return {
            "api_requests": _total(self.api_requests),
            "api_retries": _total(self.api_retries),
            "credits_used": _total(self.credits_used),
            "records_produced": _total(self.records_produced),
            "records_delivered": _total(self.records_delivered),
            "delivery_failures": _total(self.delivery_failures),
            "coins_missing": _total(self.coins_missing),
            "polls_ok": _total(self.polls, outcome="ok"),
            "polls_failed": _total(self.polls, outcome="failed"),
        }

    def retries_by_reason(self) -> dict[str, int]:
        return {
            sample.labels["reason"]: int(sample.value)
            for metric in self.api_retries.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        }

    def missing_by_reason(self) -> dict[tuple[str, str], int]:
        return {
            (sample.labels["code"], sample.labels["reason"]): int(sample.value)
            for metric in self.coins_missing.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        }
