"""Create the topics a component needs, if they are missing.

Why shared: producers, the ksql engine and the loader each make sure their topics exist at start,
with the partition count and replication factor from the settings; one function keeps the
"already exists is fine, anything else is an error" rule in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)

# The header a producer puts on a record it publishes again because the broker forgot the topic
# incarnation it was first delivered to (producers/journal.py); consumers skip what they hold.
REPLAY_HEADER = "coinstream-replay"


def is_replay(headers: list[tuple[str, bytes]] | None) -> bool:
    """Whether a consumed message's headers (confluent-kafka's list, or None) mark it a replay."""
    return headers is not None and any(name == REPLAY_HEADER for name, _value in headers)


def ensure_topics(
    admin_conf: dict[str, Any],
    topics: Iterable[str],
    partitions: int = 1,
    replication_factor: int = 1,
    config: dict[str, str] | None = None,
    timeout_s: float = 15.0,
) -> list[str]:
    """Create each missing topic; return the names that were created. Existing topics are kept as they are."""
    admin = AdminClient(admin_conf)
    wanted = list(dict.fromkeys(topics))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(name, num_partitions=partitions, replication_factor=replication_factor, config=config or {})
            for name in missing
        ],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
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


# The topic ID of a broker without topic IDs (Kafka before 2.8, librdkafka's mock cluster).
NO_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA"


def topic_ids(admin: AdminClient, topics: Iterable[str], timeout_s: float = 15.0) -> dict[str, str]:
    """The topic ID (KIP-516) of each existing topic in `topics`, as Kafka prints it.

    Why: a topic deleted and created again under the same name (a local broker that forgets on
    restart, an operator's re-create) starts its offsets again at 0; the ID is what tells the two
    incarnations apart. A broker without topic IDs answers "" for every topic (one incarnation);
    topics that do not exist are left out.
    """
    from confluent_kafka import TopicCollection

    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return {}
    found: dict[str, str] = {}
    futures = admin.describe_topics(TopicCollection(wanted), request_timeout=timeout_s)
    for name, future in futures.items():
        try:
            description = future.result(timeout=timeout_s)
        except KafkaException as error:
            if error.args and error.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                continue
            raise
        topic_id = str(description.topic_id) if description.topic_id is not None else ""
        found[name] = "" if topic_id == NO_TOPIC_ID else topic_id
    return found
