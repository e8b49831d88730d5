"""Create the topics a component needs, if they are missing.

Why shared: producers, the ksql engine and the loader each make sure their topics exist at start,
with the partition count and replication factor from the settings; one function keeps the
"already exists is fine, anything else is an error" rule in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)


def ensure_topics(
    admin_conf: dict, topics: Iterable[str], partitions: int = 1, replication_factor: int = 1,
    config: dict[str, str] | None = None, timeout_s: float = 15.0,
) -> list[str]:
    """Create each missing topic; return the names that were created. Existing topics are kept as they are."""
    admin = AdminClient(admin_conf)
    wanted = list(dict.fromkeys(topics))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=replication_factor,
                  config=config or {}) for name in missing],
        operation_timeout=timeout_s, request_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
            log.info("created topic %s (%d partitions)", name, partitions)
        except KafkaException as error:
            if error.args and error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise
    return created
