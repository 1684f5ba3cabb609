"""What the runner relies on when it takes partitions back: librdkafka keeps a
partition's pause through an unassignment, so a partition paused while the runner
waited to retry a batch, lost, and assigned back would never be read again.
:func:`assign_unpaused` is how the runner assigns; this is the real client."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from consumers.runtime.runner import assign_unpaused
from shopstream.config import Settings

pytestmark = pytest.mark.integration

MESSAGES = 10


def read_for(consumer: Consumer, seconds: float) -> int:
    count, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline and count < MESSAGES:
        count += len([m for m in consumer.consume(MESSAGES, 0.5) if m.error() is None])
    return count


@pytest.mark.parametrize("unpause", [False, True], ids=["plain-assign", "assign-unpaused"])
def test_a_partition_paused_then_unassigned_is_read_again_only_when_assigned_unpaused(
    settings: Settings, unique_name: str, unpause: bool
) -> None:
    topic = f"{unique_name}-paused"
    admin = AdminClient(dict(settings.kafka_config()))
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    producer = Producer(dict(settings.kafka_config()))
    for index in range(MESSAGES):
        producer.produce(topic, f"m{index}".encode(), partition=0)
    assert producer.flush(30) == 0
    config = {**settings.kafka_config(), "group.id": unique_name, "enable.auto.commit": False}
    consumer = Consumer(config)
    try:
        consumer.incremental_assign([TopicPartition(topic, 0, 0)])
        assert read_for(consumer, 15) == MESSAGES
        consumer.pause([TopicPartition(topic, 0)])
        consumer.incremental_unassign([TopicPartition(topic, 0)])
        if unpause:
            assign_unpaused(consumer, {(topic, 0): 0})
            assert read_for(consumer, 15) == MESSAGES
        else:  # librdkafka's behaviour the runner works around: still paused, silently
            consumer.incremental_assign([TopicPartition(topic, 0, 0)])
            assert read_for(consumer, 3) == 0
    finally:
        consumer.close()
        admin.delete_topics([topic], operation_timeout=10)
