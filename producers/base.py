"""The event producer every shopstream producer is built on.

:class:`EventProducer` wraps a confluent-kafka ``Producer`` (idempotent, ``acks=all``,
from :func:`shopstream.kafka.clients.make_producer`) and an :class:`EventSerializer`. Events are
keyed by their aggregate id (``cart_id``, ``order_id``), so every cart's and every
order's events land on one partition, in the order they were sent; the idempotent
producer keeps that order across retries.

Each event is encoded by its type's :class:`~shopstream.serde.EventWriter` (a compiled
Avro encoder and the prebuilt framing, topic and header) straight into ``produce``.
Delivery reports are counted, not printed, served every :data:`POLL_EVERY` sends (and
while waiting for room or closing): :meth:`EventProducer.close` flushes and
returns a :class:`DeliveryReport` saying how many events were delivered, which ones
failed and why, and how many were still queued when the timeout ran out. A failure
is never silent: :meth:`DeliveryReport.raise_if_failed` turns it into
:class:`DeliveryFailed`, which the CLI prints as one ``error:`` line (exit 1).

With ``track_offsets=True`` the producer also remembers where each event landed, so
one-event commands can print the topic, partition and offset (:meth:`wait_for`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any, Protocol, Self, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas import SchemaCatalog, load_catalog
from shopstream.config import Settings
from shopstream.errors import ShopstreamError, UsageError
from shopstream.events import DomainEvent
from shopstream.kafka.clients import METADATA_TIMEOUT_S, check_broker, make_admin, make_producer
from shopstream.kafka.errors import describe_kafka_error
from shopstream.registry.admin import check_registry
from shopstream.serde import EncodedEvent, EventSerializer, make_registry_client

DEFAULT_CLOSE_TIMEOUT_S = 60.0
BUFFER_FULL_POLL_S = 0.05
PURGE_REPORTS_S = 1.0
POLL_EVERY = 1_000
"""Sends between two ``poll(0)`` calls serving delivery reports (polling after every
send costs about a microsecond each; librdkafka keeps the reports until polled)."""
STILL_QUEUED = "still queued when the producer closed (timeout)"
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})


class DeliveryFailed(ShopstreamError):
    """Some events were not delivered; the message counts them and says why."""

    exit_code = 1


class TopicMissing(ShopstreamError):
    """A topic the producer writes to does not exist on the broker."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class SentEvent:
    """Where one event landed."""

    topic: str
    partition: int
    offset: int
    key: str
    event_type: str
    event_id: str


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What happened to the events handed to a producer."""

    sent: int
    """Events handed to the producer."""
    delivered: int
    """Events the broker acknowledged (acks=all)."""
    failures: Mapping[str, int] = field(default_factory=dict)
    """Failed events by reason (``NAME: description``), including still-queued ones."""

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.delivered == self.sent

    def describe(self) -> str:
        """One line: ``3 of 100 events not delivered: 2 x REASON; 1 x REASON``."""
        if self.ok:
            return f"all {self.sent} events delivered"
        reasons = "; ".join(f"{count} x {reason}" for reason, count in self.failures.items())
        missing = self.sent - self.delivered
        return f"{missing} of {self.sent} events not delivered: {reasons or 'unknown reason'}"

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise DeliveryFailed(self.describe())


class EventSink(Protocol):
    """Where the typed producers (:mod:`producers.cart`, :mod:`producers.order`) hand
    the events they build: an :class:`EventProducer`, or a holder that sends later."""

    def send(self, event: DomainEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class ProducerOptions:
    """How an :class:`EventProducer` is built.

    ``topic_prefix`` sends every event to ``<prefix><topic>`` (and registers its
    schema under ``<prefix><topic>-<record>``): an isolated set of topics for a test
    or a tenant. None (the default) means the settings' ``SHOPSTREAM_TOPIC_PREFIX``.
    ``config`` overrides librdkafka settings of :func:`shopstream.kafka.clients.producer_config`
    (never the idempotence settings).
    """

    topic_prefix: str | None = None
    track_offsets: bool = False
    auto_register: bool = True
    check_topics: bool = True
    config: Mapping[str, Any] = field(default_factory=dict)


_PROTECTED_CONFIG = frozenset({"enable.idempotence", "acks"})
_Headers = list[tuple[str, str | bytes | None]]


_Message = tuple[str, bytes, bytes, list[tuple[str, bytes]]]
"""topic, value, key and headers of one ``Producer.produce``."""


class EventProducer:
    """Encode typed events and produce them keyed by aggregate id.

    Lifecycle: ``start()`` (checks the broker, the registry and the topics, then
    creates the Kafka producer), ``send()`` any number of times, ``close()`` (flush,
    then the :class:`DeliveryReport`). Also a context manager doing both.
    """

    def __init__(
        self,
        settings: Settings,
        options: ProducerOptions | None = None,
        *,
        registry: SchemaRegistryClient | None = None,
    ) -> None:
        self._settings = settings
        self._options = options or ProducerOptions()
        self._track_offsets = self._options.track_offsets
        prefix = self._options.topic_prefix
        self._catalog = _prefixed_catalog(
            settings.shopstream_topic_prefix if prefix is None else prefix
        )
        self._serializer = EventSerializer(
            registry or make_registry_client(settings.registry_config()),
            catalog=self._catalog,
            auto_register=self._options.auto_register,
        )
        self._producer: Producer | None = None
        self._report: DeliveryReport | None = None
        self._sent = 0
        self._unpolled = 0
        self._delivered = 0
        self._failures: Counter[str] = Counter()
        self._locations: dict[str, SentEvent] = {}
        self._failed_ids: dict[str, str] = {}
        self._last_client_error: str | None = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def serializer(self) -> EventSerializer:
        return self._serializer

    @property
    def topics(self) -> list[str]:
        """The topics this producer writes to (prefixed)."""
        return self._catalog.topics

    def start(self, *, check: bool = True) -> Self:
        """Fail fast (broker, registry, topics), then create the Kafka producer."""
        if self._producer is not None:
            return self
        if self._report is not None:
            raise ShopstreamError("this producer was closed; create a new one")
        if check:
            self._check_ready()
        self._producer = make_producer(self._settings, **self._producer_overrides())
        return self

    def _check_ready(self) -> None:
        check_broker(self._settings)
        check_registry(self._settings)
        self._serializer.prepare()
        if self._options.check_topics:
            self._check_topics()

    def _check_topics(self) -> None:
        metadata = make_admin(self._settings).list_topics(timeout=METADATA_TIMEOUT_S)
        missing = [topic for topic in self.topics if topic not in metadata.topics]
        if missing:
            which = (
                f"topic {missing[0]} does not"
                if len(missing) == 1
                else (f"topics {', '.join(missing)} do not")
            )
            raise TopicMissing(
                f"{which} exist on {self._settings.kafka_bootstrap_servers} "
                "(create them first, e.g. 'shopstream topics create')"
            )

    def _producer_overrides(self) -> dict[str, Any]:
        overrides = dict(self._options.config)
        protected = _PROTECTED_CONFIG & overrides.keys()
        if protected:
            raise UsageError(f"producer setting {sorted(protected)[0]} cannot be overridden")
        overrides["on_delivery"] = self._on_delivery
        overrides["error_cb"] = self._on_client_error
        return overrides

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT_S) -> DeliveryReport:
        """Flush (up to ``timeout`` seconds) and report. Idempotent.

        Events still queued when the timeout runs out are purged (so closing never
        hangs) and counted as failed: ``sent == delivered + failed`` always holds.
        """
        if self._report is not None:
            return self._report
        producer, self._producer = self._producer, None
        if producer is not None and producer.flush(timeout):
            producer.purge()
            producer.flush(PURGE_REPORTS_S)  # serves the purged events' reports
        unaccounted = self._sent - self._delivered - sum(self._failures.values())
        if unaccounted > 0:
            self._failures[self._still_queued_reason()] += unaccounted
        self._report = self.report()
        return self._report

    def _still_queued_reason(self) -> str:
        if self._last_client_error:
            return f"{STILL_QUEUED}; last client error {self._last_client_error}"
        return STILL_QUEUED

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- sending -----------------------------------------------------------

    def _running(self) -> Producer:
        if self._producer is None:
            raise ShopstreamError("the producer is not started (call start() first)")
        return self._producer

    def send(self, event: DomainEvent) -> None:
        """Encode ``event`` and hand it to Kafka, keyed by its aggregate id."""
        writer = self._serializer.writer(event.event_type)
        self._send(
            writer.topic,
            writer.encode_value(event),
            writer.key_of(event).encode(),
            writer.headers,
            writer.event_type,
            event.event_id,
        )

    def send_all(self, events: Iterable[DomainEvent]) -> int:
        """Send every event; returns how many were handed over."""
        count = 0
        for event in events:
            self.send(event)
            count += 1
        return count

    def send_encoded(self, encoded: EncodedEvent, event_id: str = "") -> None:
        """Produce pre-encoded bytes (from :attr:`serializer`), polling for reports."""
        self._send(
            encoded.topic,
            encoded.value,
            encoded.key,
            encoded.headers,
            encoded.event_type,
            event_id,
        )

    def _send(
        self,
        topic: str,
        value: bytes,
        key: bytes,
        headers: list[tuple[str, bytes]],
        event_type: str,
        event_id: str,
    ) -> None:
        producer = self._producer
        if producer is None:
            raise ShopstreamError("the producer is not started (call start() first)")
        try:
            if self._track_offsets:
                self._produce(producer, (topic, value, key, headers), event_type, event_id)
            else:  # the common case, inlined
                producer.produce(topic, value, key, headers=cast(_Headers, headers))
        except BufferError:
            message = (topic, value, key, headers)
            if not self._produce_when_room(producer, message, event_type, event_id):
                return
        except KafkaException as exc:
            self._refused(event_id, exc)
            return
        self._sent += 1
        self._unpolled += 1
        if self._unpolled >= POLL_EVERY:
            self._unpolled = 0
            producer.poll(0)

    def _produce(
        self, producer: Producer, message: _Message, event_type: str, event_id: str
    ) -> None:
        topic, value, key, headers = message
        if not self._track_offsets:
            producer.produce(topic, value, key, headers=cast(_Headers, headers))
            return
        on_delivery = partial(self._on_tracked_delivery, event_id, event_type)
        producer.produce(
            topic, value, key, headers=cast(_Headers, headers), on_delivery=on_delivery
        )

    def _produce_when_room(
        self, producer: Producer, message: _Message, event_type: str, event_id: str
    ) -> bool:
        """The local queue is full: serve delivery reports until the event fits."""
        while True:
            producer.poll(BUFFER_FULL_POLL_S)
            try:
                self._produce(producer, message, event_type, event_id)
                return True
            except BufferError:
                continue
            except KafkaException as exc:
                self._refused(event_id, exc)
                return False

    def _refused(self, event_id: str, exc: KafkaException) -> None:
        """produce() itself refused the message: count it as sent and failed."""
        error = exc.args[0] if exc.args else None
        reason = describe_kafka_error(error) if isinstance(error, KafkaError) else str(exc)
        self._sent += 1
        self._failures[reason] += 1
        if self._track_offsets:
            self._failed_ids[event_id] = reason

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports for up to ``timeout`` seconds (use it to wait)."""
        return int(self._running().poll(timeout))

    def flush(self, timeout: float = DEFAULT_CLOSE_TIMEOUT_S) -> int:
        """Wait for outstanding deliveries; returns how many are still queued."""
        return int(self._running().flush(timeout))

    def wait_for(self, event: DomainEvent, timeout: float = DEFAULT_CLOSE_TIMEOUT_S) -> SentEvent:
        """Flush and return where ``event`` landed (``track_offsets=True`` only)."""
        if not self._track_offsets:
            raise ShopstreamError("wait_for() needs ProducerOptions(track_offsets=True)")
        event_id = event.event_id
        if event_id not in self._locations and event_id not in self._failed_ids:
            self.flush(timeout)
        location = self._locations.get(event_id)
        if location is not None:
            return location
        reason = self._failed_ids.get(event_id) or f"not acknowledged within {timeout:g}s"
        raise DeliveryFailed(f"{event.event_type} {event_id} was not delivered: {reason}")

    # -- reports -------------------------------------------------------------

    def report(self) -> DeliveryReport:
        """The counts so far (final once :meth:`close` returned)."""
        return DeliveryReport(
            sent=self._sent,
            delivered=self._delivered,
            failures=dict(self._failures),
        )

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is None:
            self._delivered += 1
        else:
            self._failures[self._failure_reason(error)] += 1

    def _failure_reason(self, error: KafkaError) -> str:
        if error.code() in _PURGED:
            return self._still_queued_reason()
        return describe_kafka_error(error)

    def _on_tracked_delivery(
        self, event_id: str, event_type: str, error: KafkaError | None, message: Message
    ) -> None:
        self._on_delivery(error, message)
        if error is not None:
            self._failed_ids[event_id] = self._failure_reason(error)
            return
        self._locations[event_id] = _location(message, event_type, event_id)

    def _on_client_error(self, error: KafkaError) -> None:
        self._last_client_error = describe_kafka_error(error)


def _prefixed_catalog(prefix: str) -> SchemaCatalog:
    try:
        return load_catalog().with_topic_prefix(prefix)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _location(message: Message, event_type: str, event_id: str) -> SentEvent:
    key = message.key()
    partition = message.partition()
    offset = message.offset()
    return SentEvent(
        topic=message.topic() or "",
        partition=-1 if partition is None else partition,
        offset=-1 if offset is None else offset,
        key=key.decode() if isinstance(key, bytes) else str(key),
        event_type=event_type,
        event_id=event_id,
    )
