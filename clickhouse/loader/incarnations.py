"""Which incarnation of each topic the loader reads: a number that grows with every re-created topic.

Why: a topic deleted and created again under the same name (the local broker keeps topics in memory
and starts empty after a restart; an operator may re-create a topic) starts its offsets again at 0.
Offsets alone would then name messages that were landed before: the new messages would look like
redeliveries and their inserts would carry the deduplication tokens of the old ones, which
ClickHouse drops. Kafka gives every topic an ID when it is created (KIP-516); the loader registers
each ID it meets in `kafka_topic_incarnations` under the next epoch number of its topic (0 for the
first, the epoch of rows landed before incarnations were recorded) and stamps
every row with that epoch (`_topic_epoch`). Epochs order incarnations, which the views need to pick
a window's latest update across a re-creation (a new incarnation's offsets are smaller).

A broker without topic IDs reports "" for every topic: one incarnation for as long as it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

REGISTRY_TABLE = "kafka_topic_incarnations"


class TopicIncarnations:
    """Epoch per topic, from the topic IDs the broker reports and the registry in ClickHouse."""

    def __init__(self, client: Any, describe: Callable[[list[str]], dict[str, str]]) -> None:
        self._client = client
        self._describe = describe
        self._epochs: dict[str, int] = {}
        self._ids: dict[str, str] = {}

    def epoch(self, topic: str) -> int:
        """The epoch of `topic` as last refreshed (0 before the first refresh)."""
        return self._epochs.get(topic, 0)

    def refresh(self, topics: Iterable[str]) -> set[str]:
        """Look up the topics' IDs; register new ones. Returns the topics whose epoch changed."""
        wanted = sorted(set(topics))
        changed: set[str] = set()
        for topic, topic_id in self._describe(wanted).items():
            if self._ids.get(topic) == topic_id and topic in self._epochs:
                continue
            epoch = self._register(topic, topic_id)
            if self._epochs.get(topic) != epoch:
                if topic in self._epochs:
                    log.warning(
                        "loader: topic %s was re-created (ID %s, epoch %d -> %d): its "
                        "offsets start again and its messages are landed as new ones",
                        topic,
                        topic_id or "none",
                        self._epochs[topic],
                        epoch,
                    )
                changed.add(topic)
            self._ids[topic] = topic_id
            self._epochs[topic] = epoch
        return changed

    def _known(self, topic: str) -> dict[str, int]:
        rows = self._client.query(
            f"SELECT topic_id, min(epoch) FROM {REGISTRY_TABLE} WHERE topic = {{topic:String}} GROUP BY topic_id",
            parameters={"topic": topic},
        ).result_rows
        return {str(topic_id): int(epoch) for topic_id, epoch in rows}

    def _register(self, topic: str, topic_id: str) -> int:
        known = self._known(topic)
        if topic_id in known:
            return known[topic_id]
        # The first ID met is epoch 0, the epoch of rows landed before incarnations were recorded:
        # against a broker that keeps its topics, those rows are the same incarnation.
        epoch = max(known.values()) + 1 if known else 0
        self._client.insert(REGISTRY_TABLE, [(topic, topic_id, epoch)], column_names=["topic", "topic_id", "epoch"])
        # Two loaders registering the same ID at once agree on the smaller epoch.
        return self._known(topic)[topic_id]
