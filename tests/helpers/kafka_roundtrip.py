"""Produce or consume keyed JSON messages in a process of its own (used by the broker tests).

    python -m tests.helpers.kafka_roundtrip produce BOOTSTRAP TOPIC COUNT
    python -m tests.helpers.kafka_roundtrip consume BOOTSTRAP TOPIC GROUP MAX_MESSAGES IDLE_S

`consume` prints one JSON line per message ({"key", "value", "partition", "offset"}), commits the
offsets of exactly what it printed, and exits after MAX_MESSAGES or IDLE_S seconds without a message.
"""

from __future__ import annotations

import json
import sys
import time

from confluent_kafka import Consumer, Producer


def produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "broker.address.family": "v4"}
    )
    delivered = 0

    def on_delivery(error, _message) -> None:
        nonlocal delivered
        if error is None:
            delivered += 1

    for index in range(count):
        value = json.dumps({"index": index, "code": f"C{index % 7}", "rate": index * 0.5})
        producer.produce(topic, key=f"key-{index}".encode(), value=value.encode(), on_delivery=on_delivery)
        producer.poll(0)
    producer.flush(30)
    print(json.dumps({"delivered": delivered}))


def consume(bootstrap: str, topic: str, group: str, max_messages: int, idle_s: float) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "broker.address.family": "v4",
            # Fetch one message at a time from the local queue so nothing beyond what we print is consumed.
            "enable.partition.eof": False,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    last_message_at = time.monotonic()
    while seen < max_messages and time.monotonic() - last_message_at < idle_s:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            print(json.dumps({"error": str(message.error())}), file=sys.stderr)
            continue
        print(
            json.dumps(
                {
                    "key": message.key().decode(),
                    "value": json.loads(message.value()),
                    "partition": message.partition(),
                    "offset": message.offset(),
                }
            )
        )
        seen += 1
        last_message_at = time.monotonic()
    if seen:
        consumer.commit(asynchronous=False)
    consumer.close()


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "produce":
        produce(args[0], args[1], int(args[2]))
    else:
        consume(args[0], args[1], args[2], int(args[3]), float(args[4]))
