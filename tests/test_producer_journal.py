"""The producer's journal: what a broker that forgot its topics had been given is published again.

A local broker killed with records the consumers had not read yet loses them, though the producer
was told they were delivered. The producer journals every poll before producing; at start it
publishes again, marked as replays, what it had journaled for another incarnation of the topic.
"""

from __future__ import annotations

import json

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from coinstream.common.kafka_topics import REPLAY_HEADER, ensure_topics, topic_ids
from coinstream.local_broker import LocalBroker, free_port
from coinstream.producers.current import CurrentRatesProducer, PollResult
from coinstream.producers.journal import DeliveryJournal
from coinstream.producers.metrics import ProducerMetrics

TOPIC = "coins_current_full"
AT = 1_710_000_000_000


def read_all(bootstrap: str, expected: int) -> list[tuple[bytes, dict, int, bool]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "journal-reader",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    try:
        consumer.assign([TopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
        found = []
        for _ in range(100):
            for message in consumer.consume(100, 0.2):
                if not message.error():
                    headers = dict(message.headers() or [])
                    found.append(
                        (
                            message.key(),
                            json.loads(message.value()),
                            message.timestamp()[1],
                            headers.get(REPLAY_HEADER) == b"1",
                        )
                    )
            if len(found) >= expected:
                break
        return found
    finally:
        consumer.close()


def producer_for(bootstrap: str, journal: DeliveryJournal) -> CurrentRatesProducer:
    ensure_topics({"bootstrap.servers": bootstrap}, [TOPIC])
    topic_id = topic_ids(AdminClient({"bootstrap.servers": bootstrap}), [TOPIC])[TOPIC]
    assert topic_id
    return CurrentRatesProducer(
        None,
        Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True}),
        ["BTC", "ETH"],
        metrics=ProducerMetrics(),
        journal=journal,
        topic_id=topic_id,
    )


def coins(rate: float) -> list[dict]:
    return [{"code": "BTC", "rate": rate}, {"code": "ETH", "rate": rate / 20}]


def test_records_of_a_forgotten_incarnation_are_published_again_once(tmp_path):
    port = free_port()
    journal = DeliveryJournal(tmp_path / "journal.sqlite")
    with LocalBroker(port=port) as broker:
        producer = producer_for(broker.bootstrap, journal)
        assert producer.replay_forgotten() == 0  # a first start: nothing to publish again
        producer._publish(["BTC", "ETH"], coins(60_000.0), AT, PollResult())
        producer._publish(["BTC", "ETH"], coins(61_000.0), AT + 5_000, PollResult())
        assert producer.flush(30) == 0
        # Same incarnation: a restarted producer publishes nothing again.
        assert producer_for(broker.bootstrap, journal).replay_forgotten() == 0
    with LocalBroker(port=port) as broker:  # the same address, nothing kept
        producer = producer_for(broker.bootstrap, journal)
        assert producer.replay_forgotten() == 4
        assert [
            (key, value["rate"], value["fetched_at"], ts, replay)
            for key, value, ts, replay in read_all(broker.bootstrap, 4)
        ] == [
            (b"BTC", 60_000.0, AT, AT, True),
            (b"ETH", 3_000.0, AT, AT, True),
            (b"BTC", 61_000.0, AT + 5_000, AT + 5_000, True),
            (b"ETH", 3_050.0, AT + 5_000, AT + 5_000, True),
        ]
        # Now journaled for this incarnation: another start publishes nothing again.
        assert producer_for(broker.bootstrap, journal).replay_forgotten() == 0
    journal.close()
