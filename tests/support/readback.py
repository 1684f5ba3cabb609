"""Read back what a test produced: a plain consumer, assigned from the beginning.

Used by the producer tests (integration and end-to-end) to check that what was
sent arrives decoded, unchanged and in order per key.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from shopstream.config import Settings
from shopstream.events import DomainEvent
from shopstream.kafka.clients import make_reader
from shopstream.serde import EventDeserializer, make_registry_client


@dataclass(frozen=True)
class ReadBack:
    """One message read back and decoded."""

    topic: str
    partition: int
    offset: int
    key: str
    event_type_header: str
    event: DomainEvent


def read_topic(
    settings: Settings, topic: str, expected: int, timeout: float = 60.0
) -> list[ReadBack]:
    """Every message of ``topic`` (at least ``expected``), decoded, in partition/offset order."""
    consumer = make_reader(settings)
    deserializer = EventDeserializer(make_registry_client(settings.registry_config()))
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages = _poll_all(consumer, expected, len(partitions), timeout)
    finally:
        consumer.close()
    return sorted(
        (_decoded(deserializer, message) for message in messages),
        key=lambda read: (read.partition, read.offset),
    )


def _poll_all(consumer: Consumer, expected: int, partitions: int, timeout: float) -> list[Message]:
    messages: list[Message] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(messages) < expected or len(at_end) < partitions:
        if time.monotonic() > deadline:
            pytest.fail(f"read {len(messages)} of {expected} messages in {timeout:.0f} s")
        message = consumer.poll(0.5)
        if message is None:
            continue
        error = message.error()
        if error is not None and error.code() == KafkaError._PARTITION_EOF:
            at_end.add(message.partition() or 0)
            continue
        assert error is None, error
        at_end.discard(message.partition() or 0)
        messages.append(message)
    return messages


def _decoded(deserializer: EventDeserializer, message: Message) -> ReadBack:
    headers = dict(message.headers() or [])
    key = message.key()
    assert isinstance(key, bytes)
    return ReadBack(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=key.decode(),
        event_type_header=_text(headers.get("event_type")),
        event=deserializer.decode(message.value()).event,
    )


def _text(value: str | bytes | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def assert_read_back_as_sent(sent: Sequence[DomainEvent], read: Sequence[ReadBack]) -> None:
    """Same events, each under its aggregate key, each key on one partition, in order."""
    assert sorted(r.event.event_id for r in read) == sorted(e.event_id for e in sent)
    by_key_sent: dict[str, list[DomainEvent]] = defaultdict(list)
    for event in sent:
        by_key_sent[event.key].append(event)
    by_key_read: dict[str, list[ReadBack]] = defaultdict(list)
    for record in read:  # already in (partition, offset) order
        by_key_read[record.key].append(record)
    assert by_key_read.keys() == by_key_sent.keys()
    for key, records in by_key_read.items():
        assert len({r.partition for r in records}) == 1, f"key {key} on several partitions"
        assert [r.event for r in records] == by_key_sent[key]
        assert all(r.event_type_header == r.event.event_type for r in records)
