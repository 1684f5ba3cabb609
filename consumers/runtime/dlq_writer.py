"""Dead-letter writer: events a group could not decode or apply go to ``<topic>.dlq``.

The dead letter keeps the original key and value (so it can be replayed as is) and
says why in headers: ``dlq.reason`` (short code), ``dlq.error`` (one line),
``dlq.group``, ``dlq.topic``, ``dlq.partition``, ``dlq.offset``, ``dlq.timestamp``,
plus the original headers (``event_type``). An event the database refused
(``db-rejected``) also carries ``dlq.db.code`` (the SQLSTATE, or SQLite's error name)
and ``dlq.db.message`` (the database's message, one line).

A letter too large to write as it is (the value near the client's ``message.max.bytes``,
or refused by the broker as too large) is written with its value cut, and
``dlq.value.size`` and ``dlq.value.sha256`` describe the original value.

Writes are confirmed before the batch's offsets are committed, but never waited for
longer than ``ack_wait_s`` (the batch's transaction is open meanwhile): when the broker
does not confirm them in time, :class:`DeadLetterUnavailable` rolls the batch back,
and the runner pauses and retries it. Letters already confirmed (or still on their way)
are not produced again by the retry.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import KafkaError, KafkaException, Message, Producer

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
DB_CODE = "dlq.db.code"
DB_MESSAGE = "dlq.db.message"
VALUE_SIZE = "dlq.value.size"
VALUE_SHA256 = "dlq.value.sha256"

CLIENT_MESSAGE_MAX_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes`` (when the settings do not set one)."""

LETTER_HEADROOM_BYTES = 8_192
"""Kept free below the limit for the headers this writer adds after the cut."""

SMALL_VALUE_BYTES = 65_536
"""The value is cut to this when the broker refuses a letter as too large anyway."""

LetterKey = tuple[str, int, int]
"""A letter is known by its original message's topic, partition and offset."""


class DeadLetterUnavailable(ShopstreamError):
    """Dead letters were not confirmed in time: the batch is rolled back and retried."""


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
    details: tuple[tuple[str, str], ...] = ()
    """More ``dlq.*`` headers, e.g. the database's code and message."""

    @property
    def coordinates(self) -> LetterKey:
        return (self.topic, self.partition, self.offset)


@dataclass
class DeadLetterWriter:
    """Writes dead letters for one group; ``write_all`` returns once all are acked.

    Used by one thread at a time (the group's writer); delivery reports are served on
    that thread, inside ``write_all``.
    """

    settings: Settings
    group_id: str
    ack_wait_s: float = 10.0
    _producer: Producer | None = field(default=None, init=False, repr=False)
    _max_bytes: int = field(default=CLIENT_MESSAGE_MAX_BYTES, init=False)
    _delivered: set[LetterKey] = field(default_factory=set, init=False)
    _in_flight: set[LetterKey] = field(default_factory=set, init=False)
    _cut_small: set[LetterKey] = field(default_factory=set, init=False)
    _last_error: str = field(default="", init=False)

    def start(self) -> None:
        if self._producer is None:
            # Not idempotent: a letter that timed out is simply produced again (the DLQ is
            # at-least-once), and no fatal idempotence error can end the producer.
            overrides = {"linger.ms": 0, "enable.idempotence": False}
            self._producer = make_producer(self.settings, **overrides)
            configured = self.settings.kafka_config().get("message.max.bytes")
            self._max_bytes = int(configured) if configured else CLIENT_MESSAGE_MAX_BYTES

    def close(self) -> None:
        """Drop letters not confirmed yet: their batches were not committed, so they are
        written again by whoever reads those offsets next (waiting only delays the exit)."""
        if self._producer is not None:
            self._producer.purge()
            self._producer.flush(1)
            self._producer = None

    def write_all(self, letters: Sequence[DeadLetter]) -> None:
        """Produce the letters not yet confirmed; wait up to ``ack_wait_s`` for all of
        them; raise :class:`DeadLetterUnavailable` when some are not confirmed."""
        if not letters:
            return
        self.start()
        producer = self._producer
        assert producer is not None
        deadline = time.monotonic() + self.ack_wait_s
        for _ in range(2):  # the second round re-sends letters the broker found too large
            cut_small = set(self._cut_small)
            for letter in letters:
                key = letter.coordinates
                if key not in self._delivered and key not in self._in_flight:
                    self._produce(producer, letter)
            producer.flush(max(0.0, deadline - time.monotonic()))
            if not (self._cut_small - cut_small - self._delivered):
                break
        missing = sum(1 for letter in letters if letter.coordinates not in self._delivered)
        if missing:
            raise DeadLetterUnavailable(
                f"group {self.group_id}: {missing} of {len(letters)} dead letter(s) not "
                f"confirmed within {self.ack_wait_s:g}s: {self._last_error or 'no answer'}"
            )

    def forget(self, letters: Sequence[DeadLetter]) -> None:
        """The letters' batch committed: a later letter at the same offset is new."""
        for letter in letters:
            key = letter.coordinates
            self._delivered.discard(key)
            self._cut_small.discard(key)

    def forget_partitions(self, partitions: set[tuple[str, int]]) -> None:
        """Partitions given up: whoever reads them next writes their letters."""
        for known in (self._delivered, self._cut_small):
            known.difference_update({k for k in known if (k[0], k[1]) in partitions})

    def _produce(self, producer: Producer, letter: DeadLetter) -> None:
        key = letter.coordinates
        headers = self._headers(letter)
        limit = SMALL_VALUE_BYTES if key in self._cut_small else self._value_limit(letter, headers)
        value = letter.value
        if value is not None and len(value) > limit:
            headers += [
                (VALUE_SIZE, str(len(value)).encode()),
                (VALUE_SHA256, hashlib.sha256(value).hexdigest().encode()),
            ]
            value = value[:limit]
        produced: list[tuple[str, str | bytes | None]] = list(headers)
        self._in_flight.add(key)
        while True:
            try:
                producer.produce(
                    dlq_topic(letter.topic),
                    key=letter.key,
                    value=value,
                    headers=produced,
                    on_delivery=self._on_delivery(key),
                )
                break
            except BufferError:
                producer.poll(0.1)
            except KafkaException as exc:
                self._in_flight.discard(key)
                error: KafkaError = exc.args[0]
                self._last_error = error.str()
                if error.code() == KafkaError.MSG_SIZE_TOO_LARGE and key not in self._cut_small:
                    self._cut_small.add(key)
                    self._produce(producer, letter)
                return
        producer.poll(0)

    def _value_limit(self, letter: DeadLetter, headers: list[tuple[str, bytes]]) -> int:
        """The largest value that keeps the letter under the client's size limit."""
        overhead = len(letter.key or b"") + sum(len(k) + len(v) for k, v in headers)
        return max(0, self._max_bytes - LETTER_HEADROOM_BYTES - overhead)

    def _headers(self, letter: DeadLetter) -> list[tuple[str, bytes]]:
        headers = [(k, v) for k, v in letter.headers if not k.startswith("dlq.")]
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
        headers += [(name, text[:1000].encode()) for name, text in letter.details]
        return headers

    def _on_delivery(self, key: LetterKey) -> Callable[[KafkaError | None, Message], None]:
        def delivered(error: KafkaError | None, _message: Message) -> None:
            self._in_flight.discard(key)
            if error is None:
                self._delivered.add(key)
                return
            self._last_error = error.str()
            if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                self._cut_small.add(key)

        return delivered
