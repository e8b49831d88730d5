"""Consumer lag of a Kafka consumer's assigned partitions, from what the consumer already knows.

Why shared: the loader and the ksql engine both publish lag per topic and partition on /metrics,
and both must compute it the same way, cheaply enough to do every reporting interval or commit
cycle: the high watermark is the one the last fetch response brought (`cached=True`), so there is
no broker round trip per partition — the consumer fetches continuously anyway.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaException

log = logging.getLogger(__name__)


def consumer_lag(consumer: Consumer) -> dict[tuple[str, int], int]:
    """high watermark - position for each assigned partition, by (topic, partition).

    Partitions whose position or high watermark is not known yet (nothing fetched since the
    assignment) are left out rather than reported as 0; so is everything when the consumer cannot
    answer (closed, or between assignments).
    """
    lag: dict[tuple[str, int], int] = {}
    try:
        assignment = consumer.assignment()
        if not assignment:
            return lag
        for tp in consumer.position(assignment):
            if tp.offset < 0:
                continue
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                lag[(tp.topic, tp.partition)] = max(0, high - tp.offset)
    except (KafkaException, RuntimeError) as error:
        log.debug("consumer lag unavailable: %s", error)
    return lag


def committed_lag(client_config: dict[str, Any], group: str, topics: list[str], timeout_s: float = 10.0) -> int:
    """Messages in `topics` that consumer group `group` has not committed yet, summed.

    Asked of the broker (committed offsets and high watermarks), so it holds for a group whose
    members are gone or elsewhere. A partition without a committed offset counts from its low
    watermark; a topic that does not exist counts 0.
    """
    from confluent_kafka import TopicPartition

    probe = Consumer({**client_config, "group.id": group, "enable.auto.commit": False})
    try:
        metadata = probe.list_topics(timeout=timeout_s)
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            if topic in metadata.topics
            for partition in metadata.topics[topic].partitions
        ]
        if not partitions:
            return 0
        total = 0
        for tp in probe.committed(partitions, timeout=timeout_s):
            low, high = probe.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
            total += max(0, high - max(tp.offset, low))
        return total
    finally:
        probe.close()
