"""The outbox relay: publishes pending outbox rows to Kafka and marks them sent.

One pass: read up to ``batch_size`` pending rows in id order
(:func:`shopstream.services.outbox.pending`), encode each event (the registry's
schema, Confluent framing), hand them all to the idempotent producer (``acks=all``,
keyed by the aggregate id, so each aggregate's events keep their order on one
partition), flush once (every acknowledgement in), then mark the acknowledged rows
sent in one ``UPDATE`` (``sent_at`` = when the flush returned: the lag measured is
commit → the relay knows Kafka has it). The next pass starts only after that, so a
row is never in flight twice from one relay.

A relay killed between Kafka's acknowledgement and the marking re-sends those rows
when it (or another relay) starts: the same event, the same ``event_id``, which the
consumer groups' deduplication absorbs. Rows of one aggregate are pending as a
suffix of that aggregate's rows (earlier ones were marked in an earlier pass or in
the same transaction), so a re-send repeats events but never moves one before an
earlier one of its aggregate.

On PostgreSQL only one relay publishes at a time: it holds a session-level advisory
lock on a dedicated connection, which also ``LISTEN``\\s on the outbox channel (a
commit that wrote events wakes the relay at once). Other relays wait as standbys; a
relay killed with ``kill -9`` loses the lock with its connection. On SQLite (one
process) the service wakes its relay in-process.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from confluent_kafka import KafkaError, Message, Producer
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from schemas import load_catalog
from shopstream.config import Settings
from shopstream.db.engine import describe_db_error, libpq_url
from shopstream.errors import ShopstreamError
from shopstream.events import now_utc
from shopstream.kafka.clients import METADATA_TIMEOUT_S, check_broker, make_admin, make_producer
from shopstream.logs import get_logger
from shopstream.serde import EventSerializer, make_registry_client
from shopstream.services import outbox
from shopstream.services.metrics import ServiceMetrics

log = get_logger("shopstream.relay")

LEADER_LOCK_ID = 0x5350_4F55_5442_4F58  # "SPOUTBOX": one relay per database
RETRY_BACKOFF_S = 1.0


@dataclass(frozen=True)
class RelayOptions:
    batch_size: int = 1000
    idle_wait_s: float = 1.0
    """Longest wait for a wake-up before looking for pending rows anyway."""
    gather_s: float = 0.01
    """Pause after a pass that was not full, so the rows committed meanwhile go in one
    pass: a pass costs two short transactions and a flush whatever its size, and
    back-to-back passes of one or two rows each cost the service's worker more CPU
    than its requests' events."""
    flush_timeout_s: float = 30.0
    linger_ms: int = 5


class RelayUnavailable(ShopstreamError):
    """Kafka, the registry or the topics are not there when the relay starts."""

    exit_code = 2


