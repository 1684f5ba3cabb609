"""THE Kafka offset look-ups: end offsets (high watermarks), a partition's bounds, and a
message's coordinates."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Message, TopicPartition
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

from shopstream.config import Settings
from shopstream.kafka.clients import METADATA_TIMEOUT_S, make_admin

TopicPartitionKey = tuple[str, int]


def end_offsets(
    settings: Settings, partitions: Sequence[TopicPartitionKey]
) -> dict[TopicPartitionKey, int]:
    """Current end (high watermark) offsets, in one request on an admin connection.

    (The consumer's own ``get_watermark_offsets`` queues behind its long-poll fetches.)
    """
    admin = make_admin(settings)
    request = {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions}  # type: ignore[no-untyped-call]
    futures = admin.list_offsets(request, request_timeout=15)
    return {(tp.topic, tp.partition): int(future.result().offset) for tp, future in futures.items()}


def offset_bounds(
    settings: Settings, partitions: Sequence[TopicPartitionKey]
) -> dict[TopicPartitionKey, tuple[int, int]]:
    """(start, end) offsets of each partition: the first offset it still holds and its
    high watermark, in two requests on an admin connection."""
    if not partitions:
        return {}
    admin = make_admin(settings)
    result: dict[TopicPartitionKey, list[int]] = {key: [0, 0] for key in partitions}
    for index, spec in enumerate((OffsetSpec.earliest(), OffsetSpec.latest())):  # type: ignore[no-untyped-call]
        request = {TopicPartition(t, p): spec for t, p in partitions}
        futures = admin.list_offsets(request, request_timeout=15)
        for tp, future in futures.items():
            result[(tp.topic, tp.partition)][index] = int(future.result().offset)
    return {key: (low, high) for key, (low, high) in result.items()}


def topic_end_offsets(settings: Settings, topic: str) -> dict[TopicPartitionKey, int] | None:
    """Current end offsets of every partition of ``topic``; None when it does not exist.

    Looked up in the full metadata, never by naming the topic: a metadata request
    naming a missing topic can make a broker with ``auto.create.topics.enable`` create it.
    """
    metadata = make_admin(settings).list_topics(timeout=METADATA_TIMEOUT_S).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return None
    return end_offsets(settings, [(topic, partition) for partition in sorted(metadata.partitions)])


def coordinates(message: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a fetched (non-error) message."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError("message without coordinates")
    return topic, partition, offset
