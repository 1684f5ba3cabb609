"""Helpers for tests that run the whole pipeline: produce events, read topics back.

Everything goes through real processes and sockets: an :class:`EventProducer` on
the stack's broker, ``shopstream consume`` daemons, and plain readers for the DLQ.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message, TopicPartition

from consumers.runtime import dlq_writer
from producers.base import DEFAULT_CLOSE_TIMEOUT_S, EventProducer, ProducerOptions
from schemas import CART_TOPIC, ORDER_TOPIC, dlq_topic
from shopstream.config import Settings
from shopstream.events import DomainEvent
from shopstream.kafka.clients import MESSAGE_TIMEOUT_MS, make_admin, make_reader
from shopstream.kafka.topics import create_topics, project_topics


def create_project_topics(settings: Settings, partitions: int = 6) -> None:
    create_topics(settings, project_topics(partitions, prefix=settings.shopstream_topic_prefix))


def produce(
    settings: Settings,
    events: Iterable[DomainEvent],
    rate: float = 0.0,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT_S,
) -> int:
    """Produce ``events`` (at ``rate`` events/s, 0 = as fast as possible); all acked."""
    options = ProducerOptions(topic_prefix=settings.shopstream_topic_prefix)
    producer = EventProducer(settings, options)
    producer.start()
    started = time.monotonic()
    count = 0
    for count, event in enumerate(events, start=1):
        if rate > 0:
            delay = started + count / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.send(event)
    report = producer.close(close_timeout)
    report.raise_if_failed()
    return count


UNTIL_DELIVERED_OR_TIMED_OUT_S = MESSAGE_TIMEOUT_MS / 1000 + 30
"""How long a producer under faults waits at close: every event is then either delivered
or reported failed with librdkafka's reason. Once, in a full CI run under load, the
producer delivered nothing for over 75 s after a broker restart, and closing after 60 s
reported only "still queued"."""


@dataclass
class BackgroundProducer:
    """Produce events in a thread while the test injects faults."""

    settings: Settings
    events: Sequence[DomainEvent]
    rate: float
    error: BaseException | None = None
    produced: int = 0
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self) -> BackgroundProducer:
        self._thread = threading.Thread(target=self._run, daemon=True, name="producer")
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.produced = produce(
                self.settings, self.events, self.rate, UNTIL_DELIVERED_OR_TIMED_OUT_S
            )
        except BaseException as exc:
            self.error = exc

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def join(self, timeout: float) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "producer did not finish"
        if self.error is not None:
            raise self.error


def read_all(settings: Settings, topic: str, timeout: float = 30.0) -> list[Message]:
    """Every message of ``topic`` from the beginning to the current end."""
    admin = make_admin(settings)
    metadata = admin.list_topics(topic=topic, timeout=10)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        return []
    partitions = list(metadata.topics[topic].partitions)
    reader = make_reader(settings)
    try:
        ends = {
            p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        todo = {p for p, end in ends.items() if end > 0}
        reader.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for message in reader.consume(500, 0.5):
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise AssertionError(f"reading {topic}: {error}")
                    continue
                messages.append(message)
                partition = message.partition()
                offset = message.offset()
                if partition is not None and offset is not None and offset + 1 >= ends[partition]:
                    todo.discard(partition)
        assert not todo, f"could not read {topic} to its end"
        return messages
    finally:
        reader.close()


def header_texts(message: Message) -> dict[str, str]:
    """A message's headers as text: bytes decoded, no value "" (a repeated name: the last)."""
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {k: (v.decode() if isinstance(v, bytes) else v or "") for k, v in pairs}


@dataclass(frozen=True)
class DeadLetterRecord:
    group: str
    reason: str
    event_id: str | None
    topic: str
    partition: int
    offset: int


def dead_letters(settings: Settings) -> list[DeadLetterRecord]:
    """Every dead letter of both event topics, with its headers decoded."""
    records = []
    for topic in (CART_TOPIC, ORDER_TOPIC):
        for message in read_all(settings, dlq_topic(settings.topic(topic))):
            headers = header_texts(message)
            records.append(
                DeadLetterRecord(
                    group=headers[dlq_writer.GROUP],
                    reason=headers[dlq_writer.REASON],
                    event_id=headers.get(dlq_writer.EVENT_ID),
                    topic=headers[dlq_writer.TOPIC],
                    partition=int(headers[dlq_writer.PARTITION]),
                    offset=int(headers[dlq_writer.OFFSET]),
                )
            )
    return records
