"""Consumer lag of a Kafka consumer's assigned partitions, from what the consumer already knows.

Why shared: the loader and the ksql engine both publish lag per topic and partition on /metrics,
and both must compute it the same way, cheaply enough to do every reporting interval or commit
cycle: the high watermark is the one the last fetch response brought (`cached=True`), so there is
no broker round trip per partition — the consumer fetches continuously anyway.
"""

from __future__ import annotations

import logging

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
