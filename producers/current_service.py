"""The current-rates producer assembled from the settings: the one place its parts are built.

`coinstream produce current` opens a `CurrentService`, runs its producer and closes it, as
`coinstream backfill` does with `producers.historical.HistoricalService`: each producer's parts —
the API client with its credit guard, the delivery journal, the Kafka producer and the topic's
incarnation — are wired here, not in the command line.
"""

from __future__ import annotations

import threading
from types import TracebackType

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from coinstream.common.kafka_config import admin_config, producer_config
from coinstream.common.kafka_topics import topic_ids
from coinstream.common.settings import Settings
from coinstream.producers.client import LiveCoinWatchClient
from coinstream.producers.credits import CreditGuard
from coinstream.producers.current import TOPIC, CurrentRatesProducer, current_budget, interruptible_sleep, prepare_topic
from coinstream.producers.journal import DeliveryJournal
from coinstream.producers.metrics import ProducerMetrics

FLUSH_TIMEOUT_S = 30.0


class CurrentService:
    """The client, journal and producer of one `produce current` process.

    Creating it prepares the topic (a `KafkaException` when the broker cannot); `close` flushes
    what is still in flight and returns how many records stayed unacknowledged.
    """

    def __init__(self, settings: Settings, metrics: ProducerMetrics, stop: threading.Event, topic: str = TOPIC) -> None:
        self.topic = topic
        prepare_topic(settings, topic)
        budget, label = current_budget(settings)
        self.client = LiveCoinWatchClient.from_settings(
            settings, credits=CreditGuard(budget, label), metrics=metrics, sleep=interruptible_sleep(stop)
        )
        self.journal = DeliveryJournal(settings.coinstream_data_dir / "producer" / f"{topic}.sqlite")
        self.producer = CurrentRatesProducer(
            self.client,
            Producer(producer_config(settings)),
            list(settings.coins),
            settings.currency,
            topic,
            metrics,
            self.journal,
            topic_ids(AdminClient(admin_config(settings)), [topic]).get(topic, ""),
            max_clock_skew_ms=settings.rate_max_clock_skew_ms,
        )

    def close(self) -> int:
        """Flush the producer, close the client and the journal; the records still unacknowledged."""
        try:
            return self.producer.flush(FLUSH_TIMEOUT_S)
        finally:
            self.client.close()
            self.journal.close()

    def __enter__(self) -> CurrentService:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
