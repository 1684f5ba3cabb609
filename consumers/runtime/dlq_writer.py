"""Dead-letter writer: events a group could not decode or apply go to ``<topic>.dlq``.

The dead letter keeps the original key and value (so it can be replayed as is) and
says why in headers: ``dlq.reason`` (short code), ``dlq.error`` (one line),
``dlq.group``, ``dlq.topic``, ``dlq.partition``, ``dlq.offset``, ``dlq.timestamp``,
plus the original headers (``event_type``). Writes are flushed and confirmed before
the batch's offsets are committed: a write that fails stops the group rather than
skip the event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from schemas import dlq_topic
from shopstream.config import Settings
from shopstream.errors import ShopstreamError
from shopstream.kafka.clients import make_producer

REASON = "dlq.reason"
ERROR = "dlq.error"
GROUP = "dlq.group"
TOPIC = "dlq.topic"
PARTITION = "dlq.partition"
OFFSET = "dlq.offset"
TIMESTAMP = "dlq.timestamp"
EVENT_ID = "dlq.event_id"


class DeadLetterFailed(ShopstreamError):
    """A dead letter could not be written: the group stops instead of skipping it."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    reason: str
    error: str
    event_id: str | None = None


@dataclass
class DeadLetterWriter:
    """Writes dead letters for one group; ``write_all`` returns once all are acked."""

    settings: Settings
    group_id: str
    flush_timeout_s: float = 120.0
    _producer: Producer | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        if self._producer is None:
            self._producer = make_producer(
                self.settings,
                **{"linger.ms": 0, "message.timeout.ms": int(self.flush_timeout_s * 1000)},
            )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None

    def write_all(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        self.start()
        producer = self._producer
        assert producer is not None
        failures: list[str] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error.str())

        for letter in letters:
            self._produce(producer, letter, on_delivery)
        remaining = producer.flush(self.flush_timeout_s)
        if remaining or failures:
            detail = failures[0] if failures else f"{remaining} not acknowledged"
            raise DeadLetterFailed(
                f"group {self.group_id}: could not write {len(letters)} dead letter(s): {detail}"
            )

    def _produce(self, producer: Producer, letter: DeadLetter, on_delivery: Any) -> None:
        headers: list[tuple[str, str | bytes | None]] = [
            (k, v) for k, v in letter.headers if not k.startswith("dlq.")
        ]
        headers += [
            (REASON, letter.reason.encode()),
            (ERROR, letter.error[:1000].encode()),
            (GROUP, self.group_id.encode()),
            (TOPIC, letter.topic.encode()),
            (PARTITION, str(letter.partition).encode()),
            (OFFSET, str(letter.offset).encode()),
            (TIMESTAMP, datetime.now(UTC).isoformat(timespec="milliseconds").encode()),
        ]
        if letter.event_id:
            headers.append((EVENT_ID, letter.event_id.encode()))
        while True:
            try:
                producer.produce(
                    dlq_topic(letter.topic),
                    key=letter.key,
                    value=letter.value,
                    headers=headers,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