class OutboxRelay:
    """Publish the outbox until ``stop`` is set (:meth:`run`, usually on a thread)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        metrics: ServiceMetrics,
        stop: threading.Event,
        options: RelayOptions | None = None,
        wake: threading.Event | None = None,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._metrics = metrics
        self._stop = stop
        self._options = options or RelayOptions()
        self._wake = wake or threading.Event()
        self._catalog = load_catalog().with_topic_prefix(settings.shopstream_topic_prefix)
        self._serializer = EventSerializer(
            make_registry_client(settings.registry_config()), catalog=self._catalog
        )
        self._producer: Producer | None = None
        self._listener: psycopg.Connection[Any] | None = None
        self.last_progress = time.monotonic()
        self.leader = False

    @property
    def wake(self) -> threading.Event:
        return self._wake

    def check(self) -> None:
        """Fail fast (one line) unless Kafka, the registry and the topics answer."""
        check_broker(self._settings)
        self._serializer.prepare()
        metadata = make_admin(self._settings).list_topics(timeout=METADATA_TIMEOUT_S)
        missing = [topic for topic in self._catalog.topics if topic not in metadata.topics]
        if missing:
            raise RelayUnavailable(
                f"topic {missing[0]} does not exist on {self._settings.kafka_bootstrap_servers} "
                "(create them first, e.g. 'shopstream topics create')"
            )

    def run(self) -> None:
        """Publish until stopped; failures of one pass are logged and retried."""
        try:
            while not self._stop.is_set():
                self.last_progress = time.monotonic()
                try:
                    if not self._lead():
                        self._stop.wait(self._options.idle_wait_s)
                        continue
                    published = self.publish_once()
                    if published == 0:
                        self._wait()
                    elif published < self._options.batch_size:
                        self._stop.wait(self._options.gather_s)
                except (SQLAlchemyError, psycopg.Error, ShopstreamError) as exc:
                    self._metrics.relay_failures.inc()
                    log.warning("relay pass failed, retrying", error=_one_line(exc))
                    self._drop_listener()
                    self._stop.wait(RETRY_BACKOFF_S)
        finally:
            self._drop_listener()
            self.close()

    def close(self) -> None:
        """Flush and drop the Kafka producer (a later pass makes a new one)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.flush(self._options.flush_timeout_s)

    # -- leadership and wake-ups ------------------------------------------------------

    def _lead(self) -> bool:
        """True when this relay may publish (always on SQLite)."""
        if self._engine.dialect.name != "postgresql":
            return True
        if self._listener is None:
            url = self._engine.url.render_as_string(hide_password=False)
            self._listener = psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5)
            self.leader = False
        if not self.leader:
            row = self._listener.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_ID,))
            fetched = row.fetchone()
            self.leader = bool(fetched and fetched[0])
            if self.leader:
                self._listener.execute(f"LISTEN {outbox.CHANNEL}")
                log.info("relay is the publishing relay")
        return self.leader

    def _drop_listener(self) -> None:
        listener, self._listener = self._listener, None
        self.leader = False
        if listener is not None:
            with contextlib.suppress(psycopg.Error):
                listener.close()

    def _wait(self) -> None:
        timeout = self._options.idle_wait_s
        if self._listener is not None:
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                pass
        elif self._wake.wait(timeout):
            self._wake.clear()

    # -- publishing -------------------------------------------------------------------

    def publish_once(self) -> int:
        """Publish one batch of pending rows; returns how many were read."""
        with self._engine.begin() as connection:
            rows = outbox.pending(connection, self._options.batch_size)
        if not rows:
            self._metrics.pending.set(0)
            return 0
        self._metrics.pending.set(len(rows))
        if self._producer is None:
            self._producer = make_producer(self._settings, **{"linger.ms": self._options.linger_ms})
        producer = self._producer
        acknowledged: list[int] = []
        failures: list[str] = []
        for row in rows:
            encoded = self._serializer.encode(row.event)
            producer.produce(
                encoded.topic,
                encoded.value,
                encoded.key,
                headers=encoded.headers,  # type: ignore[arg-type]
                on_delivery=_on_delivery(row.id, acknowledged, failures),
            )
        remaining = producer.flush(self._options.flush_timeout_s)
        acked_at = now_utc()
        if acknowledged:
            with self._engine.begin() as connection:
                outbox.mark_sent(connection, acknowledged, acked_at)
            created = {row.id: row for row in rows}
            for row_id in acknowledged:
                row = created[row_id]
                self._metrics.published.labels(row.event.event_type).inc()
                self._metrics.relay_lag.observe(
                    max(0.0, (acked_at - row.created_at) / timedelta(seconds=1))
                )
        if failures or remaining:
            raise RelayPassFailed(
                f"{len(failures) + remaining} of {len(rows)} events not acknowledged"
                + (
                    f": {failures[0]}"
                    if failures
                    else f" within {self._options.flush_timeout_s:g} s"
                )
            )
        return len(rows)


class RelayPassFailed(ShopstreamError):
    """Some events of a pass were not acknowledged; they stay pending and are retried."""


def _on_delivery(
    row_id: int, acknowledged: list[int], failures: list[str]
) -> Callable[[KafkaError | None, Message], None]:
    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is None:
            acknowledged.append(row_id)
        else:
            failures.append(f"{error.name()}: {error.str()}")

    return delivered


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, SQLAlchemyError):
        return describe_db_error(exc)
    return " ".join(str(exc).split()) or type(exc).__name__
